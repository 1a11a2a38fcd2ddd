# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/restore_in_place.yml on an inventory of several hosts (one per cluster, as an AWX inventory or a DR
playbook would give them), chosen with --limit: the play runs on exactly those hosts, each with its own host vars,
and the report of each goes to a subdirectory named after the host (their session names could be the same).

Both hosts point at the one test cluster here, each at its own namespace: what is checked is the targeting and the
per-host separation, not a second apiserver.
"""

import glob
import json
import os
import secrets
import sys

import pytest
import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import proof_helpers as ph  # noqa: E402 pylint: disable=wrong-import-position

pytestmark = [pytest.mark.integration, pytest.mark.sim_only]


def test_limit_picks_the_hosts_and_each_gets_its_own_report(api_client, kube, kubeconfig, namespace, app_factory,
                                                            backup_factory, state_dir, tmp_path):
    other = "t-" + secrets.token_hex(4)
    kube.create("Namespace", {"metadata": {"name": other, "labels": {"data-restore.test/ephemeral": "true"}}})
    try:
        apps = {"site-a": app_factory(name="web", namespace=namespace),
                "site-b": app_factory(name="web", namespace=other)}
        backup = backup_factory(namespaces=[namespace, other], method="fs")["metadata"]["name"]
        pvs = ph.pvs_with_data(api_client, state_dir, [namespace, other])
        for app in apps.values():
            ph.scramble(api_client, state_dir, app)
        inventory = tmp_path / "inventory.yml"
        hosts = dict((host, {"ansible_connection": "local", "source_namespace": app["namespace"], "backup": backup})
                     for host, app in apps.items())
        hosts["site-c"] = {"ansible_connection": "local", "source_namespace": "not-chosen", "backup": backup}
        inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
        reports = tmp_path / "reports"
        rc, results, failed, stdout, stderr = ph.run_restore(
            "restore_in_place.yml", kubeconfig, {"report_directory": str(reports)},
            args=("-i", str(inventory), "--limit", "site-a,site-b"))
        assert rc == 0 and not failed, "%s\n%s" % ([(n, r.get("msg")) for n, r in failed], stderr[-1500:])

        ph.assert_data_matches(api_client, state_dir, *apps.values())
        for app in apps.values():
            ph.replicas_back(api_client, app)
        ph.assert_nothing_lost(api_client, state_dir, pvs)
        played = set(host for play in json.loads(stdout[stdout.index("{"):])["plays"]
                     for task in play["tasks"] for host in task["hosts"])
        assert played == {"site-a", "site-b"}, played  # not site-c, not the implicit localhost
        for host, app in apps.items():
            [report] = glob.glob(str(reports / host / "*.json"))
            with open(report) as handle:
                data = json.load(handle)
            assert app["namespace"] in json.dumps(data), (host, report)
        assert sorted(os.listdir(str(reports))) == ["site-a", "site-b"]
    finally:
        for name in list(kube.list("ConfigMap", ph.VELERO_NS)):
            if name["metadata"]["name"].startswith("data-restore-in-place-") and \
                    any(ns in name["metadata"]["name"] for ns in (namespace, other)):
                kube.delete("ConfigMap", ph.VELERO_NS, name["metadata"]["name"])
        kube.delete("Namespace", None, other)
