"""Plain-data Velero and core objects in the shapes Velero v1.18 writes (docs/velero-contract.md).

Used by the unit tests of backups.py and plan.py. Builders return dicts; ``volume_info_*``
return BackupVolumeInfo entries as serialized by Velero (note the capitalized ``Phase``).
"""

import gzip
import json

from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils.errors import DataRestoreError
from ansible_collections.velero.data_restore.plugins.module_utils.velero_api import get_valid_name

VNS = "velero"
SECRET = "X-Amz-Signature=deadbeefsecret"


def backup(name, phase="Completed", included=None, excluded=None, start="2026-11-24T22:00:00Z",
           labels=None, storage_location="default", snapshot_move_data=False, csi_timeout="10m0s",
           uid=None):
    """A Backup; its UID defaults to the one pvb() and du() name for this backup."""
    obj = {
        "apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": name, "namespace": VNS,
                     "labels": dict({"velero.io/storage-location": storage_location}, **(labels or {}))},
        "spec": {"csiSnapshotTimeout": csi_timeout, "defaultVolumesToFsBackup": not snapshot_move_data,
                 "hooks": {}, "includedNamespaces": included if included is not None else ["shop"],
                 "itemOperationTimeout": "4h0m0s", "metadata": {}, "snapshotMoveData": snapshot_move_data,
                 "storageLocation": storage_location, "ttl": "720h0m0s"},
        "status": {"phase": phase, "startTimestamp": start, "completionTimestamp": start,
                   "expiration": "2099-12-24T22:00:00Z", "formatVersion": "1.1.0", "version": 1,
                   "progress": {"itemsBackedUp": 12, "totalItems": 12}},
    }
    if excluded is not None:
        obj["spec"]["excludedNamespaces"] = excluded
    obj["metadata"]["uid"] = uid or default_backup_uid(name)
    return obj


def default_backup_uid(backup_name):
    return "uid-%s" % backup_name


def bsl(name="default", phase="Available", message=None):
    obj = {"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
           "metadata": {"name": name, "namespace": VNS},
           "spec": {"default": True, "provider": "aws", "objectStorage": {"bucket": "velero"},
                    "config": {"region": "minio", "s3Url": "http://minio.velero.svc:9000"}},
           "status": {"phase": phase, "lastValidationTime": "2026-11-25T10:00:00Z"}}
    if message:
        obj["status"]["message"] = message
    return obj


def pvb(backup_name, pod, volume, pvc=None, namespace="shop", snapshot_id="a1b2c3d4e5f6",
        size=1048576 * 5, uploader="kopia", phase="Completed", name=None, backup_uid=None):
    backup_uid = backup_uid or default_backup_uid(backup_name)
    meta = {"name": name or "%s-%s-%s" % (backup_name, pod, volume), "namespace": VNS,
            "generateName": backup_name + "-",
            "labels": {"velero.io/backup-name": get_valid_name(backup_name), "velero.io/backup-uid": backup_uid},
            "ownerReferences": [{"apiVersion": "velero.io/v1", "kind": "Backup", "name": backup_name,
                                 "uid": backup_uid, "controller": True}]}
    if pvc:
        meta["annotations"] = {"velero.io/pvc-name": pvc}
        meta["labels"]["velero.io/pvc-uid"] = "pvc-uid-%s" % pvc
    return {
        "apiVersion": "velero.io/v1", "kind": "PodVolumeBackup", "metadata": meta,
        "spec": {"backupStorageLocation": "default", "node": "node-1",
                 "pod": {"kind": "Pod", "name": pod, "namespace": namespace, "uid": "pod-uid-%s" % pod},
                 "repoIdentifier": "", "uploaderType": uploader, "volume": volume,
                 "tags": {"backup": backup_name, "backup-uid": backup_uid, "ns": namespace, "pod": pod,
                          "pod-uid": "pod-uid-%s" % pod, "volume": volume}},
        "status": {"phase": phase, "snapshotID": snapshot_id, "path": "/host_pods/x/volumes/y",
                   "progress": {"totalBytes": size, "bytesDone": size},
                   "startTimestamp": "2026-11-24T22:00:01Z", "completionTimestamp": "2026-11-24T22:00:09Z"},
    }


def du(backup_name, pvc, namespace="shop", snapshot_id="f00dfeed1234", size=1048576 * 20, node_os="linux",
       storage_class="sim-immediate", phase="Completed", datamover="velero", backup_uid=None):
    backup_uid = backup_uid or default_backup_uid(backup_name)
    return {
        "apiVersion": "velero.io/v2alpha1", "kind": "DataUpload",
        "metadata": {"name": "%s-%s" % (backup_name, pvc), "namespace": VNS, "generateName": backup_name + "-",
                     "labels": {"velero.io/backup-name": get_valid_name(backup_name),
                                "velero.io/backup-uid": backup_uid, "velero.io/pvc-uid": "pvc-uid-%s" % pvc,
                                "velero.io/async-operation-id": "du-%s.pvc-uid-%s" % (backup_uid, pvc)},
                     "ownerReferences": [{"apiVersion": "velero.io/v1", "kind": "Backup", "name": backup_name,
                                          "uid": backup_uid, "controller": True}]},
        "spec": {"backupStorageLocation": "default", "datamover": datamover, "operationTimeout": "10m0s",
                 "snapshotType": "CSI", "sourceNamespace": namespace, "sourcePVC": pvc,
                 "csiSnapshot": {"volumeSnapshot": "velero-%s-xyz" % pvc, "storageClass": storage_class,
                                 "snapshotClass": "sim-snapclass", "driver": "sim.csi.local"}},
        "status": {"phase": phase, "snapshotID": snapshot_id, "node": "node-1", "nodeOS": node_os,
                   "path": "/%s" % pvc, "progress": {"totalBytes": size, "bytesDone": size},
                   "startTimestamp": "2026-11-24T22:00:01Z", "completionTimestamp": "2026-11-24T22:01:00Z"},
    }


# -- BackupVolumeInfo entries (internal/volume/volumes_information.go) --------------------------
def vi_pvb(pvc, pod, volume, namespace="shop", snapshot="a1b2c3d4e5f6", size=5242880, uploader="kopia",
           phase="Completed", result="succeeded", pv=None):
    return {"pvcName": pvc, "pvcNamespace": namespace, "pvName": pv or "pvc-%s-0001" % pvc,
            "backupMethod": "PodVolumeBackup", "snapshotDataMoved": False, "preserveLocalSnapshot": False,
            "skipped": False, "startTimestamp": "2026-11-24T22:00:01Z",
            "completionTimestamp": "2026-11-24T22:00:09Z", "result": result,
            "pvbInfo": {"snapshotHandle": snapshot, "size": size, "uploaderType": uploader,
                        "volumeName": volume, "podName": pod, "podNamespace": namespace, "nodeName": "node-1",
                        "Phase": phase},
            "pvInfo": {"reclaimPolicy": "Delete", "labels": {}}}


def vi_data_mover(pvc, namespace="shop", snapshot="f00dfeed1234", size=20971520, phase="Completed",
                  result="succeeded", uploader="kopia", data_mover="velero"):
    return {"pvcName": pvc, "pvcNamespace": namespace, "pvName": "pvc-%s-0002" % pvc,
            "backupMethod": "CSISnapshot", "snapshotDataMoved": True, "preserveLocalSnapshot": False,
            "skipped": False, "result": result,
            "csiSnapshotInfo": {"snapshotHandle": "unknown", "size": size, "driver": "sim.csi.local",
                                "vscName": "unknown", "operationID": "unknown", "ReadyToUse": True},
            "snapshotDataMovementInfo": {"dataMover": data_mover, "uploaderType": uploader,
                                         "retainedSnapshot": "velero-%s-xyz" % pvc, "snapshotHandle": snapshot,
                                         "operationID": "du-b-uid.pvc-uid-%s" % pvc, "size": size,
                                         "incrementalSize": 0, "Phase": phase},
            "pvInfo": {"reclaimPolicy": "Delete", "labels": {}}}


def vi_csi(pvc, namespace="shop"):
    return {"pvcName": pvc, "pvcNamespace": namespace, "pvName": "pvc-%s-0003" % pvc,
            "backupMethod": "CSISnapshot", "snapshotDataMoved": False, "preserveLocalSnapshot": False,
            "skipped": False, "result": "succeeded",
            "csiSnapshotInfo": {"snapshotHandle": "snap-0123", "size": 1073741824, "driver": "ebs.csi.aws.com",
                                "vscName": "snapcontent-1", "operationID": "op", "ReadyToUse": True}}


def vi_native(pvc, namespace="shop"):
    return {"pvcName": pvc, "pvcNamespace": namespace, "pvName": "pvc-%s-0004" % pvc,
            "backupMethod": "NativeSnapshot", "snapshotDataMoved": False, "preserveLocalSnapshot": False,
            "skipped": False, "result": "succeeded",
            "nativeSnapshotInfo": {"snapshotHandle": "snap-0abc", "volumeType": "gp3", "volumeAZ": "eu-1a",
                                   "iops": "3000", "Phase": "Completed"}}


def vi_skipped(pvc, namespace="shop", reason="opted out due to annotation in pod app-0"):
    return {"pvcName": pvc, "pvcNamespace": namespace, "pvName": "pvc-%s-0005" % pvc,
            "snapshotDataMoved": False, "preserveLocalSnapshot": False, "skipped": True,
            "skippedReason": reason, "pvInfo": {"reclaimPolicy": "Delete", "labels": {}}}


def vi_emptydir(pod, volume, namespace="shop"):
    entry = vi_pvb("", pod, volume, namespace=namespace)
    entry.pop("pvcName"), entry.pop("pvcNamespace"), entry.pop("pvName")
    return entry


# -- core objects ---------------------------------------------------------------------------------
def namespace(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}, "status": {"phase": "Active"}}


def pvc(name, ns="shop", size="1Gi", phase="Bound", mode="Filesystem", sc="sim-immediate",
        access=("ReadWriteOnce",), labels=None, capacity=None):
    obj = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
           "metadata": {"name": name, "namespace": ns, "labels": dict(labels or {})},
           "spec": {"accessModes": list(access), "resources": {"requests": {"storage": size}},
                    "storageClassName": sc, "volumeMode": mode},
           "status": {"phase": phase}}
    if phase == "Bound":
        obj["spec"]["volumeName"] = "pvc-%s-bound" % name
        obj["status"]["capacity"] = {"storage": capacity or size}
        obj["status"]["accessModes"] = list(access)
    return obj


def storage_class(name, provisioner="sim.csi.local", binding="Immediate"):
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
            "provisioner": provisioner, "volumeBindingMode": binding, "reclaimPolicy": "Delete"}


def session_cm(session, keys, state="restoring"):
    doc = {"schemaVersion": 1, "session": session, "state": state, "mode": "in_place",
           "plan": {"volumes": [{"key": key} for key in keys]}, "volumes": {}, "undo": [], "hooks": [],
           "history": [], "created": "x", "updated": "x"}
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "data-restore-%s" % session, "namespace": VNS,
                         "labels": {"app.kubernetes.io/managed-by": "velero.data_restore",
                                    "data-restore.ansible/session": session,
                                    "data-restore.ansible/role": "session"}},
            "data": {"session.json": json.dumps(doc)}}


# -- a Velero server stand-in for DownloadRequests ------------------------------------------------
class ObjectStore(object):
    """Volume-info documents by backup name, served through pre-signed-looking URLs."""

    def __init__(self):
        self.docs = {}
        self.fetched = []
        self.cas = []  # the CA bundle each fetch was given

    def put(self, backup_name, entries, gz=True):
        data = json.dumps(entries).encode("utf-8")
        self.docs[backup_name] = gzip.compress(data) if gz else data

    def url(self, backup_name):
        return ("https://minio.example:9000/velero/backups/%s/%s-volumeinfo.json.gz?%s&X-Amz-Expires=600"
                % (backup_name, backup_name, SECRET))

    def fetch(self, url, ca=None):
        from ansible_collections.velero.data_restore.plugins.module_utils.backups import VolumeInfoAbsent

        self.fetched.append(url)
        self.cas.append(ca)
        name = url.split("/backups/")[1].split("/")[0]
        if name not in self.docs:
            raise VolumeInfoAbsent("404")
        return self.docs[name]


def download_controller(store, process=True):
    """A FakeKube controller answering DownloadRequests like Velero's server (contract §1.8)."""

    def controller(fake):
        changed = False
        for dr in fake.all(k.DOWNLOAD_REQUEST):
            if (dr.get("status") or {}).get("phase") or not process:
                continue
            name = dr["spec"]["target"]["name"]

            def set_status(obj, name=name):
                obj["status"] = {"phase": "Processed", "downloadURL": store.url(name),
                                 "expiration": "2026-11-25T12:10:00Z"}

            fake.mutate(k.DOWNLOAD_REQUEST, dr["metadata"]["name"], dr["metadata"]["namespace"], set_status)
            changed = True
        return changed

    return controller


def failing_fetch(url, ca=None):  # pylint: disable=unused-argument
    raise DataRestoreError("download from https://minio.example:9000/<redacted> failed: timed out")


def deployment_mounting(name, claims, ns="shop"):
    """A Deployment whose pod template mounts ``claims`` (what a template swap patches)."""
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "busybox"}],
                         "volumes": [{"name": "v%d" % i, "persistentVolumeClaim": {"claimName": claim}}
                                     for i, claim in enumerate(claims)]}}}}
