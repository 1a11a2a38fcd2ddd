# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/rollback.yml after a completed replace, and what comes after it.

* A restore playbook re-run (an AWX relaunch) on a session that rollback.yml rolled back changes nothing. Before
  2026-12-05 the re-run continued the rolled back session: it stopped the app, swapped the restored volume back in,
  started the app and marked the session completed - the rollback undone without anyone asking.
* After a template swap the pods mount the restored claim: the rollback stops them before it points the workload
  back at the original claim. Before 2026-12-05 it looked for pods of the original claim, found none, and patched
  the running Deployment - its old pods kept writing to the restored volume during the rollout.
"""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import proof_helpers as ph  # noqa: E402 pylint: disable=wrong-import-position

pytestmark = [pytest.mark.integration, pytest.mark.sim_only]


def _state(kube, session):
    return json.loads(kube.get("ConfigMap", ph.VELERO_NS, "data-restore-" + session)["data"]["session.json"])["state"]


def test_a_rolled_back_session_is_not_restored_again(api_client, kube, kubeconfig, namespace, app_factory,
                                                     backup_factory, sim_config, tmp_path):
    app = app_factory(kind="Deployment", name="web")
    backup = backup_factory(method="fs")["metadata"]["name"]
    sim_config.set(bytesPerSecond=100000)
    session = "rerun-" + namespace[-8:]
    given = {"source_namespace": namespace, "backup": backup, "session": session, "report_directory": str(tmp_path),
             "wait_slice": 2}
    try:
        rc, _results, failed, _out, stderr = ph.run_restore("restore_replace.yml", kubeconfig, given)
        assert rc == 0 and not failed, "%s\n%s" % ([(n, r.get("msg")) for n, r in failed], stderr[-1500:])
        rc, _results, failed, _out, stderr = ph.run_restore("rollback.yml", kubeconfig, {
            "session": session, "report_directory": str(tmp_path)})
        assert rc == 0 and not failed, "%s\n%s" % ([(n, r.get("msg")) for n, r in failed], stderr[-1500:])
        assert _state(kube, session) == "rolled_back"
        ph.replicas_back(api_client, app)
        claim = app["pvcs"][0]
        volume = kube.get("PersistentVolumeClaim", namespace, claim)["spec"]["volumeName"]

        before = ph.snapshot(api_client, [namespace, ph.VELERO_NS], tokens=[session])
        rc, _results, failed, _out, _err = ph.run_restore("restore_replace.yml", kubeconfig, given)
        after = ph.snapshot(api_client, [namespace, ph.VELERO_NS], tokens=[session])
        assert rc != 0 and failed, "the re-run of a rolled back session did not fail"
        name, result = failed[0]
        assert name.endswith("Refuse to restore a rolled back session again"), (name, result.get("msg"))
        assert "was rolled back (rollback.yml), and this run changed nothing" in result["msg"], result["msg"]
        assert "give a new session name" in result["msg"], result["msg"]
        assert _state(kube, session) == "rolled_back"
        assert kube.get("PersistentVolumeClaim", namespace, claim)["spec"]["volumeName"] == volume
        assert not ph.diff_snapshots(before, after, (ph.VELERO_NS, namespace))
    finally:
        if kube.get_or_none("ConfigMap", ph.VELERO_NS, "data-restore-" + session):
            kube.delete("ConfigMap", ph.VELERO_NS, "data-restore-" + session)


def _task(results, suffix):
    return [r for n, r in results if n.endswith(suffix)]


def test_a_template_swap_is_rolled_back_with_the_workload_stopped(api_client, kube, kubeconfig, namespace, app_factory,
                                                                  backup_factory, state_dir, sim_config, tmp_path):
    app = app_factory(kind="Deployment", name="web")
    backup = backup_factory(method="fs")["metadata"]["name"]
    pvs = ph.pvs_with_data(api_client, state_dir, [namespace])
    sim_config.set(bytesPerSecond=100000)
    session = "tmpl-" + namespace[-8:]
    claim = app["pvcs"][0]
    try:
        rc, results, failed, _out, stderr = ph.run_restore("restore_replace.yml", kubeconfig, {
            "source_namespace": namespace, "backup": backup, "session": session, "swap_mode": "template",
            "report_directory": str(tmp_path), "wait_slice": 2})
        assert rc == 0 and not failed, "%s\n%s" % ([(n, r.get("msg")) for n, r in failed], stderr[-1500:])
        ph.replicas_back(api_client, app)
        mounted = [v["persistentVolumeClaim"]["claimName"] for v in
                   kube.get("Deployment", namespace, "web")["spec"]["template"]["spec"]["volumes"]
                   if "persistentVolumeClaim" in v]
        assert mounted and claim not in mounted, mounted
        restored_claim = mounted[0]

        rc, results, failed, _out, stderr = ph.run_restore("rollback.yml", kubeconfig, {
            "session": session, "report_directory": str(tmp_path)})
        assert rc == 0 and not failed, "%s\n%s" % ([(n, r.get("msg")) for n, r in failed], stderr[-1500:])
        (stop,) = _task(results, "Stop the workloads that mount the PVCs")
        assert [(w["kind"], w["name"], w["action"]) for w in stop["workloads"]] == [("Deployment", "web", "stopped")], \
            (stop["workloads"], stop.get("warnings"))
        mounted = [v["persistentVolumeClaim"]["claimName"] for v in
                   kube.get("Deployment", namespace, "web")["spec"]["template"]["spec"]["volumes"]
                   if "persistentVolumeClaim" in v]
        assert mounted == [claim], mounted
        ph.replicas_back(api_client, app)
        assert kube.get("PersistentVolumeClaim", namespace, restored_claim), "the restored claim is kept"
        assert _state(kube, session) == "rolled_back"
        ph.assert_nothing_lost(api_client, state_dir, pvs)
    finally:
        if kube.get_or_none("ConfigMap", ph.VELERO_NS, "data-restore-" + session):
            kube.delete("ConfigMap", ph.VELERO_NS, "data-restore-" + session)
