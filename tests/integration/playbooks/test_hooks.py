# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A command hook whose pod or selector matches no Running pod did not run: with on_error=fail the play stops
there (a mistyped selector must not let a restore go on without the flush it asked for), with continue it is
recorded as ignored and the restore goes on."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import proof_helpers as ph  # noqa: E402 pylint: disable=wrong-import-position

pytestmark = [pytest.mark.integration, pytest.mark.sim_only]


@pytest.mark.parametrize("on_error", ["fail", "continue"])
def test_command_hook_without_a_running_pod(api_client, kube, kubeconfig, namespace, app_factory, backup_factory,
                                            state_dir, tmp_path, on_error):
    app = app_factory(kind="Deployment", name="web")
    backup = backup_factory(method="fs")["metadata"]["name"]
    ph.scramble(api_client, state_dir, app)
    session = "hook-nopod-" + namespace[-8:]
    hook = {"name": "flush", "command": ["sync"], "pod_selector": "app=mistyped", "on_error": on_error}
    try:
        rc, _results, failed, _out, _err = ph.run_restore("restore_in_place.yml", kubeconfig, dict(
            source_namespace=namespace, backup=backup, session=session, report_directory=str(tmp_path),
            # a single hook is taken as a list of one (the input check accepted it; the roles failed on it)
            pre_restore_hooks=[hook] if on_error == "fail" else hook))
        log = [h for h in (ph.session_journal(kube, session) or {}).get("hooks") or [] if h.get("name") == "flush"]
        assert len(log) == 1 and "no Running pod matched pod_selector app=mistyped" in log[0]["message"], log
        if on_error == "fail":
            assert rc != 0 and failed, "the play went on without the hook"
            assert "no Running pod matched" in failed[0][1].get("msg", ""), failed[0]
            # nothing was stopped, so the rescue started nothing and does not say it did
            assert "started again" not in failed[-1][1].get("msg", ""), failed[-1]
            assert log[0]["result"] == "failed"
            # the pre-restore hooks run before the stop: nothing was stopped or restored
            ph.replicas_back(api_client, app)
        else:
            assert rc == 0 and not failed, [(n, r.get("msg")) for n, r in failed]
            assert log[0]["result"] == "ignored"
            ph.assert_data_matches(api_client, state_dir, app)
    finally:
        ph.drop_session(kube, session)


def test_a_rerun_after_a_failed_post_restore_hook_does_not_stop_the_app_again(api_client, kube, kubeconfig, namespace,
                                                                              app_factory, backup_factory, state_dir,
                                                                              tmp_path):
    """The data was written and the app started when a post-restore hook failed: the re-run the message asks for
    starts what is stopped and runs the post-restore hooks, without a second stop, helper pod or restore."""
    app = app_factory(kind="Deployment", name="web")
    backup = backup_factory(method="fs")["metadata"]["name"]
    ph.scramble(api_client, state_dir, app)
    session = "hook-post-" + namespace[-8:]
    broken = {"name": "warm", "command": ["true"], "pod_selector": "app=mistyped", "on_error": "fail"}
    try:
        rc, _results, failed, _out, _err = ph.run_restore("restore_in_place.yml", kubeconfig, dict(
            source_namespace=namespace, backup=backup, session=session, report_directory=str(tmp_path),
            post_restore_hooks=[broken]))
        assert rc != 0 and "no Running pod matched" in failed[0][1].get("msg", ""), failed
        ph.assert_data_matches(api_client, state_dir, app)
        ph.replicas_back(api_client, app)

        rc, results, failed, _out, _err = ph.run_restore("restore_in_place.yml", kubeconfig, dict(
            source_namespace=namespace, backup=backup, session=session, report_directory=str(tmp_path)))
        assert rc == 0 and not failed, [(n, r.get("msg")) for n, r in failed]
        ran = [n for n, r in results if not r.get("skipped")]
        assert not [n for n in ran if "Stop the workloads" in n or "Create the helper pods" in n], ran
        assert [n for n in ran if "Say that the data is restored already" in n], ran
        assert ph.session_journal(kube, session)["state"] == "completed"
        ph.replicas_back(api_client, app)
    finally:
        ph.drop_session(kube, session)
