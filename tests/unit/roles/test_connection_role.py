# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The connection role hands every connection option of its argument spec to the modules (an option dropped on the
way would silently fall back to the K8S_AUTH_* environment or the default kubeconfig), and takes relative file
paths from the directory ansible-playbook runs in. Runs ansible-playbook on localhost; no cluster."""

import os
import sys

import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import ansible_run  # noqa: E402 pylint: disable=wrong-import-position,import-error
SPECS = os.path.join(REPO, "roles", "connection", "meta", "argument_specs.yml")
FILE_OPTIONS = ("kubeconfig", "ca_cert", "client_cert", "client_key")


def _connection_options():
    with open(SPECS) as handle:
        options = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
    return sorted(name[len("connection_"):] for name in options if name != "connection_velero_namespace")


def _run(tmp_path, role_vars):
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "roles": [{"role": "velero.data_restore.connection", "vars": role_vars}],
        "tasks": [{"name": "Show", "ansible.builtin.debug": {"var": "connection__velero"}}]}]))
    rc, data, stdout, stderr = ansible_run.run_playbook(playbook, cwd=tmp_path, timeout=120)
    assert rc == 0, stdout[-2000:] + stderr[-2000:]
    return data["plays"][0]["tasks"][-1]["hosts"]["localhost"]["connection__velero"]


def test_every_connection_option_reaches_the_modules_and_relative_files_come_from_the_working_directory(tmp_path):
    names = _connection_options()
    assert set(FILE_OPTIONS) <= set(names) and {"proxy", "impersonate_user", "api_key"} <= set(names)
    given = dict((name, "value-of-%s" % name) for name in names)
    given.update(validate_certs=False, kubeconfig="clusters/prod.kubeconfig", ca_cert="/etc/dr/ca.crt",
                 client_cert="~/certs/client.crt")
    options = _run(tmp_path, dict(("connection_" + name, value) for name, value in given.items()))
    expected = dict(given, velero_namespace="velero", kubeconfig=str(tmp_path / "clusters" / "prod.kubeconfig"),
                    client_key=str(tmp_path / "value-of-client_key"))
    assert options == expected


def test_options_left_empty_are_not_passed(tmp_path):
    assert _run(tmp_path, {}) == {"velero_namespace": "velero"}
