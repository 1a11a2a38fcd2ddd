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
* A rollback pauses what its restore paused: the plan records pause_gitops, so a KEDA-scaled workload restored
  with pause_gitops=true is rolled back by a default rollback.yml (without rollback_pause_gitops), its ScaledObject
  paused while it is stopped and put back afterwards.
"""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "modules"))

import proof_helpers as ph  # noqa: E402 pylint: disable=wrong-import-position
import stand_in_apis  # noqa: E402 pylint: disable=wrong-import-position

pytestmark = [pytest.mark.integration, pytest.mark.sim_only]

KEDA = ("keda.sh", "v1alpha1", "ScaledObject", "scaledobjects")
KEDA_PAUSED = "autoscaling.keda.sh/paused-replicas"


@pytest.fixture(scope="module")
def keda_api(api_client):
    """KEDA's ScaledObject API (a stand-in CRD, no KEDA controller) for the tests that ask for it."""
    with stand_in_apis.served_for_module(api_client, [stand_in_apis.crd(*KEDA)]) as custom:
        yield custom


def _state(kube, session):
    return ph.session_journal(kube, session)["state"]


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
        ph.drop_session(kube, session)


def _task(results, suffix):
    return [r for n, r in results if n.endswith(suffix)]


def _claims_of_web(kube, namespace):
    return [v["persistentVolumeClaim"]["claimName"] for v in
            kube.get("Deployment", namespace, "web")["spec"]["template"]["spec"]["volumes"]
            if "persistentVolumeClaim" in v]


def _rolled_back_stopping_web(kubeconfig, session, tmp_path):
    """Run rollback.yml; it must pass and stop Deployment web before the swap back. Returns the stop's result."""
    rc, results, failed, _out, stderr = ph.run_restore("rollback.yml", kubeconfig, {
        "session": session, "report_directory": str(tmp_path)})
    assert rc == 0 and not failed, "%s\n%s" % ([(n, r.get("msg")) for n, r in failed], stderr[-1500:])
    (stop,) = _task(results, "Stop the workloads that mount the PVCs")
    assert [(w["kind"], w["name"], w["action"]) for w in stop["workloads"]] == [("Deployment", "web", "stopped")], \
        (stop["workloads"], stop.get("warnings"))
    return stop


def test_a_template_swap_is_rolled_back_with_the_workload_stopped(api_client, kube, kubeconfig, namespace, app_factory,
                                                                  backup_factory, state_dir, sim_config, tmp_path):
    app = app_factory(kind="Deployment", name="web")
    backup = backup_factory(method="fs")["metadata"]["name"]
    pvs = ph.pvs_with_data(api_client, state_dir, [namespace])
    sim_config.set(bytesPerSecond=100000)
    session = "tmpl-" + namespace[-8:]
    claim = app["pvcs"][0]
    try:
        rc, _results, failed, _out, stderr = ph.run_restore("restore_replace.yml", kubeconfig, {
            "source_namespace": namespace, "backup": backup, "session": session, "swap_mode": "template",
            "report_directory": str(tmp_path), "wait_slice": 2})
        assert rc == 0 and not failed, "%s\n%s" % ([(n, r.get("msg")) for n, r in failed], stderr[-1500:])
        ph.replicas_back(api_client, app)
        mounted = _claims_of_web(kube, namespace)
        assert mounted and claim not in mounted, mounted
        restored_claim = mounted[0]

        _rolled_back_stopping_web(kubeconfig, session, tmp_path)
        mounted = _claims_of_web(kube, namespace)
        assert mounted == [claim], mounted
        ph.replicas_back(api_client, app)
        assert kube.get("PersistentVolumeClaim", namespace, restored_claim), "the restored claim is kept"
        assert _state(kube, session) == "rolled_back"
        ph.assert_nothing_lost(api_client, state_dir, pvs)
    finally:
        ph.drop_session(kube, session)


def _keda_pause(custom, namespace):
    group, version, _kind, plural = KEDA
    scaled = custom.get_namespaced_custom_object(group, version, namespace, plural, "web-scaler")
    return (scaled["metadata"].get("annotations") or {}).get(KEDA_PAUSED)


def test_a_rollback_pauses_what_its_restore_paused(api_client, kube, kubeconfig, namespace, app_factory,
                                                   backup_factory, keda_api, sim_config, tmp_path):
    app = app_factory(kind="Deployment", name="web")
    group, version, kind, plural = KEDA
    keda_api.create_namespaced_custom_object(group, version, namespace, plural, {
        "apiVersion": "%s/%s" % (group, version), "kind": kind,
        "metadata": {"name": "web-scaler", "namespace": namespace},
        "spec": {"scaleTargetRef": {"name": "web"}, "minReplicaCount": 1}})
    backup = backup_factory(method="fs")["metadata"]["name"]
    sim_config.set(bytesPerSecond=100000)
    session = "keda-" + namespace[-8:]
    try:
        rc, _results, failed, _out, stderr = ph.run_restore("restore_replace.yml", kubeconfig, {
            "source_namespace": namespace, "backup": backup, "session": session, "pause_gitops": True,
            "report_directory": str(tmp_path), "wait_slice": 2})
        assert rc == 0 and not failed, "%s\n%s" % ([(n, r.get("msg")) for n, r in failed], stderr[-1500:])
        assert _keda_pause(keda_api, namespace) is None, "the restore puts the ScaledObject back as it was"

        # no rollback_pause_gitops: without the plan's pause_gitops the stop refuses the KEDA-scaled Deployment
        stop = _rolled_back_stopping_web(kubeconfig, session, tmp_path)
        assert [(g["kind"], g["name"]) for g in stop["gitops"]] == [("ScaledObject", "web-scaler")], stop["gitops"]
        assert _state(kube, session) == "rolled_back"
        assert _keda_pause(keda_api, namespace) is None, "the rollback puts the ScaledObject back as it was"
        ph.replicas_back(api_client, app)
    finally:
        ph.drop_session(kube, session)


def test_a_rollback_is_refused_once_cleanup_began(api_client, kube, kubeconfig, namespace, app_factory,
                                                  backup_factory, sim_config, tmp_path):
    """cleanup.yml set the old PV to Delete and deleted it, and its wait timed out (a slow storage delete, here a
    finalizer): rollback.yml would swap the app back onto a volume being deleted. It is refused before it stops
    anything, and the cleanup finishes when re-run."""
    app = app_factory(kind="Deployment", name="web")
    backup = backup_factory(method="fs")["metadata"]["name"]
    sim_config.set(bytesPerSecond=100000)
    session = "clean-" + namespace[-8:]
    claim = app["pvcs"][0]
    hold = "data-restore.test/hold"
    old_pv = None
    try:
        rc, _results, failed, _out, stderr = ph.run_restore("restore_replace.yml", kubeconfig, {
            "source_namespace": namespace, "backup": backup, "session": session, "report_directory": str(tmp_path),
            "wait_slice": 2})
        assert rc == 0 and not failed, "%s\n%s" % ([(n, r.get("msg")) for n, r in failed], stderr[-1500:])
        doc = ph.session_journal(kube, session)
        (old_pv,) = [r["original"]["old_pv"] for r in doc["undo"] if r["action"] == "rebind"]
        restored_pv = kube.get("PersistentVolumeClaim", namespace, claim)["spec"]["volumeName"]
        kube.patch("PersistentVolume", None, old_pv, {"metadata": {"finalizers": [hold]}})

        rc, _results, failed, _out, stderr = ph.run_restore("cleanup.yml", kubeconfig, {
            "session": session, "confirm": True, "cleanup_wait_timeout": 5})
        assert rc != 0 and failed, "the cleanup did not time out"
        assert kube.get("PersistentVolume", None, old_pv)["metadata"].get("deletionTimestamp")

        before = ph.snapshot(api_client, [namespace, ph.VELERO_NS], tokens=[session])
        rc, _results, failed, _out, _err = ph.run_restore("rollback.yml", kubeconfig, {
            "session": session, "report_directory": str(tmp_path)})
        after = ph.snapshot(api_client, [namespace, ph.VELERO_NS], tokens=[session])
        assert rc != 0 and failed, "the rollback after a begun cleanup did not fail"
        name, result = failed[0]
        assert name.endswith("Refuse a rollback once cleanup began"), (name, result.get("msg"))
        assert "cleanup.yml began to delete the volumes it kept (PersistentVolume %s)" % old_pv in result["msg"], \
            result["msg"]
        assert "-e session=%s -e confirm=true" % session in result["msg"], result["msg"]
        assert not ph.diff_snapshots(before, after, (ph.VELERO_NS, namespace))
        assert kube.get("PersistentVolumeClaim", namespace, claim)["spec"]["volumeName"] == restored_pv
        ph.replicas_back(api_client, app)

        kube.patch("PersistentVolume", None, old_pv, {"metadata": {"finalizers": None}})
        rc, _results, failed, _out, stderr = ph.run_restore("cleanup.yml", kubeconfig, {
            "session": session, "confirm": True})
        assert rc == 0 and not failed, "%s\n%s" % ([(n, r.get("msg")) for n, r in failed], stderr[-1500:])
        assert kube.get_or_none("PersistentVolume", None, old_pv) is None
        assert ph.session_journal(kube, session) is None
    finally:
        if old_pv and kube.get_or_none("PersistentVolume", None, old_pv):
            kube.patch("PersistentVolume", None, old_pv, {"metadata": {"finalizers": None}})
        ph.drop_session(kube, session)


def test_a_rollback_whose_start_is_not_ready_says_so_in_the_session_and_the_report(
        api_client, kube, kubeconfig, namespace, app_factory, backup_factory, state_dir, tmp_path):
    """The swap back succeeds, the workload is started on its original volume, but its pods never get ready (a node
    selector that matches no node). The failure names what happened - every claim back, the workload started, not
    stopped - and the session and the report keep why the rollback stopped; the re-run finishes it."""
    app = app_factory(kind="Deployment", name="web")
    backup = backup_factory(method="fs")["metadata"]["name"]
    pvs = ph.pvs_with_data(api_client, state_dir, [namespace])
    session = "rb-ready-" + namespace[-8:]
    claim = app["pvcs"][0]
    try:
        rc, _results, failed, _out, stderr = ph.run_restore("restore_replace.yml", kubeconfig, {
            "source_namespace": namespace, "backup": backup, "session": session, "report_directory": str(tmp_path),
            "wait_slice": 2})
        assert rc == 0 and not failed, "%s\n%s" % ([(n, r.get("msg")) for n, r in failed], stderr[-1500:])
        restored_pv = kube.get("PersistentVolumeClaim", namespace, claim)["spec"]["volumeName"]
        kube.patch("Deployment", namespace, "web", {"spec": {"template": {"spec": {
            "nodeSelector": {"data-restore.test/no-such-node": "true"}}}}})

        rc, results, failed, _out, _err = ph.run_restore("rollback.yml", kubeconfig, {
            "session": session, "report_directory": str(tmp_path), "workload_timeout": 10})
        assert rc != 0 and failed, "the rollback did not fail"
        assert "to be ready" in failed[0][1].get("msg", ""), failed[0]
        last = failed[-1][1]["msg"]
        assert "Every claim is back on its original volume" in last, last
        assert "were started again on them" in last and "stay stopped" not in last, last
        assert "workload_timeout=<seconds>" in last, last
        assert kube.get("PersistentVolumeClaim", namespace, claim)["spec"]["volumeName"] != restored_pv
        assert kube.get("Deployment", namespace, "web")["spec"]["replicas"] == 1
        doc = ph.session_journal(kube, session)
        assert doc["state"] == "rolling_back" and "to be ready" in (doc.get("error") or ""), (doc["state"], doc.get("error"))
        report = json.loads((tmp_path / ("data-restore-%s.json" % session)).read_text())
        assert report["state"] == "rolling_back" and "to be ready" in (report.get("error") or ""), report.get("error")

        kube.patch("Deployment", namespace, "web", {"spec": {"template": {"spec": {"nodeSelector": None}}}})
        rc, _results, failed, _out, stderr = ph.run_restore("rollback.yml", kubeconfig, {
            "session": session, "report_directory": str(tmp_path)})
        assert rc == 0 and not failed, "%s\n%s" % ([(n, r.get("msg")) for n, r in failed], stderr[-1500:])
        doc = ph.session_journal(kube, session)
        assert doc["state"] == "rolled_back" and not doc.get("error"), (doc["state"], doc.get("error"))
        ph.replicas_back(api_client, app)
        ph.assert_nothing_lost(api_client, state_dir, pvs)
    finally:
        ph.drop_session(kube, session)


def test_a_rollback_refused_by_a_scaled_object_added_since_says_why(api_client, kube, kubeconfig, namespace,
                                                                    app_factory, backup_factory, keda_api, tmp_path):
    """A KEDA ScaledObject was added after the restore (which ran without pause_gitops): the rollback's stop refuses
    the Deployment before it changes anything. The refusal's workload list has no start/stop actions; the rescue
    must still say what the refusal says (before, its Jinja failed on the list and hid the message)."""
    app = app_factory(kind="Deployment", name="web")
    backup = backup_factory(method="fs")["metadata"]["name"]
    session = "rb-keda-" + namespace[-8:]
    try:
        rc, _results, failed, _out, stderr = ph.run_restore("restore_replace.yml", kubeconfig, {
            "source_namespace": namespace, "backup": backup, "session": session, "report_directory": str(tmp_path),
            "wait_slice": 2})
        assert rc == 0 and not failed, "%s\n%s" % ([(n, r.get("msg")) for n, r in failed], stderr[-1500:])
        claims = kube.get("PersistentVolumeClaim", namespace, app["pvcs"][0])["spec"]["volumeName"]
        group, version, kind, plural = KEDA
        keda_api.create_namespaced_custom_object(group, version, namespace, plural, {
            "apiVersion": "%s/%s" % (group, version), "kind": kind,
            "metadata": {"name": "web-scaler", "namespace": namespace},
            "spec": {"scaleTargetRef": {"name": "web"}, "minReplicaCount": 1}})

        rc, _results, failed, _out, _err = ph.run_restore("rollback.yml", kubeconfig, {
            "session": session, "report_directory": str(tmp_path)})
        assert rc != 0 and failed, "the rollback did not fail"
        last = failed[-1][1].get("msg", "")
        assert "is scaled by KEDA ScaledObject" in last and "pause_gitops=true" in last, last
        assert "Nothing was swapped back in this run" in last, last
        assert kube.get("PersistentVolumeClaim", namespace, app["pvcs"][0])["spec"]["volumeName"] == claims
        assert kube.get("Deployment", namespace, "web")["spec"]["replicas"] == 1
        doc = ph.session_journal(kube, session)
        assert doc["state"] == "rolling_back" and "KEDA" in (doc.get("error") or ""), (doc["state"], doc.get("error"))
        ph.replicas_back(api_client, app)
    finally:
        ph.drop_session(kube, session)
