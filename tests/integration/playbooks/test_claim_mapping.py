# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""claim_mapping: the app was redeployed under another release name after the backup (Helm release shop-v1
became shop-v2), so its claim is shop-v2-data where the backup holds shop-v1-data. Both playbooks restore the
backup's data into the renamed claim; the old release is gone."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import proof_helpers as ph  # noqa: E402 pylint: disable=wrong-import-position

pytestmark = [pytest.mark.integration, pytest.mark.sim_only]


@pytest.mark.parametrize("playbook", ["restore_in_place.yml", "restore_replace.yml"], ids=["in_place", "replace"])
def test_a_renamed_release_gets_the_data_of_its_old_claim(api_client, kube, kubeconfig, namespace, app_factory,
                                                          backup_factory, state_dir, wait_for, tmp_path, playbook):
    old = app_factory(kind="Deployment", name="shop-v1")
    backup = backup_factory(method="fs")["metadata"]["name"]
    kube.delete("Deployment", namespace, "shop-v1")
    kube.delete("PersistentVolumeClaim", namespace, "shop-v1-data")
    wait_for(lambda: kube.get_or_none("PersistentVolumeClaim", namespace, "shop-v1-data") is None, 60,
             message="claim shop-v1-data gone")
    new = app_factory(kind="Deployment", name="shop-v2")
    assert ph.data_matches(api_client, state_dir, dict(new, files={"shop-v2-data": old["files"]["shop-v1-data"]})) \
        != {"shop-v2-data": True}, "the new release must start with other data"
    pvs = ph.pvs_with_data(api_client, state_dir, [namespace])
    session = "rename-" + namespace[-8:]
    try:
        rc, results, failed, _out, stderr = ph.run_restore(playbook, kubeconfig, {
            "source_namespace": namespace, "backup": backup, "session": session, "report_directory": str(tmp_path),
            "claim_mapping": {"shop-v1-data": "shop-v2-data"}, "wait_slice": 2})
        assert rc == 0 and not failed, "%s\n%s" % ([(n, r.get("msg")) for n, r in failed], stderr[-1500:])
        plan = ph.plan_of(results)
        assert [(v["source_pvc"], v["key"]) for v in plan["volumes"]] == [
            ("shop-v1-data", "%s/shop-v2-data" % namespace)], plan["volumes"]
        ph.assert_data_matches(api_client, state_dir, dict(new, files={"shop-v2-data": old["files"]["shop-v1-data"]}))
        ph.replicas_back(api_client, new)
        ph.assert_nothing_lost(api_client, state_dir, pvs)
        text = (tmp_path / ("data-restore-%s.md" % session)).read_text()
        assert "%s/shop-v1-data" % namespace in text and "shop-v2-data" in text, text[:2000]

        # a re-run of the session with another mapping is refused before any change
        before = ph.snapshot(api_client, [namespace, ph.VELERO_NS])
        rc, _results, failed, _out, _err = ph.run_restore(playbook, kubeconfig, {
            "source_namespace": namespace, "backup": backup, "session": session, "report_directory": str(tmp_path)})
        assert rc != 0 and failed, "a re-run without the mapping must be refused"
        assert "target claim of %s/shop-v1-data" % namespace in failed[-1][1].get("msg", ""), failed[-1][1].get("msg")
        assert not ph.diff_snapshots(before, ph.snapshot(api_client, [namespace, ph.VELERO_NS]), (ph.VELERO_NS,))
    finally:
        ph.drop_session(kube, session)
