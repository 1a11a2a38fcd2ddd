"""restore_helper_pod against the test cluster: real scheduler/apiserver, simulated kubelet + node-agent."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data_path_helpers as h  # noqa: E402
from data_path_helpers import run_module  # noqa: E402

pytestmark = pytest.mark.integration


def test_helper_pod_check_mode_idempotency_and_absent(kubeconfig, kube, namespace, app_factory, wait_for):
    app = app_factory(volumes=[{"name": "data"}, {"name": "logs"}])
    h.scale(kube, namespace, "app", 0, wait_for)
    sess = h.session(kubeconfig, namespace)
    args = {"session": namespace, "namespace": namespace, "pvcs": app["pvcs"], "wait_timeout": 60}
    check = run_module("restore_helper_pod", args, kubeconfig=kubeconfig, check=True)
    assert check["changed"] is True and not kube.list("Pod", namespace)
    first = run_module("restore_helper_pod", args, kubeconfig=kubeconfig)
    assert not first.get("failed"), first
    [pod] = first["pods"]
    assert pod["restore_wait"] == "running" and pod["volumes"] == {"app-data": "app-data", "app-logs": "app-logs"}
    live = kube.get("Pod", namespace, pod["name"])
    init = live["spec"]["initContainers"][0]
    assert init["name"] == "restore-wait" and init["args"] == [sess["uid"]]
    assert init["image"] == "velero/velero:v1.18.1" and init["command"] == ["/velero-restore-helper"]
    assert live["spec"]["restartPolicy"] == "Always"
    again = run_module("restore_helper_pod", args, kubeconfig=kubeconfig)
    assert again["changed"] is False and again["pods"][0]["uid"] == pod["uid"]
    differs = run_module("restore_helper_pod", dict(args, image="mirror.local/velero:v1"), kubeconfig=kubeconfig)
    assert differs["failed"] and "different spec" in differs["msg"]
    gone = run_module("restore_helper_pod", {"session": namespace, "state": "absent", "namespace": namespace},
                      kubeconfig=kubeconfig)
    assert gone["changed"] is True and kube.get_or_none("Pod", namespace, pod["name"]) is None


def test_missing_pvc_message(kubeconfig, kube, namespace):
    h.session(kubeconfig, namespace)
    result = run_module("restore_helper_pod", {"session": namespace, "namespace": namespace, "pvcs": ["nope"]},
                        kubeconfig=kubeconfig)
    assert result["failed"] and "nope not found in namespace %s" % namespace in result["msg"]


@pytest.fixture
def attach_limited_claims(kube, namespace, wait_for):
    """3 Bound claims of a CSI driver of this test only, whose nodes (CSINode) attach 2 volumes of it at most - a
    limit the real kube-scheduler enforces (NodeVolumeLimits). The driver is the test's own, so the volumes of other
    tests' pods on the simulated nodes do not count against it."""
    from sim.kubelet import NODES

    driver = "attach-%s.csi.test" % namespace
    claims = []
    for index in range(3):
        claim, volume = "vol-%d" % index, "%s-vol-%d" % (namespace, index)
        kube.create("PersistentVolume", {"metadata": {"name": volume}, "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
            "persistentVolumeReclaimPolicy": "Retain", "csi": {"driver": driver, "volumeHandle": volume},
            "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": namespace, "name": claim}}})
        kube.create("PersistentVolumeClaim", {"metadata": {"name": claim, "namespace": namespace}, "spec": {
            "accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": volume,
            "resources": {"requests": {"storage": "1Gi"}}}})
        claims.append(claim)
    wait_for(lambda: all((kube.get("PersistentVolumeClaim", namespace, c).get("status") or {}).get("phase") == "Bound"
                         for c in claims), message="claims bound")
    created, extended = [], []
    entry = {"name": driver, "nodeID": "", "allocatable": {"count": 2}}
    for node in NODES:
        current = kube.get_or_none("CSINode", None, node)
        if current is None:
            kube.create("CSINode", {"metadata": {"name": node}, "spec": {"drivers": [dict(entry, nodeID=node)]}})
            created.append(node)
        else:
            current["spec"]["drivers"] = (current["spec"].get("drivers") or []) + [dict(entry, nodeID=node)]
            kube.replace("CSINode", current)
            extended.append(node)
    yield claims
    for node in created:
        kube.delete("CSINode", None, node)
    for node in extended:
        current = kube.get("CSINode", None, node)
        current["spec"]["drivers"] = [d for d in current["spec"]["drivers"] if d["name"] != driver]
        kube.replace("CSINode", current)
    for index in range(3):
        if kube.get_or_none("PersistentVolume", None, "%s-vol-%d" % (namespace, index)):
            kube.delete("PersistentVolume", None, "%s-vol-%d" % (namespace, index))


def test_helper_pods_are_split_to_the_nodes_csi_attach_limit(kubeconfig, kube, namespace, attach_limited_claims):
    """Without the split, one helper pod for 3 volumes never schedules where a node attaches 2 (the scheduler says
    "exceed max volume count"); split to the CSINode limit, every volume is mounted and ready for its restore."""
    h.session(kubeconfig, namespace)
    args = {"session": namespace, "namespace": namespace, "pvcs": attach_limited_claims, "wait_timeout": 60}
    over = run_module("restore_helper_pod", dict(args, max_volumes_per_pod=3, wait_timeout=8), kubeconfig=kubeconfig)
    assert over.get("failed") and "max volume count" in over["msg"], over
    run_module("restore_helper_pod", {"session": namespace, "namespace": namespace, "state": "absent"},
               kubeconfig=kubeconfig)
    split = run_module("restore_helper_pod", args, kubeconfig=kubeconfig)
    assert not split.get("failed"), split
    assert sorted(sorted(p["volumes"]) for p in split["pods"]) == [["vol-0", "vol-1"], ["vol-2"]]
    assert all(p["restore_wait"] == "running" for p in split["pods"]), split["pods"]
