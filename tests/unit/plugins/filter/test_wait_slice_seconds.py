# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The wait-slice rule, and both restore roles rendering it through ansible's templating."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.velero.data_restore.plugins.filter.wait_slice_seconds import wait_slice_seconds

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", ".."))
ROLES = os.path.join(REPO, "roles")


def test_slices_double_up_to_the_maximum():
    assert [wait_slice_seconds(i, 15, 60, 3600) for i in range(6)] == [15, 30, 60, 60, 60, 60]


def test_the_maximum_caps_the_first_slice_too():
    assert wait_slice_seconds(0, 120, 60, 3600) == 60


def test_the_last_slice_ends_at_the_timeout():
    assert wait_slice_seconds(3, 15, 60, 25) == 25
    assert wait_slice_seconds(3, 15, 60, 0) == 0
    assert wait_slice_seconds(3, 15, 60, -4) == 0


def test_a_huge_slice_number_does_not_overflow():
    assert wait_slice_seconds(10 ** 6, 15, 60, 3600) == 60


def test_zero_first_slice_is_one_second():
    assert wait_slice_seconds(0, 0, 60, 3600) == 1


@pytest.mark.parametrize("args, what", [(("x", 15, 60, 60), "slice number"), ((0, None, 60, 60), "first"),
                                        ((0, 15, -1, 60), "maximum"), ((0, 15, 60, "soon"), "remaining")])
def test_bad_values_name_the_argument(args, what):
    with pytest.raises(AnsibleFilterError, match=what):
        wait_slice_seconds(*args)


def _size_the_slice(role):
    with open(os.path.join(ROLES, role, "tasks", "wait_slice.yml")) as handle:
        tasks = yaml.safe_load(handle)
    task = [t for t in tasks if t["name"] == "Size the slice"][0]
    (name, expression), = task["ansible.builtin.set_fact"].items()
    return name, expression


def test_the_roles_size_their_slices_with_the_rule(tmp_path):
    """Runs each role's own "Size the slice" task six times through ansible-playbook: fails if a role stops
    doubling its slices or stops ending the last one at the timeout."""
    tasks = []
    for role in ("in_place", "replace"):
        name, expression = _size_the_slice(role)
        tasks.append({"name": "start " + role, "ansible.builtin.set_fact": {
            role + "__slice": 0, role + "__waited": 0, role + "_wait_slice": 15, role + "_wait_slice_max": 60,
            role + "_timeout": 200, "seen_" + role: []}})
        for _index in range(6):
            tasks.append({"name": "size " + role, "ansible.builtin.set_fact": {name: expression}})
            tasks.append({"name": "count " + role, "ansible.builtin.set_fact": {
                "seen_" + role: "{{ seen_%s + [%s | int] }}" % (role, name),
                role + "__waited": "{{ %s__waited | int + %s | int }}" % (role, name),
                role + "__slice": "{{ %s__slice | int + 1 }}" % role}})
        tasks.append({"name": "seen " + role, "ansible.builtin.debug": {"var": "seen_" + role}})
    playbook = tmp_path / "slices.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, "collections"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False")
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
                           "-c", "local", str(playbook)], capture_output=True, text=True, env=env, check=False,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    seen = {}
    for task in json.loads(proc.stdout[proc.stdout.index("{"):])["plays"][0]["tasks"]:
        if task["task"]["name"].startswith("seen "):
            role = task["task"]["name"][len("seen "):]
            seen[role] = task["hosts"]["localhost"]["seen_" + role]
    assert seen == {"in_place": [15, 30, 60, 60, 35, 0], "replace": [15, 30, 60, 60, 35, 0]}, seen
