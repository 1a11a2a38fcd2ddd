"""restore_plan against the test cluster: plans from real backups, and preflight failures that
change nothing (resourceVersions of everything in the test namespace, and of every object of the
Velero namespace that concerns this test, are compared before and after)."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ansible_run import run_module  # noqa: E402

pytestmark = pytest.mark.integration

VNS = "velero"
NS_KINDS = ("Pod", "PersistentVolumeClaim", "ConfigMap", "Deployment", "StatefulSet", "DaemonSet")
VELERO_KINDS = ("ConfigMap", "Backup", "PodVolumeBackup", "PodVolumeRestore", "BackupStorageLocation",
                "DownloadRequest", "DataUpload", "DataDownload", "Pod", "PersistentVolumeClaim")


def snapshot(kube, namespace):
    """{(kind, ns, name): resourceVersion} of the test namespace, of the Velero-namespace objects
    that mention it (other suites share the Velero namespace), and of the PVs it uses."""
    state = {}
    for kind in NS_KINDS:
        for obj in kube.list(kind, namespace):
            state[(kind, namespace, obj["metadata"]["name"])] = obj["metadata"]["resourceVersion"]
    for kind in VELERO_KINDS:
        for obj in kube.list(kind, VNS):
            if namespace in json.dumps(obj) or kind == "BackupStorageLocation":
                state[(kind, VNS, obj["metadata"]["name"])] = obj["metadata"]["resourceVersion"]
    for pv in kube.list("PersistentVolume", None):
        if ((pv["spec"].get("claimRef") or {}).get("namespace")) == namespace:
            state[("PersistentVolume", None, pv["metadata"]["name"])] = pv["metadata"]["resourceVersion"]
    return state


def backup_record(kubeconfig, name):
    result = run_module("backup_info", {"name": name}, kubeconfig=kubeconfig)
    assert not result.get("failed"), result
    return result["backups"][0]


def test_in_place_plan_from_backup_info_and_check_mode(kubeconfig, kube, namespace, app_factory, backup_factory):
    app_factory(kind="Deployment", name="web")
    backup = backup_factory(name=namespace + "-fs", method="fs")
    record = backup_record(kubeconfig, backup["metadata"]["name"])
    before = snapshot(kube, namespace)
    args = {"backup": record, "mode": "in_place", "session": namespace}
    result = run_module("restore_plan", args, kubeconfig=kubeconfig)
    assert not result.get("failed") and result["changed"] is False, result
    plan = result["plan"]
    [vol] = plan["volumes"]
    pvb = kube.list("PodVolumeBackup", VNS, label_selector="velero.io/backup-name=%s" % backup["metadata"]["name"])[0]
    assert vol["key"] == "%s/web-data" % namespace and vol["method"] == "fs"
    assert vol["snapshot_id"] == pvb["status"]["snapshotID"] and vol["pod_name"] == pvb["spec"]["pod"]["name"]
    assert vol["restore_via"] == "pod_volume_restore" and vol["new_pvc"] is None
    assert vol["backup_storage_location"] == "default" and vol["storage_class"] == "sim-immediate"
    assert any("never deletes files" in n for n in plan["notes"])
    checked = run_module("restore_plan", args, kubeconfig=kubeconfig, check=True)
    assert checked["plan"] == plan and checked["changed"] is False
    assert snapshot(kube, namespace) == before


def test_block_data_mover_needs_replace(kubeconfig, kube, namespace, app_factory, backup_factory):
    app_factory(kind="Deployment", name="db", volumes=[{"name": "data"}, {"name": "raw", "volume_mode": "Block"}])
    backup = backup_factory(name=namespace + "-dm", method="data_mover")
    before = snapshot(kube, namespace)
    failed = run_module("restore_plan", {"backup": backup["metadata"]["name"], "mode": "in_place"},
                        kubeconfig=kubeconfig)
    assert failed["failed"] and "Block-mode data-mover snapshot" in failed["msg"], failed
    assert "Use mode=replace" in failed["msg"]
    result = run_module("restore_plan", {"backup": backup["metadata"]["name"], "mode": "replace",
                                         "session": namespace}, kubeconfig=kubeconfig)
    assert not result.get("failed"), result
    by = dict((v["source_pvc"], v) for v in result["plan"]["volumes"])
    assert by["db-raw"]["restore_via"] == "data_download" and by["db-raw"]["new_pvc"]["volume_mode"] == "Block"
    assert by["db-data"]["restore_via"] == "data_download"
    assert by["db-raw"]["new_pvc"]["name"].startswith("db-raw-restored-")
    assert by["db-data"]["new_pvc"]["size"] == "1Gi" and by["db-data"]["operation_timeout"] == "10m0s"
    # the DownloadRequests of both runs are gone: nothing changed
    assert snapshot(kube, namespace) == before


def test_preflight_failures_change_nothing(kubeconfig, kube, namespace, app_factory, backup_factory):
    app_factory(kind="Deployment", name="web")
    backup = backup_factory(name=namespace + "-fs", method="fs")
    running = backup_factory(name=namespace + "-running", method="fs", phase="InProgress")
    record = backup_record(kubeconfig, backup["metadata"]["name"])
    other = namespace + "-other"
    made = run_module("restore_session", {"session": other, "mode": "in_place",
                                          "plan": {"volumes": [{"key": "%s/web-data" % namespace}]}},
                      kubeconfig=kubeconfig)
    assert not made.get("failed"), made
    try:
        before = snapshot(kube, namespace)
        cases = [
            (dict(backup=record, mode="in_place", volumes=["nope"]), "claim %s/nope is not in backup" % namespace),
            (dict(backup=backup["metadata"]["name"], mode="in_place", volumes=["nope"]), "is not in backup"),
            (dict(backup=record, mode="in_place", target_namespace="t-missing-0000"),
             "Target namespace t-missing-0000 does not exist"),
            (dict(backup=namespace + "-nope", mode="in_place"), "not found"),
            (dict(backup=running["metadata"]["name"], mode="in_place"), "is still InProgress"),
            (dict(backup=record, mode="in_place", source_namespace="kube-system"),
             "does not include namespace kube-system"),
            (dict(backup=record, mode="in_place", session=namespace + "-mine"),
             "already part of restore session %r" % other),
            (dict(backup=record, mode="replace", storage_class_map={"sim-immediate": "no-such-class"}),
             "StorageClass no-such-class"),
            (dict(backup=record, mode="in_place", volumes=[]), "non-empty list"),
        ]
        for args, expect in cases:
            result = run_module("restore_plan", args, kubeconfig=kubeconfig)
            assert result.get("failed") and expect in result["msg"], (args, result)
            assert "Traceback" not in json.dumps(result)
        assert snapshot(kube, namespace) == before
    finally:
        run_module("restore_session", {"session": other, "state": "absent", "force": True}, kubeconfig=kubeconfig)
