"""Simulated Velero node-agent: PodVolumeRestore and DataDownload controllers.

Every decision comes from ``contract.py``; this module orchestrates API calls, the data copy
and throttling.  One logical node-agent per sim node: it serves a node only while a
``node-agent`` DaemonSet pod is Running there; when such a pod becomes Running, all PVRs/DDs
are re-listed (as a starting node-agent does)."""
from __future__ import annotations

import json
import logging
import os
import random
import threading
import time

from kubernetes.client.rest import ApiException

from . import contract as C
from .config import SimConfig
from .kube import Informer, Kube, WorkQueue, now_iso, parse_time, run_workers
from .storage import volume_path

log = logging.getLogger("sim.node_agent")

# Progress written to the CR at most this often per data path: Velero's restoreProgressCheckInterval
# (pkg/uploader/provider/provider.go, 10 * time.Second; the kopia progress throttle). The start and the final
# bytes are always written.
PROGRESS_INTERVAL = 10.0


class Cancelled(Exception):
    pass


class Crashed(Exception):
    pass


class DataPath:
    def __init__(self, kind, name, node):
        self.kind, self.name, self.node = kind, name, node
        self.cancel = threading.Event()
        self.thread: threading.Thread | None = None


def snapshot_dir(state_dir, bsl, source_ns, snapshot_id) -> str:
    b, ns, _kind = C.repository_key(source_ns, bsl)
    return os.path.join(state_dir, "repository", b, ns, snapshot_id)


def read_manifest(sdir) -> dict | None:
    try:
        with open(os.path.join(sdir, "manifest.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class NodeAgent:
    def __init__(self, kube: Kube, state_dir: str, informers: dict[str, Informer], config: SimConfig,
                 velero_ns: str = C.VELERO_NS):
        self.kube = kube
        self.state_dir = state_dir
        self.config = config
        self.ns = velero_ns
        self.inf = informers
        self.pvrs = informers["PodVolumeRestore"]
        self.dds = informers["DataDownload"]
        self.pods = informers["Pod"]
        self.queue = WorkQueue("node-agent")
        self.paths: dict[str, DataPath] = {}
        self.paths_lock = threading.Lock()
        self.stuck: set[str] = set()   # DDs whose rebind failed (stay InProgress, as Velero)
        self.running_na: set[str] = set()
        # Velero: cancelledPVR / cancelledDataDownload - when this node-agent first saw each cancel.
        self.cancel_spotted: dict[str, float] = {}
        self.pvrs.add_handler(self._on_pvr)
        self.dds.add_handler(self._on_dd)
        self.pods.add_handler(self._on_pod)

    # ------------------------------------------------------------------ wiring
    def start(self):
        run_workers(self.queue, self.reconcile, 4)
        threading.Thread(target=self._resync_loop, daemon=True, name="na-resync").start()

    def _on_pvr(self, typ, pvr, old):
        if typ == "DELETED" or not C.in_velero_namespace(pvr, self.ns):
            return
        if C.pvr_uploader_accepted(pvr):
            self.queue.add("pvr:" + pvr["metadata"]["name"])

    def _on_dd(self, typ, dd, old):
        if typ == "DELETED" or not C.in_velero_namespace(dd, self.ns):
            return
        if C.dd_datamover_accepted(dd):
            self.queue.add("dd:" + dd["metadata"]["name"])

    def _on_pod(self, typ, pod, old):
        md = pod["metadata"]
        labels = md.get("labels") or {}
        if md.get("namespace") == self.ns and labels.get("name") == "node-agent":
            self._refresh_node_agents()
            return
        if md.get("namespace") == self.ns and C.LABEL_DATA_DOWNLOAD in labels:
            self.queue.add("dd:" + labels[C.LABEL_DATA_DOWNLOAD])
        if typ != "DELETED":
            for name in C.pvr_keys_for_pod(pod, self.pvrs.items()):
                self.queue.add("pvr:" + name)

    def _refresh_node_agents(self):
        now = set()
        for p in self.pods.items():
            md = p["metadata"]
            if md.get("namespace") == self.ns and (md.get("labels") or {}).get("name") == "node-agent" \
                    and not md.get("deletionTimestamp") and (p.get("status") or {}).get("phase") == "Running":
                now.add(p["spec"].get("nodeName"))
        started = now - self.running_na
        stopped = self.running_na - now
        self.running_na = now
        if stopped:
            log.info("node-agent stopped on %s", sorted(stopped))
        if started:
            log.info("node-agent running on %s: listing all PVRs/DDs", sorted(started))
            for o in self.pvrs.items():
                self._on_pvr("ADDED", o, None)
            for o in self.dds.items():
                self._on_dd("ADDED", o, None)

    def _resync_loop(self):
        """Periodic enqueue (Velero: 1 min; predicate gp for PVRs)."""
        while True:
            time.sleep(C.PERIODIC_RESYNC_SECONDS)
            for p in self.pvrs.items():
                if C.pvr_uploader_accepted(p) and C.periodic_resync(p):
                    self.queue.add("pvr:" + p["metadata"]["name"])
            for d in self.dds.items():
                if C.dd_datamover_accepted(d) and C.periodic_resync(d):
                    self.queue.add("dd:" + d["metadata"]["name"])

    # ------------------------------------------------------------------ API helpers
    def _fresh(self, kind, name):
        return self.kube.get_or_none(kind, self.ns, name)

    def _cached(self, kind, name, namespace=None):
        """The informer's copy (Velero's controllers read through controller-runtime's cache), or None."""
        informer = {"PodVolumeRestore": self.pvrs, "DataDownload": self.dds, "Pod": self.pods}.get(kind)
        return informer.get(namespace or self.ns, name) if informer is not None else None

    def _transition(self, kind, name, expect: tuple[str, ...] | None, status: dict | None = None,
                    labels: dict | None = None, spec: dict | None = None) -> dict | None:
        """Read, check phase ∈ expect, merge-patch with a resourceVersion precondition; retries on conflict
        (Velero: UpdatePVRWithRetry / UpdateDataDownloadWithRetry). The first read is the informer's copy, as
        Velero's controller-runtime client reads its cache; a live GET when that copy is missing or in another
        phase (never skip a transition on a stale copy) and after a conflict."""
        for attempt in range(10):
            obj = self._cached(kind, name) if attempt == 0 else None
            if obj is None or (expect is not None and C.phase_of(obj) not in expect):
                obj = self._fresh(kind, name)
            if obj is None:
                return None
            if expect is not None and C.phase_of(obj) not in expect:
                return None
            body: dict = {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}}
            if labels is not None:
                body["metadata"]["labels"] = labels
            if status:
                body["status"] = status
            if spec:
                body["spec"] = spec
            try:
                return self.kube.patch(kind, self.ns, name, body)
            except ApiException as e:
                if e.status != 409:
                    raise
                time.sleep(0.05)
        return None

    def _set_finalizers(self, kind, obj, finalizers):
        body = {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"], "finalizers": finalizers}}
        return self.kube.patch(kind, self.ns, obj["metadata"]["name"], body)

    def _fail(self, kind, name, message, expect=None):
        """Velero updateStatusToFailed / OnDataPathFailed: Failed, message, completionTimestamp, expose-on-going
        label removed."""
        r = self._transition(kind, name, expect or (C.NEW, C.ACCEPTED, C.PREPARED, C.IN_PROGRESS),
                             status={"phase": C.FAILED, "message": message, "completionTimestamp": now_iso()},
                             labels={C.LABEL_EXPOSE_ON_GOING: None})
        if r is not None:
            log.info("%s %s Failed: %s", kind, name, message)
        return r

    def _prepare_timeout(self, kind, name):
        """Velero onPrepareTimeout: Failed with only a message (C.prepare_timeout_status); once that update went
        through, the exposer is cleaned up."""
        if self._transition(kind, name, (C.ACCEPTED,), status=C.prepare_timeout_status(kind),
                            labels={C.LABEL_EXPOSE_ON_GOING: None}) is None:
            return
        log.info("%s %s Failed: timeout on preparing", kind, name)
        if kind == "DataDownload":
            self._cleanup_expose(name)

    def _prepare_timed_out(self, obj) -> bool:
        """The Accepted branch of both controllers, run by any node-agent (C.prepare_timed_out)."""
        accepted_at = parse_time((obj.get("status") or {}).get("acceptedTimestamp"))
        return C.prepare_timed_out(accepted_at, time.time(), self.config.prepare_timeout)

    # ------------------------------------------------------------------ reconcile
    def reconcile(self, key):
        kind, _sep, name = key.partition(":")
        if kind == "pvr":
            return self.reconcile_pvr(name)
        return self.reconcile_dd(name)

    def _common(self, kind, obj, finalizer) -> bool:
        """Deletion / cancel-on-New / finalizer handling shared by both controllers.
        Returns True when the caller must stop."""
        name = obj["metadata"]["name"]
        act = C.deletion_action(obj)
        if act == "remove-finalizer":
            fins = [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]
            if fins != (obj["metadata"].get("finalizers") or []):
                self._set_finalizers(kind, obj, fins)
            return True
        if act == "cancel":
            self._transition(kind, name, None, spec={"cancel": True}, status={"message": C.deletion_cancel_message(kind)})
            return True
        if C.is_final(obj):
            self.cancel_spotted.pop(kind + ":" + name, None)
            return True
        if self._cancel_overdue(kind, obj):
            return True
        if C.phase_of(obj) == C.NEW and C.cancel_transition(obj) == C.CANCELED:
            if self.running_na:
                self._cancel_now(kind, obj, (C.NEW,))
            return True
        if C.needs_finalizer(obj, finalizer):
            self._set_finalizers(kind, obj, (obj["metadata"].get("finalizers") or []) + [finalizer])
            return True
        return False

    def _cancel_overdue(self, kind, obj) -> bool:
        """A cancel that no phase handled in time is forced (C.cancel_overdue). True when it was."""
        if not (obj.get("spec") or {}).get("cancel") or not self.running_na:
            return False
        key = kind + ":" + obj["metadata"]["name"]
        spotted = self.cancel_spotted.setdefault(key, time.time())
        if not C.cancel_overdue(spotted, time.time(), C.phase_of(obj)):
            return False
        log.info("%s %s is canceled in phase %s but not handled in reasonable time", kind, obj["metadata"]["name"],
                 C.phase_of(obj))
        self._cancel_now(kind, obj, (C.NEW, C.ACCEPTED, C.PREPARED, C.IN_PROGRESS, C.CANCELING))
        return True

    def _cancel_now(self, kind, obj, expect, message=""):
        """Canceled in one update (C.canceled_status); a DataDownload's exposer is cleaned up."""
        name = obj["metadata"]["name"]
        if kind == "DataDownload" and C.phase_of(obj) != C.NEW:
            self._cleanup_expose(name)
        if self._transition(kind, name, expect, status=C.canceled_status(obj, now_iso(), message),
                            labels={C.LABEL_EXPOSE_ON_GOING: None}):
            self.cancel_spotted.pop(kind + ":" + name, None)
            log.info("%s %s canceled in phase %s", kind, name, C.phase_of(obj))

    def _cancel(self, kind, obj) -> bool:
        """spec.cancel on the CR's node (C.cancel_transition): Prepared → Canceled; InProgress → Canceling and the
        data path stops (Canceled at once without one). True when the cancel was handled here."""
        name = obj["metadata"]["name"]
        phase = C.phase_of(obj)
        step = C.cancel_transition(obj)
        if step == C.CANCELED and phase == C.PREPARED:
            self._cancel_now(kind, obj, (C.PREPARED,))
            return True
        if step != C.CANCELING and phase != C.CANCELING:
            return False
        with self.paths_lock:
            dp = self.paths.get(name)
        if dp is None:
            self._cancel_now(kind, obj, (C.IN_PROGRESS, C.CANCELING))
            return True
        if phase != C.CANCELING:
            self._transition(kind, name, (C.IN_PROGRESS,), status={"phase": C.CANCELING})
        dp.cancel.set()  # the data path finishes the cancel
        return True

    def _resume_failed(self, kind, name):
        """An InProgress CR of a serving node without a data path in this process (the simulator restarted; its
        data paths were threads of it): Velero's resume-or-cancel at node-agent start, resume failing."""
        message = C.resume_failed_message(kind, "the simulated data path did not survive a restart of the simulator")
        self._transition(kind, name, (C.IN_PROGRESS,), spec={"cancel": True}, status={"message": message})

    # ---- PodVolumeRestore
    def reconcile_pvr(self, name):
        pvr = self.pvrs.get(self.ns, name)
        if pvr is None or not C.pvr_uploader_accepted(pvr):
            return None
        if self._common("PodVolumeRestore", pvr, C.PVR_FINALIZER):
            return None
        phase = C.phase_of(pvr)
        spec = pvr.get("spec") or {}
        if phase == C.NEW:
            pod_ref = spec.get("pod") or {}
            pod = self.pods.get(pod_ref.get("namespace"), pod_ref.get("name"))
            node = (pod or {}).get("spec", {}).get("nodeName")
            if node not in self.running_na or not C.pvr_pod_on_node(pod, node):
                return None  # no node-agent sees this pod: nothing (no requeue)
            if not C.restore_wait_running(pod):
                return None  # re-triggered only by pod events via velero.io/pod-uid
            patch = C.accept_patch(pvr, node, now_iso(), "node")
            labels = {C.LABEL_EXPOSE_ON_GOING: "true"}
            if self._transition("PodVolumeRestore", name, (C.NEW,), status=patch["status"], labels=labels):
                log.info("PVR %s accepted on %s", name, node)
            return None
        node = (pvr.get("status") or {}).get("node")
        if phase == C.ACCEPTED:
            # Velero's Accepted branch has no node check: any node-agent times the PVR out, also when the
            # node-agent that accepted it is gone.
            if not self.running_na:
                return None
            if self._prepare_timed_out(pvr):
                self._prepare_timeout("PodVolumeRestore", name)
                return None
            if node not in self.running_na:
                return None
            # hosting pod not simulated: the volume is directly reachable → Prepared (expose-on-going stays
            # until InProgress)
            self._transition("PodVolumeRestore", name, (C.ACCEPTED,), status={"phase": C.PREPARED})
            return None
        if node not in self.running_na:
            return None
        if self._cancel("PodVolumeRestore", pvr):
            return None
        if phase == C.PREPARED:
            return self._start_path("PodVolumeRestore", name, node, self._run_pvr)
        if phase == C.IN_PROGRESS:
            with self.paths_lock:
                running = name in self.paths
            if not running:
                self._resume_failed("PodVolumeRestore", name)
        return None

    def _start_path(self, kind, name, node, target):
        """Start the data path of a Prepared CR; returns the requeue delay when the node is at its limit (Velero:
        CreateMicroServiceBRWatcher → ConcurrentLimitExceed, requeue 5 s, the CR stays Prepared)."""
        with self.paths_lock:
            if name in self.paths:
                return None
            if C.concurrency_exceeded(sum(1 for p in self.paths.values() if p.node == node),
                                      self.config.concurrency_per_node):
                return C.CONCURRENCY_REQUEUE_SECONDS
            dp = DataPath(kind, name, node)
            self.paths[name] = dp
        started = None
        try:  # an API error (e.g. 503 while the apiserver restarts) requeues the key: the next try starts anew
            # Velero removes velero.io/expose-on-going with this update, not at Prepared
            started = self._transition(kind, name, (C.PREPARED,),
                                       status={"phase": C.IN_PROGRESS, "startTimestamp": now_iso()},
                                       labels={C.LABEL_EXPOSE_ON_GOING: None})
        finally:
            if not started:
                with self.paths_lock:
                    self.paths.pop(name, None)
        if not started:
            return None
        # The data path starts from the object its InProgress update returned (Velero hands the updated CR to
        # the data path; no second read).
        dp.thread = threading.Thread(target=self._path_main, args=(dp, target, started), daemon=True,
                                     name=f"dp-{name}")
        dp.thread.start()
        return None

    def _path_main(self, dp: DataPath, target, obj):
        kind, name = dp.kind, dp.name
        try:
            target(dp, obj)
        except Cancelled:
            self._cancel_now(kind, self._cached(kind, name) or obj, (C.IN_PROGRESS, C.CANCELING))
        except Crashed as e:
            if kind == "DataDownload":
                self._cleanup_expose(name)
            self._fail(kind, name, str(e), (C.IN_PROGRESS, C.CANCELING))
        except _Failure as e:
            if kind == "DataDownload":
                self._cleanup_expose(name)
            self._fail(kind, name, str(e), (C.IN_PROGRESS, C.CANCELING))
        except Exception as e:  # noqa: BLE001
            log.exception("%s %s data path error", kind, name)
            self._fail(kind, name, f"data path error: {e}", (C.IN_PROGRESS, C.CANCELING))
        finally:
            with self.paths_lock:
                self.paths.pop(name, None)
            self.queue.add(("pvr:" if kind == "PodVolumeRestore" else "dd:") + name)

    def _ensure_bsl(self, obj):
        """Velero: the data path's Init gets the BSL first (pkg/datapath/file_system.go Init)."""
        bsl = (obj.get("spec") or {}).get("backupStorageLocation", "")
        if self.kube.get_or_none("BackupStorageLocation", self.ns, bsl) is None:
            raise _Failure(f"error to initialize data path: error to ensure backup repository: "
                           f"error getting backup storage location: backupstoragelocations.velero.io \"{bsl}\" not found")

    def _lookup_snapshot(self, obj) -> tuple[str, dict]:
        spec = obj.get("spec") or {}
        sid, src_ns, bsl = spec.get("snapshotID", ""), spec.get("sourceNamespace", ""), spec.get("backupStorageLocation", "")
        self._ensure_bsl(obj)
        if sid in self.config.fail_snapshots:
            raise _Failure(f"data path restore failed: Failed to run kopia restore: snapshot {sid}: "
                           f"simulated failure (sim-config failSnapshots)")
        sdir = snapshot_dir(self.state_dir, bsl, src_ns, sid)
        man = read_manifest(sdir) if sid else None
        if man is None:
            raise _Failure(C.snapshot_missing_message(sid, src_ns, bsl))
        return sdir, man

    def _throttle(self, dp: DataPath, kind, name, total):
        bps = self.config.bytes_per_second
        crash = self.config.crash_after_bytes
        start = time.monotonic()
        st = {"done": 0, "data": 0, "last": 0.0}

        def report(force=False):
            now = time.monotonic()
            if force or now - st["last"] >= PROGRESS_INTERVAL:
                st["last"] = now
                self._transition(kind, name, (C.IN_PROGRESS,),
                                 status={"progress": {"totalBytes": total, "bytesDone": min(st["done"], total)}})

        def on_bytes(n, hole=False):
            """Throttle to bytesPerSecond; all-zero chunks of a sparse block image are not
            throttled (only the data bytes count against the speed)."""
            if dp.cancel.is_set():
                raise Cancelled()
            st["done"] += n
            if not hole:
                st["data"] += n
            if crash is not None and st["done"] >= crash:
                raise Crashed(
                    f"data path for {kind} {name} failed: Pod {self.ns}/{name} is in abnormal state [Failed], "
                    f"message [container {name} of the data path hosting pod terminated: exit code 137] "
                    f"(simulated node-agent crash after {crash} bytes, sim-config crashAfterBytes)")
            lag = st["data"] / bps - (time.monotonic() - start)
            # One wake-up per chunk, at once on a cancel (polling every 0.1 s cost 200 data paths 2,000
            # wake-ups a second of the simulator's CPU).
            if lag > 0 and dp.cancel.wait(lag):
                raise Cancelled()
            report()
        report(force=True)
        return on_bytes, st, report

    def _run_pvr(self, dp: DataPath, pvr: dict):
        name = dp.name
        spec = pvr["spec"]
        self._ensure_bsl(pvr)
        err = C.pvr_uploader_error(pvr)
        if err:
            raise _Failure(err)
        sdir, man = self._lookup_snapshot(pvr)
        err = C.pvr_filesystem_only(man.get("volumeMode", "Filesystem"))
        if err:
            raise _Failure(err)
        pod_ref = spec.get("pod") or {}
        # A live read only when the cache lacks the pod.
        pod = self._cached("Pod", pod_ref.get("name"), pod_ref.get("namespace")) \
            or self.kube.get_or_none("Pod", pod_ref.get("namespace"), pod_ref.get("name"))

        if pod is None:
            raise _Failure(f"error to get pod {pod_ref.get('namespace')}/{pod_ref.get('name')}: not found")
        vol = next((v for v in pod["spec"].get("volumes") or [] if v["name"] == spec.get("volume")), None)
        if vol is None:
            raise _Failure(f"error exposing host path for pod volume: volume {spec.get('volume')} not found in pod "
                           f"{pod_ref.get('namespace')}/{pod_ref.get('name')}")
        if "persistentVolumeClaim" in vol:
            claim = self.kube.get("PersistentVolumeClaim", pod_ref["namespace"], vol["persistentVolumeClaim"]["claimName"])
            target = volume_path(self.state_dir, claim["spec"]["volumeName"])
        else:
            target = os.path.join(self.state_dir, "emptydir", pod["metadata"]["uid"], vol["name"])
            os.makedirs(target, exist_ok=True)
        data = os.path.join(sdir, "data")
        total = C.tree_size(data)
        on_bytes, st, report = self._throttle(dp, "PodVolumeRestore", name, total)
        C.kopia_restore_files(data, target, on_bytes)
        if dp.cancel.is_set():
            raise Cancelled()
        st["done"] = total
        mark = C.write_completion_mark(target, pvr)
        if mark is None:
            log.warning("PVR %s: Failed to write completion mark: no ownerReferences", name)
        self._transition("PodVolumeRestore", name, (C.IN_PROGRESS,), status={
            "phase": C.COMPLETED, "completionTimestamp": now_iso(),
            "progress": {"totalBytes": total, "bytesDone": total}})
        log.info("PVR %s completed (%d bytes)", name, total)

    # ---- DataDownload
    def reconcile_dd(self, name):
        dd = self.dds.get(self.ns, name)
        if dd is None or not C.dd_datamover_accepted(dd):
            return None
        if self._common("DataDownload", dd, C.DD_FINALIZER):
            if dd["metadata"].get("deletionTimestamp") or C.is_final(dd):
                self._cleanup_expose(name) if C.is_final(dd) and name not in self.stuck else None
            return None
        phase = C.phase_of(dd)
        st = dd.get("status") or {}
        if phase == C.NEW:
            ns, pvc_name = C.dd_target_pvc_key(dd)
            if self.kube.get_or_none("PersistentVolumeClaim", ns, pvc_name) is None:
                return 5.0  # Requeue: the DD may precede its PVC
            if not self.running_na:
                return None
            node = random.choice(sorted(self.running_na))
            patch = C.accept_patch(dd, node, now_iso(), "acceptedByNode")
            if self._transition("DataDownload", name, (C.NEW,), status=patch["status"],
                                labels={C.LABEL_EXPOSE_ON_GOING: "true"}):
                log.info("DD %s accepted by %s", name, node)
            return None
        if phase == C.ACCEPTED:
            # Velero's Accepted branch has no node check: any node-agent times the DD out, also when the
            # node-agent that accepted it is gone.
            if not self.running_na:
                return None
            if self._prepare_timed_out(dd):
                self._prepare_timeout("DataDownload", name)
                return None
            if st.get("acceptedByNode") not in self.running_na:
                return None
            return self._expose_dd(dd)
        node = st.get("node")
        if node not in self.running_na:
            return None
        if self._cancel("DataDownload", dd):
            return None
        if phase == C.PREPARED:
            return self._start_path("DataDownload", name, node, self._run_dd)
        if phase == C.IN_PROGRESS:
            with self.paths_lock:
                running = name in self.paths
            if not running and name not in self.stuck:
                self._resume_failed("DataDownload", name)
        return None

    def _expose_dd(self, dd):
        name = dd["metadata"]["name"]
        pod = self.pods.get(self.ns, name)
        if pod is None:
            os_name = C.dd_node_os(dd)
            if not C.has_node_with_os(self.kube.list("Node"), os_name):
                self._fail("DataDownload", name, C.dd_no_node_message(dd, os_name), (C.ACCEPTED,))
                return None
            ns, pvc_name = C.dd_target_pvc_key(dd)
            target = self.kube.get_or_none("PersistentVolumeClaim", ns, pvc_name)
            if target is None:
                self._fail("DataDownload", name, f"error to expose snapshot: error to get target PVC {ns}/{pvc_name}: not found",
                           (C.ACCEPTED,))
                return None
            sc_name = C.dd_storage_class_to_get(target)
            sc = None
            if sc_name is not None:
                # never GET an empty name (that would list); the apiserver refuses it, as C.dd_storage_class_error says
                sc = self.kube.get_or_none("StorageClass", None, sc_name) if sc_name else None
                if sc is None:
                    self._fail("DataDownload", name, C.dd_storage_class_error(target, sc_name), (C.ACCEPTED,))
                    return None
            if not C.dd_wait_pvc_consumed(target, sc):
                return 1.0  # WaitPVCConsumed polls until selected-node or the prepare timeout
            err = C.dd_target_bound_error(target)
            if err:
                self._fail("DataDownload", name, err, (C.ACCEPTED,))
                return None
            rpvc = C.dd_restore_pvc(dd, target, self.ns)
            mode = target["spec"].get("volumeMode") or "Filesystem"
            sel = (target["metadata"].get("annotations") or {}).get(C.ANN_SELECTED_NODE)
            rpod = C.dd_restore_pod(dd, name, mode, sel, self._node_agent_image(), self.ns)
            for kind, body in (("PersistentVolumeClaim", rpvc), ("Pod", rpod)):
                try:
                    self.kube.create(kind, body)
                except ApiException as e:
                    if e.status != 409:
                        raise
            log.info("DD %s exposed (restore pod + PVC %s/%s)", name, self.ns, name)
            return 1.0
        pst = pod.get("status") or {}
        if pst.get("phase") == "Running" and pod["spec"].get("nodeName") in self.running_na:
            # expose-on-going stays until InProgress
            self._transition("DataDownload", name, (C.ACCEPTED,),
                             status={"phase": C.PREPARED, "node": pod["spec"]["nodeName"]})
            return None
        reason = C.pod_unrecoverable(pod)
        if reason:
            cancel_message, canceled_message = C.dd_restore_pod_failed_cancel(dd, pod, reason)
            if not (dd.get("spec") or {}).get("cancel"):
                self._transition("DataDownload", name, (C.ACCEPTED,), spec={"cancel": True},
                                 status={"message": cancel_message})
            self._cancel_now("DataDownload", dd, (C.ACCEPTED,), canceled_message)
            return None
        return 1.0  # a Succeeded or Pending pod is not unrecoverable: wait (until the prepare timeout)

    def _node_agent_image(self):
        ds = self.kube.get_or_none("DaemonSet", self.ns, "node-agent")
        try:
            return ds["spec"]["template"]["spec"]["containers"][0]["image"]
        except (TypeError, KeyError, IndexError):
            return "velero/velero:v1.18.1"

    def _cleanup_expose(self, name):
        """Velero: exposer CleanUp — delete the restore pod and restore PVC."""
        self.kube.delete("Pod", self.ns, name, grace=0)
        self.kube.delete("PersistentVolumeClaim", self.ns, name)

    def _wait(self, what, fn, timeout):
        deadline = time.monotonic() + timeout
        while True:
            v = fn()
            if v:
                return v
            if time.monotonic() >= deadline:
                raise _Failure(f"timeout waiting for {what}")
            time.sleep(0.3)

    def _run_dd(self, dp: DataPath, dd: dict):
        name = dp.name
        sdir, man = self._lookup_snapshot(dd)
        rpvc = self.kube.get("PersistentVolumeClaim", self.ns, name)
        pv_name = rpvc["spec"].get("volumeName")
        mode = rpvc["spec"].get("volumeMode") or "Filesystem"
        if man.get("volumeMode", "Filesystem") != mode:
            raise _Failure(f"data path restore failed: snapshot volume mode {man.get('volumeMode')} does not match "
                           f"target volume mode {mode}")
        target = volume_path(self.state_dir, pv_name)
        if mode == "Block":
            src = os.path.join(sdir, "block.img")
            total = os.path.getsize(src)
            on_bytes, st, report = self._throttle(dp, "DataDownload", name, total)
            C.copy_file(src, target, on_bytes, truncate=False)
        else:
            data = os.path.join(sdir, "data")
            total = C.tree_size(data)
            on_bytes, st, report = self._throttle(dp, "DataDownload", name, total)
            C.kopia_restore_files(data, target, on_bytes)
        if dp.cancel.is_set():
            raise Cancelled()
        self._transition("DataDownload", name, (C.IN_PROGRESS,),
                         status={"progress": {"totalBytes": total, "bytesDone": total}})
        try:
            self._rebind(dd, pv_name)
        except Exception as e:  # noqa: BLE001
            eff = C.rebind_failure_effects()
            log.error("DD %s: failed to rebind restored volume: %s; DD stays %s and restored PV %s is deleted",
                      name, e, eff["phase"], pv_name)
            self.stuck.add(name)
            if eff["delete_pv"]:
                self.kube.delete("PersistentVolume", None, pv_name)
            return
        self._transition("DataDownload", name, (C.IN_PROGRESS,), status={
            "phase": C.COMPLETED, "completionTimestamp": now_iso(),
            "progress": {"totalBytes": total, "bytesDone": total}})
        log.info("DD %s completed (%d bytes) → PV %s", name, total, pv_name)

    def _rebind(self, dd, pv_name):
        """Velero: RebindVolume (pkg/exposer/generic_restore.go), contract §3 step 8."""
        name = dd["metadata"]["name"]
        timeout = C.dd_operation_timeout(dd)
        if self.config.fail_rebind:
            raise _Failure("simulated rebind failure (sim-config failRebind)")
        if timeout <= 0:
            raise _Failure(f"error to wait restore PVC bound: operationTimeout {dd['spec'].get('operationTimeout')!r} "
                           f"is not a positive duration: timed out waiting for the condition")
        self._wait(f"restore PVC {self.ns}/{name} bound", lambda: (
            (self.kube.get_or_none("PersistentVolumeClaim", self.ns, name) or {}).get("status", {}).get("phase") == "Bound"),
            timeout)
        pv = self.kube.get("PersistentVolume", None, pv_name)
        orig = pv["spec"].get("persistentVolumeReclaimPolicy", "Delete")
        self.kube.patch("PersistentVolume", None, pv_name, {"spec": {"persistentVolumeReclaimPolicy": "Retain"}})
        self._cleanup_expose(name)
        ns, pvc_name = C.dd_target_pvc_key(dd)
        target = self.kube.get("PersistentVolumeClaim", ns, pvc_name)
        self.kube.patch("PersistentVolumeClaim", ns, pvc_name, C.rebind_pvc_patch(pv_name))
        self.kube.patch("PersistentVolume", None, pv_name, C.reset_pv_binding_patch(pv, target))

        def bound():
            p = self.kube.get_or_none("PersistentVolume", None, pv_name) or {}
            cr = (p.get("spec") or {}).get("claimRef") or {}
            return (p.get("status") or {}).get("phase") == "Bound" and cr.get("name") == pvc_name and \
                cr.get("namespace") == ns and cr.get("uid") == target["metadata"]["uid"]
        self._wait(f"PV {pv_name} bound to {ns}/{pvc_name}", bound, timeout)
        self.kube.patch("PersistentVolume", None, pv_name, {"spec": {"persistentVolumeReclaimPolicy": orig}})


class _Failure(Exception):
    pass
