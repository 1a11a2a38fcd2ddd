"""Shared pytest setup: cluster fixtures for integration suites (tests/cluster/cluster_fixtures.py)."""

import importlib.util
import os

# Registered as a plugin (not imported here) so pytest can rewrite its asserts.
pytest_plugins = ["cluster_fixtures"] if importlib.util.find_spec("cluster_fixtures") else []

os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", os.path.join(os.path.dirname(os.path.dirname(__file__)), "collections"))
