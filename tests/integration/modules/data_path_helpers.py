"""Shared helpers of the data-path integration tests: plan records from the simulated backup's CRs."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ansible_run import run_module  # noqa: E402

VNS = "velero"


def session(kubeconfig, name, mode="in_place"):
    result = run_module("restore_session", {"session": name, "mode": mode}, kubeconfig=kubeconfig)
    assert not result.get("failed"), result
    return result["session"]


def fs_records(kube, backup, target_namespace):
    """One record per PodVolumeBackup of ``backup`` (in-place into the same-named PVC)."""
    records = []
    for pvb in kube.list("PodVolumeBackup", VNS, label_selector="velero.io/backup-name=%s" % backup["metadata"]["name"]):
        pvc = pvb["metadata"]["annotations"]["velero.io/pvc-name"]
        records.append({
            "key": "%s/%s" % (target_namespace, pvc), "source_namespace": pvb["spec"]["pod"]["namespace"],
            "source_pvc": pvc, "method": "fs", "snapshot_id": pvb["status"]["snapshotID"],
            "snapshot_size": pvb["status"]["progress"]["totalBytes"], "uploader_type": pvb["spec"]["uploaderType"],
            "backup_storage_location": backup["spec"]["storageLocation"], "volume_mode": "Filesystem",
            "target_namespace": target_namespace, "target_pvc": pvc, "restore_via": "pod_volume_restore",
            "new_pvc": None})
    return records


def du_records(kube, backup, target_namespace, new_pvcs=None, storage_class=None, via="data_download"):
    """One record per DataUpload; ``new_pvcs`` {source pvc: new name} makes replace-mode records."""
    records = []
    for du in kube.list("DataUpload", VNS, label_selector="velero.io/backup-name=%s" % backup["metadata"]["name"]):
        pvc = du["spec"]["sourcePVC"]
        claim = kube.get("PersistentVolumeClaim", du["spec"]["sourceNamespace"], pvc)
        mode = claim["spec"].get("volumeMode") or "Filesystem"
        rec = {
            "key": "%s/%s" % (target_namespace, pvc), "source_namespace": du["spec"]["sourceNamespace"],
            "source_pvc": pvc, "method": "data_mover", "snapshot_id": du["status"]["snapshotID"],
            "snapshot_size": du["status"]["progress"]["totalBytes"], "uploader_type": "",
            "data_mover": du["spec"]["datamover"], "backup_storage_location": backup["spec"]["storageLocation"],
            "volume_mode": mode, "node_os": du["status"].get("nodeOS") or "", "operation_timeout": "10m0s",
            "target_namespace": target_namespace, "target_pvc": pvc, "restore_via": via, "new_pvc": None}
        if new_pvcs and pvc in new_pvcs:
            rec["new_pvc"] = {"name": new_pvcs[pvc], "storage_class": storage_class or claim["spec"]["storageClassName"],
                              "size": claim["spec"]["resources"]["requests"]["storage"],
                              "access_modes": claim["spec"]["accessModes"], "volume_mode": mode}
        records.append(rec)
    return records


def scale(kube, namespace, name, replicas, wait_for):
    kube.patch("Deployment", namespace, name, {"spec": {"replicas": replicas}})
    if replicas == 0:
        wait_for(lambda: not kube.list("Pod", namespace, label_selector="app=%s" % name),
                 60, message="pods of %s gone" % name)
