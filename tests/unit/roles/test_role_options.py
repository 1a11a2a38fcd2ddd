# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each role's options agree across meta/argument_specs.yml, defaults/main.yml, its tasks and its README: no option
the tasks read without validation, none validated that nothing reads, the same default in both files, each one
documented. (``<role>__name`` is the role's own internal fact, not an option.)"""

import glob
import os
import re

import pytest
import yaml

ROLES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles")
ROLE_NAMES = sorted(os.path.basename(path) for path in glob.glob(os.path.join(ROLES, "*")))


def _load(path):
    with open(path) as handle:
        return handle.read()


def _role(role):
    role_dir = os.path.join(ROLES, role)
    specs = yaml.safe_load(_load(os.path.join(role_dir, "meta", "argument_specs.yml")))["argument_specs"]
    options = dict((name, spec) for entry in specs.values() for name, spec in (entry.get("options") or {}).items())
    defaults = yaml.safe_load(_load(os.path.join(role_dir, "defaults", "main.yml"))) or {}
    code = "".join(_load(path) for path in glob.glob(os.path.join(role_dir, "tasks", "*.yml"))
                   + glob.glob(os.path.join(role_dir, "templates", "*")))
    used = set(name for name in re.findall(r"\b(%s_[a-z0-9_]+)" % role, code) if not name.startswith(role + "__"))
    return options, defaults, used, _load(os.path.join(role_dir, "README.md"))


def test_there_are_roles():
    assert "preflight" in ROLE_NAMES and "in_place" in ROLE_NAMES


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_role_options_agree_across_spec_defaults_tasks_and_readme(role):
    options, defaults, used, readme = _role(role)
    assert not sorted(used - set(options)), "read by the tasks, not in argument_specs"
    assert not sorted(set(options) - used), "in argument_specs, read by no task"
    assert not sorted(set(defaults) - set(options)), "in defaults/main.yml, not in argument_specs"
    assert not sorted(name for name, spec in options.items() if not spec.get("required") and name not in defaults), \
        "optional without a default in defaults/main.yml"
    assert not sorted(name for name, spec in options.items()
                      if "default" in spec and name in defaults and spec["default"] != defaults[name]), \
        "argument_specs and defaults/main.yml disagree on the default"
    assert not sorted(name for name in options if name not in readme), "missing from the role's README"
