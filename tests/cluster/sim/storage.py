"""Simulated CSI driver + external-provisioner: StorageClasses sim-immediate / sim-wffc.

A PV is created per claim (name ``pvc-<claim uid>``) with a claimRef carrying the claim UID, so
the REAL PV controller of kube-controller-manager binds it.  Data lives on the local disk:
``<state>/volumes/<pv>/`` (Filesystem) or ``<state>/volumes/<pv>.img`` (Block, sparse).
"""
from __future__ import annotations

import logging
import os
import shutil

from kubernetes.client.rest import ApiException
from kubernetes.utils.quantity import parse_quantity

from . import contract
from .kube import Informer, Kube, WorkQueue, now_iso, run_workers

log = logging.getLogger("sim.storage")

PROVISIONER = "sim.csi.data-restore.test"
CLASS_IMMEDIATE = "sim-immediate"
CLASS_WFFC = "sim-wffc"
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"


# ------------------------------------------------------------------ helpers for tests
def volume_path(state_dir: str, pv_name: str) -> str:
    """Local path backing a sim PV: the .img file for Block volumes, else the directory."""
    img = os.path.join(state_dir, "volumes", pv_name + ".img")
    if os.path.exists(img):
        return img
    return os.path.join(state_dir, "volumes", pv_name)


def pvc_volume_path(core_api, state_dir: str, namespace: str, pvc: str) -> str:
    """PVC → bound PV → local path.  ``core_api`` is a kubernetes CoreV1Api (or ApiClient)."""
    from kubernetes import client as kc
    if not isinstance(core_api, kc.CoreV1Api):
        core_api = kc.CoreV1Api(core_api)
    claim = core_api.read_namespaced_persistent_volume_claim(pvc, namespace)
    if not claim.spec.volume_name:
        raise RuntimeError(f"PVC {namespace}/{pvc} is not bound")
    return volume_path(state_dir, claim.spec.volume_name)


def storage_classes() -> list[dict]:
    def sc(name, mode, default):
        md = {"name": name}
        if default:
            md["annotations"] = {"storageclass.kubernetes.io/is-default-class": "true"}
        return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": md,
                "provisioner": PROVISIONER, "reclaimPolicy": "Delete",
                "allowVolumeExpansion": True, "volumeBindingMode": mode}
    return [sc(CLASS_IMMEDIATE, "Immediate", True), sc(CLASS_WFFC, "WaitForFirstConsumer", False)]


class Provisioner:
    def __init__(self, kube: Kube, state_dir: str, informers: dict[str, Informer]):
        self.kube = kube
        self.state_dir = state_dir
        self.pvcs = informers["PersistentVolumeClaim"]
        self.pvs = informers["PersistentVolume"]
        self.scs = informers["StorageClass"]
        self.queue = WorkQueue("provisioner")
        self.selector_events: set[str] = set()
        self.pvcs.add_handler(lambda t, o, old: t != "DELETED" and self.queue.add("pvc:" + _k(o)))
        self.pvs.add_handler(lambda t, o, old: t != "DELETED" and self.queue.add("pv:" + o["metadata"]["name"]))
        os.makedirs(os.path.join(state_dir, "volumes"), exist_ok=True)

    def install(self):
        for sc in storage_classes():
            if self.kube.get_or_none("StorageClass", None, sc["metadata"]["name"]) is None:
                self.kube.create("StorageClass", sc)

    def start(self):
        run_workers(self.queue, self.reconcile, 2)

    def reconcile(self, key: str):
        kind, _sep, rest = key.partition(":")
        if kind == "pvc":
            ns, name = rest.split("/", 1)
            return self.reconcile_pvc(ns, name)
        return self.reconcile_pv(rest)

    def reconcile_pvc(self, ns, name):
        pvc = self.pvcs.get(ns, name)
        if pvc is None:
            return None
        sc_name = (pvc.get("spec") or {}).get("storageClassName")
        sc = self.scs.get(None, sc_name) if sc_name else None
        decision = contract.provision_decision(pvc, sc, PROVISIONER)
        if decision == "selector":
            uid = pvc["metadata"]["uid"]
            if uid not in self.selector_events:
                self.selector_events.add(uid)
                self.event(pvc, "ProvisioningFailed", "claim Selector is not supported")
            return None
        if decision != "provision":
            return None
        return self.provision(pvc, sc)

    def provision(self, pvc, sc):
        md, spec = pvc["metadata"], pvc["spec"]
        pv_name = f"pvc-{md['uid']}"
        if self.pvs.get(None, pv_name) is not None:
            return None
        mode = spec.get("volumeMode") or "Filesystem"
        size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        pv = {
            "metadata": {"name": pv_name, "annotations": {ANN_PROVISIONED_BY: PROVISIONER}},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "volumeMode": mode,
                "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy") or "Delete",
                "storageClassName": sc["metadata"]["name"],
                "csi": {"driver": PROVISIONER, "volumeHandle": pv_name,
                        **({"fsType": "ext4"} if mode == "Filesystem" else {})},
                "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                             "namespace": md["namespace"], "name": md["name"], "uid": md["uid"]},
            },
        }
        node = (md.get("annotations") or {}).get(contract.ANN_SELECTED_NODE)
        if sc.get("volumeBindingMode") == "WaitForFirstConsumer" and node:
            pv["spec"]["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}
        vol_dir = os.path.join(self.state_dir, "volumes")
        if mode == "Block":
            with open(os.path.join(vol_dir, pv_name + ".img"), "wb") as f:
                f.truncate(int(parse_quantity(size)))
        else:
            os.makedirs(os.path.join(vol_dir, pv_name), exist_ok=True)
        try:
            self.kube.create("PersistentVolume", pv)
            log.info("provisioned %s for %s/%s (%s, %s)", pv_name, md["namespace"], md["name"], mode, size)
            self.event(pvc, "ProvisioningSucceeded", f"Successfully provisioned volume {pv_name}", "Normal")
        except ApiException as e:
            if e.status != 409:
                raise
        return None

    def reconcile_pv(self, name):
        pv = self.pvs.get(None, name)
        if pv is None:
            return None
        ann = pv["metadata"].get("annotations") or {}
        if ann.get(ANN_PROVISIONED_BY) != PROVISIONER or pv["metadata"].get("deletionTimestamp"):
            return None
        if (pv.get("status") or {}).get("phase") == "Released" and \
                pv["spec"].get("persistentVolumeReclaimPolicy") == "Delete":
            log.info("deleting released PV %s", name)
            self.kube.delete("PersistentVolume", None, name, uid=pv["metadata"]["uid"])
            remove_volume_data(self.state_dir, name)
        return None

    def event(self, obj, reason, message, typ="Warning"):
        md = obj["metadata"]
        try:
            self.kube.create("Event", {
                "metadata": {"generateName": md["name"] + ".", "namespace": md["namespace"]},
                "involvedObject": {"kind": obj.get("kind", "PersistentVolumeClaim"), "apiVersion": "v1",
                                   "namespace": md["namespace"], "name": md["name"], "uid": md["uid"],
                                   "resourceVersion": md.get("resourceVersion")},
                "reason": reason, "message": message, "type": typ,
                "source": {"component": f"{PROVISIONER}_sim-external-provisioner"},
                "firstTimestamp": now_iso(), "lastTimestamp": now_iso(), "count": 1,
                "reportingComponent": PROVISIONER, "reportingInstance": "sim",
            })
        except ApiException as e:
            log.warning("event for %s failed: %s", md["name"], e)


def remove_volume_data(state_dir: str, pv_name: str):
    base = os.path.join(state_dir, "volumes", pv_name)
    shutil.rmtree(base, ignore_errors=True)
    if os.path.exists(base + ".img"):
        os.remove(base + ".img")


def _k(o):
    return f"{o['metadata']['namespace']}/{o['metadata']['name']}"
