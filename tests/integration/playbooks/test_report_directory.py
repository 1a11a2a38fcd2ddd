# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Without report_directory (an AWX survey leaves it blank) the report goes to the directory ansible-playbook runs in
(an AWX job's project directory), and a relative one is taken from there: not from playbook_dir, where Ansible runs
local modules, which is inside the installed collection when a playbook is run by its name."""

import json
import os
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
        rc, _results, failed, _out, _err = ph.run_restore("restore_in_place.yml", kubeconfig, dict(
            source_namespace=namespace, backup=backup, session=session, report_directory=given), cwd=job_dir)
        assert rc == 0 and not failed, [(n, r.get("msg")) for n, r in failed]
        ph.assert_data_matches(api_client, state_dir, app)
        written = sorted(os.listdir(job_dir / subdirectory))
        assert written == ["data-restore-%s.json" % session, "data-restore-%s.md" % session], written
        report = json.loads((job_dir / subdirectory / ("data-restore-%s.json" % session)).read_text())
        assert report["session"] == session, report.get("session")
        assert set(os.listdir(ph.PLAYBOOKS)) == before_in_playbooks
    finally:
        if kube.get_or_none("ConfigMap", ph.VELERO_NS, "data-restore-" + session):
            kube.delete("ConfigMap", ph.VELERO_NS, "data-restore-" + session)
