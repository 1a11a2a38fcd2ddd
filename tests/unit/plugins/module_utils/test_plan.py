"""plan.py: every preflight rule and edge, with FakeKube and real Velero object shapes."""

import pytest

from ansible_collections.velero.data_restore.plugins.module_utils import backups
from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils import plan
from ansible_collections.velero.data_restore.plugins.module_utils import session as s
from ansible_collections.velero.data_restore.plugins.module_utils.errors import PreflightError
from fake_kube import FakeKube
import velero_fixtures as f

VNS = f.VNS
MI = 1024 * 1024


@pytest.fixture
def store():
    return f.ObjectStore()


@pytest.fixture
def fake(store):
    fake = FakeKube()
    fake.controllers.append(f.download_controller(store))
    fake.add(k.BACKUP_STORAGE_LOCATION, f.bsl())
    fake.add(k.NAMESPACE, f.namespace("shop"))
    fake.add(k.NAMESPACE, f.namespace(VNS))
    fake.add(k.STORAGE_CLASS, f.storage_class("sim-immediate"))
    fake.add(k.STORAGE_CLASS, f.storage_class("sim-wffc", binding="WaitForFirstConsumer"))
    fake.add(k.STORAGE_CLASS, f.storage_class("local", provisioner="kubernetes.io/no-provisioner"))
    # backup "nightly": two fs volumes, one data-mover volume, one native snapshot, one skipped
    fake.add(k.BACKUP, f.backup("nightly"))
    store.put("nightly", [
        f.vi_pvb("data-app-0", "app-0", "data", size=5 * MI),
        f.vi_pvb("data-app-1", "app-1", "data", snapshot="0123abcd", size=3 * MI + 1),
        f.vi_data_mover("db-data", size=20 * MI),
        f.vi_native("logs"),
        f.vi_skipped("scratch"),
    ])
    fake.add(k.PVC, f.pvc("data-app-0", labels={"app": "web"}))
    fake.add(k.PVC, f.pvc("data-app-1", labels={"app": "web"}))
    fake.add(k.PVC, f.pvc("db-data", size="2Gi", labels={"app": "db"}))
    fake.add(k.PVC, f.pvc("logs"))
    return fake


def build(fake, store, **kwargs):
    kwargs.setdefault("backup", "nightly")
    kwargs.setdefault("mode", "in_place")
    kwargs.setdefault("volume_info_timeout", 5)
    return plan.build(fake, VNS, fetch=store.fetch, **kwargs)


def fail(fake, store, **kwargs):
    with pytest.raises(PreflightError) as err:
        build(fake, store, **kwargs)
    return err.value.msg


# -- happy paths ---------------------------------------------------------------------------------
def test_in_place_fs_plan(fake, store):
    p = build(fake, store, volumes=["data-app-0", "data-app-1"])
    assert p["mode"] == "in_place" and p["source_namespace"] == "shop" and p["target_namespace"] == "shop"
    assert [vol["key"] for vol in p["volumes"]] == ["shop/data-app-0", "shop/data-app-1"]
    vol = p["volumes"][0]
    assert vol == {
        "key": "shop/data-app-0", "source_namespace": "shop", "source_pvc": "data-app-0",
        "source_pv": "pvc-data-app-0-0001", "pod_name": "app-0", "pod_volume": "data", "method": "fs",
        "snapshot_id": "a1b2c3d4e5f6", "snapshot_size": 5 * MI, "uploader_type": "kopia", "data_mover": "",
        "backup_storage_location": "default", "volume_mode": "Filesystem", "storage_class": "sim-immediate",
        "node_os": "", "operation_timeout": "10m0s", "target_namespace": "shop", "target_pvc": "data-app-0",
        "restore_via": "pod_volume_restore", "new_pvc": None}
    assert plan.NOTE_IN_PLACE_STALE_FILES in p["notes"]
    assert p["backup"]["name"] == "nightly" and p["backup"]["volumes"] is None


def test_in_place_data_mover_filesystem_goes_through_pvr(fake, store):
    p = build(fake, store, volumes=["db-data"])
    vol = p["volumes"][0]
    assert vol["method"] == "data_mover" and vol["restore_via"] == "pod_volume_restore"
    assert vol["data_mover"] == "velero" and vol["volume_mode"] == "Filesystem"


def test_replace_plan_new_claims(fake, store):
    fake.add(k.STORAGE_CLASS, f.storage_class("fast"))
    p = build(fake, store, mode="replace", volumes=["data-app-0", "data-app-1", "db-data"], session="s1",
              storage_class_map={"sim-immediate": "fast"})
    by = dict((vol["source_pvc"], vol) for vol in p["volumes"])
    new = by["data-app-1"]["new_pvc"]
    assert new["name"].startswith("data-app-1-restored-") and len(new["name"]) <= 63
    assert new == {"name": new["name"], "storage_class": "fast", "size": "1Gi",
                   "access_modes": ["ReadWriteOnce"], "volume_mode": "Filesystem"}
    assert by["data-app-1"]["restore_via"] == "pod_volume_restore"
    assert by["db-data"]["restore_via"] == "data_download"
    assert plan.NOTE_REPLACE_RETAIN in p["notes"]
    # stable across runs
    again = build(fake, store, mode="replace", volumes=["data-app-1"], session="s1",
                  storage_class_map={"sim-immediate": "fast"})
    assert again["volumes"][0]["new_pvc"]["name"] == new["name"]
    # a template swap leaves the original claims (and their reclaim policies) as they are: no Retain promised
    fake.add(k.DEPLOYMENT, f.deployment_mounting("web", ["data-app-1"]))
    template = build(fake, store, mode="replace", volumes=["data-app-1"], session="s1", swap_mode="template",
                     storage_class_map={"sim-immediate": "fast"})
    assert plan.NOTE_REPLACE_TEMPLATE_KEEPS_CLAIMS in template["notes"]
    assert plan.NOTE_REPLACE_RETAIN not in template["notes"]


def test_a_class_migration_of_a_gitops_managed_claim_is_warned_about(fake, store):
    """A rebind recreates the claim in the new class; the manifest's old class cannot be applied to it any more."""
    fake.add(k.STORAGE_CLASS, f.storage_class("fast"))
    fake.mutate(k.PVC, "data-app-1", "shop", lambda o: o["metadata"].update(
        labels={"kustomize.toolkit.fluxcd.io/name": "shop"}))
    p = build(fake, store, mode="replace", volumes=["data-app-0", "data-app-1"], session="s1",
              storage_class_map={"sim-immediate": "fast"})
    (warning,) = [w for w in p["warnings"] if "moves from storage class" in w]
    assert warning.startswith("claim shop/data-app-1 moves from storage class sim-immediate to fast, and Flux")
    assert "Change storageClassName to fast in the manifest" in warning
    unmapped = build(fake, store, mode="replace", volumes=["data-app-1"], session="s2")
    assert not [w for w in unmapped["warnings"] if "moves from storage class" in w]


def test_a_template_swap_of_a_gitops_managed_deployment_is_warned_about_in_the_plan(fake, store):
    dep = f.deployment_mounting("web", ["data-app-1"])
    dep["metadata"]["annotations"] = {"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:shop/web"}
    fake.add(k.DEPLOYMENT, dep)
    p = build(fake, store, mode="replace", volumes=["data-app-1"], session="s1", swap_mode="template")
    assert [w for w in p["warnings"] if "swap_mode=template patches Deployment shop/web" in w]


def test_replace_size_is_max_of_request_and_snapshot_rounded_up(fake, store):
    fake.mutate(k.PVC, "data-app-1", "shop", lambda o: o["spec"]["resources"]["requests"].update(storage="2Mi"))
    p = build(fake, store, mode="replace", volumes=["data-app-1"])
    assert p["volumes"][0]["new_pvc"]["size"] == "4Mi"  # 3Mi + 1 byte -> 4Mi


def test_block_data_mover_replace_only(fake, store):
    fake.remove(k.PVC, "db-data", "shop")
    fake.add(k.PVC, f.pvc("db-data", mode="Block", size="2Gi"))
    msg = fail(fake, store, volumes=["db-data"])
    assert "Block-mode data-mover" in msg and "mode=replace" in msg
    p = build(fake, store, mode="replace", volumes=["db-data"])
    vol = p["volumes"][0]
    assert vol["restore_via"] == "data_download" and vol["new_pvc"]["volume_mode"] == "Block"


def test_the_plan_gives_the_download_the_ca_of_the_storage_location_it_checked(fake, store):
    import base64
    pem = "-----BEGIN CERTIFICATE-----\nTUlOSU8=\n-----END CERTIFICATE-----\n"
    fake.mutate(k.BACKUP_STORAGE_LOCATION, "default", VNS, lambda bsl: bsl["spec"]["objectStorage"].update(
        caCert=base64.b64encode(pem.encode()).decode()))
    build(fake, store, volumes=["data-app-0"])
    assert store.cas == [pem] and fake.requests.count(("get", "BackupStorageLocation")) == 1


def test_a_replace_of_a_claim_with_a_volume_attributes_class_warns_that_the_swap_drops_it(fake, store):
    fake.mutate(k.PVC, "data-app-0", "shop", lambda pvc: pvc["spec"].update(volumeAttributesClassName="gold"))
    p = build(fake, store, mode="replace", volumes=["data-app-0", "data-app-1"], session="s1")
    (warning,) = [w for w in p["warnings"] if "VolumeAttributesClass" in w]
    assert "claim shop/data-app-0 has VolumeAttributesClass gold" in warning
    assert "kubectl patch pvc -n shop data-app-0" in warning and '"volumeAttributesClassName":"gold"' in warning
    assert not [w for w in build(fake, store, volumes=["data-app-0"])["warnings"] if "VolumeAttributesClass" in w]


def source_volume(name, mode):
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"volumeMode": mode, "capacity": {"storage": "2Gi"}}}


def test_a_data_mover_snapshot_of_a_block_volume_is_not_restored_into_a_filesystem_claim(fake, store):
    """Velero records no volume mode for a data-mover snapshot and restores by the target claim's mode: the source
    PV (volume info pvName), still in the cluster, says the snapshot is Block."""
    fake.add(k.PV, source_volume("pvc-db-data-0002", "Block"))
    for mode in ("in_place", "replace"):
        msg = fail(fake, store, mode=mode, volumes=["db-data"])
        assert "shop/db-data is Filesystem mode but the snapshot of shop/db-data is Block mode" in msg, msg


def test_a_data_mover_snapshot_of_the_target_claims_own_volume_has_its_mode(fake, store):
    fake.remove(k.PVC, "db-data", "shop")
    claim = f.pvc("db-data", size="2Gi")
    claim["spec"]["volumeName"] = "pvc-db-data-0002"
    fake.add(k.PVC, claim)
    p = build(fake, store, volumes=["db-data"])
    vol = p["volumes"][0]
    assert vol["volume_mode"] == "Filesystem" and vol["restore_via"] == "pod_volume_restore"
    assert not [w for w in p["warnings"] if "volume mode" in w], p["warnings"]
    assert ("get", "PersistentVolume") not in fake.requests


def test_a_data_mover_snapshot_whose_source_volume_is_gone_is_restored_in_the_target_mode_with_a_warning(
        fake, store):
    p = build(fake, store, volumes=["db-data"])
    vol = p["volumes"][0]
    assert vol["volume_mode"] == "Filesystem" and vol["restore_via"] == "pod_volume_restore"
    assert [w for w in p["warnings"] if "the volume mode of the data-mover snapshot of shop/db-data is not known" in w]


def test_default_selects_every_claim_and_rejects_native(fake, store):
    msg = fail(fake, store)
    assert "shop/logs cannot be restored" in msg and "native" in msg


def test_some_volumes_leaves_others_out(fake, store):
    p = build(fake, store, volumes=["data-app-1"])
    assert [vol["source_pvc"] for vol in p["volumes"]] == ["data-app-1"]


def test_volume_selector_on_target_claims(fake, store):
    fake.add(k.PVC, f.pvc("unrelated", labels={"app": "web"}))
    p = build(fake, store, volume_selector="app=web")
    assert [vol["source_pvc"] for vol in p["volumes"]] == ["data-app-0", "data-app-1"]
    assert any("unrelated" in w for w in p["warnings"])
    assert "matches no claim" in fail(fake, store, volume_selector="app=none")


def test_skipped_volumes_left_out_with_warning(fake, store):
    fake.remove(k.PVC, "logs", "shop")
    store.put("nightly", [f.vi_pvb("data-app-0", "app-0", "data"), f.vi_skipped("scratch")])
    p = build(fake, store)
    assert [vol["source_pvc"] for vol in p["volumes"]] == ["data-app-0"]
    assert any("scratch" in w and "skipped" in w for w in p["warnings"])


def _pod(name, claims, controller_uid):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "ownerReferences": [
                {"kind": "StatefulSet", "name": name.rsplit("-", 1)[0], "uid": controller_uid, "controller": True}]},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}],
                     "volumes": [{"name": c, "persistentVolumeClaim": {"claimName": c}} for c in claims]},
            "status": {"phase": "Running"}}


def test_claims_of_the_restored_workloads_that_the_backup_lacks_are_named(fake, store):
    """A StatefulSet scaled up since the backup: restoring "every volume of the backup" leaves the new replica's
    claim as it is, and the plan says so. Claims of other apps in the namespace (db-data, logs) are not named."""
    store.put("nightly", [f.vi_pvb("data-app-0", "app-0", "data"), f.vi_pvb("data-app-1", "app-1", "data")])
    fake.add(k.PVC, f.pvc("data-app-2"))
    for index in range(3):
        fake.add(k.POD, _pod("app-%d" % index, ["data-app-%d" % index], "sts-app-uid"))
    fake.add(k.POD, _pod("db-0", ["db-data"], "sts-db-uid"))
    p = build(fake, store, quiesce="none")  # the pods' StatefulSets are not in the fake: nothing to stop
    assert [vol["source_pvc"] for vol in p["volumes"]] == ["data-app-0", "data-app-1"]
    (warning,) = [w for w in p["warnings"] if "not in backup" in w]
    assert warning.startswith("claim(s) data-app-2 of namespace shop are not in backup nightly, and the workloads "
                              "of the restored claims mount them too")
    named = build(fake, store, volumes=["data-app-0"], quiesce="none")
    assert not [w for w in named["warnings"] if "not in backup" in w]  # the user chose the volumes
    fake.remove(k.POD, "app-2", "shop")
    assert not [w for w in build(fake, store, quiesce="none")["warnings"] if "not in backup" in w]


def test_an_empty_volume_is_left_out_of_every_volume_with_a_warning_and_refused_by_name(fake, store):
    """Velero skips a volume backup without a snapshot (the volume was empty) on restore."""
    store.put("nightly", [f.vi_pvb("data-app-0", "app-0", "data"), f.vi_pvb("data-app-1", "app-1", "data", snapshot="")])
    p = build(fake, store)
    assert [vol["source_pvc"] for vol in p["volumes"]] == ["data-app-0"]
    assert [w for w in p["warnings"] if "claim shop/data-app-1 was empty at backup time" in w]
    msg = fail(fake, store, volumes=["data-app-1"])
    assert "empty snapshot id" in msg and msg.count("Leave it out") == 1


def test_backup_record_from_backup_info_is_used_without_download(fake, store):
    record = backups.find(fake, VNS, name="nightly", fetch=store.fetch)["backups"][0]
    before = len(fake.events)
    p = build(fake, store, backup=record, volumes=["data-app-0"])
    assert p["volumes"][0]["snapshot_id"] == "a1b2c3d4e5f6"
    assert len(fake.events) == before and fake.count("create") == 1  # the one of backup_info


def test_stale_record_of_recreated_backup_is_reread(fake, store):
    record = backups.find(fake, VNS, name="nightly", fetch=store.fetch)["backups"][0]
    record["uid"] = "old-uid"
    record["volumes"] = []
    p = build(fake, store, backup=record, volumes=["data-app-0"])
    assert p["volumes"][0]["source_pvc"] == "data-app-0"


def test_namespace_mapping(fake, store):
    fake.add(k.NAMESPACE, f.namespace("shop-test"))
    fake.add(k.PVC, f.pvc("data-app-0", ns="shop-test"))
    p = build(fake, store, volumes=["data-app-0"], namespace_mapping={"shop": "shop-test"})
    vol = p["volumes"][0]
    assert vol["key"] == "shop-test/data-app-0" and vol["source_namespace"] == "shop"
    assert vol["target_namespace"] == "shop-test"
    p = build(fake, store, volumes=["data-app-0"], target_namespace="shop-test")
    assert p["volumes"][0]["key"] == "shop-test/data-app-0"


def test_claim_mapping_restores_into_renamed_claims(fake, store):
    """A renamed Helm release: the backup's data-app-0 goes into data-v2-0, which exists now; the others keep
    their names. volumes names claims as backed up, volume_selector selects target claims."""
    fake.add(k.PVC, f.pvc("data-v2-0", labels={"app": "v2"}))
    p = build(fake, store, volumes=["data-app-0", "data-app-1"], claim_mapping={"data-app-0": "data-v2-0"})
    assert [(vol["source_pvc"], vol["target_pvc"], vol["key"]) for vol in p["volumes"]] == [
        ("data-app-0", "data-v2-0", "shop/data-v2-0"), ("data-app-1", "data-app-1", "shop/data-app-1")]
    p = build(fake, store, volume_selector="app=v2", claim_mapping={"data-app-0": "data-v2-0"})
    assert [(vol["source_pvc"], vol["target_pvc"]) for vol in p["volumes"]] == [("data-app-0", "data-v2-0")]
    p = build(fake, store, mode="replace", volumes=["data-app-0"], claim_mapping={"data-app-0": "data-v2-0"})
    assert p["volumes"][0]["new_pvc"]["name"].startswith("data-v2-0-restored-")


def test_claim_mapping_can_swap_two_claims(fake, store):
    p = build(fake, store, volumes=["data-app-0", "data-app-1"],
              claim_mapping={"data-app-0": "data-app-1", "data-app-1": "data-app-0"})
    assert [(vol["source_pvc"], vol["target_pvc"]) for vol in p["volumes"]] == [
        ("data-app-0", "data-app-1"), ("data-app-1", "data-app-0")]


def test_claim_mapping_refusals_name_the_claims(fake, store):
    fake.add(k.PVC, f.pvc("data-v2-0"))
    msg = fail(fake, store, volumes=["data-app-0"], claim_mapping={"data-app-0": "data-v2-0", "nope": "data-v2-1"})
    assert "claim_mapping names claim(s) nope, which backup nightly does not hold in shop" in msg
    msg = fail(fake, store, volumes=["data-app-0", "data-app-1"], claim_mapping={"data-app-0": "data-app-1"})
    assert "claims data-app-0 and data-app-1 of backup nightly would all be restored into claim shop/data-app-1" in msg
    msg = fail(fake, store, volumes=["data-app-0"], claim_mapping={"data-app-0": "gone"})
    assert "target claim shop/gone (claim_mapping of shop/data-app-0) does not exist" in msg
    msg = fail(fake, store, volume_selector="app=web", claim_mapping={"data-app-0": "data-app-1"})
    assert "would all be restored into claim shop/data-app-1" in msg


def test_a_claim_mapping_entry_of_a_claim_left_out_is_a_warning(fake, store):
    fake.add(k.PVC, f.pvc("data-v2-1"))
    p = build(fake, store, volumes=["data-app-0"], claim_mapping={"data-app-1": "data-v2-1"})
    assert [(vol["source_pvc"], vol["target_pvc"]) for vol in p["volumes"]] == [("data-app-0", "data-app-0")]
    assert any("claim_mapping entries for data-app-1 are ignored" in w for w in p["warnings"])


def test_a_rerun_with_another_claim_mapping_is_refused(fake, store):
    fake.add(k.PVC, f.pvc("data-v2-0"))
    p = build(fake, store, volumes=["data-app-0"], claim_mapping={"data-app-0": "data-v2-0"})
    assert plan._request_differences(p, dict(volumes=["data-app-0"], claim_mapping={"data-app-0": "data-v2-0"})) == []
    assert plan._request_differences(p, dict(volumes=["data-app-0"])) == [
        ("target claim of shop/data-app-0", "data-v2-0", "data-app-0")]


# -- the rules -------------------------------------------------------------------------------------
def test_unknown_backup(fake, store):
    msg = fail(fake, store, backup="nope")
    assert "Backup velero/nope not found" in msg and "backup_info" in msg


@pytest.mark.parametrize("phase,expect", [
    ("InProgress", "still InProgress"), ("WaitingForPluginOperations", "still WaitingForPluginOperations"),
    ("Failed", "is Failed"), ("FailedValidation", "is FailedValidation"),
    ("PartiallyFailed", "allow_partially_failed=true"),
])
def test_backup_phase(fake, store, phase, expect):
    fake.mutate(k.BACKUP, "nightly", VNS, lambda o: o["status"].update(phase=phase))
    assert expect in fail(fake, store, volumes=["data-app-0"])


def test_partially_failed_opt_in(fake, store):
    fake.mutate(k.BACKUP, "nightly", VNS, lambda o: o["status"].update(phase="PartiallyFailed"))
    p = build(fake, store, volumes=["data-app-0"], allow_partially_failed=True)
    assert any("PartiallyFailed" in w for w in p["warnings"])
    fake.mutate(k.BACKUP, "nightly", VNS, lambda o: o["status"].update(phase="Failed"))
    assert "is Failed" in fail(fake, store, volumes=["data-app-0"], allow_partially_failed=True)


def test_failed_volume_in_partially_failed_backup(fake, store):
    fake.mutate(k.BACKUP, "nightly", VNS, lambda o: o["status"].update(phase="PartiallyFailed"))
    store.put("nightly", [f.vi_pvb("data-app-0", "app-0", "data", phase="Failed", result="failed")])
    msg = fail(fake, store, volumes=["data-app-0"], allow_partially_failed=True)
    assert "did not complete" in msg


def test_backup_without_namespace(fake, store):
    msg = fail(fake, store, source_namespace="db")
    assert "does not include namespace db" in msg
    assert fake.count("create") == 0  # no DownloadRequest before that rule


def test_backup_with_namespace_but_no_volumes_there(fake, store):
    fake.mutate(k.BACKUP, "nightly", VNS, lambda o: o["spec"].update(includedNamespaces=["*"]))
    assert "no claim volume in namespace db" in fail(fake, store, source_namespace="db")


def test_several_namespaces_need_source_namespace(fake, store):
    store.put("nightly", [f.vi_pvb("a", "p", "v"), f.vi_pvb("b", "p", "v", namespace="db")])
    assert "set source_namespace" in fail(fake, store)


def test_requested_claim_not_in_backup(fake, store):
    msg = fail(fake, store, volumes=["data-app-0", "nope"])
    assert "claim shop/nope is not in backup nightly" in msg and "data-app-1" in msg


def test_target_claim_missing(fake, store):
    fake.remove(k.PVC, "data-app-0", "shop")
    assert "target claim shop/data-app-0 does not exist" in fail(fake, store, volumes=["data-app-0"])
    assert "does not exist" in fail(fake, store, volumes=["data-app-0"], mode="replace")


def test_target_claim_unbound(fake, store):
    fake.remove(k.PVC, "data-app-0", "shop")
    fake.add(k.PVC, f.pvc("data-app-0", phase="Pending", sc="sim-wffc"))
    msg = fail(fake, store, volumes=["data-app-0"])
    assert "is Pending, not Bound" in msg and "mode=replace with swap_mode=template" in msg
    # a rebind swap moves the restored volume under the claim: refused here, not after the whole restore
    msg = fail(fake, store, volumes=["data-app-0"], mode="replace")
    assert "is Pending, not Bound: swap_mode=rebind" in msg and "Use swap_mode=template" in msg
    fake.add(k.DEPLOYMENT, f.deployment_mounting("web", ["data-app-0"]))
    assert build(fake, store, volumes=["data-app-0"], mode="replace", swap_mode="template")["volumes"]


def test_target_claim_too_small(fake, store):
    fake.remove(k.PVC, "db-data", "shop")
    fake.add(k.PVC, f.pvc("db-data", size="10Mi"))
    msg = fail(fake, store, volumes=["db-data"])
    assert "has 10.0Mi but the snapshot of shop/db-data holds 20.0Mi" in msg and "Expand" in msg
    p = build(fake, store, volumes=["db-data"], mode="replace")
    assert p["volumes"][0]["new_pvc"]["size"] == "20Mi"


def test_block_target_for_fs_backup(fake, store):
    fake.remove(k.PVC, "data-app-0", "shop")
    fake.add(k.PVC, f.pvc("data-app-0", mode="Block"))
    assert "Block mode but shop/data-app-0 was a file-system backup" in fail(fake, store, volumes=["data-app-0"])


def test_terminating_target(fake, store):
    fake.mutate(k.PVC, "data-app-0", "shop", lambda o: o["metadata"].update(deletionTimestamp="2026-11-25T00:00:00Z"))
    assert "is being deleted" in fail(fake, store, volumes=["data-app-0"])


def test_csi_only_and_native_snapshots(fake, store):
    store.put("nightly", [f.vi_csi("data-app-0"), f.vi_native("logs")])
    msg = fail(fake, store, volumes=["data-app-0", "logs"])
    assert "CSI snapshot without data movement" in msg and "native" in msg
    assert "2 problems" in msg


def test_restic_uploader(fake, store):
    store.put("nightly", [f.vi_pvb("data-app-0", "app-0", "data", uploader="restic")])
    assert "restic" in fail(fake, store) and "kopia" in fail(fake, store)


def test_empty_snapshot_id(fake, store):
    store.put("nightly", [f.vi_pvb("data-app-0", "app-0", "data", snapshot="")])
    assert "claim shop/data-app-0 was empty at backup time" in fail(fake, store)


def test_velero_crds_missing(store):
    fake = FakeKube(missing_kinds=[k.BACKUP, k.DOWNLOAD_REQUEST])
    with pytest.raises(PreflightError) as err:
        plan.build(fake, VNS, "nightly", "in_place")
    assert "Velero's CRDs are not installed" in err.value.msg


def test_bsl_missing(fake, store):
    fake.remove(k.BACKUP_STORAGE_LOCATION, "default", VNS)
    assert "BackupStorageLocation velero/default of backup nightly does not exist" in fail(fake, store)


def test_bsl_unavailable(fake, store):
    fake.mutate(k.BACKUP_STORAGE_LOCATION, "default", VNS,
                lambda o: o["status"].update(phase="Unavailable", message="NoSuchBucket"))
    msg = fail(fake, store)
    assert "is Unavailable, not Available (NoSuchBucket)" in msg


def test_two_sessions_on_same_claim(fake, store):
    fake.add(k.CONFIG_MAP, f.session_cm("other", ["shop/data-app-0"]))
    msg = fail(fake, store, volumes=["data-app-0"], session="mine")
    assert "already part of restore session 'other'" in msg
    # own session, finished sessions and other claims are fine
    fake.add(k.CONFIG_MAP, f.session_cm("mine", ["shop/data-app-0"]))
    fake.add(k.CONFIG_MAP, f.session_cm("done", ["shop/data-app-1"], state="completed"))
    assert build(fake, store, volumes=["data-app-1"], session="mine")["volumes"]
    fake.remove(k.CONFIG_MAP, "data-restore-other", VNS)
    assert build(fake, store, volumes=["data-app-0"], session="mine")["volumes"]


def test_session_check_ignores_foreign_config_maps(fake, store):
    cm = f.session_cm("broken", ["shop/data-app-0"])
    cm["data"] = {"session.json": "not json"}
    fake.add(k.CONFIG_MAP, cm)
    assert build(fake, store, volumes=["data-app-0"], session="mine")["volumes"]


@pytest.mark.parametrize("kwargs,expect", [
    (dict(target_namespace="Shop_Test"), "not a valid namespace name"),
    (dict(namespace_mapping={"shop": "bad_ns"}), "both must be namespace names"),
    (dict(namespace_mapping={}), "non-empty dict"),
    (dict(target_namespace="missing"), "Target namespace missing does not exist"),
    (dict(namespace_mapping={"db": "x", "web": "y"}, source_namespace="shop"), "no entry for source namespace shop"),
    (dict(target_namespace="x", namespace_mapping={"shop": "x"}), "mutually exclusive"),
])
def test_namespace_options(fake, store, kwargs, expect):
    kwargs.setdefault("volumes", ["data-app-0"])
    assert expect in fail(fake, store, **kwargs)


def test_namespace_with_claims_is_not_read_but_an_empty_one_is_checked(fake, store):
    build(fake, store, volumes=["data-app-0"])
    assert ("get", "Namespace") not in fake.requests  # its claims prove it exists
    fake.add(k.NAMESPACE, f.namespace("empty"))
    msg = fail(fake, store, volumes=["data-app-0"], target_namespace="empty")
    assert "target claim empty/data-app-0 does not exist" in msg
    assert ("get", "Namespace") in fake.requests


def test_mapping_extra_entries_warn(fake, store):
    p = build(fake, store, volumes=["data-app-0"], source_namespace="shop",
              namespace_mapping={"shop": "shop", "db": "db2"})
    assert any("db are ignored" in w for w in p["warnings"])


def test_replace_name_collision(fake, store):
    name = plan.new_pvc_name("data-app-0", plan.names.short_hash("s1", length=6))
    fake.add(k.PVC, f.pvc(name, labels={"owner": "someone"}))
    msg = fail(fake, store, mode="replace", volumes=["data-app-0"], session="s1")
    assert "already exists and does not belong to this restore" in msg and "owner=someone" in msg
    # ours (a re-run of the same session) is fine
    fake.mutate(k.PVC, name, "shop", lambda o: o["metadata"].update(labels={
        "app.kubernetes.io/managed-by": "velero.data_restore", "data-restore.ansible/session": "s1"}))
    assert build(fake, store, mode="replace", volumes=["data-app-0"], session="s1")["volumes"]


def test_new_pvc_name_stays_short():
    name = plan.new_pvc_name("x" * 63, "abcdef")
    assert len(name) <= 63 and name == plan.new_pvc_name("x" * 63, "abcdef")


def test_storage_class_map_rules(fake, store):
    msg = fail(fake, store, mode="replace", volumes=["data-app-0"], storage_class_map={"sim-immediate": "nope"})
    assert "StorageClass nope" in msg and "does not exist" in msg
    msg = fail(fake, store, mode="replace", volumes=["db-data"], storage_class_map={"sim-immediate": "local"})
    assert "cannot provision volumes dynamically" in msg
    p = build(fake, store, mode="replace", volumes=["data-app-0"], storage_class_map={"gp2": "sim-wffc"})
    assert any("gp2" in w for w in p["warnings"])
    assert "mode=replace only" in fail(fake, store, storage_class_map={"a": "b"}, volumes=["data-app-0"])


@pytest.mark.parametrize("kwargs,expect", [
    (dict(mode="sideways"), "mode='sideways'"),
    (dict(backup=""), "backup must be a backup name"),
    (dict(backup={"uid": "x"}), "dict without a name"),
    (dict(volumes=[]), "non-empty list"),
    (dict(volumes="data-app-0"), "non-empty list"),
    (dict(volumes=["Bad Name"]), "not a claim name"),
    (dict(volumes=["a"], volume_selector="app=web"), "mutually exclusive"),
    (dict(volume_selector=""), "non-empty label selector"),
    (dict(mode="replace", storage_class_map=[]), "non-empty dict"),
    (dict(mode="replace", storage_class_map={"gp2": ""}), "storage_class_map entry 'gp2': '' is invalid"),
    (dict(allow_partially_failed="yes"), "true or false"),
    (dict(session="Bad_Session"), "session"),
    (dict(claim_mapping={}), "claim_mapping must be a non-empty dict"),
    (dict(claim_mapping=["a"]), "claim_mapping must be a non-empty dict"),
    (dict(claim_mapping={"data-app-0": "Bad Name"}), "both must be claim names"),
    (dict(claim_mapping={"data-app-0": "x", "data-app-1": "x"}), "maps data-app-0 and data-app-1 to the same claim x"),
])
def test_malformed_options(fake, store, kwargs, expect):
    assert expect in fail(fake, store, **kwargs)
    assert fake.requests == []  # rejected before any API call


def test_zero_mutations_on_every_failure(fake, store):
    record = backups.find(fake, VNS, name="nightly", fetch=store.fetch)["backups"][0]
    fake.add(k.CONFIG_MAP, f.session_cm("other", ["shop/data-app-0"]))
    before = len(fake.events)
    for kwargs in (dict(volumes=["nope"]), dict(volumes=["logs"]), dict(session="mine", volumes=["data-app-0"]),
                   dict(target_namespace="missing"), dict(mode="replace", storage_class_map={"x": "nope"})):
        with pytest.raises(PreflightError):
            plan.build(fake, VNS, record, kwargs.pop("mode", "in_place"), **kwargs)
    assert len(fake.events) == before
    assert not [r for r in fake.requests if r[0] in ("create", "patch", "update", "delete")
                and r[1] != "DownloadRequest"]


def test_quantities():
    assert plan.quantity_bytes("1Gi") == 1024 ** 3
    assert plan.quantity_bytes("500M") == 500 * 10 ** 6
    assert plan.quantity_bytes("1.5Gi") == 1610612736
    assert plan.quantity_bytes("1e3") == 1000
    assert plan.quantity_bytes("100m") == 1
    assert plan.quantity_bytes("junk") is None and plan.quantity_bytes(None) is None
    assert plan.mi_ceil(MI) == 1 and plan.mi_ceil(MI + 1) == 2


# -- workloads that cannot be stopped (rule owned by workloads.check_stoppable) -------------------
def _statefulset_app(fake, when_scaled):
    """StatefulSet "app" whose volumeClaimTemplate "data" made data-app-0/1, pods running."""
    sts = fake.add(k.STATEFUL_SET, {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "app", "namespace": "shop"},
        "spec": {"replicas": 2, "serviceName": "app", "template": {"spec": {}},
                 "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}],
                 "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": when_scaled}},
        "status": {"replicas": 2, "readyReplicas": 2}})
    for i in range(2):
        fake.add(k.POD, {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "app-%d" % i, "namespace": "shop", "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "app", "uid": sts["metadata"]["uid"],
                "controller": True}]},
            "spec": {"containers": [{"name": "app", "image": "busybox"}],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-app-%d" % i}}]},
            "status": {"phase": "Running"}})
    return sts


@pytest.mark.parametrize("mode", ["in_place", "replace"])
def test_statefulset_when_scaled_delete_refused_in_preflight(fake, store, mode):
    _statefulset_app(fake, "Delete")
    msg = fail(fake, store, mode=mode, volumes=["data-app-0", "data-app-1"])
    assert "StatefulSet shop/app has persistentVolumeClaimRetentionPolicy.whenScaled=Delete" in msg
    assert "Set whenScaled to Retain first" in msg
    assert not [r for r in fake.requests if r[0] in ("create", "patch", "update", "delete")
                and r[1] != "DownloadRequest"]


def test_statefulset_when_scaled_retain_or_not_scaled_passes(fake, store):
    _statefulset_app(fake, "Retain")
    assert len(build(fake, store, volumes=["data-app-0"])["volumes"]) == 1
    fake.mutate(k.STATEFUL_SET, "app", "shop",
                lambda o: o["spec"]["persistentVolumeClaimRetentionPolicy"].update(whenScaled="Delete"))
    # the user stops the workloads another way: nothing is scaled, nothing to refuse
    assert len(build(fake, store, volumes=["data-app-0"], quiesce="none")["volumes"]) == 1


def test_a_keda_scaled_workload_is_refused_in_preflight_unless_pause_gitops(fake, store):
    _statefulset_app(fake, "Retain")
    fake.add(k.KEDA_SCALED_OBJECT, {"metadata": {"name": "app-scaler", "namespace": "shop"},
                                    "spec": {"scaleTargetRef": {"kind": "StatefulSet", "name": "app"},
                                             "minReplicaCount": 1}})
    msg = fail(fake, store, volumes=["data-app-0"])
    assert "StatefulSet shop/app is scaled by KEDA ScaledObject shop/app-scaler" in msg
    assert not [r for r in fake.requests if r[0] in ("create", "patch", "update", "delete")
                and r[1] != "DownloadRequest"]
    assert len(build(fake, store, volumes=["data-app-0"], pause_gitops=True)["volumes"]) == 1
    # the user stops the workloads another way: nothing is scaled, nothing to refuse
    assert len(build(fake, store, volumes=["data-app-0"], quiesce="none")["volumes"]) == 1


def test_an_unstoppable_pod_is_refused_by_the_preflight_not_by_the_stop(fake, store):
    """A bare pod (no controller) mounting the claim: workload_scale refuses to stop it. Before 2026-12-06 the plan let
    it pass, and a replace found out at the stop before the swap, after the hours of its restore."""
    fake.add(k.POD, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "debug", "namespace": "shop"},
                     "spec": {"containers": [{"name": "c", "image": "busybox"}],
                              "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data-app-0"}}]},
                     "status": {"phase": "Running"}})
    for mode in ("in_place", "replace"):
        with pytest.raises(PreflightError, match=r"Pod shop/debug \(uid [-0-9a-f]+\) mounts the PVC but has no controller"):
            build(fake, store, mode=mode, volumes=["data-app-0"])
    # quiesce=none: the user stops the app; nothing is refused
    assert len(build(fake, store, volumes=["data-app-0"], quiesce="none")["volumes"]) == 1


# ----------------------------------------------------------------------------- review findings (2026-12-04)
def test_claims_that_differ_only_by_a_dot_get_different_new_claims(fake, store):
    """db.data and db-data sanitize to the same name: both volumes would have been restored into one new claim."""
    store.put("nightly", [f.vi_pvb("db.data", "app-0", "a", size=MI), f.vi_pvb("db-data", "app-0", "b", size=MI)])
    fake.remove(k.PVC, "db-data", "shop")
    fake.add(k.PVC, f.pvc("db.data"))
    fake.add(k.PVC, f.pvc("db-data"))
    built = build(fake, store, mode="replace", volumes=["db.data", "db-data"], session="s1")
    new_names = [v["new_pvc"]["name"] for v in built["volumes"]]
    assert len(set(new_names)) == 2, new_names
    assert plan.new_pvc_name("db-data", "abc123") == "db-data-restored-abc123"  # names without a dot are unchanged


def test_allow_partially_failed_leaves_the_failed_volumes_out(fake, store):
    fake.mutate(k.BACKUP, "nightly", VNS, lambda o: o["status"].update(phase="PartiallyFailed"))
    store.put("nightly", [f.vi_pvb("data-app-0", "app-0", "data"),
                          f.vi_pvb("data-app-1", "app-1", "data", phase="Failed", result="failed")])
    built = build(fake, store, allow_partially_failed=True)
    assert [v["source_pvc"] for v in built["volumes"]] == ["data-app-0"]
    assert any("data-app-1 failed" in w for w in built["warnings"])


def test_a_read_write_once_pod_claim_in_use_is_refused_in_preflight_without_quiesce(fake, store):
    """quiesce=none: nothing stops the workload, and no helper pod can mount an RWOP claim it holds - refused
    before the session exists, not later by restore_helper_pod."""
    fake.remove(k.PVC, "data-app-0", "shop")
    fake.add(k.PVC, f.pvc("data-app-0", access=("ReadWriteOncePod",)))
    fake.add(k.POD, {"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "app-0", "namespace": "shop", "uid": "u-app-0"},
                     "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "x"}],
                              "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-app-0"}}]},
                     "status": {"phase": "Running"}})
    msg = fail(fake, store, volumes=["data-app-0"], quiesce="none")
    assert "ReadWriteOncePod and still mounted by pod(s) app-0" in msg


# -- the journal fits its ConfigMap --------------------------------------------------------------
def test_a_plan_whose_journal_would_outgrow_the_config_map_is_refused(fake, store, monkeypatch):
    from ansible_collections.velero.data_restore.plugins.module_utils import session as sessions
    volumes = ["data-app-0", "data-app-1", "db-data"]
    estimate = plan.journal_estimate(build(fake, store, mode="replace", volumes=volumes)["volumes"],
                                     dict((p["metadata"]["name"], p) for p in fake.all(k.PVC)), "replace",
                                     {"name": "nightly"})
    monkeypatch.setattr(sessions, "JOURNAL_BUDGET", estimate - 1)
    message = fail(fake, store, mode="replace", volumes=volumes)
    assert "the session journal of 3 volumes would reach about" in message and "at most 1 MiB" in message
    assert "parts of about 2" in message


def test_the_journal_estimate_bounds_a_real_swap_and_rollback():
    """20 claims swapped and rolled back on the fake cluster: the preflight's estimate is above what the journal
    holds then, and not far above (else the refusal above would come too early)."""
    import test_claims as tc
    from ansible_collections.velero.data_restore.plugins.module_utils import claims
    from ansible_collections.velero.data_restore.plugins.module_utils import session as sessions
    fk = FakeKube()
    fk.controllers.append(tc.pv_controller)
    vols, pvcs = [], {}
    for i in range(20):
        pvcs["data-%d" % i] = tc.bound_pair(fk, "data-%d" % i, "pv-old-%d" % i, labels={"app": "web"})
        tc.bound_pair(fk, "data-%d-restored" % i, "pv-new-%d" % i, size="2Gi",
                      selector={"matchLabels": {"velero.io/dynamic-pv-restore": "x%d" % i}})
        vols.append({"key": "shop/data-%d" % i, "target_namespace": tc.NS, "target_pvc": "data-%d" % i,
                     "source_pvc": "data-%d" % i, "new_pvc": {"name": "data-%d-restored" % i, "size": "2Gi"},
                     "method": "fs"})
    sessions.ensure(fk, tc.VNS, tc.SESSION, mode="replace", backup={"name": "b"},
                    plan={"volumes": vols, "backup": {"name": "b"}})
    claims.patch_claims(fk, tc.params(volumes=vols))
    claims.patch_claims(fk, tc.params(volumes=vols, state="reverted"))
    actual = len(fk.find(k.CONFIG_MAP, "data-restore-" + tc.SESSION, tc.VNS)["data"]["session.json"])
    estimate = plan.journal_estimate(vols, pvcs, "replace", {"name": "b"})
    assert actual < estimate < 2 * actual, (actual, estimate)


def test_a_claim_classed_by_the_beta_annotation_is_mapped_by_that_class(fake, store):
    """Kubernetes reads the beta annotation before storageClassName: the plan must, or the migration silently
    keeps the default class."""
    def legacy(obj):
        obj["metadata"]["annotations"] = {"volume.beta.kubernetes.io/storage-class": "sim-immediate"}
        obj["spec"].pop("storageClassName")
    fake.mutate(k.PVC, "data-app-0", "shop", legacy)
    fake.add(k.STORAGE_CLASS, f.storage_class("fast"))
    p = build(fake, store, mode="replace", volumes=["data-app-0"], storage_class_map={"sim-immediate": "fast"})
    vol = p["volumes"][0]
    assert vol["storage_class"] == "sim-immediate" and vol["new_pvc"]["storage_class"] == "fast"
    assert not any("match no planned claim" in w for w in p["warnings"])


def test_the_default_restore_timeout_grows_with_the_backup_size():
    from ansible_collections.velero.data_restore.plugins.module_utils import plan as plans

    assert plans.restore_timeout([]) == 3600
    assert plans.restore_timeout([{"snapshot_size": None}, {}]) == 3600
    tib = 1024 ** 4
    # 1 TiB at 20 MiB/s is 52429 s (14.6 h), on top of the hour
    assert plans.restore_timeout([{"snapshot_size": 100 * 1024 ** 3}]) == 3600 + 5120
    assert plans.restore_timeout([{"snapshot_size": tib}]) == 3600 + 52429
    # capped at a day (a re-run continues a timed-out restore)
    assert plans.restore_timeout([{"snapshot_size": 4 * tib}]) == 24 * 3600


def test_a_data_mover_backup_whose_volumes_are_unknown_is_refused_with_the_read_error(fake, store):
    """Volume info unreadable and no DataUpload here (not synced): the data-mover claims would silently be left out."""
    fake.add(k.BACKUP, f.backup("moved", snapshot_move_data=True))
    fake.add(k.POD_VOLUME_BACKUP, f.pvb("moved", "app-0", "data", pvc="data-app-0"))
    with pytest.raises(PreflightError) as err:
        plan.build(fake, VNS, backup="moved", mode="in_place", volume_info_timeout=5, fetch=f.failing_fetch)
    msg = err.value.msg
    assert "snapshotMoveData: true" in msg and "data-mover volumes are unknown" in msg
    assert "Warnings on the way" in msg and "timed out" in msg  # the read error that explains it
    assert "timed out" in " ".join(err.value.details["warnings"])
    # named claims that were file-system backed up are still planned
    named = plan.build(fake, VNS, backup="moved", mode="in_place", volume_info_timeout=5, fetch=f.failing_fetch,
                       volumes=["data-app-0"])
    assert [v["source_pvc"] for v in named["volumes"]] == ["data-app-0"]


def test_volume_selector_leaves_out_skipped_claims_like_a_restore_of_all(fake, store):
    fake.add(k.PVC, f.pvc("scratch", labels={"app": "web"}))
    p = build(fake, store, volume_selector="app=web")
    assert [v["target_pvc"] for v in p["volumes"]] == ["data-app-0", "data-app-1"]
    assert any("claim shop/scratch was skipped by Velero at backup time; left out." in w for w in p["warnings"])
    fake.mutate(k.PVC, "data-app-0", "shop", lambda o: o["metadata"]["labels"].update(app="other"))
    fake.mutate(k.PVC, "data-app-1", "shop", lambda o: o["metadata"]["labels"].update(app="other"))
    msg = fail(fake, store, volume_selector="app=web")
    assert "every claim that volume_selector matches was skipped or empty at backup time, or its backup failed" in msg
    # named, the skipped claim is refused rather than left out
    assert "scratch" in fail(fake, store, volumes=["scratch"])


# -- finished pods that hold a claim replace mode swaps ------------------------------------------
def _finished_pod(name, claim, phase="Succeeded", node="node-1", owner=None):
    meta = {"name": name, "namespace": "shop", "uid": "u-" + name}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1" if owner != "Job" else "batch/v1", "kind": owner,
                                    "name": "x", "uid": "u-x", "controller": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]},
            "status": {"phase": phase}}


@pytest.mark.parametrize("quiesce", ["scale", "none"])
def test_replace_refuses_a_finished_pod_that_holds_a_swapped_claim_before_the_restore(fake, store, quiesce):
    """pvc-protection keeps the claim while a scheduled pod names it: the swap, hours later, would refuse it."""
    fake.add(k.POD, _finished_pod("report-28391", "data-app-0", owner="Job"))
    fake.add(k.POD, _finished_pod("evicted", "data-app-1", phase="Failed"))
    msg = fail(fake, store, mode="replace", volumes=["data-app-0", "data-app-1"], quiesce=quiesce)
    assert "finished pods still hold" in msg and "kubectl delete pod -n shop evicted report-28391" in msg
    assert "data-app-0, data-app-1" in msg, msg


def test_replace_lets_finished_pods_pass_that_go_by_themselves_or_hold_nothing_swapped(fake, store):
    fake.add(k.POD, _finished_pod("app-0", "data-app-0", phase="Failed", owner="StatefulSet"))  # scaled away
    fake.add(k.POD, _finished_pod("never-scheduled", "data-app-0", phase="Failed", node=None))
    deleting = _finished_pod("deleting", "data-app-0")
    deleting["metadata"]["deletionTimestamp"] = "2026-12-05T00:00:00Z"
    fake.add(k.POD, deleting)
    fake.add(k.POD, _finished_pod("other-claim", "logs", owner="Job"))
    assert len(build(fake, store, mode="replace", volumes=["data-app-0"])["volumes"]) == 1
    # in place does not delete claims: a finished pod is no obstacle there
    fake.add(k.POD, _finished_pod("report-1", "data-app-0", owner="Job"))
    assert len(build(fake, store, volumes=["data-app-0"])["volumes"]) == 1


def test_replace_with_the_template_swap_lets_finished_pods_pass(fake, store):
    """swap_mode=template never deletes the old claim: a finished pod holding it is no obstacle."""
    fake.add(k.POD, _finished_pod("report-28391", "data-app-0", owner="Job"))
    fake.add(k.DEPLOYMENT, f.deployment_mounting("web", ["data-app-0"]))
    built = build(fake, store, mode="replace", swap_mode="template", volumes=["data-app-0"])
    assert len(built["volumes"]) == 1


def test_a_forbidden_pod_list_is_tried_once_and_warned_once(fake, store):
    fake.forbid("list", k.POD)
    built = build(fake, store, mode="replace", volumes=["data-app-0"])
    assert fake.requests.count(("list", "Pod")) == 1
    cannot = [w for w in built["warnings"] if "cannot list the pods" in w]
    assert len(cannot) == 1 and "finished pods" in cannot[0] and "can be stopped" in cannot[0], cannot


def test_a_failed_session_whose_swap_is_still_in_effect_holds_those_claims():
    """Its rescue could not undo the swap: another session planning the claim would retain the first one's restored PV
    as its "old" PV, and the first session's rollback would then fail (review of 2026-12-06)."""
    fake = FakeKube()
    vols = [{"key": "shop/data", "target_namespace": "shop", "target_pvc": "data"},
            {"key": "shop/logs", "target_namespace": "shop", "target_pvc": "logs"}]
    s.ensure(fake, VNS, "a", mode="replace", backup={"name": "nightly"}, plan={"volumes": vols})
    claim = {"kind": "PersistentVolumeClaim", "namespace": "shop", "name": "data"}
    s.record_undo(fake, VNS, "a", s.ACTION_REBIND, claim, {"old_pv": "pv-old", "new_pv": "pv-new"})
    s.set_state(fake, VNS, "a", "failed")
    problems = plan.Problems()
    plan.check_other_sessions(fake, VNS, "b", ["shop/data", "shop/logs"], problems)
    assert len(problems.items) == 1, problems.items
    assert "shop/data is swapped by restore session 'a', which failed" in problems.items[0]

    s.ensure(fake, VNS, "c", mode="in_place", backup={"name": "nightly"}, plan={"volumes": vols})
    s.set_state(fake, VNS, "c", "failed")  # no swap: a failed in-place session holds nothing
    problems = plan.Problems()
    plan.check_other_sessions(fake, VNS, "b", ["shop/logs"], problems)
    assert problems.items == []


def test_swap_mode_is_held_to_the_mode_the_begun_swaps_were_made_with():
    """Run 1 planned template and failed before any swap; run 2 swapped with rebind and failed after. Run 3 must go on
    with rebind (the journal's), not with the plan's template, which claim_patch would refuse (review of 2026-12-06)."""
    fake = FakeKube()
    vol = {"key": "shop/data", "source_pvc": "data", "target_namespace": "shop", "target_pvc": "data",
           "new_pvc": {"name": "data-restored", "storage_class": "sc"}, "storage_class": "sc"}
    s.ensure(fake, VNS, "r1", mode="replace", backup={"name": "nightly"},
             plan={"mode": "replace", "source_namespace": "shop", "target_namespace": "shop", "swap_mode": "template",
                   "volumes": [vol]})
    s.set_state(fake, VNS, "r1", "failed")
    asked = dict(backup="nightly", mode="replace", source_namespace="shop", swap_mode="rebind")
    plan.check_same_request(s.load(fake, VNS, "r1"), asked, [])  # nothing began: another mode is open
    claim = {"kind": "PersistentVolumeClaim", "namespace": "shop", "name": "data"}
    s.record_undo(fake, VNS, "r1", s.ACTION_REBIND, claim, {"old_pv": "a", "new_pv": "b"})
    s.set_volume(fake, VNS, "r1", "shop/data", {"swap": {"mode": "rebind", "state": "swapping"}})
    s.set_state(fake, VNS, "r1", "failed")
    plan.check_same_request(s.load(fake, VNS, "r1"), asked, [])
    with pytest.raises(PreflightError, match="swap_mode: recorded rebind, asked template"):
        plan.check_same_request(s.load(fake, VNS, "r1"), dict(asked, swap_mode="template"), [])


def test_a_continued_session_asked_for_another_volume_selector_is_refused():
    """The default session name does not hold the selector: a re-run with another one must not report the first
    selection's restore as done, nor restore it (review of 2026-12-06)."""
    fake = FakeKube()
    vol = {"key": "shop/web-data", "source_pvc": "web-data", "target_namespace": "shop", "target_pvc": "web-data"}
    recorded = {"mode": "replace", "source_namespace": "shop", "target_namespace": "shop", "swap_mode": "rebind",
                "volume_selector": "app=web", "volumes": [vol]}
    s.ensure(fake, VNS, "replace-shop-nightly", mode="replace", backup={"name": "nightly"}, plan=recorded)
    s.set_state(fake, VNS, "replace-shop-nightly", "completed")
    asked = dict(backup="nightly", mode="replace", source_namespace="shop")
    plan.check_same_request(s.load(fake, VNS, "replace-shop-nightly"), dict(asked, volume_selector="app=web"), [])
    with pytest.raises(PreflightError, match="volume_selector: recorded app=web, asked app=db"):
        plan.check_same_request(s.load(fake, VNS, "replace-shop-nightly"), dict(asked, volume_selector="app=db"), [])

    recorded.update(volume_selector=None)  # planned without a selector: all volumes, or volumes=[...]
    s.ensure(fake, VNS, "other", mode="replace", backup={"name": "nightly"}, plan=recorded)
    with pytest.raises(PreflightError, match=r"volume_selector: recorded none \(volumes web-data\), asked app=db"):
        plan.check_same_request(s.load(fake, VNS, "other"), dict(asked, volume_selector="app=db"), [])


def test_a_template_swap_that_would_be_refused_or_patch_nothing_is_refused_in_preflight(fake, store):
    """Before 2026-12-06 the swap refused claim templates and Jobs only after the restore and the stop, and a claim no
    workload template mounts was "swapped" without a patch: the app went on with the old data."""
    with pytest.raises(PreflightError, match="no Deployment, DaemonSet, ReplicaSet, StatefulSet, CronJob or KEDA ScaledJob in "
                                             "namespace shop mounts PVC data-app-1, so swap_mode=template would patch "
                                             "nothing"):
        build(fake, store, mode="replace", volumes=["data-app-1"], swap_mode="template")
    sts = f.deployment_mounting("app", [])
    sts.update(kind="StatefulSet")
    sts["spec"].update(serviceName="app", volumeClaimTemplates=[{"metadata": {"name": "data"}}])
    fake.add(k.STATEFUL_SET, sts)
    with pytest.raises(PreflightError, match="comes from the volumeClaimTemplates of StatefulSet app.*Use "
                                             "swap_mode=rebind"):
        build(fake, store, mode="replace", volumes=["data-app-1"], swap_mode="template")
    assert build(fake, store, mode="replace", volumes=["data-app-1"], swap_mode="rebind")["volumes"]
    # nothing changed but the volume-info DownloadRequests the plan reads the backup with
    assert [r for r in fake.requests if r[0] in ("create", "patch", "update", "delete") and r[1] != "DownloadRequest"] == []
