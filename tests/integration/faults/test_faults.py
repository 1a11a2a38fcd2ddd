# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Faults (issue 6 §2): SIGKILL of ansible-playbook at each step boundary and a re-run with the same
session; node-agent failures, DataDownload rebind failure, kube-apiserver restart during a wait.

Every case asserts "nothing lost": every PV that held data before the run still exists or its claim
is bound again. Results are listed in docs/reliability.md.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ansible_run  # noqa: E402 pylint: disable=wrong-import-position
import proof_helpers as ph  # noqa: E402 pylint: disable=wrong-import-position

pytestmark = [pytest.mark.integration, pytest.mark.sim_only]

SESSION_LABEL = "data-restore.ansible/session"


def _start(playbook, kubeconfig, extra_vars):
    cmd = [os.path.join(ansible_run.BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local",
           os.path.join(ph.PLAYBOOKS, playbook), "-e", json.dumps(extra_vars)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ph.REPO,
                            env=ansible_run.ansible_env(kubeconfig), start_new_session=True)


def _kill_when(proc, condition, timeout=300):
    """SIGKILL the whole ansible-playbook process group as soon as ``condition()`` is true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError("the playbook ended (rc=%s) before the boundary was seen:\n%s\n%s"
                                 % (proc.returncode, out[-2000:], err[-2000:]))
        try:
            hit = condition()
        except Exception:  # pylint: disable=broad-except
            hit = False
        if hit:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return True
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    raise AssertionError("boundary not reached within %ss" % timeout)


def _session_state(kube, session):
    doc = ph.session_journal(kube, session)
    return (doc.get("state"), doc.get("history") or []) if doc else (None, [])


def _by_session(kube, kind, namespace, session):
    return kube.list(kind, namespace, label_selector="%s=%s" % (SESSION_LABEL, session))


@pytest.fixture
def restored_app(api_client, namespace, app_factory, backup_factory, state_dir, sim_config):
    """An app with 2 volumes, its fs backup, then its data scrambled; slow node-agent (~3 s per volume)."""
    app = app_factory(kind="Deployment", name="web", volumes=[{"name": "data"}, {"name": "logs"}])
    backup = backup_factory(method="fs")["metadata"]["name"]
    before = ph.pvs_with_data(api_client, state_dir, [namespace])
    ph.scramble(api_client, state_dir, app)
    sim_config.set(bytesPerSecond=1500)
    return {"app": app, "backup": backup, "pvs": before, "session": "fault-" + namespace[-8:]}


def _vars(case, tmp_path, **extra):
    out = {"source_namespace": case["app"]["namespace"], "backup": case["backup"], "session": case["session"],
           "report_directory": str(tmp_path), "wait_slice": 2}
    out.update(extra)
    return out


def _complete_and_check(api_client, kube, kubeconfig, state_dir, case, tmp_path, playbook="restore_in_place.yml",
                        sim_config=None, **extra):
    if sim_config is not None:
        sim_config.set(bytesPerSecond=50 * 1024 * 1024)
    rc, results, failed, stdout, stderr = ph.run_restore(playbook, kubeconfig, _vars(case, tmp_path, **extra))
    assert rc == 0 and not failed, "re-run failed: %s\n%s" % ([(n, r.get("msg")) for n, r in failed], stderr[-1500:])
    ph.assert_data_matches(api_client, state_dir, case["app"])
    ph.replicas_back(api_client, case["app"])
    pvrs = _by_session(kube, "PodVolumeRestore", ph.VELERO_NS, case["session"])
    dds = _by_session(kube, "DataDownload", ph.VELERO_NS, case["session"])
    per_volume = {}
    for obj in pvrs + dds:
        key = (obj["metadata"].get("labels") or {}).get("data-restore.ansible/volume") or obj["metadata"]["name"]
        per_volume.setdefault(key, []).append(obj["metadata"]["name"])
    duplicates = {k: v for k, v in per_volume.items() if len(v) > 1}
    assert not duplicates, "duplicate PVRs/DataDownloads: %s" % duplicates
    assert len(pvrs) + len(dds) <= len(case["app"]["pvcs"]), [o["metadata"]["name"] for o in pvrs + dds]
    ph.assert_nothing_lost(api_client, state_dir, case["pvs"])
    return results


def _complete_same_or_new_session(api_client, kube, kubeconfig, state_dir, case, tmp_path, sim_config):
    """Re-run the session with retry_failed; when a data path had completed although its PodVolumeRestore did not
    end Completed (the apiserver was down for its status update; the rescue canceled it), the volume holds the
    session's done file, restore-wait exits at once and Velero never takes a new PodVolumeRestore: the re-run says
    so, naming a new session, and a new session then completes."""
    sim_config.set(bytesPerSecond=50 * 1024 * 1024)
    rc, _results, failed, _stdout, stderr = ph.run_restore("restore_in_place.yml", kubeconfig,
                                                           _vars(case, tmp_path, retry_failed=True))
    if rc != 0:
        msgs = [r.get("msg") or "" for _n, r in failed]
        assert any(".velero/<session uid>" in m and "new session name" in m for m in msgs), (msgs, stderr[-1500:])
        ph.replicas_back(api_client, case["app"])
        case = dict(case, session=case["session"] + "-again")
    return _complete_and_check(api_client, kube, kubeconfig, state_dir, case, tmp_path, sim_config=sim_config,
                               retry_failed=True)


BOUNDARIES = {
    "after-quiesce": lambda kube, case: _session_state(kube, case["session"])[0] in ("quiesced", "restoring"),
    "after-helper-pod": lambda kube, case: any(
        (p.get("status") or {}).get("phase") in ("Pending", "Running")
        for p in _by_session(kube, "Pod", case["app"]["namespace"], case["session"])),
    "after-pvr-creation": lambda kube, case: len(
        _by_session(kube, "PodVolumeRestore", ph.VELERO_NS, case["session"])) >= len(case["app"]["pvcs"]),
}


@pytest.mark.parametrize("boundary", sorted(BOUNDARIES))
def test_sigkill_at_step_boundary_then_rerun_completes(api_client, kube, kubeconfig, state_dir, restored_app,
                                                       sim_config, tmp_path, boundary):
    proc = _start("restore_in_place.yml", kubeconfig, _vars(restored_app, tmp_path))
    _kill_when(proc, lambda: BOUNDARIES[boundary](kube, restored_app))
    ph.assert_nothing_lost(api_client, state_dir, restored_app["pvs"])
    _complete_and_check(api_client, kube, kubeconfig, state_dir, restored_app, tmp_path, sim_config=sim_config)


PRE_HOOK_NEEDS_RUNNING_POD = """
- name: The flush needs a Running pod of the app
  kubernetes.core.k8s_info:
    kind: Pod
    namespace: %s
    label_selectors: [app=web]
  register: flush__pods

- name: Fail without a Running pod to flush
  ansible.builtin.assert:
    that: flush__pods.resources | selectattr('status.phase', 'equalto', 'Running') | list | length > 0
    fail_msg: no Running pod of the app to flush
"""


def test_rerun_after_the_stop_skips_the_pre_restore_hooks(api_client, kube, kubeconfig, state_dir, restored_app,
                                                          sim_config, tmp_path):
    """The first run ran the hook and stopped the app; the re-run finds no pod to act on and must not fail (and
    cancel the running PodVolumeRestores in its rescue): the hooks of a session that stopped its workloads are
    not run again."""
    hook_file = tmp_path / "flush.yml"
    hook_file.write_text(PRE_HOOK_NEEDS_RUNNING_POD % restored_app["app"]["namespace"])
    proc = _start("restore_in_place.yml", kubeconfig, _vars(restored_app, tmp_path, pre_restore_tasks=[str(hook_file)]))
    _kill_when(proc, lambda: BOUNDARIES["after-pvr-creation"](kube, restored_app))
    _complete_and_check(api_client, kube, kubeconfig, state_dir, restored_app, tmp_path, sim_config=sim_config,
                        pre_restore_tasks=[str(hook_file)])
    hooks = [h for h in ph.session_journal(kube, restored_app["session"]).get("hooks") or [] if h.get("phase") == "pre"]
    assert [h["name"] for h in hooks] == ["flush.yml"], hooks


def test_rerun_after_a_failure_that_started_the_app_again_runs_the_pre_restore_hooks_again(
        api_client, kube, kubeconfig, state_dir, restored_app, sim_config, tmp_path):
    """The first run stopped the app, its restore failed and the rescue started the app again: the app wrote since
    the flush, so the re-run must run the pre-restore hooks again before it stops the app (they are skipped only
    while a workload the session stopped is still stopped)."""
    hook_file = tmp_path / "flush.yml"
    hook_file.write_text(PRE_HOOK_NEEDS_RUNNING_POD % restored_app["app"]["namespace"])
    sim_config.set(failSnapshots=",".join(_pvb_snapshot_ids(kube, restored_app["backup"])), bytesPerSecond=10 ** 8)
    rc, _results, failed, _out, _err = ph.run_restore("restore_in_place.yml", kubeconfig, _vars(
        restored_app, tmp_path, pre_restore_tasks=[str(hook_file)]))
    _assert_failed_cleanly(api_client, state_dir, restored_app, rc, failed, "simulated failure")
    sim_config.set(failSnapshots="")
    results = _complete_and_check(api_client, kube, kubeconfig, state_dir, restored_app, tmp_path,
                                  sim_config=sim_config, retry_failed=True, pre_restore_tasks=[str(hook_file)])
    hooks = [h for h in ph.session_journal(kube, restored_app["session"]).get("hooks") or [] if h.get("phase") == "pre"]
    assert [(h["name"], h["result"]) for h in hooks] == [("flush.yml", "succeeded"), ("flush.yml", "succeeded")], hooks
    ran = [n for n, r in results if not r.get("skipped")]
    assert [n for n in ran if "Stop the workloads" in n], ran


def test_a_second_run_of_the_session_takes_over_and_the_first_stops_without_changing_anything(
        api_client, kube, kubeconfig, state_dir, restored_app, sim_config, tmp_path):
    """Two launches of one session (a job started twice, an operator's re-run while the first still waits): the
    newer run holds the session and completes it; the older one fails at its next step, and its rescue neither
    cancels, resumes nor marks anything."""
    sim_config.set(bytesPerSecond=300)  # the first run's restores outlast the second run's preflight
    first = _start("restore_in_place.yml", kubeconfig, _vars(restored_app, tmp_path))
    deadline = time.monotonic() + 120
    while not BOUNDARIES["after-pvr-creation"](kube, restored_app):
        assert first.poll() is None and time.monotonic() < deadline, "the first run ended before its PVRs existed"
        time.sleep(0.2)
    _complete_and_check(api_client, kube, kubeconfig, state_dir, restored_app, tmp_path)
    second_run = ph.session_journal(kube, restored_app["session"])["run"]
    out, _err = first.communicate(timeout=300)
    assert first.returncode != 0, "the first run went on after the second took the session over"
    first_results = ansible_run.task_results(json.loads(out[out.index("{"):]))
    fenced = [r for _name, r in first_results if r.get("superseded_by")]
    assert fenced and fenced[0]["superseded_by"] == second_run["id"], [(n, r.get("msg")) for n, r in first_results
                                                                       if r.get("failed")]
    assert second_run["previous"] == fenced[0]["session_run"]
    final = [r for name, r in first_results if name == "Stop here when another run took the session over"]
    assert final and "taken over by run %s" % second_run["id"] in final[0]["msg"]
    assert "Nothing was changed by this run's rescue" in final[0]["msg"]
    doc = ph.session_journal(kube, restored_app["session"])
    assert doc["state"] == "completed" and doc["run"]["id"] == second_run["id"], doc["history"][-6:]
    after_take_over = doc["history"][[h["event"] for h in doc["history"]].index(
        "run %s took over from %s" % (second_run["id"], second_run["previous"])):]
    assert not [h for h in after_take_over if "failed" in h["event"]], after_take_over
    ph.assert_data_matches(api_client, state_dir, restored_app["app"])
    ph.replicas_back(api_client, restored_app["app"])
    ph.assert_nothing_lost(api_client, state_dir, restored_app["pvs"])


def test_sigkill_mid_swap_between_pvc_delete_and_recreate(api_client, kube, kubeconfig, state_dir, restored_app,
                                                          sim_config, tmp_path):
    """Replace mode: kill the moment the original claim is deleted (before it is recreated)."""
    from kubernetes import client as kc, watch
    ns = restored_app["app"]["namespace"]
    target = restored_app["app"]["pvcs"][0]
    sim_config.set(bytesPerSecond=50 * 1024 * 1024)
    seen = threading.Event()

    def watch_claims():
        core = kc.CoreV1Api(api_client)
        for event in watch.Watch().stream(core.list_namespaced_persistent_volume_claim, ns, timeout_seconds=600):
            obj = event["object"]
            if obj.metadata.name == target and (event["type"] == "DELETED" or obj.metadata.deletion_timestamp):
                seen.set()
                return

    threading.Thread(target=watch_claims, daemon=True).start()
    proc = _start("restore_replace.yml", kubeconfig, _vars(restored_app, tmp_path))
    _kill_when(proc, seen.is_set)
    ph.assert_nothing_lost(api_client, state_dir, restored_app["pvs"])
    _complete_and_check(api_client, kube, kubeconfig, state_dir, restored_app, tmp_path,
                        playbook="restore_replace.yml")
    # The re-run continued the swap instead of restoring again: no new claim of the session is left (a rebind deletes
    # the restored claim; before 2026-12-04 a re-run created an empty one that stayed and blocked a later rollback).
    strays = kube.list("PersistentVolumeClaim", ns, label_selector="data-restore.ansible/session=%s,"
                       "data-restore.ansible/role=claim" % restored_app["session"])
    assert not strays, "stray new claims: %s" % [c["metadata"]["name"] for c in strays]


def test_swap_that_fails_half_way_is_rolled_back_before_the_workloads_start(
        api_client, kube, kubeconfig, state_dir, restored_app, sim_config, tmp_path):
    """Replace mode, the swap fails after it began (run as a ServiceAccount without delete on PVCs, so the first
    volume's swap stops at its claim deletes): started as they are, the workloads would run on a mix of restored and
    old data, so the rescue rolls the begun swap back, then starts them on their original volumes; a re-run with
    full rights restores and swaps again."""
    sim_config.set(bytesPerSecond=50 * 1024 * 1024)
    app = restored_app["app"]
    scrambled = ph.pvs_with_data(api_client, state_dir, [app["namespace"]])
    with ph.ServiceAccountGrant(api_client, [app["namespace"]],
                                drop=("velero-data-restore-workloads", "", "persistentvolumeclaims", "delete")) as grant:
        rc, results, failed, _out, stderr = ph.run_restore("restore_replace.yml", kubeconfig,
                                                           _vars(restored_app, tmp_path), env=grant.env())
    msgs = " | ".join(r.get("msg") or "" for _n, r in failed)
    assert rc != 0 and "missing RBAC permission verb=delete resource=persistentvolumeclaims" in msgs, (msgs, stderr[-800:])
    assert "had begun: it was rolled back, so the workloads start on their original volumes" in msgs, msgs
    reverted = [r for n, r in results if n.endswith("Swap the original volumes back in")]
    assert reverted and reverted[0].get("changed") and not reverted[0].get("failed"), reverted
    ph.replicas_back(api_client, app)
    for claim, pv in ((c["metadata"]["name"], c["spec"].get("volumeName"))
                      for c in kube.list("PersistentVolumeClaim", app["namespace"]) if c["metadata"]["name"] in app["pvcs"]):
        assert pv in scrambled, "claim %s is on %s, not on its original volume" % (claim, pv)
    state, _history = _session_state(kube, restored_app["session"])
    assert state == "failed", state
    ph.assert_nothing_lost(api_client, state_dir, restored_app["pvs"])
    _complete_and_check(api_client, kube, kubeconfig, state_dir, restored_app, tmp_path,
                        playbook="restore_replace.yml")


def _pvb_snapshot_ids(kube, backup):
    return [p["status"]["snapshotID"] for p in kube.list(
        "PodVolumeBackup", ph.VELERO_NS, label_selector="velero.io/backup-name=%s" % backup)]


def _assert_failed_cleanly(api_client, state_dir, case, rc, failed, expect):
    assert rc != 0 and failed, "the play did not fail"
    msgs = " | ".join(r.get("msg") or "" for _n, r in failed)
    assert expect in msgs, msgs
    assert "session=%s" % case["session"] in msgs or case["session"] in msgs, "no re-run hint: %s" % msgs
    ph.replicas_back(api_client, case["app"])
    ph.assert_nothing_lost(api_client, state_dir, case["pvs"])
    return msgs


def test_node_agent_missing_snapshot(api_client, kube, kubeconfig, state_dir, restored_app, sim_config, tmp_path):
    sim_config.set(failSnapshots=",".join(_pvb_snapshot_ids(kube, restored_app["backup"])), bytesPerSecond=10 ** 8)
    rc, _results, failed, _out, _err = ph.run_restore("restore_in_place.yml", kubeconfig, _vars(restored_app, tmp_path))
    _assert_failed_cleanly(api_client, state_dir, restored_app, rc, failed, "simulated failure")
    state, _history = _session_state(kube, restored_app["session"])
    assert state == "failed", state


def test_node_agent_crash_mid_copy(api_client, kube, kubeconfig, state_dir, restored_app, sim_config, tmp_path):
    sim_config.set(crashAfterBytes=1024, bytesPerSecond=4096)
    rc, _results, failed, _out, _err = ph.run_restore("restore_in_place.yml", kubeconfig, _vars(restored_app, tmp_path))
    msgs = _assert_failed_cleanly(api_client, state_dir, restored_app, rc, failed, "PodVolumeRestore")
    # 1024 bytes of the backup were written over the volume's own data before the crash: the message says so
    assert "stopped before it finished: in place, those volumes may now hold a mix of the backup's files and their " \
        "own" in msgs, msgs
    assert "retry_failed=true for the failed ones" in msgs, msgs
    # after the node-agent is healthy again, a re-run with the same session finishes the job
    sim_config.set(crashAfterBytes="")
    _complete_and_check(api_client, kube, kubeconfig, state_dir, restored_app, tmp_path, sim_config=sim_config,
                        retry_failed=True)


def _count_pvr_creations(api_client, session, stop):
    """{PVR name: [snapshotID, times created]} for the session's PVRs, from a watch that runs until ``stop`` is set."""
    from kubernetes import client as kc, watch
    created = {}

    def follow():
        custom = kc.CustomObjectsApi(api_client)
        stream = watch.Watch()
        for event in stream.stream(custom.list_namespaced_custom_object, "velero.io", "v1", ph.VELERO_NS,
                                   "podvolumerestores", label_selector="%s=%s" % (SESSION_LABEL, session),
                                   timeout_seconds=5):
            if event["type"] == "ADDED":
                obj = event["object"]
                entry = created.setdefault(obj["metadata"]["name"], [obj["spec"].get("snapshotID"), set()])
                entry[1].add(obj["metadata"]["uid"])

    def loop():
        while not stop.is_set():
            follow()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return created, thread


def test_retry_failed_retries_only_what_failed_before_the_run(api_client, kube, kubeconfig, state_dir, restored_app,
                                                              sim_config, tmp_path):
    """retry_failed=true recreates PVRs that had failed before this run; one that fails during this run's wait is
    reported, not recreated by the next wait slice (which would retry a broken snapshot for as long as the timeout)."""
    broken = [p["status"]["snapshotID"] for p in kube.list(
        "PodVolumeBackup", ph.VELERO_NS, label_selector="velero.io/backup-name=%s" % restored_app["backup"])][0]
    # one volume fails at once, the other runs ~15 s: several 2 s / 4 s / 8 s slices start after the failure
    sim_config.set(failSnapshots=broken, bytesPerSecond=300)
    stop = threading.Event()
    created, thread = _count_pvr_creations(api_client, restored_app["session"], stop)
    try:
        rc, _results, failed, _out, _err = ph.run_restore(
            "restore_in_place.yml", kubeconfig, _vars(restored_app, tmp_path, retry_failed=True))
    finally:
        stop.set()
        thread.join(timeout=10)
    msgs = _assert_failed_cleanly(api_client, state_dir, restored_app, rc, failed, "simulated failure")
    assert "re-run with retry_failed=true" in msgs, msgs
    failing = [name for name, (snapshot, _uids) in created.items() if snapshot == broken]
    assert len(failing) == 1 and len(created) == len(restored_app["app"]["pvcs"]), created
    assert len(created[failing[0]][1]) == 1, "the PVR that failed during the run was created again: %s" % created
    assert sorted(_phases(kube, restored_app["session"])) == ["Completed", "Failed"], _phases(
        kube, restored_app["session"])


def _phases(kube, session):
    return sorted((o.get("status") or {}).get("phase") or "New"
                  for o in _by_session(kube, "PodVolumeRestore", ph.VELERO_NS, session))


def _slow_and_queued(sim_config):
    """One data path per node and ~15 s per volume: of the 2 volumes (one helper pod, one node) one restore runs
    and the other waits Prepared, requeued (Velero's ConcurrentLimitExceed)."""
    sim_config.set(concurrencyPerNode=1, bytesPerSecond=300)


def test_timeout_while_a_restore_is_queued_stops_the_data_path_and_a_rerun_completes(
        api_client, kube, kubeconfig, state_dir, restored_app, sim_config, tmp_path):
    _slow_and_queued(sim_config)
    rc, _results, failed, _out, _err = ph.run_restore("restore_in_place.yml", kubeconfig,
                                                      _vars(restored_app, tmp_path, restore_timeout=4))
    msgs = _assert_failed_cleanly(api_client, state_dir, restored_app, rc, failed, "did not finish within 4s")
    # the rescue canceled and deleted both unfinished PVRs before deleting the helper pod and starting the workloads
    assert _phases(kube, restored_app["session"]) == [], (_phases(kube, restored_app["session"]), msgs)
    assert "stopping the unfinished" not in msgs and "were canceled; the re-run creates them again" in msgs, msgs
    _complete_and_check(api_client, kube, kubeconfig, state_dir, restored_app, tmp_path, sim_config=sim_config)


def test_rescue_that_cannot_stop_the_pvrs_says_so_keeps_the_workloads_stopped_and_the_named_fix_works(
        api_client, kube, kubeconfig, state_dir, restored_app, sim_config, tmp_path):
    """The rescue's own fallback: run as a ServiceAccount that may not delete PodVolumeRestores, the play times out
    while a restore is queued; stopping the unfinished PVRs fails too. The message says so (and which permission is
    missing). In place, a restore that may still run would write into the volumes the workloads mount: they stay
    stopped (until 2026-12-06 they were started). The fix the message names (pod_volume_restore state=absent), then
    a re-run, completes and starts them."""
    _slow_and_queued(sim_config)
    no_pvr_delete = ("velero-data-restore-velero", "velero.io", "podvolumerestores", "delete")
    with ph.ServiceAccountGrant(api_client, [restored_app["app"]["namespace"]], drop=no_pvr_delete) as grant:
        rc, _results, failed, _out, _err = ph.run_restore(
            "restore_in_place.yml", kubeconfig, _vars(restored_app, tmp_path, restore_timeout=4), env=grant.env())
    assert rc != 0 and failed, "the play did not fail"
    msgs = " | ".join(r.get("msg") or "" for _n, r in failed)
    assert "did not finish within 4s" in msgs and "session=%s" % restored_app["session"] in msgs, msgs
    assert "stopping the unfinished PodVolumeRestores failed as well" in msgs, msgs
    assert "missing RBAC permission verb=delete resource=podvolumerestores" in msgs, msgs
    assert "were canceled; the re-run creates them again" not in msgs, msgs
    assert "so the workloads were left stopped" in msgs and "The workloads were started again." not in msgs, msgs
    app = restored_app["app"]
    assert kube.get("Deployment", app["namespace"], "web")["spec"]["replicas"] == 0
    ph.assert_nothing_lost(api_client, state_dir, restored_app["pvs"])
    assert _session_state(kube, restored_app["session"])[0] == "failed"
    assert _phases(kube, restored_app["session"]), "the PVRs should still be there: their delete was forbidden"
    stopped = ansible_run.run_module("pod_volume_restore", {"session": restored_app["session"], "state": "absent"},
                                     kubeconfig=kubeconfig)
    assert not stopped.get("failed") and stopped.get("changed"), stopped
    assert _phases(kube, restored_app["session"]) == []
    _complete_and_check(api_client, kube, kubeconfig, state_dir, restored_app, tmp_path, sim_config=sim_config)


def test_data_download_rebind_failure(api_client, kube, kubeconfig, namespace, app_factory, backup_factory,
                                      state_dir, sim_config, tmp_path):
    app = app_factory(kind="Deployment", name="blk", volumes=[{"name": "data"}])
    backup = backup_factory(method="data_mover")["metadata"]["name"]
    pvs = ph.pvs_with_data(api_client, state_dir, [namespace])
    original = {c: dict(f) for c, f in app["files"].items()}
    sim_config.set(failRebind="true")
    case = {"app": app, "backup": backup, "pvs": pvs, "session": "rebind-" + namespace[-8:]}
    rc, _results, failed, _out, _err = ph.run_restore("restore_replace.yml", kubeconfig,
                                                      _vars(case, tmp_path, restore_timeout=60))
    msgs = _assert_failed_cleanly(api_client, state_dir, case, rc, failed, "DataDownload")
    assert "rebind" in msgs.lower() or "timed out" in msgs.lower() or "did not finish" in msgs.lower(), msgs
    # replace mode never touched the original claim: its data is still the original one
    ph.assert_data_matches(api_client, state_dir, dict(app, files=original))


def test_apiserver_restart_during_wait(api_client, kube, kubeconfig, state_dir, restored_app, sim_config, tmp_path):
    import cluster  # pylint: disable=import-error
    proc = _start("restore_in_place.yml", kubeconfig, _vars(restored_app, tmp_path))
    try:
        ph_deadline = time.monotonic() + 300
        while not _by_session(kube, "PodVolumeRestore", ph.VELERO_NS, restored_app["session"]):
            assert proc.poll() is None and time.monotonic() < ph_deadline, "no PVR appeared"
            time.sleep(0.2)
        cluster.restart_apiserver()
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode == 0:
        ph.assert_data_matches(api_client, state_dir, restored_app["app"])
        ph.replicas_back(api_client, restored_app["app"])
    else:
        # a clear failure is acceptable: the message names the problem and the workloads are resumed
        data = json.loads(out[out.index("{"):]) if "{" in out else None
        msgs = [r.get("msg") for _n, r in ansible_run.task_results(data) if r.get("failed")]
        assert msgs and all("Traceback" not in (m or "") for m in msgs), (msgs, err[-1500:])
        resumed_error = None
        try:
            ph.replicas_back(api_client, restored_app["app"], timeout=30)
        except AssertionError as exc:
            resumed_error = "%s; the play failed with: %s" % (exc, msgs)
        # a re-run completes (the restarted node-agent marks PVRs it found InProgress Failed, as
        # Velero does: the message says to re-run with retry_failed=true) and resumes the workloads
        _complete_same_or_new_session(api_client, kube, kubeconfig, state_dir, restored_app, tmp_path, sim_config)
        ph.assert_nothing_lost(api_client, state_dir, restored_app["pvs"])
        assert resumed_error is None, "workloads were not resumed by the failed run: " + resumed_error
    ph.assert_nothing_lost(api_client, state_dir, restored_app["pvs"])
