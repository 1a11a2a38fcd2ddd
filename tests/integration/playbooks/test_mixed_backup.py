# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/restore_replace.yml on a backup that used both methods: one volume by the file-system
backup (PodVolumeBackup), one by the CSI data mover (DataUpload) - Velero's opt-in approach.

The replace role then restores the first by a PodVolumeRestore into a new PVC and the second by a
DataDownload. The session may only be marked ``restored`` once both parts are done: the
PodVolumeRestore part runs first and must leave the state alone.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import proof_helpers as ph  # noqa: E402 pylint: disable=wrong-import-position

pytestmark = [pytest.mark.integration, pytest.mark.sim_only]

SESSION_LABEL = "data-restore.ansible/session"


def _journal(kube, session):
    return ph.session_journal(kube, session)


def test_replace_with_pod_volume_restore_and_data_download(api_client, kube, kubeconfig, namespace, app_factory,
                                                           backup_factory, state_dir, sim_config, tmp_path):
    app = app_factory(kind="Deployment", name="mix", volumes=[{"name": "data"}, {"name": "cache"}])
    fs_claim, moved_claim = "mix-data", "mix-cache"
    assert sorted(app["pvcs"]) == sorted([fs_claim, moved_claim]), app["pvcs"]
    backup = backup_factory(method="data_mover", fs_pvcs=[fs_claim])["metadata"]["name"]
    pvs = ph.pvs_with_data(api_client, state_dir, [namespace])
    ph.scramble(api_client, state_dir, app)
    sim_config.set(bytesPerSecond=1500)  # a few seconds per volume: the two parts cannot share a second
    session = "mixed-" + namespace[-8:]
    try:
        rc, results, failed, _out, stderr = ph.run_restore("restore_replace.yml", kubeconfig, {
            "source_namespace": namespace, "backup": backup, "session": session,
            "report_directory": str(tmp_path), "wait_slice": 2})
        assert rc == 0 and not failed, "%s\n%s" % ([(n, r.get("msg")) for n, r in failed], stderr[-1500:])
        plan = [r for n, r in results if n.endswith("Build and validate the restore plan, create the session "
                                                    "(or continue it)")][0]["plan"]
        assert dict((v["source_pvc"], v["restore_via"]) for v in plan["volumes"]) == {
            fs_claim: "pod_volume_restore", moved_claim: "data_download"}, plan["volumes"]

        ph.assert_data_matches(api_client, state_dir, app)
        ph.replicas_back(api_client, app)
        ph.assert_nothing_lost(api_client, state_dir, pvs)
        selector = "%s=%s" % (SESSION_LABEL, session)
        pvrs = kube.list("PodVolumeRestore", ph.VELERO_NS, label_selector=selector)
        dds = kube.list("DataDownload", ph.VELERO_NS, label_selector=selector)
        assert len(pvrs) == 1 and len(dds) == 1, ([o["metadata"]["name"] for o in pvrs],
                                                  [o["metadata"]["name"] for o in dds])

        # both data paths run at once: the DataDownload was created before the PodVolumeRestore's wait ended
        # (it came only after every PodVolumeRestore had finished before 2026-12-06, each with a whole timeout)
        pvr_done = pvrs[0]["status"]["completionTimestamp"]
        assert dds[0]["metadata"]["creationTimestamp"] <= pvrs[0]["metadata"]["creationTimestamp"] < pvr_done, (
            dds[0]["metadata"]["creationTimestamp"], pvrs[0]["metadata"]["creationTimestamp"], pvr_done)

        # "restored" comes after the DataDownload finished, and only once (RFC 3339 UTC seconds compare as text)
        doc = _journal(kube, session)
        restored = [h["at"] for h in doc["history"] if h["event"] == "state restored"]
        dd_done = dds[0]["status"]["completionTimestamp"]
        assert len(restored) == 1 and restored[0] >= dd_done, (restored, dd_done, doc["history"])
        states = [h["event"] for h in doc["history"] if h["event"].startswith("state ")]
        assert states.index("state restored") < states.index("state swapped"), states
    finally:
        ph.drop_session(kube, session)


def test_a_failed_pod_volume_restore_leaves_the_data_download_running_and_says_so(
        api_client, kube, kubeconfig, namespace, app_factory, backup_factory, state_dir, sim_config, tmp_path):
    """The PodVolumeRestore part fails while the DataDownload still copies: the rescue cancels the former, leaves the
    latter writing into its new claim (no workload uses it) and says so; a re-run finishes both."""
    app = app_factory(kind="Deployment", name="mix", volumes=[{"name": "data"}, {"name": "cache"}])
    fs_claim, moved_claim = "mix-data", "mix-cache"
    backup = backup_factory(method="data_mover", fs_pvcs=[fs_claim])["metadata"]["name"]
    pvs = ph.pvs_with_data(api_client, state_dir, [namespace])
    ph.scramble(api_client, state_dir, app)
    snapshots = [p["status"]["snapshotID"] for p in kube.list(
        "PodVolumeBackup", ph.VELERO_NS, label_selector="velero.io/backup-name=%s" % backup)]
    sim_config.set(failSnapshots=",".join(snapshots), bytesPerSecond=200)  # the DataDownload takes ~20 s
    session = "mixed-fail-" + namespace[-8:]
    selector = "%s=%s" % (SESSION_LABEL, session)
    try:
        rc, _results, failed, _out, _err = ph.run_restore("restore_replace.yml", kubeconfig, {
            "source_namespace": namespace, "backup": backup, "session": session,
            "report_directory": str(tmp_path), "wait_slice": 2})
        assert rc != 0 and failed, "the play did not fail"
        last = failed[-1][1].get("msg", "")
        assert "simulated failure" in last, last
        assert "go on in the background" in last and moved_claim in last.split("go on in the background")[0], last
        assert "data_download state=absent" in last, last
        (dd,) = kube.list("DataDownload", ph.VELERO_NS, label_selector=selector)
        assert (dd.get("status") or {}).get("phase") not in ("Canceled", "Failed"), dd.get("status")
        ph.replicas_back(api_client, app)  # the workload runs on its original claims
        ph.assert_nothing_lost(api_client, state_dir, pvs)

        sim_config.set(failSnapshots="", bytesPerSecond=50 * 1024 * 1024)
        rc, _results, failed, _out, stderr = ph.run_restore("restore_replace.yml", kubeconfig, {
            "source_namespace": namespace, "backup": backup, "session": session,
            "report_directory": str(tmp_path), "wait_slice": 2, "retry_failed": True})
        assert rc == 0 and not failed, "%s\n%s" % ([(n, r.get("msg")) for n, r in failed], stderr[-1500:])
        ph.assert_data_matches(api_client, state_dir, app)
        ph.replicas_back(api_client, app)
        assert len(kube.list("DataDownload", ph.VELERO_NS, label_selector=selector)) == 1
    finally:
        ph.drop_session(kube, session)
