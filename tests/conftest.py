"""Shared pytest setup: cluster fixtures for integration suites (tests/cluster/cluster_fixtures.py)."""

import os

try:
    import cluster_fixtures  # noqa: F401 pylint: disable=unused-import
except ImportError:  # the simulator package may not be there yet
    pytest_plugins = []
else:
    pytest_plugins = ["cluster_fixtures"]

os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", os.path.join(os.path.dirname(os.path.dirname(__file__)), "collections"))
