"""data_download against the test cluster: real PV binder/scheduler, simulated provisioner and node-agent."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data_path_helpers as h  # noqa: E402
from data_path_helpers import run_module  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("mode, storage_class, node_os", [
    ("Filesystem", "sim-immediate", None), ("Block", "sim-immediate", None), ("Filesystem", "sim-wffc", None),
    ("Block", "sim-wffc", None),
    # nodeOS unknown, as in a new cluster (only the DataUpload has it): the CRD's enum refuses "" - it is left out
    ("Block", "sim-immediate", "")])
def test_restore_into_new_pvc(kubeconfig, kube, api_client, state_dir, namespace, app_factory, backup_factory,
                              mode, storage_class, node_os):
    from sim.storage import pvc_volume_path
    from sim.velero import read_block, read_tree

    app = app_factory(volumes=[{"name": "data", "volume_mode": mode, "storage_class": storage_class}])
    [pvc] = app["pvcs"]
    backup = backup_factory(method="data_mover")
    h.session(kubeconfig, namespace, mode="replace")
    records = h.du_records(kube, backup, namespace, new_pvcs={pvc: pvc + "-restored"})
    if node_os is not None:
        records = [dict(rec, node_os=node_os) for rec in records]
    args = {"session": namespace, "volumes": records, "wait_timeout": 180}
    check = run_module("data_download", args, kubeconfig=kubeconfig, check=True)
    assert check["changed"] is True and kube.get_or_none("PersistentVolumeClaim", namespace, pvc + "-restored") is None
    result = run_module("data_download", args, kubeconfig=kubeconfig)
    assert not result.get("failed"), (result.get("msg"), result.get("module_stderr"), result.get("exception"))
    [vol] = result["volumes"]
    assert vol["phase"] == "Completed" and vol["pvc_phase"] == "Bound" and vol["pv"]
    claim = kube.get("PersistentVolumeClaim", namespace, pvc + "-restored")
    assert claim["spec"]["volumeName"] == vol["pv"]
    assert claim["spec"]["selector"]["matchLabels"]["velero.io/dynamic-pv-restore"] == vol["selector"]
    path = pvc_volume_path(api_client, state_dir, namespace, pvc + "-restored")
    if mode == "Block":
        expected = app["files"][pvc]
        assert read_block(path, len(expected)) == expected
    else:
        assert read_tree(path) == app["files"][pvc]
    wffc = storage_class == "sim-wffc"
    assert bool(result.get("placeholders_deleted")) is wffc
    assert not kube.list("Pod", namespace, label_selector="data-restore.ansible/role=consumer")
    again = run_module("data_download", args, kubeconfig=kubeconfig)
    assert again["changed"] is False and again["done"] is True


def test_bound_target_is_refused_and_rebind_failure_times_out(kubeconfig, kube, namespace, app_factory,
                                                              backup_factory, sim_config):
    app = app_factory(volumes=[{"name": "data"}])
    [pvc] = app["pvcs"]
    backup = backup_factory(method="data_mover")
    h.session(kubeconfig, namespace, mode="replace")
    bound = h.du_records(kube, backup, namespace, new_pvcs={pvc: pvc})  # the original, bound claim
    refused = run_module("data_download", {"session": namespace, "volumes": bound}, kubeconfig=kubeconfig)
    assert refused["failed"] and "already bound to PV" in refused["msg"] and "UNBOUND" in refused["msg"]
    sim_config.set(failRebind="true")
    records = h.du_records(kube, backup, namespace, new_pvcs={pvc: pvc + "-restored"})
    result = run_module("data_download", {"session": namespace, "volumes": records, "wait_timeout": 20},
                        kubeconfig=kubeconfig)
    assert result["failed"]
    assert "%s/%s" % (namespace, pvc) in result["msg"] and "logs ds/node-agent" in result["msg"]
    assert "InProgress" in result["msg"]
    canceled = run_module("data_download", {"session": namespace, "state": "absent", "volumes": records,
                                            "wait_timeout": 120}, kubeconfig=kubeconfig)
    assert not canceled.get("failed"), canceled
    assert not kube.list("DataDownload", "velero", label_selector="data-restore.ansible/session=%s" % namespace)
