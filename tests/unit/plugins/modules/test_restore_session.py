"""The restore_session module end to end through AnsibleModule, with FakeKube behind module.run_module."""

import pytest
from ansible.module_utils import basic

from ansible_collections.velero.data_restore.plugins.module_utils import session as s
from ansible_collections.velero.data_restore.plugins.modules import restore_session
from fake_kube import FakeKube

NS = "velero"


@pytest.fixture
def run(module_main):
    return module_main(restore_session.main)


def test_a_failed_state_keeps_its_error_in_the_journal(run):
    """The rescue records why a run failed; the report shows it. Before 2026-12-05 the common session_state step
    ran again after the module's own and stored the state without the error."""
    kube = FakeKube()
    s.ensure(kube, NS, "nightly")
    args = {"session": "nightly", "session_state": "failed", "error": "PodVolumeRestore shop/data Failed"}
    result = run(kube, args)
    assert result["changed"] and not result.get("failed"), result
    doc = s.require(kube, NS, "nightly").doc
    assert (doc["state"], doc["error"]) == ("failed", "PodVolumeRestore shop/data Failed")
    assert [h["event"] for h in doc["history"]] == ["created", "state failed"]

    writes = [r for r in kube.requests if r[0] not in ("get", "list")]
    again = run(kube, args)
    assert not again["changed"], again
    assert [r for r in kube.requests if r[0] not in ("get", "list")] == writes


def test_check_mode_predicts_the_state_change_and_writes_nothing(run):
    kube = FakeKube()
    s.ensure(kube, NS, "nightly")
    writes = [r for r in kube.requests if r[0] not in ("get", "list")]
    result = run(kube, {"session": "nightly", "session_state": "failed", "error": "boom"}, check=True)
    assert result["changed"], result
    assert [r for r in kube.requests if r[0] not in ("get", "list")] == writes
    assert s.require(kube, NS, "nightly").doc["error"] is None


def test_a_plan_given_to_a_started_session_is_not_stored_and_says_so(run, monkeypatch):
    warned = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda module, msg: warned.append(msg))
    kube = FakeKube()
    s.ensure(kube, NS, "nightly", plan={"volumes": [{"key": "shop/data"}]})
    s.set_state(kube, NS, "nightly", "restoring")
    result = run(kube, {"session": "nightly", "plan": {"volumes": [{"key": "shop/logs"}]}})
    assert not result["changed"], result
    assert s.require(kube, NS, "nightly").doc["plan"] == {"volumes": [{"key": "shop/data"}]}
    assert len(warned) == 1 and "nightly is restoring: it keeps the plan it recorded" in warned[0], warned

    run(kube, {"session": "nightly", "plan": {"volumes": [{"key": "shop/data"}]}})  # the recorded plan: nothing to say
    assert len(warned) == 1, warned
