"""Simulated nodes and kubelet: two Nodes with heartbeat Leases, and a pod lifecycle for pods
bound (by the real scheduler) to those nodes.  No containers run: container states are written
to pod status the way a kubelet reports them."""
from __future__ import annotations

import logging
import os
import threading
import time
import random

from kubernetes.client.rest import ApiException

from . import contract
from .kube import Informer, Kube, WorkQueue, now_iso, run_workers
from .storage import volume_path

log = logging.getLogger("sim.kubelet")

NODES = ("sim-node-a", "sim-node-b")
NODE_IPS = {"sim-node-a": "10.89.0.11", "sim-node-b": "10.89.0.12"}
HEARTBEAT_SECONDS = 10
STEP_SECONDS = 0.3      # time between two visible container state transitions
HELPER_POLL_SECONDS = 1.0  # velero-restore-helper checks once a second


def node_object(name: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name,
            "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64"}},
        "spec": {},
    }


def node_status(name: str) -> dict:
    now = now_iso()
    res = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}

    def cond(t, s, reason, msg):
        return {"type": t, "status": s, "reason": reason, "message": msg,
                "lastHeartbeatTime": now, "lastTransitionTime": _node_start}
    return {
        "capacity": res, "allocatable": res,
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status (simulated)"),
        ],
        "addresses": [{"type": "InternalIP", "address": NODE_IPS.get(name, "10.89.0.99")},
                      {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {"machineID": name, "systemUUID": name, "bootID": name, "kernelVersion": "6.0.0-sim",
                     "osImage": "sim", "containerRuntimeVersion": "sim://1.0", "kubeletVersion": "v1.34.10-sim",
                     "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"},
    }


_node_start = now_iso()


def _micro_now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int((t % 1) * 1e6)


class Kubelet:
    def __init__(self, kube: Kube, state_dir: str, informers: dict[str, Informer]):
        self.kube = kube
        self.state_dir = state_dir
        self.pods = informers["Pod"]
        self.pvcs = informers["PersistentVolumeClaim"]
        self.queue = WorkQueue("kubelet")
        self.pods.add_handler(self._on_pod)
        self.pvcs.add_handler(self._on_pvc)

    # ---------------------------------------------------------------- nodes
    def install(self):
        for n in NODES:
            if self.kube.get_or_none("Node", None, n) is None:
                try:
                    self.kube.create("Node", node_object(n))
                except ApiException as e:
                    if e.status != 409:
                        raise
        self.heartbeat()

    def heartbeat(self):
        for n in NODES:
            try:
                self.kube.patch("Node", None, n, {"status": node_status(n)}, sub="status")
                lease = self.kube.get_or_none("Lease", "kube-node-lease", n)
                spec = {"holderIdentity": n, "leaseDurationSeconds": 40, "renewTime": _micro_now()}
                if lease is None:
                    node = self.kube.get("Node", None, n)
                    self.kube.create("Lease", {"metadata": {"name": n, "namespace": "kube-node-lease",
                                                            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": n,
                                                                                 "uid": node["metadata"]["uid"]}]},
                                               "spec": spec})
                else:
                    self.kube.patch("Lease", "kube-node-lease", n, {"spec": spec})
            except Exception as e:  # noqa: BLE001
                log.warning("heartbeat %s failed: %s", n, e)

    def _heartbeat_loop(self):
        while True:
            time.sleep(HEARTBEAT_SECONDS)
            self.heartbeat()

    def start(self):
        threading.Thread(target=self._heartbeat_loop, daemon=True, name="heartbeat").start()
        run_workers(self.queue, self.reconcile, 4)

    # ---------------------------------------------------------------- events
    def _on_pod(self, typ, pod, old):
        if typ != "DELETED" and (pod.get("spec") or {}).get("nodeName") in NODES:
            self.queue.add(_k(pod))

    def _on_pvc(self, typ, pvc, old):
        ns, name = pvc["metadata"]["namespace"], pvc["metadata"]["name"]
        for pod in self.pods.items():
            if pod["metadata"]["namespace"] == ns and pod["spec"].get("nodeName") in NODES and \
                    name in _claims(pod):
                self.queue.add(_k(pod))

    # ---------------------------------------------------------------- pod lifecycle
    def reconcile(self, key):
        ns, name = key.split("/", 1)
        pod = self.pods.get(ns, name)
        if pod is None or pod["spec"].get("nodeName") not in NODES:
            return None
        md = pod["metadata"]
        if md.get("deletionTimestamp"):
            # kill containers, then the kubelet deletes the pod object with grace 0
            self.kube.delete("Pod", ns, name, grace=0, uid=md["uid"])
            return None
        st = pod.get("status") or {}
        if st.get("phase") in ("Succeeded", "Failed"):
            return None
        new_status, requeue = self.compute_status(pod)
        if new_status is not None:
            body = {"metadata": {"resourceVersion": md["resourceVersion"]}, "status": new_status}
            self.kube.patch("Pod", ns, name, body, sub="status")
        return requeue

    def _volume_dirs(self, pod, container) -> dict[str, str] | None:
        """/restores/<dir> mounts of a container → local volume paths (None if unresolved)."""
        vols = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        out = {}
        for m in container.get("volumeMounts") or []:
            mp = m.get("mountPath", "").rstrip("/")
            if not mp.startswith("/restores/") or "/" in mp[len("/restores/"):]:
                continue
            v = vols.get(m["name"]) or {}
            if "persistentVolumeClaim" in v:
                claim = self.pvcs.get(pod["metadata"]["namespace"], v["persistentVolumeClaim"]["claimName"])
                pv = claim and claim["spec"].get("volumeName")
                if not pv:
                    return None
                p = volume_path(self.state_dir, pv)
            else:
                p = os.path.join(self.state_dir, "emptydir", pod["metadata"]["uid"], m["name"])
                os.makedirs(p, exist_ok=True)
            if m.get("subPath"):
                p = os.path.join(p, m["subPath"])
            out[mp] = p
        return out

    def compute_status(self, pod):
        """Returns (status or None if unchanged, requeue delay)."""
        spec, st = pod["spec"], pod.get("status") or {}
        now = now_iso()
        conds = {c["type"]: c for c in st.get("conditions") or []}
        base = {"hostIP": NODE_IPS[spec["nodeName"]], "hostIPs": [{"ip": NODE_IPS[spec["nodeName"]]}],
                "startTime": st.get("startTime") or now, "qosClass": st.get("qosClass") or "BestEffort"}
        ip = st.get("podIP") or f"10.244.{random.randint(0, 250)}.{random.randint(2, 250)}"

        def cond(t, ok, reason=None):
            old = conds.get(t)
            s = "True" if ok else "False"
            if old and old.get("status") == s:
                return old
            c = {"type": t, "status": s, "lastProbeTime": None, "lastTransitionTime": now}
            if reason:
                c["reason"] = reason
            return c

        # volumes: every PVC must exist and be Bound
        unbound = []
        for c in _claims(pod):
            claim = self.pvcs.get(pod["metadata"]["namespace"], c)
            if not claim or (claim.get("status") or {}).get("phase") != "Bound":
                unbound.append(c)
        inits = spec.get("initContainers") or []
        ctrs = spec.get("containers") or []

        def waiting(c, reason):
            return {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": False,
                    "restartCount": 0, "started": False, "state": {"waiting": {"reason": reason}}}

        if unbound:
            status = dict(base, phase="Pending", conditions=[
                *([conds["PodScheduled"]] if "PodScheduled" in conds else []),
                cond("PodReadyToStartContainers", False), cond("Initialized", False, "ContainersNotInitialized"),
                cond("Ready", False, "ContainersNotReady"), cond("ContainersReady", False, "ContainersNotReady")],
                initContainerStatuses=[waiting(c, "PodInitializing") for c in inits],
                containerStatuses=[waiting(c, "ContainerCreating") for c in ctrs])
            return (None if _same(st, status) else status), None

        base["podIP"] = ip
        base["podIPs"] = [{"ip": ip}]
        old_init = {s["name"]: s for s in st.get("initContainerStatuses") or []}
        init_statuses = []
        changed = False
        init_done = True
        requeue = None
        blocked = False
        for c in inits:
            s = old_init.get(c["name"])
            state = (s or {}).get("state") or {}
            if blocked:
                init_statuses.append(s if s and "waiting" in state else waiting(c, "PodInitializing"))
                continue
            term = state.get("terminated")
            if term and term.get("exitCode") == 0:
                init_statuses.append(s)
                continue
            init_done = False
            blocked = True
            if s and "waiting" in state and state["waiting"].get("reason") == "CrashLoopBackOff":
                init_statuses.append(s)
                continue
            is_helper = c["name"] == contract.WAIT_INIT_CONTAINER and \
                (c.get("command") or [None])[0] == contract.RESTORE_HELPER_COMMAND
            if "running" in state:
                if is_helper:
                    dirs = self._volume_dirs(pod, c)
                    args = c.get("args") or []
                    if dirs is not None and contract.restore_helper_done(args[0], dirs):
                        error = contract.restore_helper_finish(dirs, contract.restore_wait_runs_as_root(pod, c))
                        # velero-restore-helper prints a removal error and still exits 0
                        log.info("restore-wait of %s/%s done%s", pod["metadata"]["namespace"], pod["metadata"]["name"],
                                 " (.velero left: %s)" % error if error else "")
                    else:
                        init_statuses.append(s)
                        requeue = HELPER_POLL_SECONDS
                        continue
                init_statuses.append(_terminated(c, s, 0, "Completed", now))
                changed = True
                requeue = STEP_SECONDS
                continue
            # not started yet → running (or immediate failure of a misused helper)
            if is_helper and not contract.restore_helper_args_ok(c.get("args") or []):
                failed = _terminated(c, _running(c, now), 1, "Error", now)
                if spec.get("restartPolicy", "Always") == "Never":
                    init_statuses.append(failed)
                    status = dict(base, phase="Failed", initContainerStatuses=init_statuses + [
                        waiting(x, "PodInitializing") for x in inits[len(init_statuses):]],
                        containerStatuses=[waiting(x, "PodInitializing") for x in ctrs],
                        conditions=[conds.get("PodScheduled") or cond("PodScheduled", True),
                                    cond("Initialized", False, "PodFailed"), cond("Ready", False, "PodFailed"),
                                    cond("ContainersReady", False, "PodFailed")])
                    return status, None
                init_statuses.append({"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": False,
                                      "restartCount": 1, "started": False,
                                      "lastState": {"terminated": failed["state"]["terminated"]},
                                      "state": {"waiting": {"reason": "CrashLoopBackOff",
                                                            "message": "ERROR: exactly one argument must be provided, the restore's UID"}}})
                changed = True
                continue
            init_statuses.append(_running(c, now))
            changed = True
            requeue = STEP_SECONDS
        policy = spec.get("restartPolicy", "Always")
        old_ctr = {s["name"]: s for s in st.get("containerStatuses") or []}
        ctr_statuses = []
        phase = "Pending"
        if not init_done:
            ctr_statuses = [waiting(c, "PodInitializing") for c in ctrs]
        else:
            all_done = True
            for c in ctrs:
                s = old_ctr.get(c["name"])
                state = (s or {}).get("state") or {}
                if "terminated" in state:
                    ctr_statuses.append(s)
                    continue
                if "running" in state:
                    if policy != "Always" and not _long_running(c):
                        ctr_statuses.append(_terminated(c, s, 0, "Completed", now))
                        changed = True
                        continue
                    ctr_statuses.append(s)
                    all_done = False
                    continue
                ctr_statuses.append(dict(_running(c, now), ready=True))
                changed = True
                all_done = False
                requeue = STEP_SECONDS
            phase = "Succeeded" if all_done and ctrs else "Running"
        ready = init_done and phase == "Running" and all("running" in (s.get("state") or {}) for s in ctr_statuses)
        reason_nr = None if ready else ("PodCompleted" if phase == "Succeeded" else "ContainersNotReady")
        conditions = [
            cond("PodReadyToStartContainers", phase != "Succeeded"),
            cond("Initialized", init_done, None if init_done else "ContainersNotInitialized"),
            cond("Ready", ready, reason_nr), cond("ContainersReady", ready, reason_nr),
            conds.get("PodScheduled") or cond("PodScheduled", True),
        ]
        status = dict(base, phase=phase, conditions=conditions, containerStatuses=ctr_statuses)
        if inits:
            status["initContainerStatuses"] = init_statuses
        if not changed and _same(st, status):
            return None, requeue
        return status, requeue


def _long_running(c) -> bool:
    """Containers of a run-to-completion pod (restartPolicy Never/OnFailure) that do not exit by
    themselves: Velero's micro-service containers (data mover / pod-volume restore, until the
    node-agent deletes their pod) and ``sleep infinity`` (a Job's worker in the tests). Other
    commands complete at once - no image runs here."""
    cmd = c.get("command") or []
    return bool(cmd) and (cmd[0] == "/velero" or list(cmd[-2:]) == ["sleep", "infinity"])


def _running(c, now):
    return {"name": c["name"], "image": c.get("image", ""), "imageID": "sim://" + c.get("image", ""),
            "containerID": f"sim://{c['name']}-{random.randrange(16**12):012x}", "ready": False,
            "restartCount": 0, "started": True, "state": {"running": {"startedAt": now}}}


def _terminated(c, s, code, reason, now):
    s = dict(s or _running(c, now))
    started = ((s.get("state") or {}).get("running") or {}).get("startedAt", now)
    s["state"] = {"terminated": {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": now,
                                 "containerID": s.get("containerID", "")}}
    s["ready"] = False
    s["started"] = False
    return s


def _summary(st) -> tuple:
    def cs(lst):
        out = []
        for c in lst or []:
            state = c.get("state") or {}
            k = next(iter(state), None)
            out.append((c.get("name"), k, (state.get(k) or {}).get("reason"),
                        (state.get(k) or {}).get("exitCode"), bool(c.get("ready")), c.get("restartCount", 0)))
        return tuple(out)
    conds = tuple(sorted((c["type"], c.get("status")) for c in st.get("conditions") or []))
    return (st.get("phase"), st.get("hostIP"), bool(st.get("podIP")), cs(st.get("initContainerStatuses")),
            cs(st.get("containerStatuses")), conds)


def _same(old_st, new_st) -> bool:
    return _summary(old_st or {}) == _summary(new_st)


def _claims(pod) -> list[str]:
    return [v["persistentVolumeClaim"]["claimName"] for v in pod["spec"].get("volumes") or []
            if "persistentVolumeClaim" in v]


def _k(o):
    return f"{o['metadata']['namespace']}/{o['metadata']['name']}"
