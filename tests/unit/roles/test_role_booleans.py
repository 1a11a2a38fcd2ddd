# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role argument validation checks a bool option but does not convert it: a DR playbook that passes
``cleanup_confirm: "{{ confirm }}"`` with an AWX survey answer "false" hands the role the STRING "false", which
Jinja takes for true. So every use of a bool option in the role tasks goes through ``| bool``."""

import glob
import os
import re

import yaml

ROLES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles")
# Handed on unchanged to the modules' own bool options (which convert "false"); null there means "not set".
PASSED_THROUGH = {"connection_validate_certs"}


def _bool_options(role_dir):
    path = os.path.join(role_dir, "meta", "argument_specs.yml")
    if not os.path.exists(path):
        return set()
    with open(path) as handle:
        specs = yaml.safe_load(handle)["argument_specs"]
    return set(name for entry in specs.values() for name, spec in (entry.get("options") or {}).items()
               if spec.get("type") == "bool")


def test_every_bool_role_option_is_read_through_the_bool_filter():
    unfiltered = []
    roles = sorted(glob.glob(os.path.join(ROLES, "*")))
    assert roles
    for role_dir in roles:
        options = _bool_options(role_dir)
        for path in glob.glob(os.path.join(role_dir, "tasks", "*.yml")):
            with open(path) as handle:
                lines = handle.read().splitlines()
            for number, line in enumerate(lines, 1):
                code = line.split("#", 1)[0]
                for option in options - PASSED_THROUGH:
                    # a use: the name, not as a mapping key, not inside a quoted message ('... option=true ...')
                    for match in re.finditer(r"(?<![\w.'])%s\b(?!\s*:)(?!=)" % option, code):
                        if not re.match(r"\s*\|\s*bool\b", code[match.end():]):
                            unfiltered.append("%s:%d: %s" % (os.path.relpath(path, ROLES), number, line.strip()))
    assert not unfiltered, "bool role options used without | bool:\n" + "\n".join(unfiltered)
