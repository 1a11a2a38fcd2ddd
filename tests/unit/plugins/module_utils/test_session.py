import json

import pytest

from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils import names
from ansible_collections.velero.data_restore.plugins.module_utils import session as s
from ansible_collections.velero.data_restore.plugins.module_utils.errors import (
    ConflictError,
    DataRestoreError,
    PreflightError,
)
from fake_kube import FakeKube

NS = "velero"
DEPLOY = {"kind": "Deployment", "namespace": "shop", "name": "web"}


@pytest.fixture
def kube():
    return FakeKube()


def test_ensure_creates_configmap_with_labels_and_valid_document(kube):
    sess, changed = s.ensure(kube, NS, "nightly", mode="in_place", backup={"name": "b1"})
    assert changed
    cm = kube.find(k.CONFIG_MAP, "data-restore-nightly", NS)
    assert cm["metadata"]["labels"][names.LABEL_MANAGED_BY] == names.MANAGED_BY
    assert cm["metadata"]["labels"][names.LABEL_SESSION] == "nightly"
    doc = json.loads(cm["data"][s.DATA_KEY])
    assert s.validate_document(doc) == []
    assert doc["mode"] == "in_place" and doc["backup"] == {"name": "b1"} and doc["state"] == "planned"
    assert sess.uid == cm["metadata"]["uid"]


def test_ensure_is_idempotent(kube):
    s.ensure(kube, NS, "nightly", mode="in_place", backup={"name": "b1"})
    writes = kube.count("create") + kube.count("update")
    _sess, changed = s.ensure(kube, NS, "nightly", mode="in_place", backup={"name": "b1"})
    assert not changed
    assert kube.count("create") + kube.count("update") == writes


def test_ensure_check_mode_creates_nothing(kube):
    sess, changed = s.ensure(kube, NS, "nightly", mode="replace", check_mode=True)
    assert changed and sess is None
    assert kube.all(k.CONFIG_MAP) == []


@pytest.mark.parametrize("mode,backup,needle", [
    ("replace", {"name": "b1"}, "mode in_place (asked: replace)"),
    ("in_place", {"name": "b2"}, "backup b1 (asked: b2)"),
])
def test_ensure_refuses_a_different_restore_under_the_same_name(kube, mode, backup, needle):
    s.ensure(kube, NS, "nightly", mode="in_place", backup={"name": "b1"})
    with pytest.raises(PreflightError) as err:
        s.ensure(kube, NS, "nightly", mode=mode, backup=backup)
    assert needle in err.value.msg


def test_foreign_configmap_with_the_session_name_is_refused(kube):
    kube.add(k.CONFIG_MAP, {"metadata": {"name": "data-restore-x", "namespace": NS}, "data": {}})
    with pytest.raises(PreflightError) as err:
        s.load(kube, NS, "x")
    assert "not a velero.data_restore session" in err.value.msg


@pytest.mark.parametrize("bad", ["Upper", "-lead", "trail-", "a" * (names.MAX_SESSION + 1), "dots.not.ok", ""])
def test_invalid_session_names_fail_before_any_request(kube, bad):
    with pytest.raises(PreflightError):
        s.ensure(kube, NS, bad)
    assert kube.requests == []


def test_record_undo_first_record_wins(kube):
    s.ensure(kube, NS, "nightly")
    first = s.record_undo(kube, NS, "nightly", "scale", DEPLOY, {"replicas": 3})
    again = s.record_undo(kube, NS, "nightly", "scale", DEPLOY, {"replicas": 0})
    assert first["original"] == again["original"] == {"replicas": 3}
    doc = s.require(kube, NS, "nightly").doc
    assert [r["id"] for r in doc["undo"]] == ["scale:Deployment/shop/web"]
    assert s.validate_document(doc) == []


def test_record_undo_in_check_mode_writes_nothing(kube):
    s.ensure(kube, NS, "nightly")
    before = kube.count("update")
    s.record_undo(kube, NS, "nightly", "scale", DEPLOY, {"replicas": 3}, check_mode=True)
    assert kube.count("update") == before


def test_update_retries_on_conflict(kube):
    s.ensure(kube, NS, "nightly")
    kube.fail_next["update"] = ConflictError("modified", status=409)
    updated = s.update(kube, NS, "nightly", lambda d: d.update(state="restoring"))
    assert updated.state == "restoring"


def test_update_gives_up_after_repeated_conflicts(kube, monkeypatch):
    s.ensure(kube, NS, "nightly")
    original_replace = kube.replace

    def always_conflict(*args, **kwargs):
        kube.requests.append(("update", "ConfigMap"))
        raise ConflictError("modified", status=409)

    monkeypatch.setattr(kube, "replace", always_conflict)
    with pytest.raises(DataRestoreError) as err:
        s.update(kube, NS, "nightly", lambda d: d.update(state="restoring"))
    assert "kept changing" in err.value.msg
    monkeypatch.setattr(kube, "replace", original_replace)


def test_owner_reference_points_at_the_configmap(kube):
    sess = s.ensure(kube, NS, "nightly")[0]
    ref = sess.owner_reference()
    assert ref == {"apiVersion": "v1", "kind": "ConfigMap", "name": "data-restore-nightly",
                   "uid": sess.uid, "controller": True}


def test_delete_refuses_with_pending_undo_unless_forced(kube):
    s.ensure(kube, NS, "nightly")
    s.record_undo(kube, NS, "nightly", "scale", DEPLOY, {"replicas": 3})
    with pytest.raises(PreflightError) as err:
        s.delete(kube, NS, "nightly")
    assert "scale:Deployment/shop/web" in err.value.msg
    assert s.delete(kube, NS, "nightly", force=True)
    assert s.load(kube, NS, "nightly") is None
    assert not s.delete(kube, NS, "nightly")


def test_delete_after_revert(kube):
    s.ensure(kube, NS, "nightly")
    rec = s.record_undo(kube, NS, "nightly", "scale", DEPLOY, {"replicas": 3})
    s.set_undo_status(kube, NS, "nightly", rec["id"], "reverted")
    assert s.delete(kube, NS, "nightly")


def test_set_state_and_volume_are_idempotent(kube):
    s.ensure(kube, NS, "nightly")
    _sess, changed = s.set_state(kube, NS, "nightly", "restoring")
    assert changed
    _sess, changed = s.set_state(kube, NS, "nightly", "restoring")
    assert not changed
    _sess, changed = s.set_volume(kube, NS, "nightly", "shop/data", {"phase": "New"})
    assert changed
    _sess, changed = s.set_volume(kube, NS, "nightly", "shop/data", {"phase": "New"})
    assert not changed
    with pytest.raises(PreflightError):
        s.set_state(kube, NS, "nightly", "bogus")


def test_history_records_events(kube):
    s.ensure(kube, NS, "nightly")
    s.set_state(kube, NS, "nightly", "failed", error="boom")
    doc = s.require(kube, NS, "nightly").doc
    assert doc["error"] == "boom"
    assert [h["event"] for h in doc["history"]] == ["created", "state failed"]


def test_corrupt_document_is_reported(kube):
    kube.add(k.CONFIG_MAP, {"metadata": {"name": "data-restore-x", "namespace": NS,
                                         "labels": names.session_labels("x")},
                            "data": {s.DATA_KEY: "{not json"}})
    with pytest.raises(DataRestoreError) as err:
        s.load(kube, NS, "x")
    assert "not JSON" in err.value.msg


def test_unknown_state_fails_before_any_request(kube):
    s.ensure(kube, NS, "nightly")
    before = kube.count()
    with pytest.raises(PreflightError) as err:
        s.set_state(kube, NS, "nightly", "done")
    assert "Unknown session state 'done'" in err.value.msg
    with pytest.raises(PreflightError):
        s.update(kube, NS, "nightly", lambda doc: None, state="done")
    assert kube.count() == before
    assert s.require(kube, NS, "nightly").state == "planned"


def test_a_stale_copy_cannot_replace_the_plan_of_a_session_that_started_meanwhile():
    """Run B read the session while it was planned, then spent seconds building its plan; run A started the
    restore meanwhile. B's write conflicts, re-reads, and must not put its plan into the started session."""
    cluster = FakeKube()
    s.ensure(cluster, NS, "nightly", mode="in_place", plan={"volumes": ["shop/data"]}, run="run-a")
    run_b = FakeKube()
    run_b.objects = cluster.objects
    run_b.session_cache = {}
    assert s.load(run_b, NS, "nightly").state == "planned"  # B's copy
    s.set_state(cluster, NS, "nightly", "quiescing")  # A goes on
    with pytest.raises(PreflightError, match="moved to quiescing while this run was planning it"):
        s.ensure(run_b, NS, "nightly", mode="in_place", plan={"volumes": ["shop/data", "shop/logs"]}, run="run-b")
    fresh = s.load(cluster, NS, "nightly")
    assert fresh.doc["plan"] == {"volumes": ["shop/data"]} and fresh.run == "run-a"
