"""Pure unit tests of the simulator's Velero rules (tests/cluster/sim/contract.py) and helpers;
no cluster needed."""
from __future__ import annotations

import os
import time

from sim import contract as C
from sim.config import SimConfig
from sim.kube import WorkQueue
from sim.kubelet import Kubelet
from sim.velero import read_tree, write_files


def test_only_restic_pvrs_are_left_to_the_legacy_controller_and_non_kopia_ones_fail_in_the_data_path():
    """v1.18.1 IsLegacyPVR filters out "restic" only; NewUploaderProvider gives anything but "kopia" the restic
    provider, which has no repository for a PVR: accepted, then Failed."""
    assert not C.pvr_uploader_accepted({"spec": {"uploaderType": "restic"}})
    for uploader in ("kopia", "", None, "other"):
        assert C.pvr_uploader_accepted({"spec": {"uploaderType": uploader}})
    assert C.pvr_uploader_error({"spec": {"uploaderType": "kopia"}}) is None
    for uploader in ("", None, "other"):
        assert "error getting snapshot size" in C.pvr_uploader_error({"spec": {"uploaderType": uploader}})


def test_restore_wait_running_needs_exact_name_and_running_state():
    pod = {"spec": {"initContainers": [{"name": "restore-wait"}]},
           "status": {"initContainerStatuses": [{"name": "restore-wait", "state": {"running": {}}}]}}
    assert C.restore_wait_running(pod)
    pod["status"]["initContainerStatuses"][0]["state"] = {"waiting": {}}
    assert not C.restore_wait_running(pod)
    legacy = {"spec": {"initContainers": [{"name": "restic-wait"}]},
              "status": {"initContainerStatuses": [{"name": "restic-wait", "state": {"running": {}}}]}}
    assert not C.restore_wait_running(legacy)


def test_pvr_keys_for_pod_use_pod_uid_label():
    pod = {"metadata": {"uid": "u1"}}
    pvrs = [{"metadata": {"name": "a", "labels": {C.LABEL_POD_UID: "u1"}}},
            {"metadata": {"name": "b", "labels": {}}}, {"metadata": {"name": "c"}}]
    assert C.pvr_keys_for_pod(pod, pvrs) == ["a"]
    assert not C.periodic_resync({"metadata": {}, "spec": {}, "status": {"phase": "New"}})
    assert not C.periodic_resync({"metadata": {}, "spec": {}, "status": {"phase": "InProgress"}})
    assert C.periodic_resync({"metadata": {}, "spec": {}, "status": {"phase": "Accepted"}})
    assert C.periodic_resync({"metadata": {}, "spec": {"cancel": True}, "status": {}})
    assert not C.periodic_resync({"metadata": {}, "spec": {"cancel": True}, "status": {"phase": "Canceled"}})
    assert C.periodic_resync({"metadata": {"deletionTimestamp": "t"}, "spec": {}, "status": {"phase": "Completed"}})


def test_completion_mark_uses_first_owner(tmp_path):
    obj = {"metadata": {"ownerReferences": [{"uid": "u1"}, {"uid": "u2", "controller": True}]}}
    assert C.completion_mark_name(obj) == "u1"
    assert C.completion_mark_name({"metadata": {}}) is None
    (tmp_path / ".velero").mkdir()
    (tmp_path / ".velero" / "stale").write_text("x")
    C.write_completion_mark(str(tmp_path), obj)
    assert os.listdir(tmp_path / ".velero") == ["u1"]
    C.write_completion_mark(str(tmp_path), {"metadata": {}})
    assert not (tmp_path / ".velero").exists()


def test_restore_helper(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        (d / ".velero").mkdir(parents=True)
    dirs = {"/restores/a": str(a), "/restores/b": str(b)}
    (a / ".velero" / "uid").write_text("")
    assert not C.restore_helper_done("uid", dirs)
    (b / ".velero" / "uid").write_text("")
    assert C.restore_helper_done("uid", dirs)
    assert C.restore_helper_finish(dirs, runs_as_root=True) is None
    assert not (a / ".velero").exists() and not (b / ".velero").exists()
    assert C.restore_helper_args_ok(["x"]) and not C.restore_helper_args_ok([]) and not C.restore_helper_args_ok(["a", "b"])


def test_a_non_root_restore_helper_cannot_remove_the_root_owned_done_files_and_stops_at_the_first(tmp_path):
    """removeFolder gives up at the first RemoveAll error (main still exits 0); .velero is the data path's, root."""
    dirs = {}
    for name in ("b", "a"):
        (tmp_path / name / ".velero").mkdir(parents=True)
        (tmp_path / name / ".velero" / "uid").write_text("")
        dirs["/restores/" + name] = str(tmp_path / name)
    error = C.restore_helper_finish(dirs, runs_as_root=False)
    assert error == "unlinkat /restores/a/.velero/uid: permission denied"
    assert (tmp_path / "a" / ".velero" / "uid").exists() and (tmp_path / "b" / ".velero" / "uid").exists()


def test_restore_wait_user_is_the_container_s_then_the_pod_s_then_the_velero_image_s():
    def pod(pod_user=None):
        return {"spec": {"securityContext": {} if pod_user is None else {"runAsUser": pod_user}}}

    def container(user=None):
        return {"securityContext": {} if user is None else {"runAsUser": user}}

    assert C.restore_wait_runs_as_root(pod(1000), container(0))
    assert not C.restore_wait_runs_as_root(pod(0), container(1000))
    assert C.restore_wait_runs_as_root(pod(0), container())
    assert not C.restore_wait_runs_as_root(pod(), container())  # image USER cnb:cnb
    assert not C.restore_wait_runs_as_root({"spec": {}}, {})


def test_restore_helper_without_restores_mounts_never_finishes():
    """No /restores/<dir> mount: ReadDir("/restores") fails, done() is false on every tick."""
    assert not C.restore_helper_done("uid", {})


def test_kopia_restore_overwrites_and_never_deletes(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_files(str(src), {"a.txt": b"new", "d/b.bin": b"12345"})
    write_files(str(dst), {"a.txt": b"old-and-longer", "extra.txt": b"keep", "d/b.bin": b"x"})
    seen = []
    n = C.kopia_restore_files(str(src), str(dst), seen.append)
    assert n == 8 and sum(seen) == 8
    assert read_tree(str(dst)) == {"a.txt": b"new", "d/b.bin": b"12345", "extra.txt": b"keep"}
    assert C.tree_size(str(src)) == 8


def test_block_copy_keeps_size_and_sparseness(tmp_path):
    src, dst = tmp_path / "s.img", tmp_path / "d.img"
    with open(src, "wb") as f:
        f.truncate(4 << 20)
        f.write(b"head")
    with open(dst, "wb") as f:
        f.truncate(8 << 20)
    assert C.copy_file(str(src), str(dst), truncate=False) == 4 << 20
    assert os.path.getsize(dst) == 8 << 20
    assert open(dst, "rb").read(4) == b"head"


def test_dd_rules():
    assert C.dd_datamover_accepted({"spec": {}}) and C.dd_datamover_accepted({"spec": {"datamover": "velero"}})
    assert not C.dd_datamover_accepted({"spec": {"datamover": "other"}})
    assert C.dd_node_os({"spec": {}}) == "linux" and C.dd_node_os({"spec": {"nodeOS": "auto"}}) == "auto"
    nodes = [{"metadata": {"labels": {"kubernetes.io/os": "linux"}}}]
    assert C.has_node_with_os(nodes, "linux") and not C.has_node_with_os(nodes, "auto")
    wffc = {"volumeBindingMode": "WaitForFirstConsumer"}
    pvc = {"metadata": {"namespace": "n", "name": "p", "annotations": {}}, "spec": {}}
    assert not C.dd_wait_pvc_consumed(pvc, wffc) and C.dd_wait_pvc_consumed(pvc, {"volumeBindingMode": "Immediate"})
    pvc["metadata"]["annotations"][C.ANN_SELECTED_NODE] = "n1"
    assert C.dd_wait_pvc_consumed(pvc, wffc)
    assert C.dd_target_bound_error(pvc) is None
    assert C.dd_storage_class_to_get(pvc) is None
    pvc["spec"]["volumeName"] = "pv"
    assert "Target PVC n/p has already been bound, abort" in C.dd_target_bound_error(pvc)


def test_dd_storage_class_is_fetched_whenever_the_pvc_names_one_even_empty():
    pvc = {"metadata": {"namespace": "n", "name": "p"}, "spec": {"storageClassName": ""}}
    assert C.dd_storage_class_to_get(pvc) == ""
    assert C.dd_storage_class_error(pvc, "").endswith("error to get storage class : resource name may not be empty")
    pvc["spec"]["storageClassName"] = "gone"
    assert C.dd_storage_class_to_get(pvc) == "gone"
    assert C.dd_storage_class_error(pvc, "gone").startswith(
        "error to expose snapshot: error to wait target PVC consumed, n/p: error to wait for PVC: error to get storage "
        'class gone: storageclasses.storage.k8s.io "gone" not found')


def test_pod_unrecoverable_is_failed_unknown_or_an_image_pull_error_not_succeeded():
    def pod(phase, waiting=None):
        statuses = [{"name": "c", "state": {"waiting": {"reason": waiting}}}] if waiting else []
        return {"metadata": {"namespace": "velero", "name": "dd"},
                "status": {"phase": phase, "containerStatuses": statuses}}

    assert C.pod_unrecoverable(pod("Failed")) == "Pod is in abnormal state [Failed], message []"
    assert C.pod_unrecoverable(pod("Unknown")).startswith("Pod is in abnormal state [Unknown]")
    assert "ErrImageNeverPull" in C.pod_unrecoverable(pod("Pending", "ErrImageNeverPull"))
    assert "ImagePullBackOff" in C.pod_unrecoverable(pod("Pending", "ImagePullBackOff"))
    for healthy in (pod("Succeeded"), pod("Running"), pod("Pending", "ContainerCreating")):
        assert C.pod_unrecoverable(healthy) is None


def test_prepare_timeout_is_failed_with_a_message_and_no_completion_timestamp():
    assert C.prepare_timeout_status("PodVolumeRestore") == {"phase": "Failed", "message": "timeout on preparing PVR"}
    assert C.prepare_timeout_status("DataDownload") == {"phase": "Failed",
                                                        "message": "timeout on preparing data download"}
    assert C.prepare_timed_out(0.0, 1800.0, 1800.0) and not C.prepare_timed_out(0.0, 1799.0, 1800.0)


def test_durations_and_rebind_patches():
    assert C.parse_go_duration("10m0s") == 600 and C.parse_go_duration("1h30m") == 5400
    assert C.parse_go_duration("1.5s") == 1.5
    assert C.dd_operation_timeout({"spec": {"operationTimeout": "0s"}}) == 0
    assert C.dd_operation_timeout({"spec": {"operationTimeout": "bogus"}}) == 0
    target = {"metadata": {"namespace": "n", "name": "p"},
              "spec": {"selector": {"matchLabels": {"velero.io/dynamic-pv-restore": "n.p.abcde"}}}}
    patch = C.reset_pv_binding_patch({}, target)
    assert patch["spec"]["claimRef"]["uid"] is None and patch["spec"]["claimRef"]["name"] == "p"
    assert patch["metadata"]["labels"] == {"velero.io/dynamic-pv-restore": "n.p.abcde"}
    assert C.rebind_pvc_patch("pv1")["spec"]["volumeName"] == "pv1"


def test_reset_pv_binding_keeps_pv_labels_and_only_adds_missing_selector_keys():
    pv = {"metadata": {"labels": {"team": "a", "velero.io/dynamic-pv-restore": "old"}}}
    no_selector = {"metadata": {"namespace": "n", "name": "p"}, "spec": {}}
    assert "labels" not in C.reset_pv_binding_patch(pv, no_selector)["metadata"]
    selector = {"metadata": {"namespace": "n", "name": "p"},
                "spec": {"selector": {"matchLabels": {"velero.io/dynamic-pv-restore": "new", "extra": "x"}}}}
    assert C.reset_pv_binding_patch(pv, selector)["metadata"]["labels"] == {"extra": "x"}


def test_restore_pvc_and_pod_shape():
    dd = {"apiVersion": "velero.io/v2alpha1", "kind": "DataDownload",
          "metadata": {"name": "dd1", "uid": "ddu"}, "spec": {"operationTimeout": "10m0s"}}
    target = {"metadata": {"name": "p", "namespace": "n", "labels": {"l": "v"},
                           "annotations": {C.ANN_SELECTED_NODE: "node-b", "other": "x"}},
              "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "sc", "volumeMode": "Block",
                       "resources": {"requests": {"storage": "1Gi"}}, "selector": {"matchLabels": {"a": "b"}}}}
    pvc = C.dd_restore_pvc(dd, target)
    assert pvc["metadata"]["name"] == "dd1" and pvc["metadata"]["namespace"] == "velero"
    assert "selector" not in pvc["spec"] and pvc["spec"]["volumeMode"] == "Block"
    assert pvc["metadata"]["annotations"] == {C.ANN_SELECTED_NODE: "node-b"}
    pod = C.dd_restore_pod(dd, "dd1", "Block", "node-b", "img")
    assert pod["spec"]["nodeSelector"]["kubernetes.io/hostname"] == "node-b"
    assert pod["spec"]["containers"][0]["name"] == "ddu" and "volumeDevices" in pod["spec"]["containers"][0]


def test_cancel_and_deletion():
    assert C.cancel_transition({"spec": {"cancel": True}, "status": {}}) == C.CANCELED
    # Accepted: not handled until the exposer reaches Prepared (or the cancel is overdue); no Canceling phase
    assert C.cancel_transition({"spec": {"cancel": True}, "status": {"phase": "Accepted"}}) is None
    assert C.cancel_transition({"spec": {"cancel": True}, "status": {"phase": "Prepared"}}) == C.CANCELED
    assert C.cancel_transition({"spec": {"cancel": True}, "status": {"phase": "InProgress"}}) == C.CANCELING
    assert C.cancel_transition({"spec": {}, "status": {"phase": "InProgress"}}) is None
    assert C.cancel_transition({"spec": {"cancel": True}, "status": {"phase": "Completed"}}) is None
    assert not C.cancel_overdue(0.0, 300.0, "Accepted") and C.cancel_overdue(0.0, 301.0, "Accepted")
    assert not C.cancel_overdue(0.0, 3600.0, "InProgress") and C.cancel_overdue(0.0, 3601.0, "InProgress")
    assert C.canceled_status({"status": {}}, "t") == {
        "phase": "Canceled", "completionTimestamp": "t", "startTimestamp": "t"}
    assert C.canceled_status({"status": {"startTimestamp": "s"}}, "t", "why") == {
        "phase": "Canceled", "completionTimestamp": "t", "message": "why"}
    assert C.resume_failed_message("DataDownload", "gone") == (
        "Resume InProgress datadownload failed with error gone, mark it as cancel")
    deleting = {"metadata": {"deletionTimestamp": "t"}, "spec": {}, "status": {"phase": "InProgress"}}
    assert C.deletion_action(deleting) == "cancel"
    deleting["status"]["phase"] = "Canceled"
    assert C.deletion_action(deleting) == "remove-finalizer"


def test_provision_decision():
    sc = {"provisioner": "p", "volumeBindingMode": "Immediate"}
    pvc = {"metadata": {}, "spec": {}, "status": {"phase": "Pending"}}
    assert C.provision_decision(pvc, sc, "p") == "provision"
    assert C.provision_decision({**pvc, "spec": {"selector": {"matchLabels": {"a": "b"}}}}, sc, "p") == "selector"
    assert C.provision_decision({**pvc, "spec": {"volumeName": "x"}}, sc, "p") == "skip"
    assert C.provision_decision(pvc, {**sc, "provisioner": "other"}, "p") == "skip"
    wffc = {**sc, "volumeBindingMode": "WaitForFirstConsumer"}
    assert C.provision_decision(pvc, wffc, "p") == "skip"
    assert C.provision_decision({**pvc, "metadata": {"annotations": {C.ANN_SELECTED_NODE: "n"}}}, wffc, "p") == "provision"


def test_download_keys():
    assert C.download_object_key("BackupVolumeInfos", "b1") == "backups/b1/b1-volumeinfo.json.gz"
    assert C.download_object_key("BackupContents", "b1", "pre/") == "pre/backups/b1/b1.tar.gz"
    assert C.download_object_key("RestoreLog", "r") is None


def test_sim_config_defaults_and_parsing():
    c = SimConfig()
    assert c.bytes_per_second == 50 * 1024 * 1024 and c.concurrency_per_node == 4 and c.prepare_timeout == 1800
    c.update({"failSnapshots": "a, b", "crashAfterBytes": "10", "failRebind": "True", "bytesPerSecond": "junk"})
    assert c.fail_snapshots == {"a", "b"} and c.crash_after_bytes == 10 and c.fail_rebind
    assert c.bytes_per_second == 50 * 1024 * 1024


def test_work_queue_dedup_and_delay():
    q = WorkQueue("t")
    q.add("a", 0.2)
    q.add("a", 0)
    q.add("b")
    got = {q.get(), q.get()}
    assert got == {"a", "b"}
    q.done("a")
    q.done("b")
    t0 = time.monotonic()
    q.add("c", 0.2)
    assert q.get() == "c" and time.monotonic() - t0 >= 0.19


class _Inf:
    def __init__(self, items=()):
        self.d = {f"{o['metadata'].get('namespace', '')}/{o['metadata']['name']}": o for o in items}

    def add_handler(self, fn):
        pass

    def get(self, ns, name):
        return self.d.get(f"{ns or ''}/{name}")

    def items(self):
        return list(self.d.values())


def test_kubelet_status_progression(tmp_path):
    claim = {"metadata": {"namespace": "n", "name": "c"}, "spec": {"volumeName": "pv1"}, "status": {"phase": "Bound"}}
    kl = Kubelet(None, str(tmp_path), {"Pod": _Inf(), "PersistentVolumeClaim": _Inf([claim])})
    (tmp_path / "volumes" / "pv1").mkdir(parents=True)
    pod = {"metadata": {"namespace": "n", "name": "p", "uid": "pu"},
           "spec": {"nodeName": "sim-node-a", "restartPolicy": "Always",
                    "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "c"}}],
                    "initContainers": [{"name": "restore-wait", "command": ["/velero-restore-helper"], "args": ["U"],
                                        "volumeMounts": [{"name": "v", "mountPath": "/restores/v"}]}],
                    "containers": [{"name": "app"}]},
           "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}}
    st, _requeue = kl.compute_status(pod)
    assert st["initContainerStatuses"][0]["state"].get("running") is not None and st["phase"] == "Pending"
    pod["status"] = st
    st2, requeue = kl.compute_status(pod)
    assert st2 is None and requeue == 1.0           # waiting for .velero/U
    (tmp_path / "volumes" / "pv1" / ".velero").mkdir()
    (tmp_path / "volumes" / "pv1" / ".velero" / "U").write_text("")
    st3, _requeue = kl.compute_status(pod)
    assert st3["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    # no runAsUser anywhere: the Velero image's non-root user cannot remove the node-agent's (root's) .velero
    assert (tmp_path / "volumes" / "pv1" / ".velero" / "U").exists()
    pod["status"] = st3
    st4, _requeue = kl.compute_status(pod)
    assert st4["phase"] == "Running" and st4["containerStatuses"][0]["ready"]


def test_the_modules_cancel_wait_outlasts_velero_forcing_an_unhandled_cancel():
    """Velero forces an unhandled cancel at the first periodic reconcile after cancelDelayOthers: the modules'
    floor for waiting on a cancel (pod_volume_restore.CANCEL_TIMEOUT) must outlast that worst case."""
    from ansible_collections.velero.data_restore.plugins.module_utils import pod_volume_restore

    assert pod_volume_restore.CANCEL_TIMEOUT > C.CANCEL_DELAY_OTHERS_SECONDS + C.PERIODIC_RESYNC_SECONDS


def _helper_pod(mounts, security_context=None):
    container = {"name": "restore-wait", "command": ["/velero-restore-helper"], "args": ["U"], "volumeMounts": mounts}
    if security_context is not None:
        container["securityContext"] = security_context
    return {"metadata": {"namespace": "n", "name": "p", "uid": "pu"},
            "spec": {"nodeName": "sim-node-a", "restartPolicy": "Always",
                     "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "c"}}],
                     "initContainers": [container], "containers": [{"name": "app"}]},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}],
                       "initContainerStatuses": [{"name": "restore-wait", "state": {"running": {}}}]}}


def _kubelet_with_done_file(tmp_path):
    claim = {"metadata": {"namespace": "n", "name": "c"}, "spec": {"volumeName": "pv1"}, "status": {"phase": "Bound"}}
    (tmp_path / "volumes" / "pv1" / ".velero").mkdir(parents=True)
    (tmp_path / "volumes" / "pv1" / ".velero" / "U").write_text("")
    return Kubelet(None, str(tmp_path), {"Pod": _Inf(), "PersistentVolumeClaim": _Inf([claim])})


def test_kubelet_restore_wait_running_as_root_removes_velero_dir(tmp_path):
    kl = _kubelet_with_done_file(tmp_path)
    st, _requeue = kl.compute_status(_helper_pod([{"name": "v", "mountPath": "/restores/v"}], {"runAsUser": 0}))
    assert st["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert not (tmp_path / "volumes" / "pv1" / ".velero").exists()


def test_kubelet_restore_wait_as_velero_s_default_user_leaves_velero_dir_and_exits_0(tmp_path):
    kl = _kubelet_with_done_file(tmp_path)
    st, _requeue = kl.compute_status(_helper_pod([{"name": "v", "mountPath": "/restores/v"}], {"runAsUser": 1000}))
    assert st["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert (tmp_path / "volumes" / "pv1" / ".velero" / "U").exists()


def test_kubelet_restore_wait_without_restores_mounts_keeps_running(tmp_path):
    kl = _kubelet_with_done_file(tmp_path)
    pod = _helper_pod([{"name": "v", "mountPath": "/data/v"}])
    st, requeue = kl.compute_status(pod)
    assert "running" in st["initContainerStatuses"][0]["state"] and requeue == 1.0  # polled again
