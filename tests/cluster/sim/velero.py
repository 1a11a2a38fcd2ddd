"""Velero backup fixtures for tests (imported in the TEST process, not by the simulator).

``make_backup`` does what a Velero backup leaves behind, without Velero: the volume data in a
local kopia-like repository ``<state>/repository/<bsl>/<sourceNamespace>/<snapshotID>/``
(``data/`` tree or ``block.img`` + ``manifest.json``), the Backup CR, PodVolumeBackups (fs) or
DataUploads (data mover), and the object-store folder ``<state>/objectstore/sim-bucket/backups/<b>/``
(velero-backup.json, <b>-podvolumebackups.json.gz, <b>-volumeinfo.json.gz, <b>.tar.gz, ...)
served through DownloadRequests by the simulator.
"""
from __future__ import annotations

import datetime as _dt
import gzip
import io
import json
import os
import secrets
import shutil
import tarfile
import time

from .kube import Kube
from .storage import volume_path

VELERO_NS = "velero"
BUCKET = "sim-bucket"
DRIVER = "sim.csi.data-restore.test"


def _ts(t: float | _dt.datetime | str | None = None) -> str:
    if isinstance(t, str):
        return t
    if isinstance(t, _dt.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=_dt.timezone.utc)
        return t.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t if t is not None else time.time()))


def _epoch(s: str) -> float:
    return _dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc).timestamp()


def valid_name(s: str) -> str:
    """Velero label.GetValidName: values > 63 chars are truncated to 57 + sha256[:6]."""
    if len(s) <= 63:
        return s
    import hashlib
    return s[:57] + hashlib.sha256(s.encode()).hexdigest()[:6]


def write_files(path: str, files: dict[str, bytes | str]) -> None:
    """Write ``{relative path: content}`` into a Filesystem volume directory."""
    for rel, data in files.items():
        p = os.path.join(path, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)


def read_tree(path: str) -> dict[str, bytes]:
    """``{relative path: content}`` of every regular file under ``path``, skipping ``.velero``."""
    out = {}
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not (root == path and d == ".velero")]
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                with open(p, "rb") as fh:
                    out[os.path.relpath(p, path)] = fh.read()
    return out


def write_block(path: str, data: bytes, offset: int = 0) -> None:
    """Write bytes into a Block volume image (keeps its size)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def read_block(path: str, length: int, offset: int = 0) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def repository_dir(state_dir: str, bsl: str, source_ns: str, snapshot_id: str) -> str:
    return os.path.join(state_dir, "repository", bsl, source_ns, snapshot_id)


def _snapshot(state_dir, bsl, ns, pvc, pv, mode, src) -> tuple[str, int]:
    sid = secrets.token_hex(16)
    d = repository_dir(state_dir, bsl, ns, sid)
    os.makedirs(d)
    if mode == "Block":
        dst = os.path.join(d, "block.img")
        with open(dst, "wb") as f:
            f.truncate(os.path.getsize(src))
        from .contract import copy_file
        size = copy_file(src, dst, truncate=False)   # sparse-preserving
    else:
        shutil.copytree(src, os.path.join(d, "data"), symlinks=True,
                        ignore=lambda root, names: [".velero"] if os.path.samefile(root, src) else [])
        size = sum(len(v) for v in read_tree(os.path.join(d, "data")).values())
    with open(os.path.join(d, "manifest.json"), "w") as f:
        json.dump({"volumeMode": mode, "totalBytes": size, "source": {"namespace": ns, "pvc": pvc, "pv": pv},
                   "createdAt": _ts()}, f)
    return sid, size


def _gz(obj) -> bytes:
    return gzip.compress(json.dumps(obj).encode())


def _owner(backup) -> dict:
    return {"apiVersion": "velero.io/v1", "kind": "Backup", "name": backup["metadata"]["name"],
            "uid": backup["metadata"]["uid"], "controller": True}


def _clean(obj: dict) -> dict:
    obj = json.loads(json.dumps(obj))
    md = obj["metadata"]
    for k in ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"):
        md.pop(k, None)
    return obj


def make_backup(api_client, state_dir: str, name: str, namespaces, *, method: str = "fs", pvcs=None,
                phase: str = "Completed", schedule: str | None = None, labels: dict | None = None,
                storage_location: str = "default", uploader_type: str = "kopia",
                csi_snapshot_timeout: str = "10m0s", volume_info: bool = True, created_at=None,
                fs_pvcs=None) -> dict:
    """Simulate a Velero backup of ``namespaces`` (see module doc).  ``method``: "fs"
    (PodVolumeBackups; only PVCs mounted by a Running pod, Filesystem only) or "data_mover"
    (DataUploads for every chosen PVC, Block included).  ``pvcs``: names or "ns/name" (default:
    all PVCs of the namespaces).  ``fs_pvcs`` (data_mover only): PVCs backed up by the file-system
    backup all the same - Velero's opt-in approach, the pod annotation backup.velero.io/backup-volumes
    with defaultVolumesToFsBackup false (pkg/util/podvolume/pod_volume.go GetVolumesByPod), the
    other volumes snapshotted and moved; one backup then holds PodVolumeBackups and DataUploads.
    Returns the created Backup (dict)."""
    assert method in ("fs", "data_mover"), method
    assert not fs_pvcs or method == "data_mover", "fs_pvcs mixes fs into a data_mover backup"
    fs_only = set(fs_pvcs or ())
    kube = Kube(api_client=api_client)
    if isinstance(namespaces, str):
        namespaces = [namespaces]
    start = _ts(created_at)
    t0 = _epoch(start)
    blabels = {"velero.io/storage-location": valid_name(storage_location)}
    if schedule:
        blabels["velero.io/schedule-name"] = valid_name(schedule)
    blabels.update(labels or {})
    backup = {
        "apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": name, "namespace": VELERO_NS, "labels": blabels,
                     "annotations": {"velero.io/source-cluster-k8s-gitversion": "v1.34.10",
                                     "velero.io/source-cluster-k8s-major-version": "1",
                                     "velero.io/source-cluster-k8s-minor-version": "34"}},
        "spec": {"includedNamespaces": list(namespaces), "storageLocation": storage_location,
                 "ttl": "720h0m0s", "csiSnapshotTimeout": csi_snapshot_timeout, "itemOperationTimeout": "4h0m0s",
                 "snapshotVolumes": method == "data_mover", "volumeSnapshotLocations": [],
                 "defaultVolumesToFsBackup": method == "fs", "snapshotMoveData": method == "data_mover",
                 "hooks": {}, "metadata": {}},
        "status": {"phase": phase, "version": 1, "formatVersion": "1.1.0", "startTimestamp": start,
                   "expiration": _ts(t0 + 720 * 3600)},
    }
    if phase in ("Completed", "PartiallyFailed", "Failed"):
        backup["status"]["completionTimestamp"] = _ts(t0 + 5)
    backup = kube.create("Backup", backup)   # no status subresource: status is stored with the object
    bmd = backup["metadata"]
    want = None if pvcs is None else set(pvcs)
    pvbs, dus, infos, pvc_objs = [], [], [], []
    for ns in namespaces:
        pods = [p for p in kube.list("Pod", ns) if (p.get("status") or {}).get("phase") == "Running"
                and not p["metadata"].get("deletionTimestamp")]
        for pvc in kube.list("PersistentVolumeClaim", ns):
            pname = pvc["metadata"]["name"]
            if want is not None and pname not in want and f"{ns}/{pname}" not in want:
                continue
            pvc_objs.append(pvc)
            pv_name = pvc["spec"].get("volumeName")
            if not pv_name:
                continue
            pv = kube.get("PersistentVolume", None, pv_name)
            mode = pvc["spec"].get("volumeMode") or "Filesystem"
            src = volume_path(state_dir, pv_name)
            pv_info = {"reclaimPolicy": pv["spec"].get("persistentVolumeReclaimPolicy", ""),
                       "labels": pv["metadata"].get("labels") or {}}
            base_info = {"pvcName": pname, "pvcNamespace": ns, "pvName": pv_name, "snapshotDataMoved": False,
                         "preserveLocalSnapshot": False, "skipped": False, "startTimestamp": _ts(t0 + 1),
                         "pvInfo": pv_info}
            if method == "fs" or pname in fs_only or f"{ns}/{pname}" in fs_only:
                mount = None
                for p in pods:
                    for v in p["spec"].get("volumes") or []:
                        if (v.get("persistentVolumeClaim") or {}).get("claimName") == pname:
                            mount = (p, v["name"])
                            break
                    if mount:
                        break
                if mount is None or mode == "Block":
                    infos.append(dict(base_info, skipped=True, skippedReason=(
                        "Block volumes are not supported for fs backup" if mode == "Block"
                        else "no running pod mounts the volume: not included in the file system backup")))
                    continue
                pod, vol = mount
                sid, size = _snapshot(state_dir, storage_location, ns, pname, pv_name, mode, src)
                pvb = {
                    "apiVersion": "velero.io/v1", "kind": "PodVolumeBackup",
                    "metadata": {"generateName": f"{name}-", "namespace": VELERO_NS, "ownerReferences": [_owner(backup)],
                                 "labels": {"velero.io/backup-name": valid_name(name), "velero.io/backup-uid": bmd["uid"],
                                            "velero.io/pvc-uid": pvc["metadata"]["uid"]},
                                 "annotations": {"velero.io/pvc-name": pname}},
                    "spec": {"node": pod["spec"].get("nodeName", ""),
                             "pod": {"kind": "Pod", "namespace": ns, "name": pod["metadata"]["name"],
                                     "uid": pod["metadata"]["uid"]},
                             "volume": vol, "backupStorageLocation": storage_location, "repoIdentifier": "",
                             "uploaderType": uploader_type,
                             "tags": {"backup": name, "backup-uid": bmd["uid"], "pod": pod["metadata"]["name"],
                                      "pod-uid": pod["metadata"]["uid"], "ns": ns, "volume": vol,
                                      "pvc-uid": pvc["metadata"]["uid"]}},
                    "status": {"phase": "Completed", "snapshotID": sid,
                               "path": f"/host_pods/{pod['metadata']['uid']}/volumes/kubernetes.io~csi/{pv_name}/mount",
                               "startTimestamp": _ts(t0 + 1), "completionTimestamp": _ts(t0 + 4),
                               "progress": {"totalBytes": size, "bytesDone": size}},
                }
                pvb = kube.create("PodVolumeBackup", pvb)
                pvbs.append(pvb)
                infos.append(dict(base_info, backupMethod="PodVolumeBackup", completionTimestamp=_ts(t0 + 4),
                                  result="succeeded", pvbInfo={
                                      "snapshotHandle": sid, "size": size, "uploaderType": uploader_type,
                                      "volumeName": vol, "podName": pod["metadata"]["name"], "podNamespace": ns,
                                      "nodeName": pod["spec"].get("nodeName", ""), "Phase": "Completed"}))
            else:
                sid, size = _snapshot(state_dir, storage_location, ns, pname, pv_name, mode, src)
                op = valid_name(f"du-{bmd['uid']}.{pvc['metadata']['uid']}")
                vs = f"velero-{pname}-{secrets.token_hex(3)[:5]}"
                du = {
                    "apiVersion": "velero.io/v2alpha1", "kind": "DataUpload",
                    "metadata": {"generateName": f"{name}-", "namespace": VELERO_NS, "ownerReferences": [_owner(backup)],
                                 "labels": {"velero.io/backup-name": valid_name(name), "velero.io/backup-uid": bmd["uid"],
                                            "velero.io/pvc-uid": pvc["metadata"]["uid"], "velero.io/async-operation-id": op}},
                    "spec": {"snapshotType": "CSI",
                             "csiSnapshot": {"volumeSnapshot": vs, "storageClass": pvc["spec"].get("storageClassName", ""),
                                             "snapshotClass": "sim-snapclass", "driver": DRIVER},
                             "sourcePVC": pname, "datamover": "velero", "backupStorageLocation": storage_location,
                             "sourceNamespace": ns, "operationTimeout": csi_snapshot_timeout},
                    "status": {"phase": "Completed", "snapshotID": sid, "path": f"/{pvc['metadata']['uid']}",
                               "dataMoverResult": {}, "startTimestamp": _ts(t0 + 1), "completionTimestamp": _ts(t0 + 4),
                               "progress": {"totalBytes": size, "bytesDone": size}, "node": "sim-node-a",
                               "nodeOS": "linux", "acceptedByNode": "sim-node-a", "acceptedTimestamp": _ts(t0 + 1)},
                }
                du = kube.create("DataUpload", du)
                dus.append(du)
                kube.patch("PersistentVolumeClaim", ns, pname, {"metadata": {"annotations": {
                    "velero.io/data-upload-name": f"{VELERO_NS}/{du['metadata']['name']}"}}})
                infos.append(dict(base_info, backupMethod="CSISnapshot", snapshotDataMoved=True,
                                  completionTimestamp=_ts(t0 + 4), result="succeeded",
                                  csiSnapshotInfo={"snapshotHandle": "unknown", "size": size, "driver": DRIVER,
                                                   "vscName": "unknown", "operationID": "unknown", "ReadyToUse": False},
                                  snapshotDataMovementInfo={"dataMover": "velero", "uploaderType": "kopia",
                                                            "retainedSnapshot": vs, "snapshotHandle": sid,
                                                            "operationID": op, "size": size, "Phase": "Completed"}))
    _write_objectstore(state_dir, backup, pvbs, dus, pvc_objs, infos if volume_info else None)
    return backup


def backup_dir(state_dir: str, name: str) -> str:
    return os.path.join(state_dir, "objectstore", BUCKET, "backups", name)


def _write_objectstore(state_dir, backup, pvbs, dus, pvc_objs, infos):
    name = backup["metadata"]["name"]
    d = backup_dir(state_dir, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "velero-backup.json"), "w") as f:
        json.dump(backup, f)
    files = {
        f"{name}-podvolumebackups.json.gz": _gz(pvbs),
        f"{name}-results.gz": _gz({"errors": {}, "warnings": {}}),
        f"{name}-logs.gz": gzip.compress(b"level=info msg=\"simulated backup\"\n"),
        f"{name}-itemoperations.json.gz": _gz([]),
        f"{name}-volumesnapshots.json.gz": _gz([]),
        f"{name}-resource-list.json.gz": _gz({
            "v1/PersistentVolumeClaim": [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in pvc_objs],
            **({"velero.io/v2alpha1/DataUpload": [f"{VELERO_NS}/{u['metadata']['name']}" for u in dus]} if dus else {})}),
    }
    if infos is not None:
        files[f"{name}-volumeinfo.json.gz"] = _gz(infos)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        def add(path, obj):
            data = json.dumps(obj).encode()
            ti = tarfile.TarInfo(path)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
        add("metadata/version", "1.1.0")
        for p in pvc_objs:
            md = p["metadata"]
            add(f"resources/persistentvolumeclaims/namespaces/{md['namespace']}/{md['name']}.json", p)
            add(f"resources/persistentvolumeclaims/v1-preferredversion/namespaces/{md['namespace']}/{md['name']}.json", p)
        for u in dus:
            md = u["metadata"]
            add(f"resources/datauploads.velero.io/namespaces/{VELERO_NS}/{md['name']}.json", u)
            add(f"resources/datauploads.velero.io/v2alpha1-preferredversion/namespaces/{VELERO_NS}/{md['name']}.json", u)
    files[f"{name}.tar.gz"] = buf.getvalue()
    for fn, data in files.items():
        with open(os.path.join(d, fn), "wb") as f:
            f.write(data)


def new_cluster(api_client, state_dir: str, backup_name: str, storage_location: str = "default") -> dict:
    """Simulate a fresh cluster after Velero's backup sync (contract §5): the DataUploads of the
    backup are gone, the Backup and its PVBs are recreated from the object store with NEW UIDs
    (ownerRef + velero.io/backup-uid patched, BSL rewritten to the local one).  Repository and
    object store are kept.  Returns the new Backup."""
    kube = Kube(api_client=api_client)
    d = backup_dir(state_dir, backup_name)
    with open(os.path.join(d, "velero-backup.json")) as f:
        stored = json.load(f)
    with open(os.path.join(d, f"{backup_name}-podvolumebackups.json.gz"), "rb") as f:
        stored_pvbs = json.loads(gzip.decompress(f.read()))
    sel = f"velero.io/backup-name={valid_name(backup_name)}"
    for kind in ("DataUpload", "PodVolumeBackup"):
        for o in kube.list(kind, VELERO_NS, label_selector=sel):
            kube.delete(kind, VELERO_NS, o["metadata"]["name"], grace=0)
    kube.delete("Backup", VELERO_NS, backup_name, grace=0)
    deadline = time.time() + 60
    while time.time() < deadline:
        if kube.get_or_none("Backup", VELERO_NS, backup_name) is None and \
                not kube.list("PodVolumeBackup", VELERO_NS, label_selector=sel):
            break
        time.sleep(0.2)
    b = _clean(stored)
    b["spec"]["storageLocation"] = storage_location
    b["metadata"].setdefault("labels", {})["velero.io/storage-location"] = valid_name(storage_location)
    b["metadata"]["ownerReferences"] = [r for r in b["metadata"].get("ownerReferences") or [] if r.get("kind") != "Schedule"] or None
    if b["metadata"]["ownerReferences"] is None:
        del b["metadata"]["ownerReferences"]
    new = kube.create("Backup", b)
    for p in stored_pvbs:
        p = _clean(p)
        p["metadata"].pop("generateName", None)
        p["metadata"]["ownerReferences"] = [_owner(new)]
        p["metadata"]["labels"]["velero.io/backup-uid"] = new["metadata"]["uid"]
        p["spec"]["backupStorageLocation"] = storage_location
        kube.create("PodVolumeBackup", p)
    return new
