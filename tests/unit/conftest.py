"""Unit-test setup: no real waiting in the session take-over grace (session.TAKE_OVER_GRACE_SECONDS)."""

import pytest

from ansible_collections.velero.data_restore.plugins.module_utils import session


@pytest.fixture(autouse=True)
def take_over_sleeps(monkeypatch):
    """The waits of session take-overs in this test, in seconds (recorded instead of slept)."""
    sleeps = []
    monkeypatch.setattr(session, "take_over_sleep", sleeps.append)
    return sleeps
