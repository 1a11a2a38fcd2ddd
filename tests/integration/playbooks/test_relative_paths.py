# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Paths given to a playbook run by its name are taken from the directory ansible-playbook runs in (an AWX job's
project directory), not from the playbook's directory, where Ansible runs local modules (inside the installed
collection): the report directory (blank in an AWX survey, or relative) and a relative kubeconfig."""

import json
import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import proof_helpers as ph  # noqa: E402 pylint: disable=wrong-import-position

pytestmark = [pytest.mark.integration, pytest.mark.sim_only]


@pytest.mark.parametrize("given, subdirectory", [("", ""), ("reports/shop", "reports/shop")], ids=["blank", "relative"])
def test_a_blank_or_relative_report_directory_is_taken_from_where_ansible_playbook_runs(
        api_client, kube, kubeconfig, namespace, app_factory, backup_factory, state_dir, tmp_path, given, subdirectory):
    app = app_factory(kind="Deployment", name="web")
    backup = backup_factory(method="fs")["metadata"]["name"]
    ph.scramble(api_client, state_dir, app)
    session = "report-dir-" + namespace[-8:]
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    before_in_playbooks = set(os.listdir(ph.PLAYBOOKS))
    try:
        # run by its name, as the README shows: the playbook's directory is inside the installed collection
        rc, _results, failed, _out, _err = ph.run_restore("velero.data_restore.restore_in_place", kubeconfig, dict(
            source_namespace=namespace, backup=backup, session=session, report_directory=given), cwd=job_dir)
        assert rc == 0 and not failed, [(n, r.get("msg")) for n, r in failed]
        ph.assert_data_matches(api_client, state_dir, app)
        written = sorted(os.listdir(job_dir / subdirectory))
        assert written == ["data-restore-%s.json" % session, "data-restore-%s.md" % session], written
        report = json.loads((job_dir / subdirectory / ("data-restore-%s.json" % session)).read_text())
        assert report["session"] == session, report.get("session")
        assert set(os.listdir(ph.PLAYBOOKS)) == before_in_playbooks
    finally:
        ph.drop_session(kube, session)


@pytest.mark.parametrize("how", ["by-name", "imported"])
def test_a_relative_kubeconfig_is_taken_from_where_ansible_playbook_runs(kubeconfig, tmp_path, how):
    """by-name: as the README shows (the playbook's directory is inside the installed collection); imported: a
    one-line playbook of an AWX project of one's own imports the collection's (docs/awx.md)."""
    shutil.copy(str(kubeconfig), str(tmp_path / "prod.kubeconfig"))
    playbook = "velero.data_restore.list_backups"
    if how == "imported":
        (tmp_path / "playbooks").mkdir()
        playbook = tmp_path / "playbooks" / "list_backups.yml"
        playbook.write_text("---\n- name: List the backups\n"
                            "  ansible.builtin.import_playbook: velero.data_restore.list_backups\n")
    before_in_playbooks = set(os.listdir(ph.PLAYBOOKS))
    # no other kubeconfig to fall back on: only the relative one can reach the cluster
    rc, results, failed, out, _err = ph.run_restore(
        playbook, None, dict(kubeconfig="prod.kubeconfig", show_volumes="true"), cwd=tmp_path,
        env={"KUBECONFIG": str(tmp_path / "none"), "K8S_AUTH_KUBECONFIG": ""})
    assert rc == 0 and not failed, ([(n, r.get("msg")) for n, r in failed], out[-1500:])
    found = [r for name, r in results if name == "Find the backups"]
    assert found and isinstance(found[0].get("backups"), list), results
    assert [r for name, r in results if name == "Show the backups, newest first"], results
    assert set(os.listdir(ph.PLAYBOOKS)) == before_in_playbooks
