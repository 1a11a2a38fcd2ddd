"""Shared by the module suites: every test's session is named after its namespace and dropped afterwards."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import proof_helpers as ph  # noqa: E402 pylint: disable=wrong-import-position


@pytest.fixture(autouse=True)
def drop_session_after(kube, namespace):
    yield
    if os.environ.get("KEEP_NAMESPACES") != "1":
        ph.drop_session(kube, namespace)
