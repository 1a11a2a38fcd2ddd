"""Fixtures of the data path (helper pods, PVRs, DataDownloads): real object shapes + FakeKube controllers.

The controllers play the kubelet/scheduler and Velero's node-agent by the rules of
velero-contract.md §2/§3 (restore-wait gate, velero.io/pod-uid, done file owner, rebind).
"""

import copy

from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils import session as sessions

VNS = "velero"
NS = "shop"
VELERO_IMAGE = "velero/velero:v1.18.1"


def velero_deployment(image=VELERO_IMAGE):
    return {"metadata": {"name": "velero", "namespace": VNS},
            "spec": {"template": {"spec": {"containers": [{"name": "velero", "image": image}]}}}}


def node_agent_pod(node, ready=True):
    return {"metadata": {"name": "node-agent-%s" % node, "namespace": VNS,
                         "labels": {"component": "velero", "name": "node-agent", "role": "node-agent"}},
            "spec": {"nodeName": node, "containers": [{"name": "node-agent", "image": VELERO_IMAGE}]},
            "status": {"phase": "Running" if ready else "Pending",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def plugin_config(data, name="restore-helper-config"):
    return {"metadata": {"name": name, "namespace": VNS,
                         "labels": {"velero.io/plugin-config": "", "velero.io/pod-volume-restore": "RestoreItemAction"}},
            "data": data}


def pvc(name, ns=NS, volume=None, mode="Filesystem", access=("ReadWriteOnce",), sc="sim-immediate", selector=None,
        size="1Gi"):
    obj = {"metadata": {"name": name, "namespace": ns},
           "spec": {"accessModes": list(access), "resources": {"requests": {"storage": size}},
                    "storageClassName": sc, "volumeMode": mode},
           "status": {"phase": "Bound" if volume else "Pending"}}
    if volume:
        obj["spec"]["volumeName"] = volume
    if selector:
        obj["spec"]["selector"] = {"matchLabels": {"velero.io/dynamic-pv-restore": selector}}
    return obj


def pv(name, host=None):
    obj = {"metadata": {"name": name}, "spec": {"capacity": {"storage": "1Gi"}}}
    if host:
        obj["spec"]["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [host]}]}]}}
    return obj


def app_pod(name, claims, node, ns=NS, phase="Running", tolerations=None):
    obj = {"metadata": {"name": name, "namespace": ns},
           "spec": {"nodeName": node, "containers": [{"name": "app", "image": "app"}],
                    "volumes": [{"name": c, "persistentVolumeClaim": {"claimName": c}} for c in claims]},
           "status": {"phase": phase}}
    if tolerations:
        obj["spec"]["tolerations"] = tolerations
    return obj


def storage_class(name, mode="Immediate"):
    return {"metadata": {"name": name}, "provisioner": "sim.csi", "volumeBindingMode": mode}


def fs_record(pvc_name, ns=NS, snapshot="snap-%s", new_pvc=None, **extra):
    rec = {
        "key": "%s/%s" % (ns, pvc_name), "source_namespace": "shop-old", "source_pvc": pvc_name,
        "source_pv": "pv-old-%s" % pvc_name, "pod_name": "app-0", "pod_volume": "data", "method": "fs",
        "snapshot_id": snapshot % pvc_name if "%s" in snapshot else snapshot, "snapshot_size": 4096,
        "uploader_type": "kopia", "data_mover": None, "backup_storage_location": "default",
        "volume_mode": "Filesystem", "storage_class": "sim-immediate", "node_os": None,
        "operation_timeout": None, "target_namespace": ns, "target_pvc": pvc_name,
        "restore_via": "pod_volume_restore", "new_pvc": new_pvc,
    }
    rec.update(extra)
    return rec


def dm_record(pvc_name, ns=NS, new_name=None, mode="Filesystem", sc="sim-immediate", **extra):
    rec = fs_record(pvc_name, ns, method="data_mover", uploader_type="", data_mover="", node_os="linux",
                    operation_timeout="10m0s", restore_via="data_download", volume_mode=mode,
                    new_pvc={"name": new_name or "%s-restored" % pvc_name, "storage_class": sc, "size": "1Gi",
                             "access_modes": ["ReadWriteOnce"], "volume_mode": mode})
    rec.update(extra)
    return rec


def base_cluster(fake, nodes=("node-1", "node-2")):
    fake.add(k.DEPLOYMENT, velero_deployment())
    for node in nodes:
        fake.add(k.POD, node_agent_pod(node))
    return sessions.ensure(fake, VNS, "s1", mode="in_place")[0]


# ----------------------------------------------------------------------------- controllers

def kubelet(node="node-1"):
    """Schedules pending pods (PV node affinity / pinning honoured) and runs restore-wait."""
    def run(fake):
        changed = False
        for pod in fake.all(k.POD):
            meta = pod["metadata"]
            if (meta.get("labels") or {}).get("name") == "node-agent":
                continue
            spec = pod["spec"]
            if not spec.get("nodeName"):
                target = _pick_node(fake, pod) or node

                def schedule(o, target=target):
                    o["spec"]["nodeName"] = target
                    o.setdefault("status", {})["phase"] = "Pending"
                fake.mutate(k.POD, meta["name"], meta["namespace"], schedule)
                changed = True
            elif spec.get("initContainers") and not (pod.get("status") or {}).get("initContainerStatuses"):
                def start(o):
                    o["status"]["initContainerStatuses"] = [
                        {"name": c["name"], "image": c["image"], "state": {"running": {"startedAt": "2026-01-01T00:00:02Z"}}}
                        for c in o["spec"]["initContainers"]]
                fake.mutate(k.POD, meta["name"], meta["namespace"], start)
                changed = True
        return changed
    return run


def _pick_node(fake, pod):
    aff = (((pod["spec"].get("affinity") or {}).get("nodeAffinity") or {})
           .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in aff.get("nodeSelectorTerms") or []:
        for field in term.get("matchFields") or []:
            return field["values"][0]
    for vol in pod["spec"].get("volumes") or []:
        claim = fake.find(k.PVC, vol["persistentVolumeClaim"]["claimName"], pod["metadata"]["namespace"])
        if claim and claim["spec"].get("volumeName"):
            pvo = fake.find(k.PV, claim["spec"]["volumeName"])
            terms = ((((pvo or {}).get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}).get(
                "nodeSelectorTerms") or []
            for term in terms:
                for expr in term.get("matchExpressions") or []:
                    return expr["values"][0]
    return None


def node_agent(total=1000, steps=2, fail=None, nodes=None):
    """PVR controller per contract §2: kopia only, pod Get-able + restore-wait running + pod-uid label (the
    pod event mapping), then InProgress with progress, then Completed. ``fail`` = set of snapshot IDs."""
    fail = fail or set()

    def run(fake):
        for pvr in fake.all(k.POD_VOLUME_RESTORE, VNS):
            meta, spec = pvr["metadata"], pvr["spec"]
            status = pvr.get("status") or {}
            phase = status.get("phase") or "New"
            if phase in ("Completed", "Failed", "Canceled"):
                if meta.get("deletionTimestamp"):
                    fake.remove(k.POD_VOLUME_RESTORE, meta["name"], VNS)
                    return True
                continue
            if spec.get("cancel"):
                fake.mutate(k.POD_VOLUME_RESTORE, meta["name"], VNS,
                            lambda o: o.setdefault("status", {}).update(phase="Canceled", message="canceled"))
                return True
            if spec.get("uploaderType") != "kopia":
                continue
            pod = fake.find(k.POD, spec["pod"]["name"], spec["pod"]["namespace"])
            if not pod or not pod["spec"].get("nodeName"):
                continue
            if nodes is not None and pod["spec"]["nodeName"] not in nodes:
                continue
            waiting = [s for s in (pod.get("status") or {}).get("initContainerStatuses") or []
                       if s["name"] == "restore-wait" and (s.get("state") or {}).get("running") is not None]
            if not waiting or (meta.get("labels") or {}).get("velero.io/pod-uid") != pod["metadata"]["uid"]:
                continue
            if phase == "New":
                def accept(o, node=pod["spec"]["nodeName"]):
                    o["status"] = {"phase": "InProgress", "node": node, "startTimestamp": "2026-01-01T00:00:10Z",
                                   "progress": {"totalBytes": total, "bytesDone": 0}}
                fake.mutate(k.POD_VOLUME_RESTORE, meta["name"], VNS, accept)
                return True
            done = status["progress"]["bytesDone"]
            if spec["snapshotID"] in fail:
                fake.mutate(k.POD_VOLUME_RESTORE, meta["name"], VNS, lambda o: o["status"].update(
                    phase="Failed", message="data path restore failed: snapshot not found"))
                return True
            if done + total // steps >= total:
                fake.mutate(k.POD_VOLUME_RESTORE, meta["name"], VNS, lambda o: o["status"].update(
                    phase="Completed", completionTimestamp="2026-01-01T00:01:10Z",
                    progress={"totalBytes": total, "bytesDone": total}))
            else:
                fake.mutate(k.POD_VOLUME_RESTORE, meta["name"], VNS, lambda o: o["status"]["progress"].update(
                    bytesDone=done + total // steps))
            return True
        return False
    return run


def dd_agent(total=2048, rebind_fails=False, wffc_classes=("sim-wffc",)):
    """DataDownload controller per contract §3: target PVC must exist, unbound, selected-node for WFFC;
    data → rebind (PVC volumeName + PV claimRef + selector labels) → Completed. ``rebind_fails`` keeps it
    InProgress forever."""
    counter = [0]

    def run(fake):
        for dd in fake.all(k.DATA_DOWNLOAD, VNS):
            meta, spec = dd["metadata"], dd["spec"]
            phase = (dd.get("status") or {}).get("phase") or "New"
            if phase in ("Completed", "Failed", "Canceled"):
                if meta.get("deletionTimestamp"):
                    fake.remove(k.DATA_DOWNLOAD, meta["name"], VNS)
                    return True
                continue
            if spec.get("cancel"):
                fake.mutate(k.DATA_DOWNLOAD, meta["name"], VNS,
                            lambda o: o.setdefault("status", {}).update(phase="Canceled"))
                return True
            if spec.get("datamover") not in ("", "velero"):
                continue
            tv = spec["targetVolume"]
            target = fake.find(k.PVC, tv["pvc"], tv["namespace"])
            if target is None:
                continue
            if phase == "New":
                if target["spec"].get("storageClassName") in wffc_classes and \
                        "volume.kubernetes.io/selected-node" not in (target["metadata"].get("annotations") or {}):
                    continue
                if target["spec"].get("volumeName"):
                    fake.mutate(k.DATA_DOWNLOAD, meta["name"], VNS, lambda o: o.setdefault("status", {}).update(
                        phase="Failed", message="Target PVC has already been bound, abort"))
                    return True
                fake.mutate(k.DATA_DOWNLOAD, meta["name"], VNS, lambda o: o.setdefault("status", {}).update(
                    phase="InProgress", node="node-1", startTimestamp="2026-01-01T00:00:10Z",
                    progress={"totalBytes": total, "bytesDone": total}))
                return True
            if rebind_fails:
                continue
            counter[0] += 1
            pv_name = "pvc-restored-%d" % counter[0]
            labels = dict(((target["spec"].get("selector") or {}).get("matchLabels")) or {})
            fake.add(k.PV, {"metadata": {"name": pv_name, "labels": labels},
                            "spec": {"claimRef": {"namespace": tv["namespace"], "name": tv["pvc"]}},
                            "status": {"phase": "Bound"}})

            def bind(o, pv_name=pv_name):
                o["spec"]["volumeName"] = pv_name
                o["status"] = {"phase": "Bound"}
            fake.mutate(k.PVC, tv["pvc"], tv["namespace"], bind)
            fake.mutate(k.DATA_DOWNLOAD, meta["name"], VNS, lambda o: o["status"].update(
                phase="Completed", completionTimestamp="2026-01-01T00:00:40Z"))
            return True
        return False
    return run


def scheduler_selected_node(node="node-1"):
    """Sets volume.kubernetes.io/selected-node on unbound WFFC claims consumed by a scheduled pod."""
    def run(fake):
        for pod in fake.all(k.POD):
            for vol in pod["spec"].get("volumes") or []:
                claim = fake.find(k.PVC, (vol.get("persistentVolumeClaim") or {}).get("claimName", ""),
                                  pod["metadata"]["namespace"])
                if claim and not claim["spec"].get("volumeName") and \
                        "volume.kubernetes.io/selected-node" not in (claim["metadata"].get("annotations") or {}):
                    fake.mutate(k.PVC, claim["metadata"]["name"], claim["metadata"]["namespace"],
                                lambda o: o["metadata"].setdefault("annotations", {}).update(
                                    {"volume.kubernetes.io/selected-node": node}))
                    return True
        return False
    return run


def clone(obj):
    return copy.deepcopy(obj)


def data_path_pod(name, label):
    """The pod the node-agent names after a PVR or DataDownload (pkg/exposer createHostingPod, createRestorePod)."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": VNS, "labels": {label: name}},
            "spec": {"nodeName": "node-1"}, "status": {"phase": "Running"}}


def terminates_after(kind, name, label):
    """A controller: the data path pod of ``name`` goes only once its CR is gone (kube.DeletePodIfAny does not
    wait, and the pod takes its grace period)."""
    def controller(kube):
        if kube.find(kind, name, VNS) is None and kube.find(k.POD, name, VNS) is not None:
            kube.remove(k.POD, name, VNS)
            return True
        return False
    return controller


def creates_with_pod_gone(fake, kind, name):
    """Records, for each create of ``kind``, whether the data path pod of ``name`` was gone by then."""
    seen = []
    fake.before_write = lambda verb, what, _name, _ns: seen.append(fake.find(k.POD, name, VNS) is None) \
        if verb == "create" and what is kind else None
    return seen
