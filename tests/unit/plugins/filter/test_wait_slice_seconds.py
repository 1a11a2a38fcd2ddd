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

from ansible_collections.velero.data_restore.plugins.filter.wait_slice_seconds import MAX_SLICES, wait_slice_seconds

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


def _slices_of(total, first=15, maximum=60):
    slices, waited = [], 0
    while waited < total:
        slices.append(wait_slice_seconds(len(slices), first, maximum, total - waited, total=total))
        waited += slices[-1]
    return slices


def test_a_wait_of_up_to_100_minutes_keeps_the_maximum():
    assert _slices_of(6000) == [15, 30] + [60] * 99 + [15]


@pytest.mark.parametrize("total", [4 * 3600, 86400, 30 * 86400])
def test_a_long_wait_takes_about_100_slices_and_covers_the_timeout(total):
    """Each slice nests one more include in the roles; past about 245 ansible-core crashes without the rescue."""
    slices = _slices_of(total)
    assert sum(slices) == total
    assert len(slices) <= MAX_SLICES + 12, len(slices)
    assert slices[:3] == [15, 30, 60]  # the first progress lines still come quickly
    assert max(slices) == -(-total // MAX_SLICES)


def test_a_tiny_maximum_is_raised_too():
    assert len(_slices_of(3600, first=1, maximum=1)) <= MAX_SLICES + 6


def test_ansible_core_nests_the_slices_of_the_longest_wait(tmp_path):
    """The installed ansible-core nests as many includes as the longest wait needs (plus the role's own), and a
    rescue around them runs: fails if a newer ansible-core nests fewer."""
    depth = len(_slices_of(30 * 86400)) + 10
    (tmp_path / "slice.yml").write_text(yaml.safe_dump([
        {"name": "count", "ansible.builtin.set_fact": {"level": "{{ level | int + 1 }}"}},
        {"name": "next", "ansible.builtin.include_tasks": "slice.yml", "when": "level | int < %d" % depth}]))
    block = {"block": [{"ansible.builtin.include_tasks": "slice.yml"}, {"ansible.builtin.fail": {"msg": "deepest"}}],
             "rescue": [{"ansible.builtin.debug": {"msg": "rescued at {{ level }}"}}]}
    play = {"hosts": "localhost", "gather_facts": False, "vars": {"level": 0}, "tasks": [block]}
    (tmp_path / "play.yml").write_text(yaml.safe_dump([play]))
    env = dict(os.environ, ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False")
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
                           "-c", "local", str(tmp_path / "play.yml")], capture_output=True, text=True, env=env,
                          check=False, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "rescued at %d" % depth in proc.stdout


def _size_the_slice(role):
    with open(os.path.join(ROLES, role, "tasks", "wait_slice.yml")) as handle:
        tasks = yaml.safe_load(handle)
    task = [t for t in tasks if t["name"] == "Size the slice"][0]
    (name, expression), = task["ansible.builtin.set_fact"].items()
    return name, expression


@pytest.mark.parametrize("timeout, expected", [(200, [15, 30, 60, 60, 35, 0]),
                                               (86400, [15, 30, 60, 120, 240, 480])])
def test_the_roles_size_their_slices_with_the_rule(tmp_path, timeout, expected):
    """Runs each role's own "Size the slice" task six times through ansible-playbook: fails if a role stops
    doubling its slices, stops ending the last one at the timeout, or stops growing them for a long timeout."""
    tasks = []
    for role in ("in_place", "replace"):
        name, expression = _size_the_slice(role)
        tasks.append({"name": "start " + role, "ansible.builtin.set_fact": {
            role + "__slice": 0, role + "__waited": 0, role + "_wait_slice": 15, role + "_wait_slice_max": 60,
            role + "_timeout": timeout, "seen_" + role: []}})
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
    assert seen == {"in_place": expected, "replace": expected}, seen
