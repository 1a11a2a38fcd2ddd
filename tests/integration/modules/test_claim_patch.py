"""claim_patch against the test cluster: the REAL PV controller binds the pre-bound pair and
pvc-protection holds deletions while pods use the claims; the data directory follows the PV."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ansible_run import run_module  # noqa: E402
from proof_helpers import session_journal as journal  # noqa: E402

pytestmark = pytest.mark.integration


def read(path, rel):
    with open(os.path.join(path, rel), "rb") as handle:
        return handle.read()


def restored_claim(kube, api_client, state_dir, wait_for, namespace, name, files):
    from sim.storage import pvc_volume_path
    from sim.velero import write_files

    kube.create("PersistentVolumeClaim", {"metadata": {"name": name, "namespace": namespace},
                                          "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "sim-immediate",
                                                   "resources": {"requests": {"storage": "2Gi"}}}})
    wait_for(lambda: (kube.get("PersistentVolumeClaim", namespace, name).get("status") or {}).get("phase") == "Bound",
             60, message="PVC %s bound" % name)
    path = pvc_volume_path(api_client, state_dir, namespace, name)
    write_files(path, files)
    return kube.get("PersistentVolumeClaim", namespace, name)["spec"]["volumeName"]


@pytest.mark.sim_only
def test_rebind_swap_and_revert(kubeconfig, kube, api_client, state_dir, namespace, app_factory, wait_for):
    from sim.storage import pvc_volume_path

    app = app_factory(kind="Deployment", name="web", replicas=1)
    claim = app["pvcs"][0]
    kube.patch("PersistentVolumeClaim", namespace, claim, {"metadata": {"labels": {"tier": "db"},
                                                                        "annotations": {"team": "shop"}}})
    old_pv = kube.get("PersistentVolumeClaim", namespace, claim)["spec"]["volumeName"]
    new_pv = restored_claim(kube, api_client, state_dir, wait_for, namespace, claim + "-restored",
                            {"hello.txt": b"restored\n"})
    assert run_module("restore_session", {"session": namespace, "mode": "replace"}, kubeconfig=kubeconfig)["changed"]
    volumes = [{"key": "%s/%s" % (namespace, claim), "target_namespace": namespace, "target_pvc": claim,
                "new_pvc": {"name": claim + "-restored"}, "method": "fs"}]
    args = {"session": namespace, "volumes": volumes, "wait_timeout": 120}

    # refused while the Deployment's pod uses the claim: names the pod, changes nothing
    refused = run_module("claim_patch", args, kubeconfig=kubeconfig)
    assert refused.get("failed") and "in use by pod" in refused["msg"] and app["pods"][0] in refused["msg"], refused
    assert "workload_scale" in refused["msg"]
    assert journal(kube, namespace)["undo"] == []
    assert kube.get("PersistentVolume", None, old_pv)["spec"]["persistentVolumeReclaimPolicy"] == "Delete"

    stop = {"session": namespace, "namespace": namespace, "pvcs": [claim], "wait_timeout": 120}
    assert run_module("workload_scale", stop, kubeconfig=kubeconfig)["changed"]

    planned = run_module("claim_patch", args, kubeconfig=kubeconfig, check=True, diff=True)
    assert planned["changed"] and planned["volumes"][0]["state"] == "would_swap", planned
    assert kube.get("PersistentVolumeClaim", namespace, claim)["spec"]["volumeName"] == old_pv

    swapped = run_module("claim_patch", args, kubeconfig=kubeconfig)
    assert swapped["changed"] and not swapped.get("failed"), swapped
    vol = swapped["volumes"][0]
    assert (vol["old_pv"], vol["new_pv"], vol["pvc"], vol["state"]) == (old_pv, new_pv, claim, "swapped")
    pvc = kube.get("PersistentVolumeClaim", namespace, claim)
    assert pvc["spec"]["volumeName"] == new_pv and pvc["status"]["phase"] == "Bound"
    assert pvc["metadata"]["labels"]["tier"] == "db" and pvc["metadata"]["annotations"]["team"] == "shop"
    # the data directory followed the PV
    assert read(pvc_volume_path(api_client, state_dir, namespace, claim), "hello.txt") == b"restored\n"
    assert kube.get_or_none("PersistentVolumeClaim", namespace, claim + "-restored") is None
    old = kube.get("PersistentVolume", None, old_pv)
    assert old["status"]["phase"] == "Released" and old["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert kube.get("PersistentVolume", None, new_pv)["spec"]["persistentVolumeReclaimPolicy"] == "Retain"

    again = run_module("claim_patch", args, kubeconfig=kubeconfig)
    assert not again["changed"] and again["volumes"][0]["state"] == "swapped", again

    started = run_module("workload_scale", dict(stop, state="started"), kubeconfig=kubeconfig)
    assert started["changed"] and not started.get("failed"), started
    assert kube.get("Deployment", namespace, "web")["status"].get("readyReplicas") == 1

    # revert: back onto the retained old PV with the original data
    assert run_module("workload_scale", stop, kubeconfig=kubeconfig)["changed"]
    reverted = run_module("claim_patch", dict(args, state="reverted"), kubeconfig=kubeconfig)
    assert reverted["changed"] and reverted["volumes"][0]["state"] == "reverted", reverted
    pvc = kube.get("PersistentVolumeClaim", namespace, claim)
    assert pvc["spec"]["volumeName"] == old_pv and pvc["status"]["phase"] == "Bound"
    assert read(pvc_volume_path(api_client, state_dir, namespace, claim), "hello.txt") == app["files"][claim]["hello.txt"]
    back = kube.get("PersistentVolumeClaim", namespace, claim + "-restored")
    assert back["spec"]["volumeName"] == new_pv and back["status"]["phase"] == "Bound"
    for name in (old_pv, new_pv):
        assert kube.get("PersistentVolume", None, name)["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert not run_module("claim_patch", dict(args, state="reverted"), kubeconfig=kubeconfig)["changed"]
    assert run_module("workload_scale", dict(stop, state="started"), kubeconfig=kubeconfig)["changed"]


@pytest.mark.sim_only
def test_template_mode_patches_deployment(kubeconfig, kube, api_client, state_dir, namespace, app_factory, wait_for):
    app = app_factory(kind="Deployment", name="web", replicas=1)
    claim = app["pvcs"][0]
    restored_claim(kube, api_client, state_dir, wait_for, namespace, claim + "-restored", {"hello.txt": b"new\n"})
    assert run_module("restore_session", {"session": namespace, "mode": "replace"}, kubeconfig=kubeconfig)["changed"]
    args = {"session": namespace, "mode": "template", "volumes": [
        {"namespace": namespace, "pvc": claim, "new_pvc": claim + "-restored"}]}
    result = run_module("claim_patch", args, kubeconfig=kubeconfig)
    assert result["changed"] and result["volumes"][0]["workloads"] == ["Deployment/web"], result
    dep = kube.get("Deployment", namespace, "web")
    assert dep["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim + "-restored"
    assert not run_module("claim_patch", args, kubeconfig=kubeconfig)["changed"]
    # The Deployment rolled out onto the restored claim: patched back under its running pods, they would keep writing
    # to the restored volume during the rollout. The revert refuses them (rollback.yml stops the workload first).
    wait_for(lambda: [p for p in kube.list("Pod", namespace) if p["status"].get("phase") == "Running" and any(
        (v.get("persistentVolumeClaim") or {}).get("claimName") == claim + "-restored" for v in p["spec"]["volumes"])],
        120, message="a running pod of the restored claim")
    refused = run_module("claim_patch", dict(args, state="reverted"), kubeconfig=kubeconfig)
    assert refused.get("failed") and "%s-restored in namespace %s are in use by pod" % (claim, namespace) \
        in refused["msg"], refused
    stop = {"session": namespace, "namespace": namespace, "pvcs": [claim + "-restored"], "wait_timeout": 120}
    assert run_module("workload_scale", stop, kubeconfig=kubeconfig)["changed"]
    back = run_module("claim_patch", dict(args, state="reverted"), kubeconfig=kubeconfig)
    assert back["changed"], back
    dep = kube.get("Deployment", namespace, "web")
    assert dep["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim
