# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The data is restored and the workloads started, but their pods never get ready (here: a pod template whose node
selector matches no node, so the real scheduler leaves the pod Pending). The rescue must not start them again and
wait as long once more, and must not tell the user to start by hand workloads that were started."""

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import proof_helpers as ph  # noqa: E402 pylint: disable=wrong-import-position

pytestmark = [pytest.mark.integration, pytest.mark.sim_only]

WORKLOAD_TIMEOUT = 10


def test_a_start_that_is_not_ready_in_time_is_not_started_twice(api_client, kube, kubeconfig, namespace, app_factory,
                                                                backup_factory, state_dir, tmp_path):
    app = app_factory(kind="Deployment", name="web")
    backup = backup_factory(method="fs")["metadata"]["name"]
    ph.scramble(api_client, state_dir, app)
    # The old pod keeps running (the rollout cannot make progress); the new template's pods can never be scheduled.
    kube.patch("Deployment", namespace, "web", {"spec": {"template": {"spec": {
        "nodeSelector": {"data-restore.test/no-such-node": "true"}}}}})
    session = "start-timeout-" + namespace[-8:]
    try:
        started = time.monotonic()
        rc, results, failed, _out, _err = ph.run_restore("restore_in_place.yml", kubeconfig, dict(
            source_namespace=namespace, backup=backup, session=session, report_directory=str(tmp_path),
            workload_timeout=WORKLOAD_TIMEOUT))
        took = time.monotonic() - started
        assert rc != 0 and failed, "the play did not fail"
        first, last = failed[0][1].get("msg", ""), failed[-1][1].get("msg", "")
        assert "to be ready" in first, failed[0]
        assert [w["action"] for w in failed[0][1]["workloads"]] == ["started"], failed[0][1]
        # the data was written before the start
        ph.assert_data_matches(api_client, state_dir, app)
        # one readiness wait, not two: the rescue neither started nor waited again, and says so
        waits = [n for n, r in results if "Start the workloads again and wait until they are ready" in n
                 and not r.get("skipped")]
        assert len(waits) == 1, waits
        assert "were started before the failure" in last, last
        assert "start them by hand" not in last and "resuming the workloads failed" not in last, last
        assert "workload_timeout=<seconds>" in last, last
        assert took < 240, took
        dep = kube.get("Deployment", namespace, "web")
        assert dep["spec"]["replicas"] == 1
        doc = ph.session_journal(kube, session)
        assert doc["state"] == "failed"
        assert [r["status"] for r in doc["undo"] if r["action"] == "scale"] == ["reverted"]

        # once the pods can run, the re-run the message asks for finishes without stopping anything again
        kube.patch("Deployment", namespace, "web", {"spec": {"template": {"spec": {"nodeSelector": None}}}})
        rc, results, failed, _out, _err = ph.run_restore("restore_in_place.yml", kubeconfig, dict(
            source_namespace=namespace, backup=backup, session=session, report_directory=str(tmp_path)))
        assert rc == 0 and not failed, [(n, r.get("msg")) for n, r in failed]
        ran = [n for n, r in results if not r.get("skipped")]
        assert not [n for n in ran if "Stop the workloads" in n or "Create the helper pods" in n], ran
        ph.replicas_back(api_client, app)
        ph.assert_data_matches(api_client, state_dir, app)
    finally:
        ph.drop_session(kube, session)
