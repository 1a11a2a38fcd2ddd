"""Restore sessions and their Velero objects for the report tests: real object shapes (velero-contract.md),
covering in-place with PodVolumeRestores, replace with DataDownloads (one found by annotation, one by
target PVC), a volume without object, hooks, stopped workloads and the notes rules.

The files in golden/report/ were rendered from these cases by the report role's former Jinja templates
(ansible-core 2.19); the Python port must keep producing them byte for byte.
"""

from data_path_fixtures import dm_record, fs_record

VOLUME_KEY = "data-restore.ansible/volume-key"


def pvr(name, key, phase="Completed", done=4096, total=4096, start="2026-11-25T10:00:05Z", end="2026-11-25T10:00:17Z",
        progress=True, session="shop-nightly"):
    status = {"phase": phase, "startTimestamp": start}
    if end:
        status["completionTimestamp"] = end
    if progress:
        status["progress"] = {"bytesDone": done, "totalBytes": total}
    return {"apiVersion": "velero.io/v1", "kind": "PodVolumeRestore",
            "metadata": {"name": name, "namespace": "velero", "annotations": {VOLUME_KEY: key},
                         "labels": {"app.kubernetes.io/managed-by": "velero.data_restore",
                                    "data-restore.ansible/session": session,
                                    "data-restore.ansible/role": "pod-volume-restore"}},
            "spec": {"volume": "data", "snapshotID": "snap", "uploaderType": "kopia"}, "status": status}


def dd(name, namespace, pvc, key=None, session="shop-rollback", **kwargs):
    obj = pvr(name, key or "", session=session, **kwargs)
    obj["apiVersion"], obj["kind"] = "velero.io/v2alpha1", "DataDownload"
    obj["metadata"]["labels"]["data-restore.ansible/role"] = "data-download"
    if key is None:
        del obj["metadata"]["annotations"]
    obj["spec"] = {"targetVolume": {"pvc": pvc, "namespace": namespace, "pv": ""}, "snapshotID": "snap"}
    return obj


def in_place():
    volumes = [fs_record("data"), fs_record("logs"), fs_record("cache")]
    doc = {
        "schemaVersion": 1, "session": "shop-nightly", "mode": "in_place", "state": "completed",
        "backup": {"name": "nightly-20261124", "phase": "Completed", "start_timestamp": "2026-11-24T22:00:00Z",
                   "completion_timestamp": "2026-11-24T22:05:00Z"},
        "plan": {"volumes": volumes, "warnings": [u"PVC shop/cache: snapshot size unknown \u2013 bytes are estimates"],
                 "notes": []},
        "volumes": {"shop/data": {"phase": "Completed"}, "shop/cache": {"phase": "Pending"}},
        "undo": [
            {"id": "scale:Deployment/shop/web", "action": "scale",
             "target": {"kind": "Deployment", "namespace": "shop", "name": "web"},
             "original": {"replicas": 2}, "status": "reverted", "recordedAt": "2026-11-25T10:00:01Z"},
            {"id": "scale:StatefulSet/shop/db", "action": "scale",
             "target": {"kind": "StatefulSet", "namespace": "shop", "name": "db"},
             "original": {"paused": u"\u00e9", "replicas": 1}, "status": "applied", "recordedAt": "2026-11-25T10:00:01Z"},
            {"id": "retain_pv:PersistentVolume//pv-1", "action": "retain_pv",
             "target": {"kind": "PersistentVolume", "name": "pv-1"},
             "original": "Delete", "status": "applied", "recordedAt": "2026-11-25T10:00:01Z"},
        ],
        "hooks": [
            {"phase": "pre", "name": "flush", "type": "tasks", "tasks": "hooks/flush.yml", "result": "succeeded",
             "at": "2026-11-25T10:00:02Z"},
            {"phase": "pre", "name": "fsfreeze", "type": "command", "pod": "db-0", "container": "db", "command": ["sync"],
             "rc": "0", "result": "succeeded", "on_error": "fail", "message": "", "stdout": "", "at": "2026-11-25T10:00:03Z"},
            {"phase": "post", "name": "warm", "type": "command", "pod": "web-1", "container": "web", "command": "curl",
             "rc": None, "result": "ignored", "on_error": "continue", "message": "exec timed out", "stdout": "",
             "at": "2026-11-25T10:01:03Z"},
        ],
        "history": [
            {"at": "2026-11-25T10:00:00Z", "event": "created"},
            {"at": "2026-11-25T10:00:01Z", "event": "state quiescing"},
            {"at": "2026-11-25T10:00:04Z", "event": "state quiesced"},
            {"at": "2026-11-25T10:00:04Z", "event": "recorded scale:Deployment/shop/web"},
            {"at": "2026-11-25T10:00:20Z", "event": "state restored"},
            {"at": "2026-11-25T10:01:05Z", "event": "state completed"},
        ],
        "created": "2026-11-25T10:00:00Z", "updated": "2026-11-25T10:01:05Z", "error": None,
    }
    pvrs = [pvr("shop-nightly-shop-data", "shop/data", done=1048576, total=1048576),
            pvr("shop-nightly-shop-logs", "shop/logs", phase="InProgress", done=100, total=5000, end=None)]
    return dict(session="shop-nightly", doc=doc, pvrs=pvrs, dds=[], warnings=["extra: from the run", u"\u00fc\u00f1\u00ed"])


def replace():
    new_conf = {"name": "conf-restored", "storage_class": "fast", "size": "1Gi", "access_modes": ["ReadWriteOnce"],
                "volume_mode": "Filesystem"}
    volumes = [dm_record("data", new_name="data-restored-1"), dm_record("logs", new_name="logs-restored-1", mode="Block"),
               fs_record("conf", new_pvc=new_conf)]
    del volumes[1]["volume_mode"]
    doc = {
        "schemaVersion": 1, "session": "shop-rollback", "mode": "replace", "state": "failed",
        "backup": {"name": "nightly", "phase": "PartiallyFailed", "started": "2026-11-24T22:00:00Z"},
        "plan": {"volumes": volumes, "notes": ["Replace: the original volumes are set to Retain and kept."]},
        "volumes": {
            "shop/data": {"phase": "Completed",
                          "swap": {"mode": "rebind", "old_pv": "pv-old", "new_pv": "pv-new", "pvc": "data", "state": "swapped"}},
            "shop/logs": {"swap": {"mode": "template", "new_pv": "pv-new2", "pvc": "logs", "state": "reverted"}},
        },
        "undo": [], "hooks": [],
        "history": [{"at": "2026-11-25T11:00:00Z", "event": "created"},
                    {"at": "2026-11-25T11:00:02Z", "event": "state restoring"},
                    {"at": "2026-11-25T11:07:09Z", "event": "state failed"}],
        "created": "2026-11-25T11:00:00Z", "updated": "2026-11-25T11:07:09Z",
        "error": "DataDownload shop-rollback-shop-logs failed: repo unreachable",
    }
    dds = [dd("shop-rollback-shop-data", "shop", "data-restored-1", key="shop/data", done=20971520, total=20971520,
              start="2026-11-25T11:00:03Z", end="2026-11-25T11:02:33Z"),
           # no volume-key annotation: found by its target PVC
           dd("shop-rollback-shop-logs", "shop", "logs-restored-1", phase="Failed", progress=False, end="2026-11-25T11:07:00Z")]
    pvrs = [pvr("shop-rollback-shop-conf", "shop/conf", done=10, total=10, start="2026-11-25T11:00:03Z",
                end="2026-11-25T11:00:04Z", session="shop-rollback")]
    return dict(session="shop-rollback", doc=doc, pvrs=pvrs, dds=dds, warnings=[])


def replace_completed():
    case = replace()
    case["doc"].update(state="completed", error=None, backup=None)
    case["doc"]["plan"]["notes"] = []
    return case


def planned():
    doc = {"schemaVersion": 1, "session": "fresh", "mode": None, "state": "planned", "backup": None, "plan": None,
           "volumes": {}, "undo": [], "hooks": [], "history": [{"at": "2026-11-25T09:00:00Z", "event": "created"}],
           "created": "2026-11-25T09:00:00Z", "updated": "2026-11-25T09:00:00Z", "error": None}
    return dict(session="fresh", doc=doc, pvrs=[], dds=[], warnings=[])


CASES = {"in_place": in_place, "replace": replace, "replace_completed": replace_completed, "planned": planned}
