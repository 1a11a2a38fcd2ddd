"""Velero's rules for PodVolumeRestore / DataDownload / DownloadRequest, one function each.

Each function mirrors exactly one rule of ``docs/velero-contract.md`` (shared design doc) and
cites the Velero source it comes from: vmware-tanzu/velero tag v1.18.1 (paths relative to that
repository).  The simulator controllers (node_agent.py, velero_server.py, kubelet.py,
storage.py) only orchestrate; every decision is taken here, so each rule lives once and can be
unit-tested without a cluster.
"""
from __future__ import annotations

import os
import re
import shutil
from typing import Iterable

VELERO_NS = "velero"
PVR_FINALIZER = "velero.io/pod-volume-finalizer"
DD_FINALIZER = "velero.io/data-upload-download-finalizer"
LABEL_POD_UID = "velero.io/pod-uid"
LABEL_EXPOSE_ON_GOING = "velero.io/expose-on-going"
LABEL_DATA_DOWNLOAD = "velero.io/data-download"
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
WAIT_INIT_CONTAINER = "restore-wait"
RESTORE_HELPER_COMMAND = "/velero-restore-helper"
DEFAULT_PREPARE_TIMEOUT = 30 * 60.0
CONCURRENCY_REQUEUE_SECONDS = 5.0
PERIODIC_RESYNC_SECONDS = 60.0
DOWNLOAD_URL_TTL_SECONDS = 600

NEW, ACCEPTED, PREPARED, IN_PROGRESS = "New", "Accepted", "Prepared", "InProgress"
CANCELING, CANCELED, COMPLETED, FAILED = "Canceling", "Canceled", "Completed", "Failed"
FINAL_PHASES = (CANCELED, COMPLETED, FAILED)


# --------------------------------------------------------------------------- common

def in_velero_namespace(obj: dict, velero_ns: str = VELERO_NS) -> bool:
    """Velero: pkg/cmd/cli/nodeagent/server.go newNodeAgentServer — the node-agent cache holds
    PVR/PVB/DU/DD only from the Velero namespace (cache.Options.ByObject); objects elsewhere
    are never seen."""
    return obj.get("metadata", {}).get("namespace") == velero_ns


def phase_of(obj: dict) -> str:
    """Velero: pod_volume_restore_controller.go / data_download_controller.go Reconcile — an
    empty phase is handled as New."""
    return (obj.get("status") or {}).get("phase") or NEW


def is_final(obj: dict) -> bool:
    """Velero: isPVRInFinalState (pod_volume_restore_controller.go) / isDataDownloadInFinalState
    (data_download_controller.go): Canceled, Completed and Failed are final."""
    return phase_of(obj) in FINAL_PHASES


def deletion_cancel_message(kind: str) -> str:
    """Velero: the message of the cancel that deleting a non-final CR sets (Reconcile, "DeletionTimestamp"
    branch of pod_volume_restore_controller.go / data_download_controller.go)."""
    return ("Cancel PVR because it is being deleted" if kind == "PodVolumeRestore"
            else "Cancel datadownload because it is being deleted")


def needs_finalizer(obj: dict, finalizer: str) -> bool:
    """Velero: Reconcile in pod_volume_restore_controller.go / data_download_controller.go adds
    the finalizer first (for non-deleted CRs) and returns; the update event continues."""
    md = obj["metadata"]
    return not md.get("deletionTimestamp") and finalizer not in (md.get("finalizers") or [])


def deletion_action(obj: dict) -> str | None:
    """Velero: Reconcile (both controllers), "DeletionTimestamp" branch — a deleted CR that is not
    final gets spec.cancel=true; once final, the finalizer is removed.
    Returns "cancel", "remove-finalizer" or None."""
    if not obj["metadata"].get("deletionTimestamp"):
        return None
    if is_final(obj):
        return "remove-finalizer"
    if not (obj.get("spec") or {}).get("cancel"):
        return "cancel"
    return None


def cancel_transition(obj: dict) -> str | None:
    """Velero: what spec.cancel does in each phase (pod_volume_restore_controller.go /
    data_download_controller.go Reconcile):
    * New → Canceled at once (New branch, tryCancelPodVolumeRestore / tryCancelDataDownload);
    * Accepted → nothing: the Accepted branch does not look at cancel, the exposer goes on to Prepared
      (findPVRForRestorePod / findSnapshotRestoreForPod) or cancel_overdue forces it;
    * Prepared → Canceled, by the node-agent of the CR's node (Prepared branch, OnDataPathCancelled /
      OnDataDownloadCancelled: exposer cleaned up, no Canceling phase);
    * InProgress → Canceling, then Canceled when the data path stops (InProgress branch, asyncBR.Cancel;
      Canceled at once when that node-agent has no data path for it).
    Returns the next phase, or None."""
    if not (obj.get("spec") or {}).get("cancel"):
        return None
    ph = phase_of(obj)
    if ph in (NEW, PREPARED):
        return CANCELED
    if ph == IN_PROGRESS:
        return CANCELING
    return None


CANCEL_DELAY_OTHERS_SECONDS = 5 * 60.0
CANCEL_DELAY_IN_PROGRESS_SECONDS = 60 * 60.0


def cancel_overdue(spotted_at: float, now: float, phase: str) -> bool:
    """Velero: Reconcile's cancelledPVR / cancelledDataDownload map (both controllers): a CR whose cancel a
    node-agent first saw more than cancelDelayInProgress (1 h, InProgress) or cancelDelayOthers (5 min, any
    other phase) ago is set Canceled by tryCancel* (data_upload_controller.go constants)."""
    delay = CANCEL_DELAY_IN_PROGRESS_SECONDS if phase == IN_PROGRESS else CANCEL_DELAY_OTHERS_SECONDS
    return now - spotted_at > delay


def canceled_status(obj: dict, now: str, message: str = "") -> dict:
    """Velero: tryCancelPodVolumeRestore / OnDataPathCancelled (and the DataDownload twins) — phase Canceled,
    startTimestamp when it had none, completionTimestamp; a message only when the caller gives one (the
    expose-on-going label is removed as well)."""
    status = {"phase": CANCELED, "completionTimestamp": now}
    if not (obj.get("status") or {}).get("startTimestamp"):
        status["startTimestamp"] = now
    if message:
        status["message"] = message
    return status


def resume_failed_message(kind: str, error: str) -> str:
    """Velero: AttemptPVRResume / AttemptDataDownloadResume, run when a node-agent starts — an InProgress CR of
    its node whose data path cannot be resumed gets spec.cancel=true with this message (and is then Canceled:
    InProgress + cancel without a data path)."""
    what = "PVR" if kind == "PodVolumeRestore" else "datadownload"
    return "Resume InProgress %s failed with error %s, mark it as cancel" % (what, error)


def concurrency_exceeded(active_on_node: int, limit: int) -> bool:
    """Velero: ConcurrentLimitExceed (pkg/datapath/manager.go, limit from loadConcurrency) — too many data paths
    on this node. Checked when the data path of a Prepared CR is created (pod_volume_restore_controller.go and
    data_download_controller.go, Prepared branch): the CR stays Prepared and is requeued after 5 s."""
    return limit > 0 and active_on_node >= limit


def prepare_timed_out(accepted_at: float | None, now: float, timeout: float) -> bool:
    """Velero v1.18.1 pkg/controller/pod_volume_restore_controller.go / data_download_controller.go Reconcile,
    Accepted branch: time.Since(acceptedTimestamp) >= preparingTimeout runs onPrepareTimeout; timeout is
    node-agent --data-mover-prepare-timeout (default 30 min). The branch has no node check: any running
    node-agent's pass (the periodic one every minute) times the CR out, also when its accepting node-agent is
    gone."""
    return accepted_at is not None and now - accepted_at >= timeout


def prepare_timeout_status(kind: str) -> dict:
    """Velero v1.18.1 pod_volume_restore_controller.go / data_download_controller.go onPrepareTimeout: phase
    Failed and the message only - no completionTimestamp, unlike every other failure (updateStatusToFailed /
    errorOut); the expose-on-going label is removed as well."""
    message = "timeout on preparing PVR" if kind == "PodVolumeRestore" else "timeout on preparing data download"
    return {"phase": FAILED, "message": message}


def accept_patch(obj: dict, node: str, now: str, by_field: str) -> dict:
    """Velero: acceptPodVolumeRestore / acceptDataDownload — phase Accepted, the accepting node
    (PVR status.node, DD status.acceptedByNode), acceptedTimestamp and label
    velero.io/expose-on-going=true, written with an optimistic Update."""
    st = dict(obj.get("status") or {})
    st.update({"phase": ACCEPTED, by_field: node, "acceptedTimestamp": now})
    labels = dict(obj["metadata"].get("labels") or {})
    labels[LABEL_EXPOSE_ON_GOING] = "true"
    return {"labels": labels, "status": st}


def repository_key(source_namespace: str, bsl: str) -> tuple[str, str, str]:
    """Velero: pkg/datapath/file_system.go Init → EnsureRepo(veleroNs, SourceNamespace, BSLName,
    kopia) (pkg/repository/ensurer.go): one kopia repository per (source namespace, BSL)."""
    return (bsl, source_namespace, "kopia")


def snapshot_missing_message(snapshot_id: str, source_namespace: str, bsl: str) -> str:
    """Velero: pkg/uploader/kopia/snapshot.go Restore → kopia snapshot.LoadSnapshot error, surfaced
    by OnDataPathFailed as "error to run data path" (message text is kopia-like, not exact)."""
    return (f"data path restore failed: Failed to run kopia restore: Unable to load snapshot "
            f"{snapshot_id}: failed to load snapshot manifest {snapshot_id} in repository "
            f"(source namespace {source_namespace}, BSL {bsl}): snapshot not found")


def kopia_restore_files(src: str, dst: str, on_bytes=None, cancelled=None) -> int:
    """Velero: pkg/uploader/kopia/snapshot.go Restore (restore.FilesystemOutput with
    OverwriteDirectories/OverwriteFiles/OverwriteSymlinks, IgnorePermissionErrors) — snapshot
    entries overwrite the target, files absent from the snapshot are NEVER deleted.
    ``on_bytes(n)`` is called as data is written (may sleep for throttling and may raise to
    abort); returns the byte count."""
    total = 0
    for root, dirs, files in os.walk(src):
        rel = os.path.relpath(root, src)
        tdir = dst if rel == "." else os.path.join(dst, rel)
        if os.path.lexists(tdir) and not os.path.isdir(tdir):
            os.remove(tdir)
        os.makedirs(tdir, exist_ok=True)
        for d in dirs:
            sp = os.path.join(root, d)
            if os.path.islink(sp):
                tp = os.path.join(tdir, d)
                if os.path.lexists(tp):
                    if os.path.isdir(tp) and not os.path.islink(tp):
                        shutil.rmtree(tp)
                    else:
                        os.remove(tp)
                os.symlink(os.readlink(sp), tp)
        for f in files:
            sp, tp = os.path.join(root, f), os.path.join(tdir, f)
            if os.path.islink(sp):
                if os.path.lexists(tp):
                    os.remove(tp)
                os.symlink(os.readlink(sp), tp)
                continue
            if os.path.isdir(tp) and not os.path.islink(tp):
                shutil.rmtree(tp)
            elif os.path.islink(tp):
                os.remove(tp)
            total += copy_file(sp, tp, on_bytes)
            shutil.copymode(sp, tp)
    return total


def copy_file(sp: str, tp: str, on_bytes=None, chunk: int = 1 << 20, truncate: bool = True) -> int:
    """Chunked copy used by the data paths (kopia file restore / block writer); reports bytes.
    ``truncate=False`` keeps the target size (block device image); all-zero chunks of a block
    image are skipped with a seek so sparse images stay sparse."""
    n = 0
    with open(sp, "rb") as fi, open(tp, "r+b" if os.path.exists(tp) else "wb") as fo:
        while True:
            b = fi.read(chunk)
            if not b:
                break
            hole = not truncate and not b.strip(b"\0")
            if hole:
                fo.seek(len(b), os.SEEK_CUR)
            else:
                fo.write(b)
            n += len(b)
            if on_bytes:
                on_bytes(len(b), hole) if hole else on_bytes(len(b))
        if truncate:
            fo.truncate(n)
    return n


def tree_size(path: str) -> int:
    """kopia snapshot size: sum of regular file sizes (progress.totalBytes)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def completion_mark_name(obj: dict) -> str | None:
    """Velero: writeCompletionMark (pkg/podvolume/restore_micro_service.go) — the
    done file is named after ownerReferences[0].uid (controller flag ignored); with no
    ownerReferences it only logs "Failed to write completion mark" and the PVR still Completes."""
    refs = obj["metadata"].get("ownerReferences") or []
    if not refs:
        return None
    return refs[0].get("uid") or None


def write_completion_mark(volume_dir: str, obj: dict) -> str | None:
    """Velero: writeCompletionMark (pkg/podvolume/restore_micro_service.go) — delete
    <volume>/.velero/ then write the empty file <volume>/.velero/<owner uid>."""
    name = completion_mark_name(obj)
    vdir = os.path.join(volume_dir, ".velero")
    shutil.rmtree(vdir, ignore_errors=True)
    if name is None:
        return None
    os.makedirs(vdir, mode=0o755, exist_ok=True)
    p = os.path.join(vdir, name)
    open(p, "wb").close()
    return p


# --------------------------------------------------------------------------- PVR

def pvr_uploader_accepted(pvr: dict) -> bool:
    """Velero v1.18.1 pkg/controller/pod_volume_restore_controller_legacy.go IsLegacyPVR, used by the predicates
    of PodVolumeRestoreReconciler.SetupWithManager (pod_volume_restore_controller.go): only a PVR whose
    spec.uploaderType is exactly "restic" is left to the legacy restic controller (not simulated: such a PVR is
    never touched here); every other value, "" included, is taken by the PVR controller."""
    return (pvr.get("spec") or {}).get("uploaderType") != "restic"


def pvr_uploader_error(pvr: dict) -> str | None:
    """Velero v1.18.1 pkg/uploader/provider/provider.go NewUploaderProvider: any uploaderType other than "kopia"
    gets the restic provider, and the PVR data path gives it no repository (pkg/podvolume/restore_micro_service.go
    RunCancelableDataPath, RepoIdentifier ""), so the restore fails in the data path (pkg/uploader/provider/restic.go
    RunRestore → pkg/restic/exec_commands.go RunRestore "error getting snapshot size"). The PVR was Accepted,
    Prepared and InProgress before; it ends Failed. Message text approximated (restic's own output differs)."""
    uploader = (pvr.get("spec") or {}).get("uploaderType") or ""
    if uploader == "kopia":
        return None
    return ("data path restore failed: error getting snapshot size: restic uploader (uploaderType %r is not "
            "\"kopia\") has no repository for this PVR: Fatal: Please specify repository location (-r or "
            "--repository-file)" % uploader)


def pvr_pod_on_node(pod: dict | None, node: str) -> bool:
    """Velero: shouldProcess (pod_volume_restore_controller.go) Gets spec.pod ns/name from the
    node-local pod cache (filtered by spec.nodeName=$NODE_NAME); the UID is not compared."""
    return pod is not None and (pod.get("spec") or {}).get("nodeName") == node


def restore_wait_running(pod: dict) -> bool:
    """Velero: restorehelper.WaitInitContainer (pkg/restorehelper/util.go) and
    isInitContainerRunning (pod_volume_restore_controller.go): the pod must have an init container
    named exactly "restore-wait" whose initContainerStatuses[i].state.running is set."""
    names = [c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or []]
    if WAIT_INIT_CONTAINER not in names:
        return False
    for st in (pod.get("status") or {}).get("initContainerStatuses") or []:
        if st.get("name") == WAIT_INIT_CONTAINER:
            return bool((st.get("state") or {}).get("running") is not None)
    return False


def pvr_keys_for_pod(pod: dict, pvrs: Iterable[dict]) -> list[str]:
    """Velero: findPVRForTargetPod (pod_volume_restore_controller.go) — a pod event re-triggers
    only PVRs labelled velero.io/pod-uid=<pod uid>."""
    uid = pod["metadata"].get("uid")
    return [p["metadata"]["name"] for p in pvrs
            if (p["metadata"].get("labels") or {}).get(LABEL_POD_UID) == uid]


def periodic_resync(obj: dict) -> bool:
    """Velero: SetupWithManager periodical enqueue source predicate gp (pod_volume_restore_controller.go,
    data_download_controller.go; every preparingMonitorFrequency, 1 min): only Accepted CRs, cancel-requested
    ones that are not final, and final ones being deleted are resynced; a New CR is never retried on its own."""
    return (phase_of(obj) == ACCEPTED
            or (bool((obj.get("spec") or {}).get("cancel")) and not is_final(obj))
            or (is_final(obj) and bool(obj["metadata"].get("deletionTimestamp"))))


def pvr_filesystem_only(snapshot_mode: str) -> str | None:
    """Velero: pkg/cmd/cli/podvolume/restore.go runs the data path with VolMode Filesystem; a
    block snapshot cannot be restored by a PVR (contract §2 "Block / Windows", §8)."""
    if snapshot_mode == "Block":
        return "data path restore failed: snapshot is a block-mode snapshot; PodVolumeRestore only restores Filesystem volumes"
    return None


# --------------------------------------------------------------------------- restore helper

def restore_helper_args_ok(args: list[str]) -> bool:
    """Velero: cmd/velero-restore-helper/velero-restore-helper.go main — exactly one argument
    (the UID) or it exits 1."""
    return len(args) == 1


def restore_helper_done(uid: str, volume_dirs: dict[str, str]) -> bool:
    """Velero v1.18.1 cmd/velero-restore-helper/velero-restore-helper.go done() — every directory under
    /restores must contain .velero/<uid>; ``volume_dirs`` maps /restores/<dir> → host path.
    Without any /restores/<dir> mount there is no /restores at all (the Velero image has none: Dockerfile
    copies only the binaries), ReadDir("/restores") fails and done() returns false on every tick: the helper
    waits for ever instead of finishing at once."""
    if not volume_dirs:
        return False
    return all(os.path.exists(os.path.join(p, ".velero", uid)) for p in volume_dirs.values())


# Velero v1.18.1 Dockerfile: the image ends with `USER cnb:cnb` (the non-root user of the paketo run image), so a
# restore-wait container without runAsUser in its or its pod's securityContext does not run as root.
VELERO_IMAGE_RUNS_AS_ROOT = False


def restore_wait_runs_as_root(pod: dict, container: dict) -> bool:
    """The effective user of restore-wait, as the container runtime picks it: the container's
    securityContext.runAsUser, else the pod's securityContext.runAsUser, else the image's USER (the Velero image
    is non-root, VELERO_IMAGE_RUNS_AS_ROOT). Velero's own default for restore-wait is runAsUser 1000
    (v1.18.1 pkg/restore/actions/pod_volume_restore_action.go defaultSecurityCtx, restoreHelperUID)."""
    for ctx in ((container.get("securityContext") or {}), ((pod.get("spec") or {}).get("securityContext") or {})):
        if ctx.get("runAsUser") is not None:
            return ctx["runAsUser"] == 0
    return VELERO_IMAGE_RUNS_AS_ROOT


def restore_helper_finish(volume_dirs: dict[str, str], runs_as_root: bool) -> str | None:
    """Velero v1.18.1 cmd/velero-restore-helper/velero-restore-helper.go removeFolder (called by main after
    done()): os.RemoveAll(/restores/<dir>/.velero) for each directory in name order (os.ReadDir sorts),
    non-directories skipped, giving up at the first error; main only prints the error and exits 0 either way.
    `.velero/` and the done file are written by the data path as root with mode 0755 (pkg/podvolume/
    restore_micro_service.go writeCompletionMark, run in the hosting pod that pkg/exposer/pod_volume.go
    createHostingPod starts with runAsUser 0), so a non-root restore-wait cannot delete the done file: the first
    `.velero` stays whole and the helper stops there. Returns the printed error, or None."""
    for mount in sorted(volume_dirs):
        path = volume_dirs[mount]
        if not os.path.isdir(path):
            continue
        velero_dir = os.path.join(path, ".velero")
        if not os.path.lexists(velero_dir):
            continue  # RemoveAll of a missing path succeeds
        if not runs_as_root:
            entries = sorted(os.listdir(velero_dir)) if os.path.isdir(velero_dir) else []
            what = os.path.join(mount, ".velero", entries[0]) if entries else os.path.join(mount, ".velero")
            return "unlinkat %s: permission denied" % what
        if os.path.isdir(velero_dir) and not os.path.islink(velero_dir):
            shutil.rmtree(velero_dir)
        else:
            os.remove(velero_dir)
    return None


# --------------------------------------------------------------------------- DataDownload

def dd_datamover_accepted(dd: dict) -> bool:
    """Velero: pkg/datamover/util.go IsBuiltInUploader, used in DataDownloadReconciler.Reconcile
    and its predicates: spec.datamover must be "" or "velero", otherwise the DD is ignored."""
    return (dd.get("spec") or {}).get("datamover", "") in ("", "velero")


def dd_target_pvc_key(dd: dict) -> tuple[str, str]:
    """Velero: getTargetPVC (data_download_controller.go) — targetVolume.namespace/pvc; missing →
    Requeue without failing (a DD may precede its PVC)."""
    tv = (dd.get("spec") or {}).get("targetVolume") or {}
    return tv.get("namespace", ""), tv.get("pvc", "")


def dd_node_os(dd: dict) -> str:
    """Velero: setupExposeParam (data_download_controller.go) — nodeOS "" means linux."""
    return (dd.get("spec") or {}).get("nodeOS") or "linux"


def has_node_with_os(nodes: Iterable[dict], os_name: str) -> bool:
    """Velero: pkg/util/kube/node.go HasNodeWithOS — some node must carry kubernetes.io/os=<os>
    (so nodeOS "auto" never matches)."""
    return any((n["metadata"].get("labels") or {}).get("kubernetes.io/os") == os_name for n in nodes)


def dd_no_node_message(dd: dict, os_name: str) -> str:
    """Velero: setupExposeParam error path → DD Failed (message text approximated)."""
    return f"no appropriate node to run data download {dd['metadata']['name']}: no node with OS {os_name}"


def dd_storage_class_to_get(pvc: dict) -> str | None:
    """Velero v1.18.1 pkg/util/kube/pvc_pv.go WaitPVCConsumed: the StorageClass is fetched whenever the target
    PVC's spec.storageClassName is set (a non-nil pointer), even to "". Returns the name to GET, or None."""
    name = (pvc.get("spec") or {}).get("storageClassName")
    return None if name is None else name


def dd_storage_class_error(pvc: dict, class_name: str) -> str:
    """Velero v1.18.1 pkg/util/kube/pvc_pv.go WaitPVCConsumed: a failed GET of the class ends the wait with an
    error, pkg/exposer/generic_restore.go Expose wraps it and data_download_controller.go errorOut sets the DD
    Failed ("error to expose snapshot: …"). The apiserver answers "" with "resource name may not be empty"."""
    md = pvc["metadata"]
    cause = ("resource name may not be empty" if class_name == ""
             else f'storageclasses.storage.k8s.io "{class_name}" not found')
    return (f"error to expose snapshot: error to wait target PVC consumed, {md['namespace']}/{md['name']}: "
            f"error to wait for PVC: error to get storage class {class_name}: {cause}")


def dd_wait_pvc_consumed(pvc: dict, storage_class: dict | None) -> bool:
    """Velero: pkg/util/kube/pvc_pv.go WaitPVCConsumed — with a WaitForFirstConsumer class the
    target PVC must carry volume.kubernetes.io/selected-node (set by the scheduler) before the
    expose continues (``storage_class`` None: the PVC names no class).  Returns True when the
    expose may continue."""
    if storage_class and storage_class.get("volumeBindingMode") == "WaitForFirstConsumer":
        return bool((pvc["metadata"].get("annotations") or {}).get(ANN_SELECTED_NODE))
    return True


def dd_target_bound_error(pvc: dict) -> str | None:
    """Velero: pkg/exposer/generic_restore.go Expose — "Target PVC %s/%s has already been bound,
    abort" when spec.volumeName is set; the DD goes Failed."""
    if (pvc.get("spec") or {}).get("volumeName"):
        md = pvc["metadata"]
        return f"error to expose snapshot: Target PVC {md['namespace']}/{md['name']} has already been bound, abort"
    return None


def dd_restore_pvc(dd: dict, target: dict, velero_ns: str = VELERO_NS) -> dict:
    """Velero: pkg/exposer/generic_restore.go createRestorePVC — name = DD name in the Velero ns;
    copies accessModes, storageClassName, volumeMode, resources and labels; annotations are
    replaced by only selected-node when the target has one; no selector (dynamically
    provisioned)."""
    ts = target.get("spec") or {}
    ann = (target["metadata"].get("annotations") or {})
    sel = ann.get(ANN_SELECTED_NODE)
    spec = {k: ts[k] for k in ("accessModes", "storageClassName", "volumeMode", "resources") if k in ts}
    return {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": dd["metadata"]["name"], "namespace": velero_ns,
            "labels": dict(target["metadata"].get("labels") or {}),
            "annotations": {ANN_SELECTED_NODE: sel} if sel else dict(ann),
            "ownerReferences": [_owner(dd)],
        },
        "spec": spec,
    }


def dd_restore_pod(dd: dict, restore_pvc_name: str, volume_mode: str, selected_node: str | None,
                   image: str, velero_ns: str = VELERO_NS) -> dict:
    """Velero: pkg/exposer/generic_restore.go createRestorePod — name = DD name, container = DD
    UID, labels velero.io/data-download=<name> and velero.io/exposer-pod-group, node-agent image,
    PullNever, `/velero data-mover restore --volume-path=/<uid> --volume-mode=...`, pinned by
    kubernetes.io/hostname to the selected node if any; block volumes via volumeDevices."""
    uid = dd["metadata"]["uid"]
    name = dd["metadata"]["name"]
    ctr = {
        "name": uid, "image": image, "imagePullPolicy": "Never",
        "command": ["/velero", "data-mover", "restore", f"--volume-path=/{uid}",
                    f"--volume-mode={volume_mode}", f"--data-download={name}",
                    f"--resource-timeout={(dd.get('spec') or {}).get('operationTimeout', '')}"],
    }
    if volume_mode == "Block":
        ctr["volumeDevices"] = [{"name": uid, "devicePath": f"/{uid}"}]
    else:
        ctr["volumeMounts"] = [{"name": uid, "mountPath": f"/{uid}"}]
    spec = {
        "containers": [ctr], "restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
        "volumes": [{"name": uid, "persistentVolumeClaim": {"claimName": restore_pvc_name}}],
        "nodeSelector": {"kubernetes.io/os": dd_node_os(dd)},
    }
    if selected_node:
        spec["nodeSelector"]["kubernetes.io/hostname"] = selected_node
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": velero_ns,
                     "labels": {LABEL_DATA_DOWNLOAD: name,
                                "velero.io/exposer-pod-group": "generic-restore-exposer"},
                     "ownerReferences": [_owner(dd)]},
        "spec": spec,
    }


def pod_unrecoverable(pod: dict) -> str | None:
    """Velero v1.18.1 pkg/util/kube/pod.go IsPodUnrecoverable: a pod in phase Failed or Unknown, or with a
    container waiting on ImagePullBackOff / ErrImageNeverPull, cannot recover (a Succeeded pod can: it is
    neither). Returns the reason, or None."""
    st = pod.get("status") or {}
    phase = st.get("phase")
    if phase in ("Failed", "Unknown"):
        message = (st.get("message") + "/") if st.get("message") else ""
        message += "".join(((c.get("state") or {}).get("terminated") or {}).get("message") or ""
                           for c in st.get("containerStatuses") or [])
        return f"Pod is in abnormal state [{phase}], message [{message}]"
    md = pod.get("metadata") or {}
    for c in st.get("containerStatuses") or []:
        reason = ((c.get("state") or {}).get("waiting") or {}).get("reason")
        if reason in ("ImagePullBackOff", "ErrImageNeverPull"):
            return (f"Container {c.get('name')} in Pod {md.get('namespace')}/{md.get('name')} is in pull image "
                    f"failed with reason {reason}")
    return None


def dd_restore_pod_failed_cancel(dd: dict, pod: dict, reason: str) -> tuple[dict, str]:
    """Velero v1.18.1 pkg/controller/data_download_controller.go: findSnapshotRestoreForPod sets spec.cancel with
    the first message when the restore pod of an Accepted DD is unrecoverable; the Accepted branch of Reconcile
    then gets the same reason from PeekExposed (pkg/exposer/generic_restore.go) and tryCancelDataDownload makes
    the DD Canceled (not Failed) with the second message and cleans the exposer up.
    Returns (the cancel status message, the Canceled message)."""
    dd_md, pod_md = dd["metadata"], pod["metadata"]
    cancel_message = (f"Cancel datadownload because the exposing pod {pod_md.get('namespace')}/{pod_md.get('name')} "
                      f"is in abnormal status for reason {reason}")
    canceled_message = (f"found a datadownload {dd_md.get('namespace')}/{dd_md.get('name')} with expose error: "
                        f"{reason}. mark it as cancel")
    return cancel_message, canceled_message


def _owner(obj: dict) -> dict:
    return {"apiVersion": obj.get("apiVersion", "velero.io/v2alpha1"), "kind": obj.get("kind", "DataDownload"),
            "name": obj["metadata"]["name"], "uid": obj["metadata"]["uid"], "controller": True}


_DUR = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_go_duration(s: str) -> float:
    """Go time.ParseDuration (metav1.Duration JSON); raises ValueError on bad input."""
    if s in ("0",):
        return 0.0
    if not s or not re.fullmatch(r"(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+", s):
        raise ValueError(f"invalid duration {s!r}")
    return sum(float(n) * _UNIT[u] for n, u in _DUR.findall(s))


def dd_operation_timeout(dd: dict) -> float:
    """Velero: RebindVolume / WaitPVCBound use spec.operationTimeout (data_download_controller.go,
    pkg/exposer/generic_restore.go); a zero timeout makes every bind wait fail at once, so it must
    be a non-zero duration.  Returns seconds (0 when absent or invalid)."""
    try:
        return parse_go_duration((dd.get("spec") or {}).get("operationTimeout") or "")
    except ValueError:
        return 0.0


def rebind_pvc_patch(pv_name: str) -> dict:
    """Velero: pkg/util/kube/pvc_pv.go RebindPVC — target PVC spec.volumeName=<restored PV>,
    dropping pv.kubernetes.io/bind-completed and pv.kubernetes.io/bound-by-controller."""
    return {"metadata": {"annotations": {ANN_BIND_COMPLETED: None, ANN_BOUND_BY_CONTROLLER: None}},
            "spec": {"volumeName": pv_name}}


def reset_pv_binding_patch(pv: dict, target_pvc: dict) -> dict:
    """Velero v1.18.1 pkg/util/kube/pvc_pv.go ResetPVBinding (labels from pkg/exposer/generic_restore.go
    RebindVolume: the target PVC's spec.selector.matchLabels, nil without a selector) — claimRef={namespace,name}
    without uid, bound-by-controller annotation removed; of the selector's labels only keys the PV lacks are
    added, existing PV labels are never changed or removed (a merge patch of the difference)."""
    md = target_pvc["metadata"]
    match_labels = ((target_pvc.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    pv_labels = (pv.get("metadata") or {}).get("labels") or {}
    missing = {k: v for k, v in match_labels.items() if k not in pv_labels}
    metadata: dict = {"annotations": {ANN_BOUND_BY_CONTROLLER: None}}
    if missing:
        metadata["labels"] = missing
    return {"metadata": metadata,
            "spec": {"claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                                  "namespace": md["namespace"], "name": md["name"],
                                  "uid": None, "resourceVersion": None}}}


def rebind_failure_effects() -> dict:
    """Velero: OnDataDownloadCompleted (data_download_controller.go) — if RebindVolume errors it
    only logs and returns: the DD stays InProgress and the deferred cleanup deletes the retained
    restored PV (defer … DeletePVIfAny)."""
    return {"phase": IN_PROGRESS, "delete_pv": True}


# --------------------------------------------------------------------------- DownloadRequest

DOWNLOAD_TARGETS = {
    "BackupLog": "{b}-logs.gz",
    "BackupContents": "{b}.tar.gz",
    "BackupVolumeSnapshots": "{b}-volumesnapshots.json.gz",
    "BackupItemOperations": "{b}-itemoperations.json.gz",
    "BackupResourceList": "{b}-resource-list.json.gz",
    "BackupResults": "{b}-results.gz",
    "CSIBackupVolumeSnapshots": "{b}-csi-volumesnapshots.json.gz",
    "CSIBackupVolumeSnapshotContents": "{b}-csi-volumesnapshotcontents.json.gz",
    "BackupVolumeInfos": "{b}-volumeinfo.json.gz",
}


def download_object_key(kind: str, name: str, prefix: str = "") -> str | None:
    """Velero: pkg/persistence/object_store_layout.go getBackup*Key — object keys under
    <prefix>/backups/<backup>/ (restore kinds are not simulated → None)."""
    tmpl = DOWNLOAD_TARGETS.get(kind)
    if tmpl is None:
        return None
    p = (prefix.strip("/") + "/") if prefix else ""
    return f"{p}backups/{name}/{tmpl.format(b=name)}"


def download_request_expired(dr: dict, now: float, parse) -> bool:
    """Velero: pkg/controller/download_request_controller.go Reconcile — a request whose
    status.expiration has passed is deleted."""
    exp = parse((dr.get("status") or {}).get("expiration"))
    return exp is not None and exp < now


# --------------------------------------------------------------------------- provisioner

def provision_decision(pvc: dict, sc: dict | None, provisioner: str) -> str:
    """CSI external-provisioner (kubernetes-csi/external-provisioner pkg/controller/controller.go
    shouldProvision/Provision, as cited in contract §3 "Why velero.io/dynamic-pv-restore"):
    returns "skip" (not ours / pre-bound / already bound / WFFC without selected-node),
    "selector" (claim Selector is not supported → ProvisioningFailed), or "provision"."""
    spec = pvc.get("spec") or {}
    if sc is None or sc.get("provisioner") != provisioner:
        return "skip"
    if spec.get("volumeName") or pvc["metadata"].get("deletionTimestamp"):
        return "skip"
    if (pvc.get("status") or {}).get("phase") not in (None, "Pending"):
        return "skip"
    if sc.get("volumeBindingMode") == "WaitForFirstConsumer" and \
            not (pvc["metadata"].get("annotations") or {}).get(ANN_SELECTED_NODE):
        return "skip"
    if spec.get("selector"):
        return "selector"
    return "provision"
