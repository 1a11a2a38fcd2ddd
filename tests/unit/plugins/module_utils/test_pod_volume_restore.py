"""pod_volume_restore.py: PVR bodies the node-agent accepts, one watch for all, cancel, idempotency."""

import re

import pytest

from ansible_collections.velero.data_restore.plugins.module_utils import helper_pod as hp
from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils import names
from ansible_collections.velero.data_restore.plugins.module_utils import pod_volume_restore as pvr
from ansible_collections.velero.data_restore.plugins.module_utils import session as sessions
from ansible_collections.velero.data_restore.plugins.module_utils.errors import (
    DataRestoreError,
    PreflightError,
    WaitTimeout,
)
from fake_kube import FakeKube
import data_path_fixtures as f


def params(**kw):
    p = dict(velero_namespace=f.VNS, session="s1", state="present", volumes=None, pods=None, uploader_settings=None,
             retry_failed=False, fail_fast=False, fail_on_timeout=True, wait=True, wait_timeout=60)
    p.update(kw)
    return p


def helper_params(**kw):
    p = dict(velero_namespace=f.VNS, session="s1", state="present", namespace=f.NS, pvcs=None, volumes=None,
             image=None, node_selector=None, affinity=None, tolerations=None, node_name=None,
             pin_to_consumer_node=False, labels=None, check_node_agent=True, wait=True, wait_timeout=30)
    p.update(kw)
    return p


def crd(with_size=True):
    spec_props = {"pod": {}, "volume": {}, "snapshotID": {}, "cancel": {}}
    if with_size:
        spec_props["snapshotSize"] = {"type": "integer"}
    return {"metadata": {"name": "podvolumerestores.velero.io"},
            "spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {"properties": {
                "spec": {"properties": spec_props}, "status": {"properties": {"node": {}}}}}}}]}}


def setup(pvcs=("data",), with_size=True, **agent):
    fake = FakeKube()
    fake.sess = f.base_cluster(fake)
    fake.add(k.CRD, crd(with_size))
    for name in pvcs:
        fake.add(k.PVC, f.pvc(name, volume="pv-" + name))
        fake.add(k.PV, f.pv("pv-" + name))
    fake.controllers.append(f.kubelet())
    records = [f.fs_record(name) for name in pvcs]
    pods = hp.run(fake, helper_params(pvcs=list(pvcs)))["pods"]
    fake.controllers.append(f.node_agent(**agent))
    return fake, records, pods


def test_pvr_body_has_everything_the_node_agent_needs():
    fake, records, pods = setup()
    fake.controllers.pop()  # no node-agent: inspect the created object
    pvr.run(fake, params(volumes=records, pods=pods, wait=False,
                         uploader_settings={"WriteSparseFiles": True, "ParallelFilesDownload": 4}))
    name = pvr.pvr_name("s1", f.NS, "data")
    obj = fake.find(k.POD_VOLUME_RESTORE, name, f.VNS)
    assert obj["metadata"]["namespace"] == f.VNS and len(name) <= 63
    assert obj["metadata"]["labels"] == {"velero.io/pod-uid": pods[0]["uid"],
                                         "app.kubernetes.io/managed-by": "velero.data_restore",
                                         "data-restore.ansible/session": "s1", "data-restore.ansible/role": "pvr"}
    assert obj["metadata"]["ownerReferences"] == [fake.sess.owner_reference()]
    assert obj["spec"] == {
        "pod": {"kind": "Pod", "namespace": f.NS, "name": pods[0]["name"], "uid": pods[0]["uid"]},
        "volume": "data", "backupStorageLocation": "default", "repoIdentifier": "", "uploaderType": "kopia",
        "snapshotID": "snap-data", "sourceNamespace": "shop-old", "snapshotSize": 4096,
        "uploaderSettings": {"WriteSparseFiles": "true", "ParallelFilesDownload": "4"},
    }
    assert "status" not in obj
    # recorded in the session before creation
    doc = sessions.require(fake, f.VNS, "s1").doc
    assert doc["volumes"]["shop/data"]["pod_volume_restore"] == name


def test_snapshot_size_is_sent_without_reading_the_crd():
    """A CRD older than v1.18 prunes snapshotSize (it only sizes the cache volume): no CRD read is spent on it."""
    fake, records, pods = setup(with_size=False)
    fake.controllers.pop()
    pvr.run(fake, params(volumes=records, pods=pods, wait=False))
    assert fake.find(k.POD_VOLUME_RESTORE, pvr.pvr_name("s1", f.NS, "data"), f.VNS)["spec"]["snapshotSize"] == 4096
    assert ("get", "CustomResourceDefinition") not in fake.requests


def test_restore_completes_with_progress_and_records_session():
    fake, records, pods = setup(total=4096)
    result = pvr.run(fake, params(volumes=records, pods=pods))
    assert result["done"] is True and result["changed"] is True
    [vol] = result["volumes"]
    assert vol["phase"] == "Completed" and vol["bytes_done"] == vol["total_bytes"] == 4096
    assert vol["node"] == "node-1" and vol["duration"] == 60 and vol["key"] == "shop/data"
    assert result["progress"] == "1/1 volumes completed, 4096/4096 bytes"
    assert sessions.require(fake, f.VNS, "s1").doc["volumes"]["shop/data"]["phase"] == "Completed"


def test_session_state_goes_into_the_write_that_records_the_final_phases():
    fake, records, pods = setup(total=4096)
    fake.session_cache = {}  # as in a module run
    before = fake.count("update")
    result = pvr.run(fake, params(volumes=records, pods=pods, session_state="restored"))
    assert result["done"] is True
    # one journal write before the PVRs are created, one with the final phases and the state
    assert fake.count("update") - before == 2
    doc = sessions.require(fake, f.VNS, "s1").doc
    assert doc["state"] == "restored" and doc["volumes"]["shop/data"]["phase"] == "Completed"
    assert doc["history"][-1]["event"] == "state restored"


def test_session_state_is_not_set_when_a_volume_failed():
    fake, records, pods = setup(fail={"snap-data"})
    state = sessions.require(fake, f.VNS, "s1").state
    with pytest.raises(DataRestoreError):
        pvr.run(fake, params(volumes=records, pods=pods, session_state="restored"))
    doc = sessions.require(fake, f.VNS, "s1").doc
    assert doc["state"] == state and doc["volumes"]["shop/data"]["phase"] == "Failed"


def test_helper_pods_are_found_by_label_when_not_given():
    fake, records = setup()[:2]
    assert pvr.run(fake, params(volumes=records))["done"] is True


def test_idempotent_rerun_reuses_pvrs():
    fake, records, pods = setup()
    pvr.run(fake, params(volumes=records, pods=pods))
    creates = fake.count("create")
    again = pvr.run(fake, params(volumes=records, pods=pods))
    assert again["changed"] is False and fake.count("create") == creates and again["done"] is True


def test_check_mode():
    fake, records, pods = setup()
    fake.requests[:] = []
    result = pvr.run(fake, params(volumes=records, pods=pods), check_mode=True)
    assert result["changed"] is True and result["volumes"][0]["action"] == "create"
    assert [r for r in fake.requests if r[0] in ("create", "patch", "update", "delete")] == []
    assert result["diff"]["after"]["podvolumerestores"][0]["spec"]["repoIdentifier"] == ""


def test_check_mode_says_done_when_every_pod_volume_restore_is_final_and_not_before():
    fake, records, pods = setup()
    assert pvr.run(fake, params(volumes=records, pods=pods), check_mode=True)["done"] is False
    pvr.run(fake, params(volumes=records, pods=pods))
    again = pvr.run(fake, params(volumes=records, pods=pods), check_mode=True)
    assert again["changed"] is False and again["done"] is True


def test_failed_volume_reports_node_agent_message_and_retry():
    fake, records, pods = setup(fail={"snap-data"})
    with pytest.raises(DataRestoreError, match="shop/data .* Failed: data path restore failed: snapshot not found"):
        pvr.run(fake, params(volumes=records, pods=pods))
    # re-run without retry: reported again, nothing created
    creates = fake.count("create")
    with pytest.raises(DataRestoreError, match="retry_failed=true"):
        pvr.run(fake, params(volumes=records, pods=pods))
    assert fake.count("create") == creates
    # fix the cause, retry
    fake.controllers[-1] = f.node_agent()
    result = pvr.run(fake, params(volumes=records, pods=pods, retry_failed=True))
    assert result["volumes"][0]["phase"] == "Completed" and fake.count("create") == creates + 1


def test_without_pod_uid_label_the_pvr_never_completes_and_timeout_names_it():
    fake, records, pods = setup()
    wrong = [dict(pods[0], uid="00000000-dead-beef-0000-000000000000")]
    with pytest.raises(WaitTimeout) as err:
        pvr.run(fake, params(volumes=records, pods=wrong, wait_timeout=1))
    assert "shop/data (s1-shop-data, New, 0/0 bytes)" in err.value.msg
    assert "velero.io/pod-uid" in err.value.msg


def test_timeout_without_failing_returns_progress():
    fake, records, pods = setup()
    fake.controllers.pop()
    result = pvr.run(fake, params(volumes=records, pods=pods, wait_timeout=0, fail_on_timeout=False))
    assert result["done"] is False and result["pending"] and result["volumes"][0]["phase"] == "New"


def test_fifty_volume_wait_uses_few_requests():
    pvcs = ["vol-%02d" % i for i in range(50)]
    fake, records, pods = setup(pvcs=pvcs, steps=4)
    fake.requests[:] = []
    result = pvr.run(fake, params(volumes=records, pods=pods, wait_timeout=600))
    assert result["done"] is True and len(result["volumes"]) == 50
    creates = fake.count("create")
    assert creates == 50
    assert fake.count("watch") <= 3 and fake.count("list") <= 4
    assert len(fake.requests) <= 50 + 15, fake.requests  # one create per volume plus a constant


def test_the_wait_summarizes_each_object_once_per_version(monkeypatch):
    """The predicate runs after every watch event: summarizing all N objects each time was O(N^2) per restore."""
    pvcs = ["vol-%02d" % i for i in range(50)]
    fake, records, pods = setup(pvcs=pvcs, steps=4)
    calls = []
    real = pvr.summarize
    monkeypatch.setattr(pvr, "summarize", lambda obj, key=None: calls.append(1) or real(obj, key))
    result = pvr.run(fake, params(volumes=records, pods=pods, wait_timeout=600))
    assert result["done"] is True and len(result["volumes"]) == 50
    versions = 50 * (1 + 4 + 1)  # created, each step, final
    assert len(calls) <= versions + 2 * 50, len(calls)  # plus the result's own summaries


@pytest.mark.parametrize("change, message", [
    (dict(uploader_type="restic"), "uploaderType kopia"),
    (dict(method="data_mover", data_mover="acme"), "built-in data mover"),
    (dict(volume_mode="Block"), "Filesystem volumes only"),
    (dict(snapshot_id=None), "lacks snapshot_id"),
])
def test_refusals(change, message):
    fake, records, pods = setup()
    records[0].update(change)
    with pytest.raises(PreflightError, match=message):
        pvr.run(fake, params(volumes=records, pods=pods))


def test_data_mover_filesystem_snapshot_is_restored_by_pvr():
    fake, records, pods = setup()
    records[0].update(method="data_mover", uploader_type="", data_mover="velero")
    result = pvr.run(fake, params(volumes=records, pods=pods, wait=False))
    obj = fake.find(k.POD_VOLUME_RESTORE, result["volumes"][0]["name"], f.VNS)
    assert obj["spec"]["uploaderType"] == "kopia"


def _target_old_pod(obj, phase=None):
    obj["metadata"]["labels"]["velero.io/pod-uid"] = "old-uid"
    obj["spec"]["pod"]["uid"] = "old-uid"
    if phase:
        obj.setdefault("status", {}).update(phase=phase, node="node-1")


@pytest.mark.parametrize("phase", [None, "Accepted", "Prepared"])
def test_unstarted_pvr_for_a_replaced_helper_pod_is_recreated_for_the_current_pod(phase):
    # its helper pod went before the data path started: nothing was written
    fake, records, pods = setup()
    agent = fake.controllers.pop()
    pvr.run(fake, params(volumes=records, pods=pods, wait=False))
    name = pvr.pvr_name("s1", f.NS, "data")
    fake.mutate(k.POD_VOLUME_RESTORE, name, f.VNS, lambda o: _target_old_pod(o, phase))
    fake.controllers.append(agent)
    check = pvr.run(fake, params(volumes=records, pods=pods), check_mode=True)
    assert check["changed"] is True and [v["action"] for v in check["volumes"]] == ["recreate"]
    assert fake.find(k.POD_VOLUME_RESTORE, name, f.VNS)["spec"]["pod"]["uid"] == "old-uid"
    result = pvr.run(fake, params(volumes=records, pods=pods))
    assert result["changed"] is True and result["volumes"][0]["phase"] == "Completed"
    obj = fake.find(k.POD_VOLUME_RESTORE, name, f.VNS)
    assert obj["spec"]["pod"]["uid"] == pods[0]["uid"] == obj["metadata"]["labels"]["velero.io/pod-uid"]


def test_a_recreated_pvr_waits_until_the_data_path_pod_of_its_name_is_gone():
    """A Prepared PVR has a hosting pod named after it; created again at once, the new PVR's expose would fail with
    AlreadyExists while the old pod terminates."""
    fake, records, pods = setup()
    agent = fake.controllers.pop()
    pvr.run(fake, params(volumes=records, pods=pods, wait=False))
    name = pvr.pvr_name("s1", f.NS, "data")
    fake.mutate(k.POD_VOLUME_RESTORE, name, f.VNS, lambda o: _target_old_pod(o, "Prepared"))
    fake.add(k.POD, f.data_path_pod(name, "velero.io/pod-volume-restore"))
    fake.controllers += [f.terminates_after(k.POD_VOLUME_RESTORE, name, "velero.io/pod-volume-restore"), agent]
    seen = f.creates_with_pod_gone(fake, k.POD_VOLUME_RESTORE, name)
    result = pvr.run(fake, params(volumes=records, pods=pods))
    assert result["volumes"][0]["phase"] == "Completed" and seen == [True], seen


@pytest.mark.parametrize("phase", ["InProgress", "Canceling"])
def test_running_pvr_for_a_replaced_helper_pod_is_refused(phase):
    fake, records, pods = setup()
    fake.controllers.pop()
    pvr.run(fake, params(volumes=records, pods=pods, wait=False))
    name = pvr.pvr_name("s1", f.NS, "data")
    fake.mutate(k.POD_VOLUME_RESTORE, name, f.VNS, lambda o: _target_old_pod(o, phase))
    with pytest.raises(DataRestoreError, match="%s \\(phase %s\\) targets helper pod UID old-uid.* can never complete"
                       % (name, phase)):
        pvr.run(fake, params(volumes=records, pods=pods, wait=False))
    assert fake.find(k.POD_VOLUME_RESTORE, name, f.VNS)["spec"]["pod"]["uid"] == "old-uid"


def test_absent_cancels_then_deletes():
    fake, records, pods = setup()
    agent = fake.controllers.pop()
    pvr.run(fake, params(volumes=records, pods=pods, wait=False))
    name = pvr.pvr_name("s1", f.NS, "data")

    def running(o):
        o.setdefault("status", {}).update(phase="InProgress", progress={"bytesDone": 3072, "totalBytes": 5120})
        o["metadata"].update(finalizers=["velero.io/pod-volume-finalizer"])
    fake.mutate(k.POD_VOLUME_RESTORE, name, f.VNS, running)
    fake.controllers.append(agent)
    patches = []
    real_patch = fake.patch

    def spy(kind, n, patch, namespace=None, patch_type="merge"):
        patches.append((n, patch, patch_type))
        return real_patch(kind, n, patch, namespace, patch_type)
    fake.patch = spy
    result = pvr.run(fake, params(state="absent"))
    assert patches == [(name, {"spec": {"cancel": True}}, "merge")]
    assert result["canceled"] == [name] and result["deleted"] == [name]
    assert fake.find(k.POD_VOLUME_RESTORE, name, f.VNS) is None
    assert pvr.run(fake, params(state="absent"))["changed"] is False
    # how far it got stays in the journal for the report (the PVR is gone): not the New recorded at creation
    journal = sessions.load(fake, f.VNS, "s1").doc["volumes"]["shop/data"]
    assert journal["phase"] == "Canceled" and journal["bytes_done"] == 3072 and journal["total_bytes"] == 5120
    assert journal["message"].startswith("canceled in phase InProgress after 3072 of 5120 bytes were written")


def test_missing_helper_pod_is_explained():
    fake, records = setup()[:2]
    with pytest.raises(PreflightError, match="No helper pod mounts PVC shop/data"):
        pvr.run(fake, params(volumes=records, pods=[{"name": "x", "namespace": f.NS, "uid": "u", "volumes": {}}]))


def test_missing_session():
    fake = FakeKube()
    with pytest.raises(PreflightError, match="Restore session 's1' not found"):
        pvr.run(fake, params(volumes=[f.fs_record("data")]))


def test_new_pvr_without_pod_uid_label_is_recreated_with_it():
    # pod events re-trigger only PVRs labelled velero.io/pod-uid (contract §2): without it a New PVR stays New
    fake, records, pods = setup()
    agent = fake.controllers.pop()
    pvr.run(fake, params(volumes=records, pods=pods, wait=False))
    name = pvr.pvr_name("s1", f.NS, "data")
    fake.mutate(k.POD_VOLUME_RESTORE, name, f.VNS, lambda o: o["metadata"]["labels"].pop("velero.io/pod-uid"))
    fake.controllers.append(agent)
    result = pvr.run(fake, params(volumes=records, pods=pods))
    assert result["volumes"][0]["phase"] == "Completed"
    assert fake.find(k.POD_VOLUME_RESTORE, name, f.VNS)["metadata"]["labels"]["velero.io/pod-uid"] == pods[0]["uid"]


def test_absent_with_keep_final_stops_only_unfinished_ones():
    fake, records, pods = setup(pvcs=("data", "logs"))
    fake.controllers.pop()
    pvr.run(fake, params(volumes=records, pods=pods, wait=False))
    done, queued = pvr.pvr_name("s1", f.NS, "data"), pvr.pvr_name("s1", f.NS, "logs")
    fake.mutate(k.POD_VOLUME_RESTORE, done, f.VNS, lambda o: o.setdefault("status", {}).update(phase="Completed"))
    check = pvr.run(fake, params(state="absent", keep_final=True), check_mode=True)
    assert check["deleted"] == [queued] and fake.find(k.POD_VOLUME_RESTORE, queued, f.VNS) is not None
    result = pvr.run(fake, params(state="absent", keep_final=True))
    assert result["changed"] is True and result["canceled"] == [queued] and result["deleted"] == [queued]
    assert fake.find(k.POD_VOLUME_RESTORE, queued, f.VNS) is None
    assert fake.find(k.POD_VOLUME_RESTORE, done, f.VNS) is not None
    assert pvr.run(fake, params(state="absent", keep_final=True))["changed"] is False


def test_absent_with_keep_final_journals_the_final_ones_a_timed_out_wait_did_not():
    """One PVR failed mid-copy while the wait ran out on another: the journal still said New for it. The rescue's
    cancel keeps it and journals it Failed, so the rescue names the volume as holding part of the backup's data."""
    fake, records, pods = setup(pvcs=("data", "logs"))
    fake.controllers.pop()
    pvr.run(fake, params(volumes=records, pods=pods, wait=False))
    failed = pvr.pvr_name("s1", f.NS, "data")
    fake.mutate(k.POD_VOLUME_RESTORE, failed, f.VNS, lambda o: o.setdefault("status", {}).update(
        phase="Failed", message="disk full", progress={"bytesDone": 500, "totalBytes": 1000}))
    assert sessions.require(fake, f.VNS, "s1").doc["volumes"]["%s/data" % f.NS]["phase"] == "New"
    pvr.run(fake, params(state="absent", keep_final=True))
    journal = sessions.require(fake, f.VNS, "s1").doc["volumes"]
    assert (journal["%s/data" % f.NS]["phase"], journal["%s/data" % f.NS]["bytes_done"]) == ("Failed", 500)
    assert journal["%s/logs" % f.NS]["phase"] == "Canceled"


def test_recreate_waits_for_the_cancel_longer_than_a_short_wait_slice(monkeypatch):
    # Velero may take until its forced cancel (5 min) to let an Accepted PVR go; a 2 s slice must not cut that short
    fake, records, pods = setup()
    agent = fake.controllers.pop()
    pvr.run(fake, params(volumes=records, pods=pods, wait=False))
    name = pvr.pvr_name("s1", f.NS, "data")
    fake.mutate(k.POD_VOLUME_RESTORE, name, f.VNS, lambda o: _target_old_pod(o, "Accepted"))
    fake.controllers.append(agent)
    timeouts, real_wait = [], pvr.wait_for

    def spy(kube, kind, predicate, **kw):
        timeouts.append((kw.get("what") or "", kw["timeout"]))
        return real_wait(kube, kind, predicate, **kw)
    monkeypatch.setattr(pvr, "wait_for", spy)
    result = pvr.run(fake, params(volumes=records, pods=pods, wait_timeout=2))
    assert result["volumes"][0]["phase"] == "Completed"
    deletion = [t for what, t in timeouts if "canceled and deleted" in what]
    assert deletion == [pvr.CANCEL_TIMEOUT], timeouts


@pytest.mark.parametrize("phase,floored", [("Accepted", True), ("Completed", False)])
def test_state_absent_waits_for_a_cancel_as_long_as_velero_may_take(monkeypatch, phase, floored):
    # the floor belongs to the cancel itself: state=absent (the playbooks' rescue) gets it too; final ones go at once
    fake, records, pods = setup()
    agent = fake.controllers.pop()
    pvr.run(fake, params(volumes=records, pods=pods, wait=False))
    name = pvr.pvr_name("s1", f.NS, "data")
    fake.mutate(k.POD_VOLUME_RESTORE, name, f.VNS, lambda o: o.setdefault("status", {}).update(phase=phase))
    fake.controllers.append(agent)
    timeouts, real_wait = [], pvr.wait_for

    def spy(kube, kind, predicate, **kw):
        timeouts.append(kw["timeout"])
        return real_wait(kube, kind, predicate, **kw)
    monkeypatch.setattr(pvr, "wait_for", spy)
    pvr.run(fake, params(state="absent", wait_timeout=2))
    assert timeouts == [pvr.CANCEL_TIMEOUT if floored else 2]


def _pvr_lists(fake):
    return len([r for r in fake.requests if r == ("list", "PodVolumeRestore")])


def test_a_later_wait_slice_continues_the_watch_of_the_one_before_without_listing():
    fake, records, pods = setup()
    agent = fake.controllers.pop()  # the node-agent is slow: nothing happens during the first slice
    first = pvr.run(fake, params(volumes=records, pods=pods, wait_timeout=0, fail_on_timeout=False))
    assert first["done"] is False and first["resume"]["resource_version"]
    assert [o["metadata"]["name"] for o in first["resume"]["objects"]] == ["s1-shop-data"]
    assert all(set(o["metadata"]) <= set(pvr.RESUME_METADATA) and o["spec"]["pod"]
               for o in first["resume"]["objects"])
    fake.controllers.append(agent)
    fake.requests[:] = []
    second = pvr.run(fake, params(volumes=records, pods=pods, wait_timeout=60, fail_on_timeout=False,
                                  resume=first["resume"]))
    assert second["done"] is True and second["volumes"][0]["phase"] == "Completed"
    assert _pvr_lists(fake) == 0 and fake.count("create") == 0, fake.requests
    assert "resume" not in second


def test_a_resume_whose_resource_version_expired_lists_again():
    fake, records, pods = setup()
    agent = fake.controllers.pop()
    first = pvr.run(fake, params(volumes=records, pods=pods, wait_timeout=0, fail_on_timeout=False))
    fake.controllers.append(agent)
    fake.expire_before = 10 ** 9  # the API server no longer has that resourceVersion (HTTP 410)
    fake.requests[:] = []
    with pytest.raises(WaitTimeout):  # every watch is refused here, so the wait cannot finish ...
        pvr.run(fake, params(volumes=records, pods=pods, wait_timeout=1, resume=first["resume"]))
    assert _pvr_lists(fake) >= 1  # ... but it listed again instead of trusting the old state


@pytest.mark.parametrize("resume, message", [
    ({"objects": []}, "resume must be the resume value"),
    ({"resource_version": "12", "objects": "x"}, "resume must be the resume value"),
    ({"resource_version": "12", "objects": [{"metadata": {"name": "s2-shop-data", "labels": names.session_labels(
        "s2", role="pvr")}}]}, "not a PodVolumeRestore of session s1"),
])
def test_a_resume_that_is_not_this_sessions_fails_before_any_request(resume, message):
    fake, records, pods = setup()
    fake.requests[:] = []
    with pytest.raises(PreflightError, match=message):
        pvr.run(fake, params(volumes=records, pods=pods, resume=resume))
    assert fake.requests == []


def test_a_file_system_record_without_uploader_type_is_refused_as_restic():
    """An empty uploaderType is restic to Velero (getUploaderTypeOrDefault); a PVR saying kopia would make the
    node-agent look for a kopia snapshot that is not there."""
    with pytest.raises(PreflightError, match="empty means restic"):
        pvr.check_record(f.fs_record("data", uploader_type=""))
    pvr.check_record(f.fs_record("data", uploader_type="kopia"))


def test_check_mode_before_the_helper_pods_exist_plans_instead_of_failing():
    """--check of the role on an existing session: restore_helper_pod in check mode returns pods without a UID
    (not created); pod_volume_restore in check mode then reports what it would create."""
    fake, records = setup()[:2]
    hp.run(fake, helper_params(state="absent"))  # the helper pods are gone (or not created yet)
    planned = hp.run(fake, helper_params(volumes=records), check_mode=True)["pods"]
    assert planned and not planned[0].get("uid")
    before = [r for r in fake.requests if r[0] in ("create", "patch", "update", "delete")]
    result = pvr.run(fake, params(volumes=records, pods=planned, wait=False), check_mode=True)
    assert result["changed"] is True and [v["action"] for v in result["volumes"]] == ["create"]
    assert [r for r in fake.requests if r[0] in ("create", "patch", "update", "delete")] == before
    with pytest.raises(PreflightError, match="has no UID yet"):
        pvr.run(fake, params(volumes=records, pods=planned, wait=False))


@pytest.mark.parametrize("settings, refused", [
    ({"WriteSparseFiles": "yes"}, "uploader_settings.WriteSparseFiles is 'yes'"),
    ({"ParallelFilesDownload": "4.0"}, "uploader_settings.ParallelFilesDownload is '4.0'"),
    ({"ParallelFilesDownload": " 4"}, "uploader_settings.ParallelFilesDownload is ' 4'"),
    ({"WriteSparseFiles": "T", "ParallelFilesDownload": "+8"}, None),  # what Go's ParseBool / Atoi take
    ({"WriteSparseFiles": False, "ParallelFilesDownload": -1}, None),
])
def test_uploader_settings_values_kopia_refuses_are_refused_before_any_change(settings, refused):
    """kopia's restore parses them (uploader_config.go GetWriteSparseFiles, GetRestoreConcurrency) only after the data
    path was exposed: a bad value failed the restore after the application was stopped."""
    fake, records, pods = setup()
    fake.controllers.pop()
    if refused:
        with pytest.raises(PreflightError, match=re.escape(refused)):
            pvr.run(fake, params(volumes=records, pods=pods, wait=False, uploader_settings=settings))
        assert not fake.all(k.POD_VOLUME_RESTORE)
    else:
        pvr.run(fake, params(volumes=records, pods=pods, wait=False, uploader_settings=settings))
        assert len(fake.all(k.POD_VOLUME_RESTORE)) == 1


@pytest.mark.parametrize("state", ["completed", "terminated:1"])
def test_no_pvr_is_created_for_a_helper_pod_whose_restore_wait_has_exited(state):
    """Velero's node-agent takes a PVR only while restore-wait runs (shouldProcess): one created after it exited
    stayed New until the wait timed out, with a message that blamed labels and the node-agent."""
    fake, records, pods = setup()
    fake.controllers.pop()
    finished = [dict(p, restore_wait=state) for p in pods]
    with pytest.raises(PreflightError, match="restore-wait init container of helper pod .* has already exited") as err:
        pvr.run(fake, params(volumes=records, pods=finished, wait=False))
    if state == "completed":  # exit 0: every volume held the session's done file; new helper pods would exit too
        assert "new session name" in err.value.msg and "state=absent" not in err.value.msg
    else:  # restore-wait crashed: new helper pods run it again
        assert "restore_helper_pod state=absent" in err.value.msg
    assert not fake.all(k.POD_VOLUME_RESTORE)
    assert pvr.run(fake, params(volumes=records, pods=pods, wait=False))["changed"]  # running: created


def test_a_pvr_of_the_session_for_another_snapshot_is_refused_not_reused():
    """A re-run of the session with another backup's record (direct module use: the playbooks' preflight refuses
    another backup first) was answered changed=False, done=True: another backup's data reported as restored."""
    fake, records, pods = setup()
    pvr.run(fake, params(volumes=records, pods=pods))
    writes = [r for r in fake.requests if r[0] not in ("get", "list", "watch")]
    other = [dict(records[0], snapshot_id="snap-of-another-backup")]
    with pytest.raises(PreflightError) as err:
        pvr.run(fake, params(volumes=other, pods=pods))
    assert "restores snapshot %s into volume %s, and this run asks for snapshot snap-of-another-backup" % (
        records[0]["snapshot_id"], records[0]["key"]) in err.value.msg, err.value.msg
    assert "use a new session name" in err.value.msg
    # Velero's done file of the session stays in the volume (non-root restore-wait): deleting the session's
    # PodVolumeRestores would not let it restore the volume again, so that is not offered.
    assert "done file" in err.value.msg and "state=absent" not in err.value.msg
    assert [r for r in fake.requests if r[0] not in ("get", "list", "watch")] == writes


# -- review of 2026-12-06 ------------------------------------------------------------------------------------------
def test_check_mode_predicts_the_failure_of_a_failed_pod_volume_restore_it_keeps():
    fake, records, pods = setup(fail={"snap-data"})
    with pytest.raises(DataRestoreError):
        pvr.run(fake, params(volumes=records, pods=pods))
    with pytest.raises(DataRestoreError, match="retry_failed=true"):
        pvr.run(fake, params(volumes=records, pods=pods), check_mode=True)
    assert pvr.run(fake, params(volumes=records, pods=pods, retry_failed=True), check_mode=True)["changed"] is True


def test_a_run_that_moves_the_session_to_restored_reports_a_change():
    """The PodVolumeRestores completed after the wait of an earlier run timed out; this run creates nothing but moves
    the session (in the same journal write as the final phases), which module.run_module then found done already."""
    fake, records, pods = setup(total=4096)
    agent = fake.controllers.pop()
    first = pvr.run(fake, params(volumes=records, pods=pods, wait_timeout=0, fail_on_timeout=False,
                                 session_state="restored"))
    assert first["done"] is False
    while agent(fake):
        pass
    again = pvr.run(fake, params(volumes=records, pods=pods, session_state="restored"))
    assert sessions.require(fake, f.VNS, "s1").state == "restored"
    assert again["changed"] is True
    assert pvr.run(fake, params(volumes=records, pods=pods, session_state="restored"))["changed"] is False


def test_a_wait_that_times_out_after_creating_reports_the_change():
    fake, records, pods = setup()
    fake.controllers.pop()  # no node-agent: the PVR stays New
    with pytest.raises(WaitTimeout) as err:
        pvr.run(fake, params(volumes=records, pods=pods, wait_timeout=1))
    assert err.value.details["changed"] is True
    assert fake.find(k.POD_VOLUME_RESTORE, pvr.pvr_name("s1", f.NS, "data"), f.VNS) is not None


def _exit_restore_wait(fake, pods, exit_code=0):
    """restore-wait of the helper pods exits (the volumes held this session's done files already)."""
    for pod in pods:
        def exited(obj):
            obj["status"]["initContainerStatuses"] = [
                dict(c, state={"terminated": {"exitCode": exit_code}}) for c in obj["status"]["initContainerStatuses"]]
        fake.mutate(k.POD, pod["name"], pod["namespace"], exited)


@pytest.mark.parametrize("fail_on_timeout", [True, False])
def test_a_pvr_left_untaken_by_a_restore_wait_that_exited_after_the_create_fails_the_wait(fail_on_timeout):
    """restore-wait can exit just after the helper pod was seen running (the done files of an earlier data path of
    the session are there): the PVR then stays New for good. Before, each wait slice went on until restore_timeout."""
    fake, records, pods = setup()
    fake.controllers.pop()  # no node-agent takes it, as Velero's does not
    _exit_restore_wait(fake, pods)
    with pytest.raises(DataRestoreError, match="will never start") as err:
        pvr.run(fake, params(volumes=records, pods=pods, wait_timeout=0, fail_on_timeout=fail_on_timeout))
    assert "s1-shop-data (helper pod shop/%s, restore-wait completed)" % pods[0]["name"] in err.value.msg
    assert "new session" in err.value.msg and err.value.details["changed"] is True
    assert err.value.details["volumes"][0]["phase"] == "New"


def test_an_untaken_pvr_whose_restore_wait_still_runs_is_waited_for_as_before():
    fake, records, pods = setup()
    fake.controllers.pop()
    result = pvr.run(fake, params(volumes=records, pods=pods, wait_timeout=0, fail_on_timeout=False))
    assert result["done"] is False and result["volumes"][0]["phase"] == "New"


def test_a_wait_that_ends_with_every_pvr_taken_reads_no_helper_pod():
    fake, records, pods = setup()

    def takes_and_runs_on(fake):  # a node-agent whose data path is still running when the wait ends
        changed = False
        for obj in fake.all(k.POD_VOLUME_RESTORE, f.VNS):
            if not (obj.get("status") or {}).get("phase"):
                fake.mutate(k.POD_VOLUME_RESTORE, obj["metadata"]["name"], f.VNS,
                            lambda o: o.setdefault("status", {}).update(phase="InProgress"))
                changed = True
        return changed
    fake.controllers[-1] = takes_and_runs_on
    fake.requests[:] = []
    result = pvr.run(fake, params(volumes=records, pods=pods, wait_timeout=1, fail_on_timeout=False))
    assert result["done"] is False and result["volumes"][0]["phase"] not in ("", "New"), result["volumes"]
    assert not [r for r in fake.requests if r[0] == "list" and r[1] == k.POD.kind], fake.requests


def _wait_timeouts(monkeypatch):
    """The timeouts pvr's waits ask for; each one ends at once here (a fake clock would not stop the fake's
    server-side watch timeouts)."""
    timeouts, real_wait = [], pvr.wait_for

    def spy(kube, kind, predicate, **kw):
        timeouts.append(kw["timeout"])
        return real_wait(kube, kind, predicate, **dict(kw, timeout=0))
    monkeypatch.setattr(pvr, "wait_for", spy)
    return timeouts


@pytest.mark.parametrize("exited", [True, False])
def test_a_long_wait_looks_at_the_helper_pods_of_untaken_pvrs_early(monkeypatch, exited):
    """A wait of 10 minutes fails after its first look (UNTAKEN_LOOK_AFTER) when restore-wait has exited, and goes on
    waiting for the rest of the 10 minutes when it runs."""
    fake, records, pods = setup()
    fake.controllers.pop()
    if exited:
        _exit_restore_wait(fake, pods)
    timeouts = _wait_timeouts(monkeypatch)
    if exited:
        with pytest.raises(DataRestoreError, match="will never start") as err:
            pvr.run(fake, params(volumes=records, pods=pods, wait_timeout=600))
        assert not isinstance(err.value, WaitTimeout)
        assert timeouts == [pvr.UNTAKEN_LOOK_AFTER]
    else:
        with pytest.raises(WaitTimeout):
            pvr.run(fake, params(volumes=records, pods=pods, wait_timeout=600))
        # the rest of the 600 s (no time passed here: each wait ended at once)
        assert timeouts[0] == pvr.UNTAKEN_LOOK_AFTER and 590 < timeouts[1] <= 600 and len(timeouts) == 2


def test_a_long_wait_whose_pvrs_are_taken_already_is_one_wait(monkeypatch):
    fake, records, pods = setup()
    fake.controllers.pop()
    pvr.run(fake, params(volumes=records, pods=pods, wait=False))
    for obj in fake.all(k.POD_VOLUME_RESTORE, f.VNS):
        fake.mutate(k.POD_VOLUME_RESTORE, obj["metadata"]["name"], f.VNS,
                    lambda o: o.setdefault("status", {}).update(phase="InProgress"))
    timeouts = _wait_timeouts(monkeypatch)
    result = pvr.run(fake, params(volumes=records, pods=pods, wait_timeout=600, fail_on_timeout=False))
    assert result["done"] is False and timeouts == [600]
