# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/restore_in_place.yml and restore_replace.yml over a restore that outlasts several wait slices: each
later slice continues the watch of the one before (the in_place and replace roles hand ``resume`` on), so the
PodVolumeRestores / DataDownloads are listed once per run, not once per slice. The slice lengths themselves are
covered by tests/unit/plugins/filter."""

import os
import sys
from urllib.parse import urlparse

import pytest

from ansible_collections.velero.data_restore.plugins.module_utils.velero_api import DATA_PATH_FINAL_PHASES

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import proof_helpers as ph  # noqa: E402 pylint: disable=wrong-import-position

pytestmark = [pytest.mark.integration, pytest.mark.sim_only]

COLLECTION = "/apis/velero.io/%s/namespaces/" + ph.VELERO_NS + "/%s"
CASES = {
    # playbook: (backup method, the wait-slice task, the module's request log, its collection's path)
    "restore_in_place.yml": ("fs", "Create the missing PodVolumeRestores, wait seconds at most",
                             "pod_volume_restore.log", COLLECTION % ("v1", "podvolumerestores")),
    "restore_replace.yml": ("data_mover", "Create what is missing, wait for the DataDownloads, seconds at most",
                            "data_download.log", COLLECTION % ("v2alpha1", "datadownloads")),
}


def _requests(log):
    with open(log) as handle:
        return [(line.split()[1], urlparse(line.split()[2]).path) for line in handle if line.strip()]


@pytest.mark.parametrize("playbook", sorted(CASES))
def test_later_wait_slices_continue_the_watch(api_client, kube, kubeconfig, namespace, app_factory, backup_factory,
                                              state_dir, sim_config, tmp_path, playbook):
    method, slice_task, log_name, collection = CASES[playbook]
    app = app_factory(kind="Deployment", name="slow", volumes=[{"name": "data"}])
    backup = backup_factory(method=method)["metadata"]["name"]
    ph.scramble(api_client, state_dir, app)
    sim_config.set(bytesPerSecond=400)  # longer than the first two slices (2 s, 4 s)
    session = "slices-" + namespace[-8:]
    log_dir = tmp_path / "requests"
    log_dir.mkdir()
    env = {"DATA_RESTORE_REQUEST_LOG_DIR": str(log_dir),
           "PYTHONPATH": os.path.join(ph.REPO, "tests", "request_log") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        rc, results, failed, _out, stderr = ph.run_restore(playbook, kubeconfig, {
            "source_namespace": namespace, "backup": backup, "session": session,
            "report_directory": str(tmp_path), "wait_slice": 2}, env=env)
        assert rc == 0 and not failed, "%s\n%s" % ([(n, r.get("msg")) for n, r in failed], stderr[-1500:])
        ph.assert_data_matches(api_client, state_dir, app)

        slices = [r for n, r in results if slice_task in n]
        assert len(slices) >= 3 and [s["done"] for s in slices][-1] and not any(s["done"] for s in slices[:-1]), (
            "the restore should outlast two slices: %s" % [(s["done"], s.get("progress")) for s in slices])
        handed_on = [bool(s["invocation"]["module_args"].get("resume")) for s in slices]
        # the replace role creates the DataDownloads before the PodVolumeRestores' wait: its first slice continues
        # from those creates
        first = playbook == "restore_replace.yml"
        assert handed_on == [first] + [True] * (len(slices) - 1), handed_on

        requests = _requests(log_dir / log_name)
        lists = [r for r in requests if r == ("GET", collection)]
        watches = [r for r in requests if r == ("WATCH", collection)]
        assert len(lists) == 1, "listed %d times over %d slices: %s" % (len(lists), len(slices), sorted(set(requests)))
        # every slice that started with objects still running watched them; a replace slice that started from
        # finished DataDownloads only waits for their PVCs to be Bound
        running = [i == 0 or any((o.get("status") or {}).get("phase") not in DATA_PATH_FINAL_PHASES
                                 for o in s["invocation"]["module_args"]["resume"]["objects"])
                   for i, s in enumerate(slices)]
        assert len(watches) >= running.count(True), (len(watches), running)
    finally:
        ph.drop_session(kube, session)
