"""The request-saving rules: one session read per module run, batched journal writes, plan + session in one
call, LIST reuse, get_many/create_many. Each test counts what the fake API server was asked."""

import re

import pytest

from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils import plan
from ansible_collections.velero.data_restore.plugins.module_utils import session as s
from ansible_collections.velero.data_restore.plugins.module_utils import workloads as w
from ansible_collections.velero.data_restore.plugins.module_utils.errors import ConflictError, PreflightError
from ansible_collections.velero.data_restore.plugins.module_utils.waiting import WaitState, wait_for
from fake_kube import FakeKube
import velero_fixtures as f

VNS = "velero"
NS = "shop"
TARGET = {"kind": "Deployment", "namespace": NS, "name": "web", "uid": "u1"}


def cached_kube(**kwargs):
    fake = FakeKube(**kwargs)
    fake.session_cache = {}  # what module.run_module sets on the Kube of a module run
    return fake


def gets(fake, kind="ConfigMap"):
    return len([r for r in fake.requests if r == ("get", kind)])


# ----------------------------------------------------------------------------- session cache
def test_session_is_read_once_per_module_run_and_written_with_that_version():
    fake = cached_kube()
    s.ensure(fake, VNS, "nightly", mode="in_place")
    before = gets(fake)
    for state in ("quiescing", "quiesced", "restoring"):
        s.set_state(fake, VNS, "nightly", state)
    s.record_undo(fake, VNS, "nightly", "scale", TARGET, {"replicas": 3})
    assert gets(fake) == before  # created in this run: never read again
    assert s.require(fake, VNS, "nightly").state == "restoring"
    assert len(s.require(fake, VNS, "nightly").doc["undo"]) == 1


def test_without_the_cache_every_step_reads_the_session():
    fake = FakeKube()
    s.ensure(fake, VNS, "nightly", mode="in_place")
    before = gets(fake)
    s.set_state(fake, VNS, "nightly", "quiesced")
    assert gets(fake) > before


def test_a_conflicting_writer_makes_the_cached_run_re_read_and_keep_both_changes():
    fake = cached_kube()
    s.ensure(fake, VNS, "nightly", mode="in_place")
    other = FakeKube.__new__(FakeKube)  # another process: same objects, no cache
    other.__dict__.update(fake.__dict__)
    other.session_cache = None
    s.set_state(other, VNS, "nightly", "quiesced")  # the cached copy of `fake` is now stale
    s.record_undo(fake, VNS, "nightly", "scale", TARGET, {"replicas": 3})
    fresh = s.require(other, VNS, "nightly")
    assert fresh.state == "quiesced"
    assert [r["id"] for r in fresh.doc["undo"]] == [s.undo_id("scale", TARGET)]


def test_a_session_deleted_meanwhile_is_reported_not_resurrected():
    fake = cached_kube()
    s.ensure(fake, VNS, "nightly", mode="in_place")
    fake.delete(k.CONFIG_MAP, "data-restore-nightly", VNS)  # by another process
    with pytest.raises(PreflightError, match="not found"):
        s.set_state(fake, VNS, "nightly", "quiesced")
    assert fake.all(k.CONFIG_MAP) == []


# ----------------------------------------------------------------------------- batched journal writes
def test_record_undo_many_is_one_write_and_first_record_wins():
    fake = FakeKube()
    s.ensure(fake, VNS, "nightly", mode="in_place")
    s.record_undo(fake, VNS, "nightly", "scale", TARGET, {"replicas": 3})
    other = dict(TARGET, name="db", uid="u2")
    writes = fake.count("update")
    records = s.record_undo_many(fake, VNS, "nightly", [
        ("scale", TARGET, {"replicas": 0}), ("scale", other, {"replicas": 2})])
    assert fake.count("update") == writes + 1
    assert records[s.undo_id("scale", TARGET)]["original"] == {"replicas": 3}
    assert records[s.undo_id("scale", other)]["original"] == {"replicas": 2}


def test_record_undo_many_renews_a_reverted_record_only_when_asked():
    fake = FakeKube()
    s.ensure(fake, VNS, "nightly", mode="in_place")
    rid = s.record_undo(fake, VNS, "nightly", "scale", TARGET, {"replicas": 3})["id"]
    s.set_undo_status(fake, VNS, "nightly", rid, "reverted")
    kept = s.record_undo_many(fake, VNS, "nightly", [("scale", TARGET, {"replicas": 5})])[rid]
    assert kept["status"] == "reverted" and kept["original"] == {"replicas": 3}
    renewed = s.record_undo_many(fake, VNS, "nightly", [("scale", TARGET, {"replicas": 5})], renew_reverted=True)[rid]
    assert renewed["status"] == "recorded" and renewed["original"] == {"replicas": 5}


def test_set_undo_status_many_is_one_write():
    fake = FakeKube()
    s.ensure(fake, VNS, "nightly", mode="in_place")
    other = dict(TARGET, name="db", uid="u2")
    records = s.record_undo_many(fake, VNS, "nightly", [("scale", TARGET, {"replicas": 3}), ("scale", other, {"replicas": 1})])
    writes = fake.count("update")
    s.set_undo_status_many(fake, VNS, "nightly", dict((rid, ("applied", {"pvcs": ["data"]})) for rid in records))
    assert fake.count("update") == writes + 1
    doc = s.require(fake, VNS, "nightly").doc
    assert [(r["status"], r["pvcs"]) for r in doc["undo"]] == [("applied", ["data"]), ("applied", ["data"])]
    assert s.set_undo_status_many(fake, VNS, "nightly", {}) is None


def test_stopping_two_workloads_records_both_before_the_first_patch():
    fake = FakeKube(missing_kinds=(k.DEPLOYMENT_CONFIG,))
    s.ensure(fake, VNS, "nightly", mode="in_place")
    for name, claim in (("web", "data"), ("api", "cache")):
        fake.add(k.DEPLOYMENT, {"metadata": {"name": name, "namespace": NS}, "spec": {"replicas": 2},
                                "status": {"readyReplicas": 2, "observedGeneration": 1}})
        fake.add(k.POD, {"metadata": {"name": name + "-0", "namespace": NS, "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "Deployment", "name": name, "controller": True,
            "uid": fake.find(k.DEPLOYMENT, name, NS)["metadata"]["uid"]}]},
            "spec": {"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]},
            "status": {"phase": "Running"}})

    def pods_go(fk):
        changed = False
        for dep in fk.all(k.DEPLOYMENT, NS):
            if dep["spec"]["replicas"] == 0:
                for pod in fk.all(k.POD, NS):
                    if pod["metadata"]["name"].startswith(dep["metadata"]["name"] + "-"):
                        fk.delete(k.POD, pod["metadata"]["name"], NS)
                        changed = True
        return changed
    fake.controllers.append(pods_go)
    journal_at_first_patch = []
    original_patch = fake.patch

    def patch(kind, name, body, namespace=None, patch_type="merge"):
        if not journal_at_first_patch:
            journal_at_first_patch.append(s.require(fake, VNS, "nightly").doc)
        return original_patch(kind, name, body, namespace, patch_type)

    fake.patch = patch
    start = len(fake.requests)
    result = w.scale(fake, dict(state="stopped", velero_namespace=VNS, session="nightly", namespace=NS,
                                pvcs=["data", "cache"], workloads=None, pause_gitops=False, wait=True, wait_timeout=10,
                                session_state="quiesced"))
    assert sorted(i["action"] for i in result["workloads"]) == ["stopped", "stopped"]
    requests = fake.requests[start:]
    updates = [i for i, r in enumerate(requests) if r == ("update", "ConfigMap")]
    patches = [i for i, r in enumerate(requests) if r == ("patch", "Deployment")]
    # one write records both (with their claims) before the first patch; one marks them applied + the state
    assert len(updates) == 2 and updates[0] < patches[0] and patches[-1] < updates[1]
    # one LIST finds the targets, gives pods_waited and seeds the wait (its watch delivers the deletions)
    assert len([r for r in requests if r == ("list", "Pod")]) == 1
    assert len([r for r in requests if r == ("watch", "Pod")]) >= 1
    recorded = journal_at_first_patch[0]["undo"]
    assert sorted((r["target"]["name"], r["status"], r["pvcs"]) for r in recorded) == [
        ("api", "recorded", ["cache", "data"]), ("web", "recorded", ["cache", "data"])]
    doc = s.require(fake, VNS, "nightly").doc
    assert sorted((r["target"]["name"], r["status"]) for r in doc["undo"]) == [("api", "applied"), ("web", "applied")]
    assert doc["state"] == "quiesced"


def test_a_stop_whose_wait_times_out_marks_the_records_applied_but_not_the_state():
    fake = FakeKube(missing_kinds=(k.DEPLOYMENT_CONFIG,))
    s.ensure(fake, VNS, "nightly", mode="in_place")
    fake.add(k.DEPLOYMENT, {"metadata": {"name": "web", "namespace": NS}, "spec": {"replicas": 2},
                            "status": {"readyReplicas": 2, "observedGeneration": 1}})
    fake.add(k.POD, {"metadata": {"name": "web-0", "namespace": NS, "ownerReferences": [{
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "controller": True,
        "uid": fake.find(k.DEPLOYMENT, "web", NS)["metadata"]["uid"]}]},
        "spec": {"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "data"}}]},
        "status": {"phase": "Running"}})  # no controller deletes it: the wait times out
    with pytest.raises(w.DataRestoreError, match="Timed out"):
        w.scale(fake, dict(state="stopped", velero_namespace=VNS, session="nightly", namespace=NS, pvcs=["data"],
                           workloads=None, pause_gitops=False, wait=True, wait_timeout=0, session_state="quiesced"))
    doc = s.require(fake, VNS, "nightly").doc
    assert [(r["status"], r["pvcs"]) for r in doc["undo"]] == [("applied", ["data"])] and doc["state"] == "planned"


# ----------------------------------------------------------------------------- plan + session in one call
@pytest.fixture
def planned():
    store = f.ObjectStore()
    fake = FakeKube()
    fake.controllers.append(f.download_controller(store))
    fake.add(k.BACKUP_STORAGE_LOCATION, f.bsl())
    for name in ("shop", VNS):
        fake.add(k.NAMESPACE, f.namespace(name))
    fake.add(k.BACKUP, f.backup("nightly"))
    store.put("nightly", [f.vi_pvb("data-app-0", "app-0", "data", size=1024)])
    fake.add(k.PVC, f.pvc("data-app-0"))
    return fake, store


def test_plan_session_creates_the_session_with_plan_and_backup(planned):
    fake, store = planned
    result, sess, continued, changed = plan.plan_session(
        fake, VNS, "nightly-shop", backup="nightly", mode="in_place", source_namespace="shop", fetch=store.fetch,
        volume_info_timeout=5, quiesce="none")
    assert changed and not continued
    assert sess.state == "planned" and sess.doc["plan"] == result and sess.doc["backup"]["name"] == "nightly"
    assert "volumes" not in sess.doc["backup"]
    assert [v["target_pvc"] for v in result["volumes"]] == ["data-app-0"]
    assert result["restore_timeout"] == 3601  # an hour, plus 1 KiB at 20 MiB/s rounded up


def test_plan_session_continues_a_started_session_without_reading_the_backup(planned):
    fake, store = planned
    first, _sess, _c, _ch = plan.plan_session(fake, VNS, "nightly-shop", backup="nightly", mode="in_place",
                                              source_namespace="shop", fetch=store.fetch, volume_info_timeout=5,
                                              quiesce="none")
    s.set_state(fake, VNS, "nightly-shop", "quiesced")
    fake.delete(k.BACKUP, "nightly", VNS)  # even gone, the recorded plan is what a re-run continues with
    before = len(fake.requests)
    again, sess, continued, changed = plan.plan_session(fake, VNS, "nightly-shop", backup="nightly", mode="in_place",
                                                        source_namespace="shop", fetch=store.fetch)
    assert continued and not changed and again == first and sess.state == "quiesced"
    assert [r for r in fake.requests[before:] if r[1] != "ConfigMap"] == []


def test_plan_session_refuses_another_mode_for_a_started_session(planned):
    fake, store = planned
    plan.plan_session(fake, VNS, "nightly-shop", backup="nightly", mode="in_place", source_namespace="shop",
                      fetch=store.fetch, volume_info_timeout=5, quiesce="none")
    s.set_state(fake, VNS, "nightly-shop", "restoring")
    with pytest.raises(PreflightError, match="already exists with mode in_place"):
        plan.plan_session(fake, VNS, "nightly-shop", backup="nightly", mode="replace", source_namespace="shop")


def test_plan_session_pins_the_swap_mode_of_a_replace(planned):
    """A re-run that asks for another swap_mode would finish a begun swap the other way (claim deleted under a
    patched workload)."""
    fake, store = planned
    fake.add(k.STORAGE_CLASS, f.storage_class("sim-immediate"))
    fake.add(k.DEPLOYMENT, f.deployment_mounting("web", [c["metadata"]["name"] for c in fake.all(k.PVC, "shop")]))
    first, _s, _c, _ch = plan.plan_session(fake, VNS, "nightly-shop", backup="nightly", mode="replace",
                                           source_namespace="shop", fetch=store.fetch, volume_info_timeout=5,
                                           quiesce="none", swap_mode="template")
    assert first["swap_mode"] == "template"
    s.set_state(fake, VNS, "nightly-shop", "restored")
    # no swap began: another mode is still open (template refused for a claim template: use rebind)
    plan.plan_session(fake, VNS, "nightly-shop", backup="nightly", mode="replace", source_namespace="shop",
                      swap_mode="rebind")
    target = {"kind": "Deployment", "namespace": "shop", "name": "web", "uid": "u"}
    s.record_undo(fake, VNS, "nightly-shop", s.ACTION_TEMPLATE, target, {"volumes": []})
    s.set_undo_status(fake, VNS, "nightly-shop", s.undo_id(s.ACTION_TEMPLATE, target), "applied",
                      swaps={"data-app-0": "data-app-0-restored"})  # a template swap began
    with pytest.raises(PreflightError, match=r"swap_mode: recorded template, asked rebind"):
        plan.plan_session(fake, VNS, "nightly-shop", backup="nightly", mode="replace", source_namespace="shop",
                          swap_mode="rebind")
    again, _s, continued, _ch = plan.plan_session(fake, VNS, "nightly-shop", backup="nightly", mode="replace",
                                                  source_namespace="shop", swap_mode="template")
    assert continued and again == first


def _started(fake, store, state):
    plan.plan_session(fake, VNS, "nightly-shop", backup="nightly", mode="in_place", source_namespace="shop",
                      fetch=store.fetch, volume_info_timeout=5, quiesce="none")
    s.set_state(fake, VNS, "nightly-shop", state)
    return fake.find(k.CONFIG_MAP, "data-restore-nightly-shop", VNS)["metadata"]["resourceVersion"]


@pytest.mark.parametrize("state", ["completed", "rolled_back"])
@pytest.mark.parametrize("asked", ["nightly-2", {"name": "nightly-2", "uid": "u2"}], ids=["by_name", "latest"])
def test_plan_session_refuses_another_backup_for_a_settled_session(planned, state, asked):
    """Else the re-run of a finished session with tomorrow's backup reports success and restores nothing."""
    fake, store = planned
    version = _started(fake, store, state)
    with pytest.raises(PreflightError, match=r"already %s a different restore \(backup: recorded nightly, asked "
                                             r"nightly-2\)" % state.replace("_", " ")):
        plan.plan_session(fake, VNS, "nightly-shop", backup=asked, mode="in_place", source_namespace="shop")
    assert fake.find(k.CONFIG_MAP, "data-restore-nightly-shop", VNS)["metadata"]["resourceVersion"] == version


def test_plan_session_refuses_another_named_backup_for_an_unfinished_session(planned):
    """Else a failed session's re-run restores the recorded backup, not the one asked for."""
    fake, store = planned
    version = _started(fake, store, "failed")
    with pytest.raises(PreflightError, match=r"is failed with a different restore \(backup: recorded nightly, asked "
                                             r"nightly-2\). Re-run with the recorded inputs"):
        plan.plan_session(fake, VNS, "nightly-shop", backup="nightly-2", mode="in_place", source_namespace="shop")
    assert fake.find(k.CONFIG_MAP, "data-restore-nightly-shop", VNS)["metadata"]["resourceVersion"] == version


@pytest.mark.parametrize("state", ["completed", "quiesced"])
@pytest.mark.parametrize("asked,message", [
    (dict(target_namespace="shop-test2"), "target namespace: recorded shop, asked shop-test2"),
    (dict(namespace_mapping={"shop": "shop-test2"}), "target namespace: recorded shop, asked shop-test2"),
    (dict(volumes=["data-app-0", "db-data"]), "volumes: recorded data-app-0, asked data-app-0, db-data"),
], ids=["target_namespace", "namespace_mapping", "volumes"])
def test_plan_session_refuses_other_inputs_for_a_started_session(planned, state, asked, message):
    """The default session name has no target namespace: a second clone into another namespace must not continue
    (or report as done) the first one."""
    fake, store = planned
    version = _started(fake, store, state)
    with pytest.raises(PreflightError, match=re.escape(message)):
        plan.plan_session(fake, VNS, "nightly-shop", backup="nightly", mode="in_place",
                          **dict(dict(source_namespace="shop"), **asked))
    assert fake.find(k.CONFIG_MAP, "data-restore-nightly-shop", VNS)["metadata"]["resourceVersion"] == version


def test_plan_session_same_inputs_continue(planned):
    fake, store = planned
    _started(fake, store, "quiesced")
    _plan, _sess, continued, _changed = plan.plan_session(
        fake, VNS, "nightly-shop", backup="nightly", mode="in_place", source_namespace="shop",
        target_namespace="shop", volumes=["data-app-0"])
    assert continued


def test_plan_session_latest_continues_an_unfinished_session_with_a_warning(planned):
    """latest=true may name a newer backup after an interruption: the started restore finishes first."""
    fake, store = planned
    _started(fake, store, "quiesced")
    warnings = []
    again, sess, continued, _changed = plan.plan_session(
        fake, VNS, "nightly-shop", backup={"name": "nightly-2", "uid": "u2"}, mode="in_place",
        source_namespace="shop", continue_warnings=warnings)
    assert continued and sess.doc["backup"]["name"] == "nightly" and again["backup"]["name"] == "nightly"
    assert len(warnings) == 1 and "continues; latest=true names nightly-2 now" in warnings[0]


def test_plan_session_check_mode_writes_nothing(planned):
    fake, store = planned
    _result, sess, continued, changed = plan.plan_session(
        fake, VNS, "nightly-shop", check_mode=True, backup="nightly", mode="in_place", source_namespace="shop",
        fetch=store.fetch, volume_info_timeout=5, quiesce="none")
    assert changed and sess is None and not continued
    assert fake.all(k.CONFIG_MAP) == []


def test_plan_session_needs_a_session_name(planned):
    fake, _store = planned
    with pytest.raises(PreflightError, match="needs session"):
        plan.plan_session(fake, VNS, None, backup="nightly", mode="in_place")


# ----------------------------------------------------------------------------- reads and creates in bulk
def test_get_many_gets_a_few_and_lists_many():
    fake = FakeKube()
    for i in range(6):
        fake.add(k.PVC, {"metadata": {"name": "c%d" % i, "namespace": NS}, "spec": {}})
    few = k.get_many(fake, k.PVC, ["c0", "c1", "nope"], NS)
    assert few["nope"] is None and few["c1"]["metadata"]["name"] == "c1"
    assert fake.count("list") == 0 and fake.count("get") == 3
    many = k.get_many(fake, k.PVC, ["c0", "c1", "c2", "c3", "nope", None], NS)
    assert sorted(many) == ["c0", "c1", "c2", "c3", "nope"] and many["nope"] is None
    assert fake.count("list") == 1 and fake.count("get") == 3


def test_create_many_keeps_order_and_raises_the_first_error_after_all_requests():
    fake = FakeKube()
    fake.add(k.CONFIG_MAP, {"metadata": {"name": "taken", "namespace": NS}})
    bodies = [{"metadata": {"name": name, "namespace": NS}} for name in ("a", "b", "taken", "c", "d")]
    with pytest.raises(ConflictError):
        k.create_many(fake, k.CONFIG_MAP, bodies, NS, workers=4)
    assert sorted(o["metadata"]["name"] for o in fake.all(k.CONFIG_MAP, NS)) == ["a", "b", "c", "d", "taken"]
    made = k.create_many(fake, k.CONFIG_MAP, [{"metadata": {"name": n, "namespace": NS}} for n in ("e", "f", "g")],
                         NS, workers=4)
    assert [o["metadata"]["name"] for o in made] == ["e", "f", "g"]


def test_wait_for_starts_from_the_callers_list():
    fake = FakeKube()
    fake.add(k.CONFIG_MAP, {"metadata": {"name": "a", "namespace": NS}, "data": {"done": "yes"}})
    items, version = fake.list(k.CONFIG_MAP, namespace=NS)
    lists = fake.count("list")
    out = wait_for(fake, k.CONFIG_MAP, lambda objs: WaitState(all(o.get("data") for o in objs)), namespace=NS,
                   timeout=5, initial=(items, version))
    assert [o["metadata"]["name"] for o in out] == ["a"] and fake.count("list") == lists


def test_running_pods_of_claims_are_trimmed_for_hooks():
    fake = FakeKube()
    fake.add(k.POD, {"metadata": {"name": "web-0", "namespace": NS, "annotations": {
        "post.hook.restore.velero.io/command": "[\"true\"]"}, "labels": {}},
        "spec": {"containers": [{"name": "app", "image": "x"}], "volumes": [
            {"name": "d", "persistentVolumeClaim": {"claimName": "data"}}, {"name": "tmp", "emptyDir": {}}]},
        "status": {"phase": "Running"}})
    fake.add(k.POD, {"metadata": {"name": "other", "namespace": NS}, "spec": {"volumes": []},
                     "status": {"phase": "Running"}})
    fake.add(k.POD, {"metadata": {"name": "web-old", "namespace": NS}, "spec": {"volumes": [
        {"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}, "status": {"phase": "Succeeded"}})
    (pod,) = w.running_pods_of_claims(fake, NS, ["data"])
    assert pod["metadata"]["name"] == "web-0" and pod["spec"]["containers"] == [{"name": "app"}]
    assert pod["spec"]["volumes"] == [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]
    assert pod["metadata"]["annotations"]["post.hook.restore.velero.io/command"] == "[\"true\"]"


def test_owners_of_many_pods_are_listed_once_per_kind_not_read_one_by_one():
    fake = FakeKube(missing_kinds=(k.DEPLOYMENT_CONFIG, k.KEDA_SCALED_JOB))
    claims = []
    for i in range(6):
        name, claim = "web%d" % i, "data%d" % i
        claims.append(claim)
        dep = fake.add(k.DEPLOYMENT, {"metadata": {"name": name, "namespace": NS}, "spec": {"replicas": 1}})
        rs = fake.add(k.REPLICA_SET, {"metadata": {"name": name + "-5d9f", "namespace": NS, "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": dep["metadata"]["uid"],
            "controller": True}]}, "spec": {"replicas": 1}})
        fake.add(k.POD, {"metadata": {"name": name + "-5d9f-0", "namespace": NS, "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs["metadata"]["name"], "uid": rs["metadata"]["uid"],
            "controller": True}]}, "spec": {"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]},
            "status": {"phase": "Running"}})
    found, warnings = w.discover(fake, NS, claims)
    assert sorted(o["metadata"]["name"] for o in found) == ["web%d" % i for i in range(6)] and warnings == []
    assert fake.count("get") == 0
    assert sorted(kind for verb, kind in fake.requests if verb == "list") == [
        "CronJob", "Deployment", "Pod", "ReplicaSet", "StatefulSet"]
