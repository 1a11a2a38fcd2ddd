"""The session fence: the newest playbook run of a session goes on, an older one stops before it changes anything."""

import pytest

from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils import module as m
from ansible_collections.velero.data_restore.plugins.module_utils import session as s
from ansible_collections.velero.data_restore.plugins.module_utils.errors import SupersededError
from fake_kube import FakeKube

VNS = "velero"
POD = {"metadata": {"name": "restore-helper", "namespace": "shop"}}


class FakeModule(object):
    def __init__(self, **params):
        self.check_mode = False
        self.params = dict(velero_namespace=VNS, session="nightly", session_run=None)
        self.params.update(params)


def module_run(cluster, run, **params):
    """The Kube of one module process of ``run``: the same cluster, its own session cache, fenced as run_module
    fences it."""
    proc = FakeKube()
    proc.objects, proc.events, proc._rv = cluster.objects, cluster.events, cluster._rv
    proc.session_cache = {}
    takes_over = params.pop("takes_over", False)
    m._fence(FakeModule(session_run=run, **params), proc, takes_over)
    return proc


@pytest.fixture
def cluster():
    kube = FakeKube()
    kube.add(k.POD, POD)
    s.ensure(kube, VNS, "nightly", mode="in_place", run="run-a")
    return kube


def test_a_new_session_is_held_by_the_run_that_created_it(cluster):
    held = s.require(cluster, VNS, "nightly")
    assert held.run == "run-a"
    assert s.validate_document(held.doc) == []


def test_the_holding_run_reads_and_writes_as_before(cluster):
    proc = module_run(cluster, "run-a")
    s.set_state(proc, VNS, "nightly", "quiesced")
    assert proc.delete(k.POD, "restore-helper", "shop")
    assert s.require(cluster, VNS, "nightly").state == "quiesced"


def test_a_taken_over_run_is_refused_at_its_next_read_with_both_runs_named(cluster):
    s.ensure(cluster, VNS, "nightly", run="run-b")
    with pytest.raises(SupersededError) as err:
        s.load(module_run(cluster, "run-a"), VNS, "nightly")
    assert err.value.details == {"superseded_by": "run-b", "session_run": "run-a"}
    assert "taken over by run run-b" in err.value.msg and "this run (run-a) stops here" in err.value.msg
    assert "re-run with session=nightly" in err.value.msg


def test_a_taken_over_run_changes_nothing_even_where_it_would_not_read_the_journal(cluster):
    proc = module_run(cluster, "run-a")
    s.load(proc, VNS, "nightly")  # read before the take-over, as a module that started earlier did
    s.ensure(cluster, VNS, "nightly", run="run-b")
    proc.session_cache.clear()  # its next step is a new module process
    with pytest.raises(SupersededError):
        proc.delete(k.POD, "restore-helper", "shop")
    assert cluster.find(k.POD, "restore-helper", "shop") is not None
    assert ("delete", "Pod") not in proc.requests


def test_a_journal_write_after_a_take_over_mid_module_is_refused(cluster):
    proc = module_run(cluster, "run-a")
    s.load(proc, VNS, "nightly")  # cached: the take-over below happens while this module waits
    s.ensure(cluster, VNS, "nightly", run="run-b")
    with pytest.raises(SupersededError):
        s.set_state(proc, VNS, "nightly", "restored")  # 409 on the stale copy, the fresh read is fenced
    assert s.require(cluster, VNS, "nightly").state == "planned"


def test_a_module_still_running_after_the_take_over_stops_at_its_next_write(cluster, monkeypatch):
    """A SIGKILL of ansible-playbook leaves its running module alive (ansible-core's worker calls setsid); its
    copy of the session is re-read before a write once it is older than FENCE_FRESH_SECONDS."""
    now = [1000.0]
    monkeypatch.setattr(s, "fence_clock", lambda: now[0])
    proc = module_run(cluster, "run-a")
    s.load(proc, VNS, "nightly")
    s.ensure(cluster, VNS, "nightly", run="run-b")  # the re-run takes over while this module waits
    now[0] += s.FENCE_FRESH_SECONDS + 1
    with pytest.raises(SupersededError):
        proc.delete(k.POD, "restore-helper", "shop")
    assert cluster.find(k.POD, "restore-helper", "shop") is not None


def test_the_fence_costs_no_request_on_a_fresh_copy_nor_on_journal_writes(cluster, monkeypatch):
    monkeypatch.setattr(s, "fence_clock", lambda: 1000.0)
    proc = module_run(cluster, "run-a")
    s.set_state(proc, VNS, "nightly", "quiesced")  # one read, one write
    proc.delete(k.POD, "restore-helper", "shop")
    s.set_state(proc, VNS, "nightly", "restoring")
    assert proc.requests == [("get", "ConfigMap"), ("update", "ConfigMap"), ("delete", "Pod"),
                             ("update", "ConfigMap")]


def test_the_take_over_is_journaled_with_the_run_it_replaced(cluster):
    sess, changed = s.ensure(cluster, VNS, "nightly", run="run-b")
    assert changed and sess.doc["run"]["previous"] == "run-a" and sess.doc["run"]["since"]
    assert sess.doc["history"][-1]["event"] == "run run-b took over from run-a"
    _again, changed = s.ensure(cluster, VNS, "nightly", run="run-b")
    assert not changed


def test_the_taking_module_is_not_fenced_by_the_run_it_replaces(cluster):
    proc = module_run(cluster, "run-b", takes_over=True)
    sess, _changed = s.ensure(proc, VNS, "nightly", run="run-b")
    assert sess.run == "run-b"


def test_other_sessions_and_unrecorded_runs_are_not_fenced(cluster):
    s.ensure(cluster, VNS, "other", run="run-z")
    proc = module_run(cluster, "run-a")
    assert s.load(proc, VNS, "other").run == "run-z"  # a report of another session, say
    old = FakeKube()
    s.ensure(old, VNS, "nightly", mode="in_place")  # a session of a release before runs were recorded
    old.session_cache = {}
    m._fence(FakeModule(session_run="run-a"), old, False)
    assert s.load(old, VNS, "nightly").run is None


def test_without_session_run_or_session_nothing_is_fenced(cluster):
    s.ensure(cluster, VNS, "nightly", run="run-b")
    for params in ({"session_run": None}, {"session": None, "session_run": "run-a"}):
        proc = FakeKube()
        proc.objects = cluster.objects
        m._fence(FakeModule(**params), proc, False)
        assert proc.before_write is None
        assert proc.delete(k.POD, "restore-helper", "shop")
        cluster.add(k.POD, POD)


def test_the_real_kube_calls_the_fence_before_every_write_and_not_before_reads():
    calls = []
    kube = k.Kube(dynamic=None, retry_seconds=0)
    kube.before_write = lambda verb, kind, name, namespace: calls.append("fence")
    for verb in ("get", "list", "watch", "discover"):
        kube._call(verb, k.POD, "p", "shop", lambda: calls.append("request"), True)
    assert calls == ["request"] * 4
    del calls[:]
    for verb in k.WRITE_VERBS:
        kube._call(verb, k.POD, "p", "shop", lambda: calls.append("request"), False)
    assert calls == ["fence", "request"] * len(k.WRITE_VERBS)


def test_a_retried_write_is_fenced_again_before_each_attempt():
    """Writes answered 429/5xx are retried for up to retry_seconds, longer than a take-over's grace: a take-over
    between two attempts must stop the retry."""
    from ansible_collections.velero.data_restore.plugins.module_utils.errors import SupersededError as Superseded

    class Throttled(Exception):
        status = 429

    now = [0.0]
    attempts, fences = [], []
    kube = k.Kube(dynamic=None, retry_seconds=30, clock=lambda: now[0], sleep=lambda s_: now.__setitem__(0, now[0] + s_))

    def fence(verb, kind, name, namespace):
        fences.append(now[0])
        if now[0] > 1.0:
            raise Superseded("Restore session nightly was taken over by run run-b")

    def request():
        attempts.append(now[0])
        raise Throttled()

    kube.before_write = fence
    with pytest.raises(Superseded):
        kube._call("patch", k.DEPLOYMENT, "web", "shop", request, False)
    assert len(attempts) == len(fences) - 1 and len(attempts) >= 2, (attempts, fences)


def test_session_run_is_one_id_or_ids_by_session():
    assert s.run_for("run-a", "nightly") == "run-a"
    assert s.run_for({"nightly": "run-a", "other": "run-z"}, "nightly") == "run-a"
    assert s.run_for({"other": "run-z"}, "nightly") is None
    assert s.run_for(None, "nightly") is None and s.run_for("", "nightly") is None


def test_the_roles_dict_fences_each_session_by_its_own_run(cluster):
    s.ensure(cluster, VNS, "other", run="run-z")
    runs = {"nightly": "run-a", "other": "run-z"}
    proc = module_run(cluster, runs, session="other")
    assert s.load(proc, VNS, "other").run == "run-z"
    s.ensure(cluster, VNS, "nightly", run="run-b")
    with pytest.raises(SupersededError):
        s.load(module_run(cluster, runs), VNS, "nightly")


@pytest.mark.parametrize("state", ["completed", "rolled_back", "rolling_back"])
def test_a_rerun_of_a_settled_session_keeps_its_run_and_changes_nothing(cluster, state):
    """rolling_back: a restore re-run during rollback.yml took the session over before the preflight role refused
    it (until 2026-12-05), and the rollback failed at its next step with the workloads stopped."""
    from ansible_collections.velero.data_restore.plugins.module_utils import plan as plans

    s.ensure(cluster, VNS, "nightly", plan={"volumes": []})
    s.set_state(cluster, VNS, "nightly", state)
    writes = cluster.count("update")
    _plan, recorded, continued, changed = plans.plan_session(cluster, VNS, "nightly", run="run-b", mode="in_place")
    assert continued and not changed and recorded.run == "run-a"
    assert cluster.count("update") == writes


def test_a_rerun_of_a_failed_session_takes_it_over(cluster):
    from ansible_collections.velero.data_restore.plugins.module_utils import plan as plans

    s.ensure(cluster, VNS, "nightly", plan={"volumes": []})
    s.set_state(cluster, VNS, "nightly", "failed", error="timeout")
    _plan, recorded, _continued, changed = plans.plan_session(cluster, VNS, "nightly", run="run-b", mode="in_place")
    assert changed and recorded.run == "run-b"


def test_a_take_over_waits_until_a_module_still_running_in_the_old_run_is_fenced(cluster, monkeypatch,
                                                                                 take_over_sleeps):
    """The old run's module read the session just before the take-over: without the wait its copy would still be
    fresh (and its writes unchecked) for up to FENCE_FRESH_SECONDS after the new run starts acting."""
    now = [1000.0]
    monkeypatch.setattr(s, "fence_clock", lambda: now[0])

    def sleep(seconds):
        take_over_sleeps.append(seconds)
        assert s.require(cluster, VNS, "nightly").run == "run-b"  # the take-over is written before the wait
        now[0] += seconds

    monkeypatch.setattr(s, "take_over_sleep", sleep)
    proc = module_run(cluster, "run-a")
    s.load(proc, VNS, "nightly")
    now[0] += 0.5
    s.ensure(cluster, VNS, "nightly", run="run-b")
    assert take_over_sleeps == [s.TAKE_OVER_GRACE_SECONDS] and s.TAKE_OVER_GRACE_SECONDS > s.FENCE_FRESH_SECONDS
    with pytest.raises(SupersededError):  # the first write of the old module after the new run acts
        proc.delete(k.POD, "restore-helper", "shop")
    assert cluster.find(k.POD, "restore-helper", "shop") is not None


def test_no_wait_where_no_module_of_the_old_run_can_still_run(cluster, take_over_sleeps):
    s.ensure(cluster, VNS, "fresh", mode="in_place", run="run-b")  # a new session
    s.ensure(cluster, VNS, "nightly", run="run-a")  # the run that holds it already
    s.ensure(cluster, VNS, "nightly", run="run-b", check_mode=True)  # check mode takes nothing over
    old = FakeKube()
    s.ensure(old, VNS, "nightly", mode="in_place")  # a session of a release before runs were recorded: no fence
    s.ensure(old, VNS, "nightly", run="run-b")
    s.set_state(cluster, VNS, "nightly", "failed", error="timeout")  # the old run's rescue ended it
    s.ensure(cluster, VNS, "nightly", run="run-b")
    assert take_over_sleeps == []
    assert s.require(cluster, VNS, "nightly").run == "run-b"
