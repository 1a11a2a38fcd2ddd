# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The first use case of Velero issue 7345: the cluster was lost, GitOps deployed the app again into a new one (new,
empty claims of the same names), and Velero's backup sync brought the Backup in. Only the data is to come back.

The new cluster is simulated on the one test cluster: the app and its claims are deleted, and sim.velero.new_cluster
does what Velero's backup sync does (contract §5): the Backup and its PodVolumeBackups are created again with new
UIDs, and the DataUploads are gone. Then the app is deployed again with other data, and a restore playbook must bring
back the backup's data byte for byte.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import proof_helpers as ph  # noqa: E402 pylint: disable=wrong-import-position

pytestmark = [pytest.mark.integration, pytest.mark.sim_only]

CASES = {
    # a StatefulSet restored in place from a file-system backup (PodVolumeRestores)
    "in_place_fs": ("restore_in_place.yml", "fs", "StatefulSet", 2),
    # a Deployment restored into new claims from a data-mover backup (DataDownloads without a DataUpload to read)
    "replace_data_mover": ("restore_replace.yml", "data_mover", "Deployment", 1),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_app_redeployed_in_a_new_cluster_gets_the_backup_data(api_client, kube, kubeconfig, namespace,
                                                                  app_factory, backup_factory, state_dir, wait_for,
                                                                  tmp_path, case):
    from sim.velero import new_cluster  # pylint: disable=import-error

    playbook, method, kind, replicas = CASES[case]
    before_loss = app_factory(kind=kind, name="shop", replicas=replicas)
    backup = backup_factory(method=method)
    name = backup["metadata"]["name"]

    # the cluster is lost: the app and its volumes are gone
    kube.delete(kind, namespace, "shop")
    for claim in before_loss["pvcs"]:
        kube.delete("PersistentVolumeClaim", namespace, claim)
    wait_for(lambda: not any(kube.get_or_none("PersistentVolumeClaim", namespace, c) for c in before_loss["pvcs"]),
             60, message="the lost claims are gone")
    synced = new_cluster(api_client, state_dir, name)
    assert synced["metadata"]["uid"] != backup["metadata"]["uid"]
    assert kube.list("DataUpload", ph.VELERO_NS, label_selector="velero.io/backup-name=%s" % name) == []

    # GitOps deploys the app again: claims of the same names, with data of their own
    redeployed = app_factory(kind=kind, name="shop", replicas=replicas)
    assert sorted(redeployed["pvcs"]) == sorted(before_loss["pvcs"])
    backed_up = dict(redeployed, files=before_loss["files"])
    assert not any(v is True for v in ph.data_matches(api_client, state_dir, backed_up).values()), \
        "the redeployed app must start with other data"
    pvs = ph.pvs_with_data(api_client, state_dir, [namespace])

    session = "lost-" + namespace[-8:]
    try:
        rc, results, failed, _out, stderr = ph.run_restore(playbook, kubeconfig, {
            "source_namespace": namespace, "backup": name, "session": session, "report_directory": str(tmp_path),
            "wait_slice": 2})
        assert rc == 0 and not failed, "%s\n%s" % ([(n, r.get("msg")) for n, r in failed], stderr[-1500:])
        plan = ph.plan_of(results)
        assert plan["backup"]["uid"] == synced["metadata"]["uid"], plan["backup"]
        assert sorted(v["source_pvc"] for v in plan["volumes"]) == sorted(before_loss["pvcs"])
        assert set(v["method"] for v in plan["volumes"]) == {method}, plan["volumes"]

        ph.assert_data_matches(api_client, state_dir, backed_up)
        ph.replicas_back(api_client, redeployed)
        ph.assert_nothing_lost(api_client, state_dir, pvs)
        report = (tmp_path / ("data-restore-%s.md" % session)).read_text()
        assert "| completed |" in report, report[:2000]
    finally:
        ph.drop_session(kube, session)
