"""Shared by the module suites: every test's session is named after its namespace and dropped afterwards."""

import os

import pytest

import data_path_helpers as h


@pytest.fixture(autouse=True)
def drop_session_after(kube, namespace):
    yield
    if os.environ.get("KEEP_NAMESPACES") != "1":
        h.drop_session(kube, namespace)
