"""backups.py: finding backups and building volume records (FakeKube, real Velero shapes)."""

import copy
import gzip
import json
import os
import time

import pytest

from ansible_collections.velero.data_restore.plugins.module_utils import backups
from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils.errors import (
    ForbiddenError,
    MissingApiError,
    PreflightError,
)
from fake_kube import FakeKube
import velero_fixtures as f

VNS = f.VNS


@pytest.fixture
def store():
    return f.ObjectStore()


@pytest.fixture
def fake(store):
    fake = FakeKube()
    fake.controllers.append(f.download_controller(store))
    return fake


def find(fake, store, **kwargs):
    kwargs.setdefault("volume_info_timeout", 5)
    return backups.find(fake, VNS, fetch=store.fetch, **kwargs)


# -- filters --------------------------------------------------------------------------------------
def seed_backups(fake):
    fake.add(k.BACKUP, f.backup("nightly-1", start="2026-11-22T22:00:00Z", labels={"velero.io/schedule-name": "nightly"}))
    fake.add(k.BACKUP, f.backup("nightly-2", start="2026-11-23T22:00:00Z", labels={"velero.io/schedule-name": "nightly"}))
    fake.add(k.BACKUP, f.backup("nightly-3", start="2026-11-24T22:00:00Z", phase="PartiallyFailed",
                                labels={"velero.io/schedule-name": "nightly"}))
    fake.add(k.BACKUP, f.backup("manual", start="2026-11-25T08:00:00Z", included=["db", "shop"],
                                labels={"team": "payments"}))
    fake.add(k.BACKUP, f.backup("all-ns", start="2026-11-21T08:00:00Z", included=[], excluded=["kube-*"]))
    fake.add(k.BACKUP, f.backup("star", start="2026-11-20T08:00:00Z", included=["*"], excluded=["shop"]))
    fake.add(k.BACKUP, f.backup("running", start="2026-11-25T09:00:00Z", phase="InProgress"))


def names_of(result):
    return [b["name"] for b in result["backups"]]


def test_default_lists_completed_newest_first(fake, store):
    seed_backups(fake)
    assert names_of(find(fake, store)) == ["manual", "nightly-2", "nightly-1", "all-ns", "star"]


def test_latest_with_schedule_uses_server_side_selector(fake, store):
    seed_backups(fake)
    result = find(fake, store, latest=True, schedule="nightly", volumes=False)
    assert names_of(result) == ["nightly-2"]
    assert ("list", "Backup") in fake.requests


def test_phases_filter(fake, store):
    seed_backups(fake)
    assert names_of(find(fake, store, schedule="nightly", phases=["Completed", "PartiallyFailed"])) == [
        "nightly-3", "nightly-2", "nightly-1"]
    with pytest.raises(PreflightError, match="not Velero backup phases"):
        find(fake, store, phases=["Done"])
    with pytest.raises(PreflightError, match="non-empty list"):
        find(fake, store, phases=[])


def test_label_selectors(fake, store):
    seed_backups(fake)
    assert names_of(find(fake, store, label_selectors=["team=payments"])) == ["manual"]


def test_namespace_filter_honours_star_empty_and_excludes(fake, store):
    seed_backups(fake)
    assert names_of(find(fake, store, namespace="db")) == ["manual", "all-ns", "star"]
    assert names_of(find(fake, store, namespace="shop")) == ["manual", "nightly-2", "nightly-1", "all-ns"]
    assert "all-ns" not in names_of(find(fake, store, namespace="kube-system"))
    assert "star" in names_of(find(fake, store, namespace="kube-system"))


def test_time_window(fake, store):
    seed_backups(fake)
    got = find(fake, store, created_after="2026-11-22", created_before="2026-11-24T00:00:00+00:00")
    assert names_of(got) == ["nightly-2", "nightly-1"]
    with pytest.raises(PreflightError, match="ISO 8601"):
        find(fake, store, created_after="yesterday")
    with pytest.raises(PreflightError, match="earlier than"):
        find(fake, store, created_after="2026-11-25", created_before="2026-11-24")


def test_parse_time_variants():
    assert backups.parse_time("2026-11-24T22:00:00.5+0100").isoformat() == "2026-11-24T22:00:00.500000+01:00"
    assert backups.parse_time("2026-11-24 22:00").tzinfo is not None


def test_name_lookup_any_phase_and_not_found(fake, store):
    seed_backups(fake)
    result = find(fake, store, name="running", volumes=False)
    assert names_of(result) == ["running"] and result["backups"][0]["phase"] == "InProgress"
    assert names_of(find(fake, store, name="nope")) == []
    assert names_of(find(fake, store, name="manual", label_selectors=["team=other"], volumes=False)) == []


def test_summary_fields(fake, store):
    fake.add(k.BACKUP, f.backup("dm", snapshot_move_data=True, csi_timeout="30m0s",
                                labels={"velero.io/schedule-name": "daily"}))
    record = find(fake, store, name="dm", volumes=False)["backups"][0]
    assert record["storage_location"] == "default"
    assert record["snapshot_move_data"] is True
    assert record["csi_snapshot_timeout"] == "30m0s"
    assert record["schedule"] == "daily"
    assert record["included_namespaces"] == ["shop"]
    assert record["expiration"] == "2099-12-24T22:00:00Z"
    assert "volumes" not in record and "volume_source" not in record and "warnings" not in record  # not read


def test_missing_velero(store):
    with pytest.raises(MissingApiError, match="Velero's CRDs are not installed"):
        backups.find(FakeKube(missing_kinds=[k.BACKUP]), VNS)


# -- volume records from volume info ------------------------------------------------------------
def test_volume_info_methods_and_restorability(fake, store):
    fake.add(k.BACKUP, f.backup("mixed"))
    store.put("mixed", [
        f.vi_pvb("data-app-0", "app-0", "data"),
        f.vi_data_mover("db-data"),
        f.vi_csi("cache"),
        f.vi_native("logs"),
        f.vi_skipped("scratch"),
        f.vi_pvb("old", "app-1", "old", uploader="restic"),
        f.vi_pvb("broken", "app-2", "broken", phase="Failed", result="failed"),
        f.vi_pvb("empty", "app-3", "empty", snapshot=""),
        f.vi_emptydir("app-0", "tmp"),
    ])
    result = find(fake, store, name="mixed")
    b = result["backups"][0]
    assert b["volume_source"] == "volume_info"
    vols = dict((r["source_pvc"] or r["pod_volume"], r) for r in b["volumes"])
    fs = vols["data-app-0"]
    assert fs["method"] == "fs" and fs["snapshot_id"] == "a1b2c3d4e5f6" and fs["snapshot_size"] == 5242880
    assert fs["pod_name"] == "app-0" and fs["pod_volume"] == "data" and fs["uploader_type"] == "kopia"
    assert fs["restorable_by"] == ["in_place", "replace"] and fs["reason"] is None
    assert fs["backup_storage_location"] == "default" and fs["volume_mode"] == "Filesystem"
    dm = vols["db-data"]
    assert dm["method"] == "data_mover" and dm["snapshot_id"] == "f00dfeed1234" and dm["data_mover"] == "velero"
    assert dm["restorable_by"] == ["in_place", "replace"] and dm["operation_timeout"] == "10m0s"
    assert vols["cache"]["method"] == "csi_snapshot" and vols["cache"]["restorable_by"] == []
    assert "snapshotMoveData" in vols["cache"]["reason"]
    assert vols["logs"]["method"] == "native_snapshot" and "native" in vols["logs"]["reason"]
    assert vols["scratch"]["method"] == "skipped" and "opted out" in vols["scratch"]["reason"]
    assert "restic" in vols["old"]["reason"] and vols["old"]["restorable_by"] == []
    assert "did not complete" in vols["broken"]["reason"]
    assert "empty snapshot id" in vols["empty"]["reason"]
    assert "not a PersistentVolumeClaim" in vols["tmp"]["reason"]
    # the DownloadRequest is gone, and nothing leaks the signed URL
    assert fake.all(k.DOWNLOAD_REQUEST) == []
    assert f.SECRET not in json.dumps(result)


def test_download_request_shape(fake, store):
    fake.add(k.BACKUP, f.backup("b1"))
    store.put("b1", [])
    created = []
    original = fake.create

    def spy(kind, body, namespace=None):
        created.append((kind, body, namespace))
        return original(kind, body, namespace)

    fake.create = spy
    find(fake, store, name="b1")
    kind, body, namespace = created[0]
    assert kind == k.DOWNLOAD_REQUEST and namespace == VNS
    assert body["spec"] == {"target": {"kind": "BackupVolumeInfos", "name": "b1"}}
    assert ("watch", "DownloadRequest") in fake.requests


def test_fs_backup_with_volume_info_reads_no_data_upload_list(fake, store):
    """DataUploads only enrich data-mover volumes; a PodVolumeBackup the volume info lists adds no record."""
    fake.add(k.BACKUP, f.backup("fs1"))
    fake.add(k.POD_VOLUME_BACKUP, f.pvb("fs1", "app-0", "data", pvc="data-app-0", snapshot_id="0ther"))
    store.put("fs1", [f.vi_pvb("data-app-0", "app-0", "data")])
    result = find(fake, store, name="fs1")
    vols = result["backups"][0]["volumes"]
    assert len(vols) == 1 and vols[0]["method"] == "fs" and vols[0]["snapshot_id"] == "a1b2c3d4e5f6"
    assert result["warnings"] == []
    assert fake.requests.count(("list", "PodVolumeBackup")) == 1 and ("list", "DataUpload") not in fake.requests
    # the DownloadRequest wait watches from the created object, without a LIST
    assert ("list", "DownloadRequest") not in fake.requests and ("watch", "DownloadRequest") in fake.requests


def test_a_pod_volume_backup_the_volume_info_leaves_out_gives_a_record_and_a_warning(fake, store):
    """Velero drops a PodVolumeBackup from the volume info when its pod is gone at the end of the backup or its PV
    was not backed up (generateVolumeInfoFromPVB `continue`): the synced PodVolumeBackup still holds the data."""
    fake.add(k.BACKUP, f.backup("nightly"))
    fake.add(k.POD_VOLUME_BACKUP, f.pvb("nightly", "a-0", "data", pvc="data-a"))
    fake.add(k.POD_VOLUME_BACKUP, f.pvb("nightly", "b-0", "data", pvc="data-b", snapshot_id="bbbb0000"))
    fake.add(k.POD_VOLUME_BACKUP, f.pvb("nightly", "b-0", "tmp"))  # an emptyDir: no claim, no record
    store.put("nightly", [f.vi_pvb("data-a", "a-0", "data")])
    result = find(fake, store, name="nightly")
    vols = dict((r["source_pvc"], r) for r in result["backups"][0]["volumes"])
    assert sorted(vols) == ["data-a", "data-b"]
    assert vols["data-b"]["snapshot_id"] == "bbbb0000" and vols["data-b"]["origin"] == "podvolumebackup"
    assert vols["data-b"]["restorable_by"] == ["in_place", "replace"]
    assert result["backups"][0]["volume_source"] == "volume_info"
    assert any("does not list claim(s) shop/data-b" in w for w in result["warnings"])


def test_a_data_upload_the_volume_info_leaves_out_gives_a_record_and_a_warning(fake, store):
    """Velero drops a data-mover volume from the volume info when the backup did not include its PV
    (generateVolumeInfoFromDataUpload: no pvMap entry, `continue`), e.g. includeClusterResources: false; the
    DataUpload of the original cluster still names the snapshot."""
    fake.add(k.BACKUP, f.backup("nightly", snapshot_move_data=True))
    fake.add(k.POD_VOLUME_BACKUP, f.pvb("nightly", "a-0", "data", pvc="data-a"))
    fake.add(k.DATA_UPLOAD, f.du("nightly", "db-data", snapshot_id="d0d0d0d0"))
    store.put("nightly", [])
    result = find(fake, store, name="nightly")
    vols = dict((r["source_pvc"], r) for r in result["backups"][0]["volumes"])
    assert sorted(vols) == ["data-a", "db-data"]
    assert vols["db-data"]["method"] == "data_mover" and vols["db-data"]["origin"] == "dataupload"
    assert vols["db-data"]["snapshot_id"] == "d0d0d0d0" and vols["db-data"]["restorable_by"]
    assert any("does not list claim(s) shop/db-data, which DataUploads of the backup hold" in w
               for w in result["warnings"]), result["warnings"]
    assert any("does not list claim(s) shop/data-a, which PodVolumeBackups" in w for w in result["warnings"])


def test_a_data_upload_the_volume_info_lists_adds_no_record(fake, store):
    fake.add(k.BACKUP, f.backup("nightly", snapshot_move_data=True))
    fake.add(k.DATA_UPLOAD, f.du("nightly", "db-data"))
    store.put("nightly", [f.vi_data_mover("db-data")])
    result = find(fake, store, name="nightly")
    assert [(r["source_pvc"], r["origin"]) for r in result["backups"][0]["volumes"]] == [("db-data", "volume_info")]
    assert result["warnings"] == []


def test_a_forbidden_list_of_pod_volume_backups_is_a_warning_next_to_the_volume_info(fake, store):
    fake.add(k.BACKUP, f.backup("nightly"))
    store.put("nightly", [f.vi_pvb("data-a", "a-0", "data")])
    fake.fail_next["list"] = ForbiddenError("Forbidden: cannot list podvolumebackups", status=403)
    result = find(fake, store, name="nightly")
    assert [r["source_pvc"] for r in result["backups"][0]["volumes"]] == ["data-a"]
    assert any("cannot list the PodVolumeBackups of backup nightly" in w for w in result["warnings"])


def test_an_empty_volume_info_with_pod_volume_backups_is_not_an_empty_backup(fake, store):
    fake.add(k.BACKUP, f.backup("nightly"))
    fake.add(k.POD_VOLUME_BACKUP, f.pvb("nightly", "a-0", "data", pvc="data-a"))
    store.put("nightly", [])
    vols = find(fake, store, name="nightly")["backups"][0]["volumes"]
    assert [(r["source_namespace"], r["source_pvc"]) for r in vols] == [("shop", "data-a")]


def test_data_mover_volumes_in_volume_info_read_the_data_uploads(fake, store):
    fake.add(k.BACKUP, f.backup("dm"))
    fake.add(k.DATA_UPLOAD, f.du("dm", "db-data", node_os="windows", storage_class="fast"))
    store.put("dm", [f.vi_data_mover("db-data")])
    find(fake, store, name="dm")
    assert ("list", "DataUpload") in fake.requests


def test_uncompressed_and_data_upload_enrichment(fake, store):
    fake.add(k.BACKUP, f.backup("dm"))
    fake.add(k.DATA_UPLOAD, f.du("dm", "db-data", node_os="windows", storage_class="fast"))
    store.put("dm", [f.vi_data_mover("db-data")], gz=False)
    vol = find(fake, store, name="dm")["backups"][0]["volumes"][0]
    assert vol["node_os"] == "windows" and vol["storage_class"] == "fast"


def test_custom_data_mover_not_restorable(fake, store):
    fake.add(k.BACKUP, f.backup("dm"))
    store.put("dm", [f.vi_data_mover("db-data", data_mover="acme")])
    vol = find(fake, store, name="dm")["backups"][0]["volumes"][0]
    assert vol["restorable_by"] == [] and "acme" in vol["reason"]


def test_block_data_mover_is_replace_only():
    rec = backups.assess(backups.new_record(method="data_mover", snapshot_id="x", source_pvc="blk",
                                            source_namespace="shop", data_mover="", volume_mode="Block",
                                            uploader_type="kopia", phase="Completed"))
    assert rec["restorable_by"] == ["replace"] and "replace" in rec["reason"]


# -- fallbacks -----------------------------------------------------------------------------------
def seed_crs(fake, name="fs1"):
    fake.add(k.BACKUP, f.backup(name))
    fake.add(k.POD_VOLUME_BACKUP, f.pvb(name, "app-0", "data", pvc="data-app-0"))
    fake.add(k.POD_VOLUME_BACKUP, f.pvb(name, "app-0", "tmp"))
    fake.add(k.POD_VOLUME_BACKUP, f.pvb("other", "app-0", "data", pvc="data-app-0"))
    fake.add(k.DATA_UPLOAD, f.du(name, "db-data"))


def test_fallback_to_custom_resources_on_404(fake, store):
    seed_crs(fake)
    result = find(fake, store, name="fs1")
    b = result["backups"][0]
    assert b["volume_source"] == "custom_resources"
    assert any("HTTP 404" in w for w in b["warnings"]) and result["warnings"]
    vols = dict((r["source_pvc"] or r["pod_volume"], r) for r in b["volumes"])
    assert set(vols) == {"data-app-0", "tmp", "db-data"}
    assert vols["data-app-0"]["method"] == "fs" and vols["data-app-0"]["origin"] == "podvolumebackup"
    assert vols["db-data"]["method"] == "data_mover" and vols["db-data"]["node_os"] == "linux"
    assert vols["db-data"]["storage_class"] == "sim-immediate"
    assert fake.all(k.DOWNLOAD_REQUEST) == []


def test_fallback_when_download_request_not_processed(store):
    fake = FakeKube()  # no Velero server answering
    seed_crs(fake)
    started = time.monotonic()
    b = backups.find(fake, VNS, name="fs1", volume_info_timeout=0.2, fetch=store.fetch)["backups"][0]
    assert time.monotonic() - started < 5
    assert b["volume_source"] == "custom_resources"
    assert any("did not process DownloadRequest" in w for w in b["warnings"])
    assert fake.all(k.DOWNLOAD_REQUEST) == []


def test_fallback_when_download_fails_redacts_url(fake, store):
    seed_crs(fake)

    def broken(url, ca=None):  # pylint: disable=unused-argument
        from ansible_collections.velero.data_restore.plugins.module_utils.errors import DataRestoreError
        raise DataRestoreError("boom at %s" % url)

    b = backups.find(fake, VNS, name="fs1", volume_info_timeout=5, fetch=broken)["backups"][0]
    text = json.dumps(b)
    assert f.SECRET not in text and "minio.example:9000/<redacted>" in text


def test_fallback_when_download_request_forbidden(fake, store):
    seed_crs(fake)
    fake.fail_next["create"] = ForbiddenError("Forbidden: cannot create downloadrequests", status=403)
    b = find(fake, store, name="fs1")["backups"][0]
    assert b["volume_source"] == "custom_resources"
    assert any("cannot create a DownloadRequest" in w for w in b["warnings"])


def test_new_cluster_mode_backup_and_pvbs_only(store):
    """Synced backup: new UIDs, PVBs with rewritten labels, no DataUploads; volume info has the DU."""
    fake = FakeKube(missing_kinds=[])
    fake.controllers.append(f.download_controller(store))
    fake.add(k.BACKUP, f.backup("synced", uid="new-uid"))
    fake.add(k.POD_VOLUME_BACKUP, f.pvb("synced", "app-0", "data", pvc="data-app-0", backup_uid="new-uid"))
    store.put("synced", [f.vi_pvb("data-app-0", "app-0", "data"), f.vi_data_mover("db-data")])
    b = find(fake, store, name="synced")["backups"][0]
    assert b["volume_source"] == "volume_info"
    assert sorted(r["source_pvc"] for r in b["volumes"]) == ["data-app-0", "db-data"]


def test_objects_of_an_earlier_backup_of_the_same_name_are_left_out(store):
    """A Backup deleted and created again under its name: the old one's PVBs and DataUploads still carry the name
    label until they are collected. Their label and owner UID name the old Backup; spec.tags is not compared, since
    sync keeps the original cluster's UID there."""
    fake = FakeKube()
    fake.controllers.append(f.download_controller(store))
    fake.add(k.BACKUP, f.backup("fs1", uid="uid-now"))
    current = f.pvb("fs1", "app-0", "data", pvc="data-app-0", name="pvb-now", backup_uid="uid-now")
    current["spec"]["tags"]["backup-uid"] = "uid-of-the-original-cluster"
    fake.add(k.POD_VOLUME_BACKUP, current)
    fake.add(k.POD_VOLUME_BACKUP, f.pvb("fs1", "app-1", "data", pvc="data-app-1", name="pvb-old",
                                        backup_uid="uid-before"))
    fake.add(k.DATA_UPLOAD, f.du("fs1", "db-data", backup_uid="uid-before"))
    b = find(fake, store, name="fs1")["backups"][0]
    assert b["volume_source"] == "custom_resources"
    assert [r["source_pvc"] for r in b["volumes"]] == ["data-app-0"]
    assert any("PodVolumeBackup(s) labelled with backup fs1 belong to an earlier backup" in w and "pvb-old" in w
               for w in b["warnings"])
    assert any("DataUpload(s) labelled with backup fs1" in w for w in b["warnings"])


def test_left_out_of_volume_info_ignores_pvbs_of_an_earlier_backup(store):
    fake = FakeKube()
    fake.controllers.append(f.download_controller(store))
    fake.add(k.BACKUP, f.backup("fs1", uid="uid-now"))
    fake.add(k.POD_VOLUME_BACKUP, f.pvb("fs1", "app-1", "data", pvc="data-app-1", name="pvb-old",
                                        backup_uid="uid-before"))
    store.put("fs1", [f.vi_pvb("data-app-0", "app-0", "data")])
    b = find(fake, store, name="fs1")["backups"][0]
    assert b["volume_source"] == "volume_info"
    assert [r["source_pvc"] for r in b["volumes"]] == ["data-app-0"]
    assert not any("does not list claim" in w for w in b["warnings"])


def test_objects_without_a_backup_uid_are_kept(store):
    """Objects written without the label or owner (hand-made, or by an old Velero) are not judged by UID."""
    fake = FakeKube()
    fake.controllers.append(f.download_controller(store))
    fake.add(k.BACKUP, f.backup("fs1", uid="uid-now"))
    bare = f.pvb("fs1", "app-0", "data", pvc="data-app-0")
    del bare["metadata"]["labels"]["velero.io/backup-uid"]
    bare["metadata"]["ownerReferences"] = []
    fake.add(k.POD_VOLUME_BACKUP, bare)
    b = find(fake, store, name="fs1")["backups"][0]
    assert [r["source_pvc"] for r in b["volumes"]] == ["data-app-0"]


def test_long_backup_name_uses_get_valid_name_and_tags():
    fake = FakeKube()
    long_a = "a" * 60 + "-one-and-more"
    long_b = "a" * 60 + "-two-and-more"
    fake.add(k.BACKUP, f.backup(long_a))
    fake.add(k.POD_VOLUME_BACKUP, f.pvb(long_a, "app-0", "data", pvc="data-app-0", name="pvb-a"))
    fake.add(k.POD_VOLUME_BACKUP, f.pvb(long_b, "app-0", "data", pvc="other", name="pvb-b"))
    vols = backups.volume_records(fake, VNS, fake.find(k.BACKUP, long_a, VNS), timeout=0.1)[0]
    assert [r["source_pvc"] for r in vols] == ["data-app-0"]


def test_data_upload_api_absent_is_fine(store):
    fake = FakeKube(missing_kinds=[k.DATA_UPLOAD])
    fake.controllers.append(f.download_controller(store))
    fake.add(k.BACKUP, f.backup("fs1"))
    fake.add(k.POD_VOLUME_BACKUP, f.pvb("fs1", "app-0", "data", pvc="data-app-0"))
    b = find(fake, store, name="fs1")["backups"][0]
    assert [r["source_pvc"] for r in b["volumes"]] == ["data-app-0"]


def test_redaction_helpers():
    url = "https://h:9000/bucket/key.json.gz?X-Amz-Signature=abc&X-Amz-Credential=def"
    assert backups.redact_url(url) == "https://h:9000/<redacted>"
    msg = backups.scrub("failed GET %s: %s" % (url, "X-Amz-Signature=abc&X-Amz-Credential=def"), url)
    assert "abc" not in msg and "def" not in msg and "/bucket/key" not in msg


def test_decode_volume_info_rejects_non_list():
    from ansible_collections.velero.data_restore.plugins.module_utils.errors import DataRestoreError
    with pytest.raises(DataRestoreError):
        backups.decode_volume_info(gzip.compress(b'{"a": 1}'))


# -- performance -----------------------------------------------------------------------------------
class ServerSideFilteringFake(FakeKube):
    """FakeKube copies every object of a kind before filtering; an API server filters labels
    first and sends only the matches. This keeps the timing about backups.py, not the fake."""

    def list(self, kind, namespace=None, label_selector=None, field_selector=None):
        from fake_kube import _match_fields, _match_labels

        self._check("list", kind)
        items = [copy.deepcopy(o) for (kd, ns, _name), o in self.objects.items()
                 if kd == kind and (namespace is None or ns == namespace)
                 and _match_labels(o["metadata"].get("labels"), label_selector) and _match_fields(o, field_selector)]
        return items, str(next(self._rv))


def test_find_latest_over_5000_backups_and_20000_pvbs_under_3s(store):
    fake = ServerSideFilteringFake()
    fake.controllers.append(f.download_controller(store))
    for i in range(5000):
        name = "nightly-%05d" % i
        fake.add(k.BACKUP, f.backup(name, start="2026-%02d-%02dT%02d:%02d:00Z" % (
            1 + i % 12, 1 + i % 28, i % 24, i % 60), labels={"velero.io/schedule-name": "nightly"}))
        for j in range(4):
            fake.add(k.POD_VOLUME_BACKUP, f.pvb(name, "app-%d" % j, "data", pvc="data-app-%d" % j,
                                                name="%s-%d" % (name, j)))
    started = time.monotonic()
    result = backups.find(fake, VNS, latest=True, schedule="nightly", namespace="shop",
                          volume_info_timeout=1, fetch=store.fetch)
    elapsed = time.monotonic() - started
    assert len(result["backups"]) == 1 and len(result["backups"][0]["volumes"]) == 4
    # backups, PVBs and DataUploads of the chosen one, the DownloadRequest wait
    assert fake.count("list") <= 4
    print("find took %.2fs" % elapsed)
    assert elapsed < 3.0, elapsed


def test_http_get_against_a_loopback_server():
    """The real download path: 200 returns the bytes, 404 is VolumeInfoAbsent, 500 is redacted."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from ansible_collections.velero.data_restore.plugins.module_utils.errors import DataRestoreError

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            code = {"/ok": 200, "/missing": 404}.get(self.path.split("?")[0], 500)
            self.send_response(code)
            self.end_headers()
            if code == 200:
                self.wfile.write(gzip.compress(b"[]"))

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = "http://127.0.0.1:%d" % server.server_port
    try:
        assert backups.decode_volume_info(backups.http_get(base + "/ok?X-Amz-Signature=s3cr3t", timeout=5)) == []
        with pytest.raises(backups.VolumeInfoAbsent):
            backups.http_get(base + "/missing?X-Amz-Signature=s3cr3t", timeout=5)
        with pytest.raises(DataRestoreError) as err:
            backups.http_get(base + "/boom?X-Amz-Signature=s3cr3t", timeout=5)
        assert "s3cr3t" not in err.value.msg and "/boom" not in err.value.msg and "HTTP 500" in err.value.msg
    finally:
        server.shutdown()
        server.server_close()


# -- the storage location's CA bundle (v1.18.1 pkg/cmd/util/cacert/bsl_cacert.go GetCACertFromBSL) ----------------
CA_PEM = "-----BEGIN CERTIFICATE-----\nTUlOSU8gcHJpdmF0ZSBDQQ==\n-----END CERTIFICATE-----\n"


def b64(text):
    import base64
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def location_with(object_storage):
    bsl = f.bsl()
    bsl["spec"]["objectStorage"].update(object_storage)
    return bsl


def test_the_inline_ca_of_the_storage_location_is_given_to_the_download(fake, store):
    fake.add(k.BACKUP_STORAGE_LOCATION, location_with({"caCert": b64(CA_PEM)}))
    fake.add(k.BACKUP, f.backup("nightly"))
    store.put("nightly", [f.vi_pvb("data-a", "a-0", "data")])
    result = find(fake, store, name="nightly")
    assert [r["source_pvc"] for r in result["backups"][0]["volumes"]] == ["data-a"] and result["warnings"] == []
    assert store.cas == [CA_PEM]
    assert fake.requests.count(("get", "BackupStorageLocation")) == 1


def test_the_ca_secret_the_storage_location_names_comes_before_its_inline_ca(fake, store):
    other = CA_PEM.replace("TUlOSU8", "U0VDUkVU")
    fake.add(k.BACKUP_STORAGE_LOCATION, location_with({"caCert": b64(CA_PEM),
                                                       "caCertRef": {"name": "minio-ca", "key": "ca.crt"}}))
    fake.add(k.SECRET, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "minio-ca", "namespace": VNS},
                        "data": {"ca.crt": b64(other)}})
    fake.add(k.BACKUP, f.backup("nightly"))
    store.put("nightly", [f.vi_pvb("data-a", "a-0", "data")])
    find(fake, store, name="nightly")
    assert store.cas == [other]


def test_a_storage_location_without_a_ca_downloads_with_the_system_cas(fake, store):
    fake.add(k.BACKUP_STORAGE_LOCATION, f.bsl())
    fake.add(k.BACKUP, f.backup("nightly"))
    store.put("nightly", [f.vi_pvb("data-a", "a-0", "data")])
    find(fake, store, name="nightly")
    assert store.cas == [None] and ("get", "Secret") not in fake.requests


@pytest.mark.parametrize("secret, forbidden, expected", [
    (None, True, "grant get on that Secret (optional Role velero-data-restore-storage-ca"),
    (None, False, "the Secret velero/minio-ca that caCertRef of BackupStorageLocation default names does not exist"),
    ({"other.crt": b64(CA_PEM)}, False, "names has no key ca.crt"),
    ({"ca.crt": "not base64!"}, False, "is not base64-encoded PEM text"),
])
def test_a_ca_secret_that_cannot_be_read_is_a_volume_info_read_error(fake, store, secret, forbidden, expected):
    fake.add(k.BACKUP_STORAGE_LOCATION, location_with({"caCertRef": {"name": "minio-ca", "key": "ca.crt"}}))
    if secret is not None:
        fake.add(k.SECRET, {"apiVersion": "v1", "kind": "Secret",
                            "metadata": {"name": "minio-ca", "namespace": VNS}, "data": secret})
    if forbidden:
        fake.forbid("get", k.SECRET)
    fake.add(k.BACKUP, f.backup("nightly"))
    fake.add(k.POD_VOLUME_BACKUP, f.pvb("nightly", "a-0", "data", pvc="data-a"))
    store.put("nightly", [f.vi_pvb("data-a", "a-0", "data")])
    result = find(fake, store, name="nightly")
    assert store.fetched == [] and result["backups"][0]["volume_source"] == "custom_resources"
    assert any(expected in w for w in result["warnings"]), result["warnings"]


def self_signed_certificate(directory):
    """(certificate PEM path, key path) of a self-signed certificate for 127.0.0.1."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, u"minio private CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(u"127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_http_get_over_tls_trusts_the_storage_location_ca(tmp_path):
    """An object storage (MinIO, Ceph) with a certificate of a private CA: the download fails with a hint without
    the location's CA bundle, and succeeds with it; the temporary trust file is removed."""
    import glob
    import ssl
    import tempfile
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from ansible_collections.velero.data_restore.plugins.module_utils.errors import DataRestoreError

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(gzip.compress(b"[]"))

        def log_message(self, *args):
            pass

    cert_path, key_path = self_signed_certificate(tmp_path)
    server = HTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = "https://127.0.0.1:%d/velero/backups/b/b-volumeinfo.json.gz?X-Amz-Signature=s3cr3t" % server.server_port
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "velero-ca-*")))
    try:
        with pytest.raises(DataRestoreError) as err:
            backups.http_get(url, timeout=5)
        assert "caCertRef or caCert" in err.value.msg and "s3cr3t" not in err.value.msg, err.value.msg
        with open(cert_path) as pem:
            ca = pem.read()
        assert backups.decode_volume_info(backups.http_get(url, timeout=5, ca=ca)) == []
        assert set(glob.glob(os.path.join(tempfile.gettempdir(), "velero-ca-*"))) == before
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("source", ["podvolumebackup", "volume_info"])
def test_a_pod_volume_backup_without_uploader_type_is_restic_and_refused(source):
    """Backups from before Velero 1.10 have no uploaderType: Velero's restore reads it as restic
    (getUploaderTypeOrDefault, pkg/podvolume/util.go), which current node-agents cannot restore."""
    backup = f.backup("nightly")
    if source == "podvolumebackup":
        record = backups.from_pod_volume_backup(f.pvb("nightly", "app-0", "data", pvc="data", uploader=""), backup)
    else:
        record = backups.from_volume_info(f.vi_pvb("data", "app-0", "data", uploader=""), backup)
    backups.assess(record)
    assert record["uploader_type"] == "restic"
    assert record["restorable_by"] == [] and "restic" in record["reason"] and "before Velero 1.10" in record["reason"]


# -- latest=true with a namespace: the newest backup that holds its volumes --------------------------------
def test_latest_skips_a_newer_backup_that_includes_the_namespace_but_holds_none_of_its_volumes(fake, store):
    fake.add(k.BACKUP, f.backup("shop-app", start="2026-11-24T22:00:00Z"))
    store.put("shop-app", [f.vi_pvb("data-app-0", "app-0", "data")])
    # newer, every namespace by spec, but only ConfigMaps (includedResources): nothing of shop's volumes
    fake.add(k.BACKUP, f.backup("cluster-cm", start="2026-11-25T22:00:00Z", included=["*"]))
    store.put("cluster-cm", [])
    result = find(fake, store, latest=True, namespace="shop")
    assert names_of(result) == ["shop-app"]
    assert [v["source_pvc"] for v in result["backups"][0]["volumes"]] == ["data-app-0"]
    assert any("skipped the newer backup(s) cluster-cm" in w for w in result["warnings"]), result["warnings"]
    # the chosen backup's volume info was read once
    assert fake.count("create") == 2, fake.requests


def test_latest_does_not_skip_a_newer_backup_whose_volume_info_could_not_be_read(fake, store):
    """Unread is not empty: taking the older backup would restore older data than the newest backup holds."""
    fake.add(k.BACKUP, f.backup("shop-old", start="2026-11-24T22:00:00Z"))
    store.put("shop-old", [f.vi_pvb("data-app-0", "app-0", "data")])
    fake.add(k.BACKUP, f.backup("shop-new", start="2026-11-25T22:00:00Z"))
    store.put("shop-new", [f.vi_pvb("data-app-0", "app-0", "data")])
    fetch = store.fetch

    def new_one_fails(url, ca=None):
        if "/backups/shop-new/" in url:
            return f.failing_fetch(url)
        return fetch(url, ca=ca)
    store.fetch = new_one_fails
    with pytest.raises(PreflightError, match="volume info of backup shop-new, the newest matching one, could not "
                                             "be read .*timed out.*It is not skipped") as err:
        find(fake, store, latest=True, namespace="shop")
    assert err.value.details["backup"] == "shop-new"


def test_latest_without_a_backup_holding_the_namespace_volumes_finds_none(fake, store):
    fake.add(k.BACKUP, f.backup("cluster-cm", start="2026-11-25T22:00:00Z", included=["*"]))
    store.put("cluster-cm", [])
    result = find(fake, store, latest=True, namespace="shop")
    assert result["backups"] == [] and "holds a volume of namespace shop" in result["warnings"][-1]


def test_an_expired_backup_is_found_with_a_warning(fake, store):
    old = f.backup("old", start="2020-01-01T00:00:00Z")
    old["status"]["expiration"] = "2020-01-31T00:00:00Z"
    fake.add(k.BACKUP, old)
    store.put("old", [f.vi_pvb("data-app-0", "app-0", "data")])
    result = find(fake, store, latest=True, namespace="shop")
    assert names_of(result) == ["old"]
    assert any("Backup old expired at 2020-01-31T00:00:00Z" in w for w in result["warnings"]), result["warnings"]
    assert backups.expiry_warning(f.backup("fresh")) is None


def test_a_listing_with_volumes_reads_the_volume_info_of_several_backups_at_once(fake, store):
    """Each read waits for Velero to sign a download URL: a listing of 6 backups reads 4 at a time, in list order."""
    import threading

    for day in range(6):
        name = "b%d" % day
        fake.add(k.BACKUP, f.backup(name, start="2026-11-%02dT22:00:00Z" % (day + 10)))
        store.put(name, [f.vi_pvb("data-%s" % name, "app-0", "data")])
    lock, state = threading.Lock(), {"now": 0, "most": 0}

    def slow_fetch(url, ca=None):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.2)
        with lock:
            state["now"] -= 1
        return store.fetch(url, ca=ca)

    result = backups.find(fake, VNS, volumes=True, volume_info_timeout=5, fetch=slow_fetch)
    assert [(b["name"], [v["source_pvc"] for v in b["volumes"]]) for b in result["backups"]] == [
        ("b%d" % day, ["data-b%d" % day]) for day in range(5, -1, -1)]
    assert state["most"] == backups.VOLUME_INFO_WORKERS
