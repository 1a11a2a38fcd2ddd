"""module.run_module's session_state: applied once the runner's work succeeded, skipped otherwise."""

import pytest

from ansible_collections.velero.data_restore.plugins.module_utils import module as m
from ansible_collections.velero.data_restore.plugins.module_utils import session as s
from ansible_collections.velero.data_restore.plugins.module_utils.errors import PreflightError
from fake_kube import FakeKube

VNS = "velero"


class FakeModule(object):
    def __init__(self, check_mode=False, **params):
        self.check_mode = check_mode
        self.params = dict(velero_namespace=VNS, session="nightly", session_state="quiesced")
        self.params.update(params)


@pytest.fixture
def fake():
    kube = FakeKube()
    s.ensure(kube, VNS, "nightly", mode="in_place")
    return kube


def test_state_moves_after_success_and_changes_the_result(fake):
    result = m._move_session(FakeModule(), fake, {"changed": False, "done": True})
    assert result["changed"] and result["session_state"] == "quiesced"
    assert s.require(fake, VNS, "nightly").state == "quiesced"
    again = m._move_session(FakeModule(), fake, {"changed": False})
    assert not again["changed"]


@pytest.mark.parametrize("result", [{"done": False}, {"failed": True}])
def test_state_stays_when_the_wait_is_not_done_or_the_task_failed(fake, result):
    assert m._move_session(FakeModule(), fake, dict(result)) == result
    assert s.require(fake, VNS, "nightly").state == "planned"


def test_check_mode_reports_without_writing(fake):
    result = m._move_session(FakeModule(check_mode=True), fake, {"changed": False})
    assert result["changed"] and result["session_state"] == "quiesced"
    assert s.require(fake, VNS, "nightly").state == "planned"


def test_session_state_needs_a_session(fake):
    with pytest.raises(PreflightError, match="needs session"):
        m._move_session(FakeModule(session=None), fake, {"changed": True})
