"""backup_info against the test cluster: real Backups/PVBs/DataUploads written by the backup
fixture, volume info read through a real DownloadRequest answered by the simulated Velero server
(pre-signed loopback URL), and the new-cluster case where only Backups and PVBs were synced."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ansible_run import run_module  # noqa: E402

pytestmark = pytest.mark.integration

VNS = "velero"


def our_download_requests(kube):
    return [d for d in kube.list("DownloadRequest", VNS)
            if (d["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by") == "velero.data_restore"]


def assert_no_signed_url(result):
    text = json.dumps(result)
    assert "X-Amz-Signature" not in text and "downloadURL" not in text


def test_fs_backup_volumes_from_volume_info(kubeconfig, kube, namespace, app_factory, backup_factory):
    app = app_factory(kind="Deployment", name="web", volumes=[{"name": "data"}, {"name": "cache"}])
    backup = backup_factory(method="fs")
    name = backup["metadata"]["name"]
    result = run_module("backup_info", {"name": name}, kubeconfig=kubeconfig)
    assert not result.get("failed") and result["changed"] is False, result
    [b] = result["backups"]
    assert b["name"] == name and b["phase"] == "Completed" and b["storage_location"] == "default"
    assert b["volume_source"] == "volume_info", b["warnings"]
    pvbs = dict((p["metadata"]["annotations"]["velero.io/pvc-name"], p)
                for p in kube.list("PodVolumeBackup", VNS, label_selector="velero.io/backup-name=%s" % name))
    by_pvc = dict((v["source_pvc"], v) for v in b["volumes"])
    assert sorted(by_pvc) == sorted(app["pvcs"])
    for pvc, vol in by_pvc.items():
        assert vol["method"] == "fs" and vol["uploader_type"] == "kopia"
        assert vol["snapshot_id"] == pvbs[pvc]["status"]["snapshotID"]
        assert vol["pod_name"] == pvbs[pvc]["spec"]["pod"]["name"] and vol["source_namespace"] == namespace
        assert vol["restorable_by"] == ["in_place", "replace"]
    assert our_download_requests(kube) == []
    assert_no_signed_url(result)


def test_data_mover_backup_and_check_mode(kubeconfig, kube, namespace, app_factory, backup_factory):
    app_factory(kind="Deployment", name="db",
                volumes=[{"name": "data"}, {"name": "raw", "volume_mode": "Block"}])
    backup = backup_factory(method="data_mover")
    name = backup["metadata"]["name"]
    result = run_module("backup_info", {"name": name}, kubeconfig=kubeconfig, check=True)
    assert not result.get("failed") and result["changed"] is False, result
    [b] = result["backups"]
    assert b["snapshot_move_data"] is True and b["volume_source"] == "volume_info"
    dus = dict((d["spec"]["sourcePVC"], d) for d in kube.list(
        "DataUpload", VNS, label_selector="velero.io/backup-name=%s" % name))
    by_pvc = dict((v["source_pvc"], v) for v in b["volumes"])
    assert sorted(by_pvc) == ["db-data", "db-raw"]
    for pvc, vol in by_pvc.items():
        assert vol["method"] == "data_mover" and vol["data_mover"] == "velero"
        assert vol["snapshot_id"] == dus[pvc]["status"]["snapshotID"]
        assert vol["node_os"] == "linux" and vol["storage_class"] == "sim-immediate"
    assert our_download_requests(kube) == []


def test_latest_with_schedule(kubeconfig, namespace, app_factory, backup_factory):
    app_factory(kind="Deployment", name="web")
    backup_factory(name=namespace + "-n1", method="fs", schedule=namespace + "-nightly",
                   created_at="2026-11-20T22:00:00Z")
    backup_factory(name=namespace + "-n2", method="fs", schedule=namespace + "-nightly",
                   created_at="2026-11-21T22:00:00Z")
    backup_factory(name=namespace + "-n3", method="fs", schedule=namespace + "-nightly",
                   created_at="2026-11-22T22:00:00Z", phase="PartiallyFailed")
    backup_factory(name=namespace + "-h1", method="fs", schedule=namespace + "-hourly",
                   created_at="2026-11-23T22:00:00Z")
    result = run_module("backup_info", {"schedule": namespace + "-nightly", "latest": True},
                        kubeconfig=kubeconfig)
    assert [b["name"] for b in result["backups"]] == [namespace + "-n2"], result
    assert result["backups"][0]["volumes"], result
    listed = run_module("backup_info", {"namespace": namespace, "phases": ["Completed", "PartiallyFailed"]},
                        kubeconfig=kubeconfig)
    assert [b["name"] for b in listed["backups"]] == [
        namespace + s for s in ("-h1", "-n3", "-n2", "-n1")]
    assert all("volumes" not in b and "warnings" not in b for b in listed["backups"])  # volume records not read


@pytest.mark.sim_only
def test_new_cluster_only_backups_and_pvbs(kubeconfig, kube, api_client, state_dir, namespace, app_factory,
                                           backup_factory):
    """After backup sync the DataUploads are gone and UIDs changed: data-mover volumes are only
    known from the volume info document (contract §5)."""
    from sim.velero import new_cluster

    app_factory(kind="Deployment", name="db")
    backup = backup_factory(method="data_mover")
    name = backup["metadata"]["name"]
    synced = new_cluster(api_client, state_dir, name)
    assert synced["metadata"]["uid"] != backup["metadata"]["uid"]
    assert kube.list("DataUpload", VNS, label_selector="velero.io/backup-name=%s" % name) == []
    result = run_module("backup_info", {"name": name}, kubeconfig=kubeconfig)
    [b] = result["backups"]
    assert b["uid"] == synced["metadata"]["uid"] and b["volume_source"] == "volume_info"
    [vol] = b["volumes"]
    assert vol["method"] == "data_mover" and vol["source_pvc"] == "db-data" and vol["snapshot_id"]
    assert vol["node_os"] == ""  # only in the DataUpload, which was not synced
    assert_no_signed_url(result)


@pytest.mark.sim_only
def test_fallback_to_pvbs_without_volume_info(kubeconfig, namespace, app_factory, backup_factory):
    app_factory(kind="Deployment", name="web")
    backup = backup_factory(method="fs", volume_info=False)  # a pre-v1.13 backup: HTTP 404
    result = run_module("backup_info", {"name": backup["metadata"]["name"]}, kubeconfig=kubeconfig)
    [b] = result["backups"]
    assert b["volume_source"] == "custom_resources"
    assert any("HTTP 404" in w for w in b["warnings"])
    assert [v["source_pvc"] for v in b["volumes"]] == ["web-data"]
    assert any("HTTP 404" in w for w in result.get("warnings", []))


def test_documented_failure_message(kubeconfig):
    result = run_module("backup_info", {"created_after": "last tuesday"}, kubeconfig=kubeconfig)
    assert result["failed"] and "is not an ISO 8601 date or time" in result["msg"], result
