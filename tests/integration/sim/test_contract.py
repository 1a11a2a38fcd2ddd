"""Contract tests of the simulators: every rule of docs/velero-contract.md §2/§3/§7 that the
node-agent simulator implements has a positive and a negative test here, plus the kubelet,
provisioner and DownloadRequest behaviour the collection relies on.

PVRs and DataDownloads are created by hand (the collection's modules are tested elsewhere).
"""
from __future__ import annotations

import gzip
import json
import os
import secrets
import time
import urllib.error
import urllib.request

import pytest

from cluster_fixtures import wait_for
from sim import contract as C
from sim.storage import pvc_volume_path
from sim.velero import new_cluster, read_block, read_tree, write_files

pytestmark = [pytest.mark.integration, pytest.mark.sim_only]

VNS = "velero"
SHORT = 3.0  # how long "never happens" is observed


# ----------------------------------------------------------------------------- helpers
def rnd(prefix):
    return f"{prefix}-{secrets.token_hex(3)}"


@pytest.fixture
def anchor(kube):
    """Session-like owner object in the Velero namespace (its UID names the done file)."""
    cm = kube.create("ConfigMap", {"metadata": {"name": rnd("anchor"), "namespace": VNS}, "data": {}})
    yield cm
    kube.delete("ConfigMap", VNS, cm["metadata"]["name"])


@pytest.fixture(autouse=True)
def fast(sim_config):
    sim_config.set(bytesPerSecond=200 * 1024 * 1024)
    return sim_config


def owner_ref(obj):
    return {"apiVersion": "v1", "kind": obj.get("kind", "ConfigMap"), "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"]}


def helper_pod(kube, ns, claims: dict[str, str], uid_arg, *, name=None, node=None, init_name="restore-wait",
               args=None):
    """Pod with Velero's restore-wait init container mounting /restores/<volume> for each claim."""
    vols = [{"name": v, "persistentVolumeClaim": {"claimName": c}} for v, c in claims.items()]
    init = {"name": init_name, "image": "velero/velero:v1.18.1", "command": ["/velero-restore-helper"],
            "args": [uid_arg] if args is None else args,
            "volumeMounts": [{"name": v, "mountPath": f"/restores/{v}"} for v in claims]}
    spec = {"initContainers": [init], "volumes": vols, "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "pause", "image": "velero/velero:v1.18.1", "command": ["/velero-helper", "pause"]}]}
    if node:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    return kube.create("Pod", {"metadata": {"name": name or rnd("helper"), "namespace": ns}, "spec": spec})


def pvr_body(name, pod, volume, snapshot_id, source_ns, *, owner=None, uploader="kopia", label=True, bsl="default"):
    md = {"name": name, "namespace": VNS, "labels": {}}
    if label:
        md["labels"][C.LABEL_POD_UID] = pod["metadata"]["uid"]
    if owner is not None:
        md["ownerReferences"] = [owner_ref(owner)]
    return {"metadata": md, "spec": {
        "pod": {"kind": "Pod", "namespace": pod["metadata"]["namespace"], "name": pod["metadata"]["name"],
                "uid": pod["metadata"]["uid"]},
        "volume": volume, "snapshotID": snapshot_id, "sourceNamespace": source_ns,
        "backupStorageLocation": bsl, "repoIdentifier": "", "uploaderType": uploader}}


def dd_body(name, ns, pvc, snapshot_id, source_ns, *, owner=None, datamover="", node_os="", timeout="10m0s"):
    md = {"name": name, "namespace": VNS}
    if owner is not None:
        md["ownerReferences"] = [owner_ref(owner)]
    spec = {"targetVolume": {"pvc": pvc, "pv": "", "namespace": ns}, "backupStorageLocation": "default",
            "datamover": datamover, "snapshotID": snapshot_id, "sourceNamespace": source_ns,
            "operationTimeout": timeout}
    if node_os:
        spec["nodeOS"] = node_os
    return {"metadata": md, "spec": spec}


def phase(kube, kind, name):
    o = kube.get_or_none(kind, VNS, name)
    return None if o is None else (o.get("status") or {}).get("phase")


def wait_phase(kube, kind, name, want, timeout=30):
    want = (want,) if isinstance(want, str) else want
    return wait_for(lambda: (kube.get(kind, VNS, name) if phase(kube, kind, name) in want else None),
                    timeout, message=f"{kind} {name} phase in {want} (now {phase(kube, kind, name)})")


def stays(kube, kind, name, pred, seconds=SHORT):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        o = kube.get_or_none(kind, VNS, name)
        assert pred(o), f"{kind} {name} changed: {json.dumps((o or {}).get('status'))}"
        time.sleep(0.3)


def init_state(kube, ns, pod_name, cname="restore-wait"):
    p = kube.get("Pod", ns, pod_name)
    for s in (p.get("status") or {}).get("initContainerStatuses") or []:
        if s["name"] == cname:
            return next(iter(s.get("state") or {}), None), s
    return None, None


def wait_init_running(kube, ns, pod_name, timeout=30):
    wait_for(lambda: init_state(kube, ns, pod_name)[0] == "running", timeout, message=f"restore-wait running in {pod_name}")


def pvb_snapshot(kube, backup, pvc):
    for p in kube.list("PodVolumeBackup", VNS, label_selector=f"velero.io/backup-name={backup['metadata']['name']}"):
        if p["metadata"]["annotations"]["velero.io/pvc-name"] == pvc:
            return p["status"]["snapshotID"]
    raise AssertionError(f"no PVB for {pvc}")


def du_snapshot(kube, backup, pvc):
    for d in kube.list("DataUpload", VNS, label_selector=f"velero.io/backup-name={backup['metadata']['name']}"):
        if d["spec"]["sourcePVC"] == pvc:
            return d["status"]["snapshotID"]
    raise AssertionError(f"no DU for {pvc}")


def cleanup(kube, kind, *names):
    for n in names:
        o = kube.get_or_none(kind, VNS, n)
        if o is not None:
            kube.patch(kind, VNS, n, {"metadata": {"finalizers": None}})
            kube.delete(kind, VNS, n)


@pytest.fixture
def fs_setup(kube, app_factory, backup_factory, namespace, api_client, state_dir):
    """A Deployment with one Filesystem PVC, an fs backup of it, and its snapshot id."""
    app = app_factory(volumes=[{"name": "data"}])
    pvc = app["pvcs"][0]
    backup = backup_factory(method="fs")
    sid = pvb_snapshot(kube, backup, pvc)
    path = pvc_volume_path(api_client, state_dir, namespace, pvc)
    return {"app": app, "pvc": pvc, "backup": backup, "sid": sid, "path": path, "files": app["files"][pvc]}


# (pure rule tests without a cluster: tests/unit/sim/test_sim_rules.py)


# ----------------------------------------------------------------------------- kubelet / storage
def test_pod_with_unbound_pvc_stays_pending_and_selector_claim_is_not_provisioned(kube, namespace):
    kube.create("PersistentVolumeClaim", {"metadata": {"name": "sel", "namespace": namespace}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
        "storageClassName": "sim-immediate", "selector": {"matchLabels": {"velero.io/dynamic-pv-restore": "x"}}}})
    # the real scheduler refuses pods with unbound Immediate claims; bind by nodeName to reach the kubelet
    kube.create("Pod", {"metadata": {"name": "p", "namespace": namespace}, "spec": {
        "nodeName": "sim-node-a", "containers": [{"name": "c", "image": "busybox"}],
        "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "sel"}}]}})
    wait_for(lambda: any(e.get("reason") == "ProvisioningFailed" and "claim Selector is not supported" in e.get("message", "")
                         for e in kube.list("Event", namespace)), 20)
    wait_for(lambda: (kube.get("Pod", namespace, "p").get("status") or {}).get("containerStatuses"), 20)
    time.sleep(SHORT)
    st = kube.get("Pod", namespace, "p")["status"]
    assert st["phase"] == "Pending"
    assert st["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    assert kube.get("PersistentVolumeClaim", namespace, "sel")["status"]["phase"] == "Pending"


def test_deployment_scaled_to_zero_removes_pods(kube, app_factory, namespace):
    app = app_factory()
    pod = kube.get("Pod", namespace, app["pods"][0])
    assert pod["status"]["phase"] == "Running"
    assert all(c["type"] != "Ready" or c["status"] == "True" for c in pod["status"]["conditions"])
    kube.patch("Deployment", namespace, app["name"], {"spec": {"replicas": 0}})
    wait_for(lambda: not kube.list("Pod", namespace, label_selector=f"app={app['name']}"), 30)


def test_pvc_in_use_stays_terminating(kube, app_factory, namespace):
    app = app_factory()
    pvc = app["pvcs"][0]
    kube.delete("PersistentVolumeClaim", namespace, pvc)
    time.sleep(SHORT)
    claim = kube.get("PersistentVolumeClaim", namespace, pvc)
    assert claim["metadata"].get("deletionTimestamp") and "kubernetes.io/pvc-protection" in claim["metadata"]["finalizers"]
    kube.delete("Deployment", namespace, app["name"], propagation="Foreground")
    wait_for(lambda: kube.get_or_none("PersistentVolumeClaim", namespace, pvc) is None, 40)


def test_wffc_claim_binds_on_selected_node(kube, app_factory, namespace):
    app = app_factory(volumes=[{"name": "w", "storage_class": "sim-wffc"}])
    claim = kube.get("PersistentVolumeClaim", namespace, app["pvcs"][0])
    node = claim["metadata"]["annotations"][C.ANN_SELECTED_NODE]
    pv = kube.get("PersistentVolume", None, claim["spec"]["volumeName"])
    assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == [node]


# ----------------------------------------------------------------------------- PodVolumeRestore
def test_pvr_in_place_happy_path(kube, fs_setup, anchor, namespace):
    path = fs_setup["path"]
    os.remove(os.path.join(path, "hello.txt"))
    write_files(path, {"dir/data.bin": b"changed", "extra.txt": b"created after the backup"})
    kube.patch("Deployment", namespace, fs_setup["app"]["name"], {"spec": {"replicas": 0}})
    wait_for(lambda: not kube.list("Pod", namespace, label_selector=f"app={fs_setup['app']['name']}"), 30)
    uid = anchor["metadata"]["uid"]
    pod = helper_pod(kube, namespace, {"data": fs_setup["pvc"]}, uid)
    wait_init_running(kube, namespace, pod["metadata"]["name"])
    name = rnd("pvr")
    kube.create("PodVolumeRestore", pvr_body(name, pod, "data", fs_setup["sid"], namespace, owner=anchor))
    pvr = wait_phase(kube, "PodVolumeRestore", name, ("Completed", "Failed"))
    assert pvr["status"]["phase"] == "Completed", pvr["status"]
    st = pvr["status"]
    assert st["node"] == kube.get("Pod", namespace, pod["metadata"]["name"])["spec"]["nodeName"]
    assert st["acceptedTimestamp"] and st["startTimestamp"] and st["completionTimestamp"]
    size = sum(len(v) for v in fs_setup["files"].values())
    assert st["progress"] == {"totalBytes": size, "bytesDone": size}
    assert C.PVR_FINALIZER in pvr["metadata"]["finalizers"]
    # restore-wait sees .velero/<owner uid> and completes; the pod runs. Running as the Velero image's non-root
    # user, it cannot remove the root-owned .velero, so the done file stays in the volume.
    wait_for(lambda: init_state(kube, namespace, pod["metadata"]["name"])[0] == "terminated", 20)
    assert init_state(kube, namespace, pod["metadata"]["name"])[1]["state"]["terminated"]["exitCode"] == 0
    wait_for(lambda: kube.get("Pod", namespace, pod["metadata"]["name"])["status"]["phase"] == "Running", 20)
    assert os.listdir(os.path.join(path, ".velero")) == [uid]
    tree = read_tree(path)
    assert tree["extra.txt"] == b"created after the backup"          # kopia never deletes extra files
    assert {k: v for k, v in tree.items() if k != "extra.txt"} == fs_setup["files"]  # overwritten / recreated
    cleanup(kube, "PodVolumeRestore", name)


def test_done_file_written_under_owner_uid(kube, fs_setup, anchor, namespace):
    """Negative helper check: with the wrong UID as argument, restore-wait keeps waiting although
    the PVR completed and wrote .velero/<owner uid>."""
    pod = helper_pod(kube, namespace, {"data": fs_setup["pvc"]}, "not-the-owner-uid")
    wait_init_running(kube, namespace, pod["metadata"]["name"])
    name = rnd("pvr")
    kube.create("PodVolumeRestore", pvr_body(name, pod, "data", fs_setup["sid"], namespace, owner=anchor))
    wait_phase(kube, "PodVolumeRestore", name, "Completed")
    assert os.listdir(os.path.join(fs_setup["path"], ".velero")) == [anchor["metadata"]["uid"]]
    time.sleep(SHORT)
    assert init_state(kube, namespace, pod["metadata"]["name"])[0] == "running"
    cleanup(kube, "PodVolumeRestore", name)


def test_pvr_without_owner_completes_but_helper_waits(kube, fs_setup, anchor, namespace):
    pod = helper_pod(kube, namespace, {"data": fs_setup["pvc"]}, anchor["metadata"]["uid"])
    wait_init_running(kube, namespace, pod["metadata"]["name"])
    name = rnd("pvr")
    kube.create("PodVolumeRestore", pvr_body(name, pod, "data", fs_setup["sid"], namespace, owner=None))
    wait_phase(kube, "PodVolumeRestore", name, "Completed")
    assert not os.path.exists(os.path.join(fs_setup["path"], ".velero"))
    time.sleep(SHORT)
    assert init_state(kube, namespace, pod["metadata"]["name"])[0] == "running"
    cleanup(kube, "PodVolumeRestore", name)


@pytest.mark.parametrize("uploader", ["restic"])
def test_pvr_non_kopia_is_never_touched(kube, fs_setup, anchor, namespace, uploader):
    """v1.18.1 leaves restic PVRs to its legacy restic controller (IsLegacyPVR), which is not simulated."""
    pod = helper_pod(kube, namespace, {"data": fs_setup["pvc"]}, anchor["metadata"]["uid"])
    wait_init_running(kube, namespace, pod["metadata"]["name"])
    name = rnd("pvr")
    kube.create("PodVolumeRestore", pvr_body(name, pod, "data", fs_setup["sid"], namespace, owner=anchor, uploader=uploader))
    stays(kube, "PodVolumeRestore", name, lambda o: not o.get("status") and not o["metadata"].get("finalizers"))
    cleanup(kube, "PodVolumeRestore", name)


def test_pvr_with_an_empty_uploader_type_is_taken_and_fails(kube, fs_setup, anchor, namespace):
    """v1.18.1 takes it and builds a restic provider for it (NewUploaderProvider), which fails on a kopia snapshot."""
    pod = helper_pod(kube, namespace, {"data": fs_setup["pvc"]}, anchor["metadata"]["uid"])
    wait_init_running(kube, namespace, pod["metadata"]["name"])
    name = rnd("pvr")
    kube.create("PodVolumeRestore", pvr_body(name, pod, "data", fs_setup["sid"], namespace, owner=anchor, uploader=""))
    pvr = wait_phase(kube, "PodVolumeRestore", name, ("Completed", "Failed"))
    assert pvr["status"]["phase"] == "Failed" and pvr["status"].get("message"), pvr["status"]
    cleanup(kube, "PodVolumeRestore", name)


def test_pvr_pod_without_restore_wait_is_never_accepted(kube, fs_setup, anchor, namespace):
    # the app pod itself (no init container) — and a pod whose init container has another name
    app_pod = kube.get("Pod", namespace, fs_setup["app"]["pods"][0])
    other = helper_pod(kube, namespace, {"data": fs_setup["pvc"]}, anchor["metadata"]["uid"], init_name="restic-wait")
    names = [rnd("pvr"), rnd("pvr")]
    kube.create("PodVolumeRestore", pvr_body(names[0], app_pod, "data", fs_setup["sid"], namespace, owner=anchor))
    kube.create("PodVolumeRestore", pvr_body(names[1], other, "data", fs_setup["sid"], namespace, owner=anchor))
    wait_for(lambda: all(C.PVR_FINALIZER in (kube.get("PodVolumeRestore", VNS, n)["metadata"].get("finalizers") or [])
                         for n in names), 15)
    for n in names:
        stays(kube, "PodVolumeRestore", n, lambda o: C.phase_of(o) == "New")
    cleanup(kube, "PodVolumeRestore", *names)


def test_pvr_pod_uid_label_retriggers(kube, fs_setup, anchor, namespace, api_client, state_dir):
    """PVRs created before restore-wait runs: only the one labelled velero.io/pod-uid proceeds."""
    pod = helper_pod(kube, namespace, {"data": "late-missing"}, anchor["metadata"]["uid"])
    labelled, unlabelled = rnd("pvr"), rnd("pvr")
    kube.create("PodVolumeRestore", pvr_body(unlabelled, pod, "data", fs_setup["sid"], namespace, owner=anchor, label=False))
    kube.create("PodVolumeRestore", pvr_body(labelled, pod, "data", fs_setup["sid"], namespace, owner=anchor, label=True))
    wait_for(lambda: all(kube.get("PodVolumeRestore", VNS, n)["metadata"].get("finalizers") for n in (labelled, unlabelled)), 15)
    time.sleep(1)
    # now the claim appears: the pod starts, restore-wait runs, pod events are mapped by label
    kube.create("PersistentVolumeClaim", {"metadata": {"name": "late-missing", "namespace": namespace}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "storageClassName": "sim-immediate"}})
    wait_phase(kube, "PodVolumeRestore", labelled, "Completed")
    stays(kube, "PodVolumeRestore", unlabelled, lambda o: C.phase_of(o) == "New")
    path = pvc_volume_path(api_client, state_dir, namespace, "late-missing")
    assert read_tree(path) == fs_setup["files"]
    cleanup(kube, "PodVolumeRestore", labelled, unlabelled)


def test_pvr_wrong_source_namespace_or_snapshot_fails(kube, fs_setup, anchor, namespace):
    pod = helper_pod(kube, namespace, {"data": fs_setup["pvc"]}, anchor["metadata"]["uid"])
    wait_init_running(kube, namespace, pod["metadata"]["name"])
    wrong_ns, wrong_id, wrong_bsl = rnd("pvr"), rnd("pvr"), rnd("pvr")
    kube.create("PodVolumeRestore", pvr_body(wrong_ns, pod, "data", fs_setup["sid"], "other-ns", owner=anchor))
    kube.create("PodVolumeRestore", pvr_body(wrong_id, pod, "data", "0" * 32, namespace, owner=anchor))
    kube.create("PodVolumeRestore", pvr_body(wrong_bsl, pod, "data", fs_setup["sid"], namespace, owner=anchor, bsl="nope"))
    for n in (wrong_ns, wrong_id):
        o = wait_phase(kube, "PodVolumeRestore", n, ("Failed", "Completed"))
        assert o["status"]["phase"] == "Failed" and "snapshot not found" in o["status"]["message"]
    o = wait_phase(kube, "PodVolumeRestore", wrong_bsl, ("Failed", "Completed"))
    assert o["status"]["phase"] == "Failed" and "not found" in o["status"]["message"]
    assert init_state(kube, namespace, pod["metadata"]["name"])[0] == "running"
    cleanup(kube, "PodVolumeRestore", wrong_ns, wrong_id, wrong_bsl)


def test_pvr_injected_failures(kube, fs_setup, anchor, namespace, sim_config):
    pod = helper_pod(kube, namespace, {"data": fs_setup["pvc"]}, anchor["metadata"]["uid"])
    wait_init_running(kube, namespace, pod["metadata"]["name"])
    sim_config.set(failSnapshots=fs_setup["sid"])
    a = rnd("pvr")
    kube.create("PodVolumeRestore", pvr_body(a, pod, "data", fs_setup["sid"], namespace, owner=anchor))
    o = wait_phase(kube, "PodVolumeRestore", a, ("Failed", "Completed"))
    assert o["status"]["phase"] == "Failed" and "failSnapshots" in o["status"]["message"]
    sim_config.set(failSnapshots="", crashAfterBytes=10)
    b = rnd("pvr")
    kube.create("PodVolumeRestore", pvr_body(b, pod, "data", fs_setup["sid"], namespace, owner=anchor))
    o = wait_phase(kube, "PodVolumeRestore", b, ("Failed", "Completed"))
    assert o["status"]["phase"] == "Failed" and "abnormal state" in o["status"]["message"]
    cleanup(kube, "PodVolumeRestore", a, b)


def test_pvr_cancel_semantics(kube, fs_setup, anchor, namespace, sim_config):
    pod = helper_pod(kube, namespace, {"data": fs_setup["pvc"]}, anchor["metadata"]["uid"])
    wait_init_running(kube, namespace, pod["metadata"]["name"])
    sim_config.set(bytesPerSecond=512)   # ~8 s for the 4 KiB fixture
    running = rnd("pvr")
    kube.create("PodVolumeRestore", pvr_body(running, pod, "data", fs_setup["sid"], namespace, owner=anchor))
    wait_phase(kube, "PodVolumeRestore", running, "InProgress")
    kube.patch("PodVolumeRestore", VNS, running, {"spec": {"cancel": True}})
    o = wait_phase(kube, "PodVolumeRestore", running, ("Canceled", "Completed", "Failed"))
    assert o["status"]["phase"] == "Canceled"
    # New + cancel → Canceled at once (the app pod has no restore-wait, so it would stay New)
    app_pod = kube.get("Pod", namespace, fs_setup["app"]["pods"][0])
    new = rnd("pvr")
    kube.create("PodVolumeRestore", pvr_body(new, app_pod, "data", fs_setup["sid"], namespace, owner=anchor))
    wait_for(lambda: kube.get("PodVolumeRestore", VNS, new)["metadata"].get("finalizers"), 15)
    kube.patch("PodVolumeRestore", VNS, new, {"spec": {"cancel": True}})
    assert wait_phase(kube, "PodVolumeRestore", new, "Canceled")
    # deleting an InProgress PVR cancels it and the finalizer is removed once final
    deleted = rnd("pvr")
    kube.create("PodVolumeRestore", pvr_body(deleted, pod, "data", fs_setup["sid"], namespace, owner=anchor))
    wait_phase(kube, "PodVolumeRestore", deleted, "InProgress")
    kube.delete("PodVolumeRestore", VNS, deleted)
    wait_for(lambda: kube.get_or_none("PodVolumeRestore", VNS, deleted) is None, 30)
    cleanup(kube, "PodVolumeRestore", running, new)


def test_node_without_running_node_agent_is_not_served(kube, fs_setup, anchor, namespace):
    ds = kube.get("DaemonSet", VNS, "node-agent")
    orig = ds["spec"]["template"]["spec"].get("nodeSelector")
    kube.patch("DaemonSet", VNS, "node-agent", {"spec": {"template": {"spec": {"nodeSelector": {
        "kubernetes.io/os": "linux", "kubernetes.io/hostname": "sim-node-a"}}}}})
    try:
        wait_for(lambda: not [p for p in kube.list("Pod", VNS, label_selector="name=node-agent")
                              if p["spec"].get("nodeName") == "sim-node-b"], 60)
        pod = helper_pod(kube, namespace, {"data": fs_setup["pvc"]}, anchor["metadata"]["uid"], node="sim-node-b")
        wait_init_running(kube, namespace, pod["metadata"]["name"])
        name = rnd("pvr")
        kube.create("PodVolumeRestore", pvr_body(name, pod, "data", fs_setup["sid"], namespace, owner=anchor))
        stays(kube, "PodVolumeRestore", name, lambda o: C.phase_of(o) == "New", SHORT + 1)
    finally:
        restore = {k: None for k in ("kubernetes.io/hostname",)}
        restore.update(orig or {})
        kube.patch("DaemonSet", VNS, "node-agent", {"spec": {"template": {"spec": {"nodeSelector": restore}}}})
        wait_for(lambda: len([p for p in kube.list("Pod", VNS, label_selector="name=node-agent")
                              if (p.get("status") or {}).get("phase") == "Running"
                              and not p["metadata"].get("deletionTimestamp")]) == 2, 60)
    # a node-agent starting on the node lists the PVR and serves it
    wait_phase(kube, "PodVolumeRestore", name, "Completed", 60)
    cleanup(kube, "PodVolumeRestore", name)


def second_pvr_held_by_the_node_limit(kube, fs_setup, anchor, namespace, sim_config, bytes_per_second):
    """Two PVRs on one node with concurrencyPerNode=1: returns (first, second) once the first is InProgress and the
    second Prepared - Velero checks the limit when it creates the data path, so the second waits there."""
    sim_config.set(concurrencyPerNode=1, bytesPerSecond=bytes_per_second)
    pod = helper_pod(kube, namespace, {"data": fs_setup["pvc"]}, anchor["metadata"]["uid"], node="sim-node-a")
    # a second helper on the same node whose restore-wait keeps running (other UID argument)
    pod2 = helper_pod(kube, namespace, {"data": fs_setup["pvc"]}, "keeps-waiting", node="sim-node-a")
    wait_init_running(kube, namespace, pod["metadata"]["name"])
    wait_init_running(kube, namespace, pod2["metadata"]["name"])
    first, second = rnd("pvr"), rnd("pvr")
    kube.create("PodVolumeRestore", pvr_body(first, pod, "data", fs_setup["sid"], namespace, owner=anchor))
    wait_phase(kube, "PodVolumeRestore", first, "InProgress")
    kube.create("PodVolumeRestore", pvr_body(second, pod2, "data", fs_setup["sid"], namespace, owner=anchor))
    wait_phase(kube, "PodVolumeRestore", second, "Prepared", 10)
    return first, second


def test_pvr_concurrency_per_node_requeues(kube, fs_setup, anchor, namespace, sim_config):
    first, second = second_pvr_held_by_the_node_limit(kube, fs_setup, anchor, namespace, sim_config, 1024)  # ~4 s
    stays(kube, "PodVolumeRestore", second, lambda o: C.phase_of(o) == "Prepared" or phase(kube, "PodVolumeRestore", first) != "InProgress", 2)
    wait_phase(kube, "PodVolumeRestore", first, "Completed", 30)
    wait_phase(kube, "PodVolumeRestore", second, "Completed", 30)
    cleanup(kube, "PodVolumeRestore", first, second)


def test_pvr_cancel_while_prepared_skips_canceling(kube, fs_setup, anchor, namespace, sim_config):
    """Velero's Prepared branch ends a canceled PVR Canceled in one update (OnDataPathCancelled): no Canceling
    phase (that is only for InProgress), startTimestamp filled in, no message."""
    first, second = second_pvr_held_by_the_node_limit(kube, fs_setup, anchor, namespace, sim_config, 512)  # ~8 s
    kube.patch("PodVolumeRestore", VNS, second, {"spec": {"cancel": True}})
    seen = set()
    wait_for(lambda: seen.add(phase(kube, "PodVolumeRestore", second)) or "Canceled" in seen, 15)
    assert "Canceling" not in seen, seen
    status = kube.get("PodVolumeRestore", VNS, second)["status"]
    assert status.get("startTimestamp") and status.get("completionTimestamp") and not status.get("message")
    wait_phase(kube, "PodVolumeRestore", first, "Completed", 30)
    cleanup(kube, "PodVolumeRestore", first, second)


def test_restore_helper_needs_exactly_one_arg(kube, fs_setup, namespace):
    pod = helper_pod(kube, namespace, {"data": fs_setup["pvc"]}, None, args=[])
    wait_for(lambda: (init_state(kube, namespace, pod["metadata"]["name"])[1] or {}).get("state", {}).get(
        "waiting", {}).get("reason") == "CrashLoopBackOff", 20)
    st = init_state(kube, namespace, pod["metadata"]["name"])[1]
    assert st["lastState"]["terminated"]["exitCode"] == 1
    assert kube.get("Pod", namespace, pod["metadata"]["name"])["status"]["phase"] == "Pending"


# ----------------------------------------------------------------------------- DataDownload
def target_pvc(kube, ns, name, *, sc="sim-immediate", mode="Filesystem", size="16Mi", selector=True):
    spec = {"accessModes": ["ReadWriteOnce"], "storageClassName": sc, "volumeMode": mode,
            "resources": {"requests": {"storage": size}}}
    if selector:
        spec["selector"] = {"matchLabels": {"velero.io/dynamic-pv-restore": f"{ns}.{name}.{secrets.token_hex(3)[:5]}"}}
    return kube.create("PersistentVolumeClaim", {"metadata": {"name": name, "namespace": ns, "labels": {"restored": "yes"}},
                                                 "spec": spec})


@pytest.fixture
def dm_setup(kube, app_factory, backup_factory, namespace):
    app = app_factory(volumes=[{"name": "data"}])
    backup = backup_factory(method="data_mover")
    pvc = app["pvcs"][0]
    return {"app": app, "pvc": pvc, "backup": backup, "sid": du_snapshot(kube, backup, pvc), "files": app["files"][pvc]}


def assert_rebound(kube, ns, pvc_name, target):
    # Velero's RebindVolume waits for the PV to be Bound; the claim's phase follows shortly after

    def bound_claim():
        c = kube.get("PersistentVolumeClaim", ns, pvc_name)
        return c if c["status"].get("phase") == "Bound" else None
    pvc = wait_for(bound_claim, 15, message=f"PVC {pvc_name} Bound")
    pv = kube.get("PersistentVolume", None, pvc["spec"]["volumeName"])
    sel = target["spec"]["selector"]["matchLabels"]
    assert all(pv["metadata"]["labels"].get(k) == v for k, v in sel.items())
    assert pv["spec"]["claimRef"]["name"] == pvc_name and pv["spec"]["claimRef"]["uid"] == pvc["metadata"]["uid"]
    wait_for(lambda: kube.get("PersistentVolume", None, pv["metadata"]["name"])["spec"]["persistentVolumeReclaimPolicy"] == "Delete", 10)
    return pv


@pytest.mark.parametrize("mode", ["Filesystem", "Block"])
def test_dd_happy_path_rebinds_target(kube, app_factory, backup_factory, namespace, anchor, api_client, state_dir, mode):
    data = secrets.token_bytes(8192)
    app = app_factory(volumes=[{"name": "data", "volume_mode": mode, "size": "16Mi",
                                **({"files": data} if mode == "Block" else {})}])
    backup = backup_factory(method="data_mover")
    src = app["pvcs"][0]
    sid = du_snapshot(kube, backup, src)
    assert kube.get("PersistentVolumeClaim", namespace, src)["metadata"]["annotations"]["velero.io/data-upload-name"].startswith("velero/")
    target = target_pvc(kube, namespace, "restored", mode=mode)
    name = rnd("dd")
    kube.create("DataDownload", dd_body(name, namespace, "restored", sid, namespace, owner=anchor))
    dd = wait_phase(kube, "DataDownload", name, ("Completed", "Failed"), 60)
    assert dd["status"]["phase"] == "Completed", dd["status"]
    assert dd["status"]["acceptedByNode"] and dd["status"]["node"] and C.DD_FINALIZER in dd["metadata"]["finalizers"]
    assert_rebound(kube, namespace, "restored", target)
    wait_for(lambda: kube.get_or_none("PersistentVolumeClaim", VNS, name) is None and kube.get_or_none("Pod", VNS, name) is None, 20)
    path = pvc_volume_path(api_client, state_dir, namespace, "restored")
    if mode == "Block":
        assert read_block(path, len(data)) == data
    else:
        assert read_tree(path) == app["files"][src]
    cleanup(kube, "DataDownload", name)


def test_dd_into_bound_pvc_fails(kube, dm_setup, namespace, anchor):
    name = rnd("dd")
    kube.create("DataDownload", dd_body(name, namespace, dm_setup["pvc"], dm_setup["sid"], namespace, owner=anchor))
    o = wait_phase(kube, "DataDownload", name, ("Failed", "Completed"))
    assert o["status"]["phase"] == "Failed" and "has already been bound, abort" in o["status"]["message"]
    cleanup(kube, "DataDownload", name)


def test_dd_other_datamover_ignored_and_auto_os_fails(kube, dm_setup, namespace, anchor):
    target_pvc(kube, namespace, "t1")
    other, auto = rnd("dd"), rnd("dd")
    kube.create("DataDownload", dd_body(other, namespace, "t1", dm_setup["sid"], namespace, owner=anchor, datamover="other"))
    kube.create("DataDownload", dd_body(auto, namespace, "t1", dm_setup["sid"], namespace, owner=anchor, node_os="auto"))
    o = wait_phase(kube, "DataDownload", auto, ("Failed", "Completed"))
    assert o["status"]["phase"] == "Failed"
    stays(kube, "DataDownload", other, lambda o: not o.get("status") and not o["metadata"].get("finalizers"))
    cleanup(kube, "DataDownload", other, auto)


def test_dd_missing_pvc_waits_then_proceeds(kube, dm_setup, namespace, anchor):
    name = rnd("dd")
    kube.create("DataDownload", dd_body(name, namespace, "later", dm_setup["sid"], namespace, owner=anchor))
    wait_for(lambda: kube.get("DataDownload", VNS, name)["metadata"].get("finalizers"), 15)
    stays(kube, "DataDownload", name, lambda o: C.phase_of(o) == "New")
    target = target_pvc(kube, namespace, "later")
    wait_phase(kube, "DataDownload", name, "Completed", 60)
    assert_rebound(kube, namespace, "later", target)
    cleanup(kube, "DataDownload", name)


def test_dd_wffc_waits_for_selected_node(kube, dm_setup, namespace, anchor, api_client, state_dir):
    target = target_pvc(kube, namespace, "wffc", sc="sim-wffc")
    name = rnd("dd")
    kube.create("DataDownload", dd_body(name, namespace, "wffc", dm_setup["sid"], namespace, owner=anchor))
    wait_phase(kube, "DataDownload", name, "Accepted")
    time.sleep(SHORT)
    assert phase(kube, "DataDownload", name) == "Accepted" and kube.get_or_none("Pod", VNS, name) is None
    kube.create("Pod", {"metadata": {"name": "consumer", "namespace": namespace}, "spec": {
        "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "infinity"]}], "terminationGracePeriodSeconds": 0,
        "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "wffc"}}]}})
    wait_phase(kube, "DataDownload", name, "Completed", 60)
    pv = assert_rebound(kube, namespace, "wffc", target)
    node = kube.get("PersistentVolumeClaim", namespace, "wffc")["metadata"]["annotations"][C.ANN_SELECTED_NODE]
    assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == [node]
    wait_for(lambda: kube.get("Pod", namespace, "consumer")["status"]["phase"] == "Running", 60)
    assert read_tree(pvc_volume_path(api_client, state_dir, namespace, "wffc")) == dm_setup["files"]
    cleanup(kube, "DataDownload", name)


def test_dd_wffc_prepare_timeout(kube, dm_setup, namespace, anchor, sim_config):
    sim_config.set(prepareTimeoutSeconds=2)
    target_pvc(kube, namespace, "wffc2", sc="sim-wffc")
    name = rnd("dd")
    kube.create("DataDownload", dd_body(name, namespace, "wffc2", dm_setup["sid"], namespace, owner=anchor))
    o = wait_phase(kube, "DataDownload", name, ("Failed", "Completed"), 30)
    assert o["status"]["phase"] == "Failed" and "timeout on preparing data download" in o["status"]["message"]
    cleanup(kube, "DataDownload", name)


def test_dd_rebind_failure_stays_in_progress_and_deletes_pv(kube, dm_setup, namespace, anchor, sim_config):
    sim_config.set(failRebind="true")
    target_pvc(kube, namespace, "rb")
    name = rnd("dd")
    kube.create("DataDownload", dd_body(name, namespace, "rb", dm_setup["sid"], namespace, owner=anchor))
    wait_phase(kube, "DataDownload", name, "InProgress", 30)
    wait_for(lambda: (kube.get("DataDownload", VNS, name)["status"].get("progress") or {}).get("bytesDone")
             == sum(len(v) for v in dm_setup["files"].values()), 30)
    rpvc = kube.get("PersistentVolumeClaim", VNS, name)
    pv_name = rpvc["spec"]["volumeName"]
    wait_for(lambda: (kube.get_or_none("PersistentVolume", None, pv_name) or {}).get("metadata", {}).get("deletionTimestamp")
             or kube.get_or_none("PersistentVolume", None, pv_name) is None, 20)
    stays(kube, "DataDownload", name, lambda o: C.phase_of(o) == "InProgress")
    assert not kube.get("PersistentVolumeClaim", namespace, "rb")["spec"].get("volumeName")
    cleanup(kube, "DataDownload", name)
    kube.delete("Pod", VNS, name, grace=0)
    kube.delete("PersistentVolumeClaim", VNS, name)


def test_dd_zero_operation_timeout_never_completes(kube, dm_setup, namespace, anchor):
    target_pvc(kube, namespace, "zero")
    name = rnd("dd")
    kube.create("DataDownload", dd_body(name, namespace, "zero", dm_setup["sid"], namespace, owner=anchor, timeout="0s"))
    wait_phase(kube, "DataDownload", name, "InProgress", 30)
    stays(kube, "DataDownload", name, lambda o: C.phase_of(o) == "InProgress")
    assert not kube.get("PersistentVolumeClaim", namespace, "zero")["spec"].get("volumeName")
    cleanup(kube, "DataDownload", name)
    kube.delete("Pod", VNS, name, grace=0)
    kube.delete("PersistentVolumeClaim", VNS, name)


def test_dd_cancel_on_new(kube, dm_setup, namespace, anchor):
    name = rnd("dd")
    kube.create("DataDownload", dd_body(name, namespace, "never", dm_setup["sid"], namespace, owner=anchor))
    wait_for(lambda: kube.get("DataDownload", VNS, name)["metadata"].get("finalizers"), 15)
    kube.patch("DataDownload", VNS, name, {"spec": {"cancel": True}})
    wait_phase(kube, "DataDownload", name, "Canceled")
    kube.delete("DataDownload", VNS, name)
    wait_for(lambda: kube.get_or_none("DataDownload", VNS, name) is None, 20)


# ----------------------------------------------------------------------------- DownloadRequest / fixtures
def _download(kube, backup_name, kind):
    name = rnd("dr")
    kube.create("DownloadRequest", {"metadata": {"name": name, "namespace": VNS},
                                    "spec": {"target": {"kind": kind, "name": backup_name}}})
    return name


def test_download_request_volume_info(kube, fs_setup, backup_factory):
    b = fs_setup["backup"]["metadata"]["name"]
    name = _download(kube, b, "BackupVolumeInfos")

    def processed():
        o = kube.get("DownloadRequest", VNS, name)
        return o if (o.get("status") or {}).get("phase") == "Processed" else None
    dr = wait_for(processed, 20)
    url = dr["status"]["downloadURL"]
    assert url.startswith("http://127.0.0.1:") and "X-Amz-Signature=" in url and dr["status"]["expiration"]
    infos = json.loads(gzip.decompress(urllib.request.urlopen(url).read()))
    info = next(i for i in infos if i["pvcName"] == fs_setup["pvc"])
    assert info["backupMethod"] == "PodVolumeBackup" and info["pvbInfo"]["snapshotHandle"] == fs_setup["sid"]
    assert info["pvbInfo"]["Phase"] == "Completed" and info["pvbInfo"]["uploaderType"] == "kopia"
    bad = url.split("X-Amz-Signature=")[0] + "X-Amz-Signature=" + "0" * 64
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(bad)
    assert e.value.code == 403
    # a backup without volume info (pre-1.13) → 404; an unknown backup → request stays New
    old = backup_factory(volume_info=False)["metadata"]["name"]
    n2 = _download(kube, old, "BackupVolumeInfos")
    url2 = wait_for(lambda: (kube.get("DownloadRequest", VNS, n2).get("status") or {}).get("downloadURL"), 20)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url2)
    assert e.value.code == 404
    n3 = _download(kube, "no-such-backup", "BackupVolumeInfos")
    time.sleep(SHORT)
    assert not (kube.get("DownloadRequest", VNS, n3).get("status") or {}).get("phase") in ("Processed",)
    for n in (name, n2, n3):
        kube.delete("DownloadRequest", VNS, n)


def test_backup_fixture_and_new_cluster(kube, fs_setup, state_dir):
    b = fs_setup["backup"]
    name = b["metadata"]["name"]
    pvbs = kube.list("PodVolumeBackup", VNS, label_selector=f"velero.io/backup-name={name}")
    assert len(pvbs) == 1 and pvbs[0]["metadata"]["ownerReferences"][0]["uid"] == b["metadata"]["uid"]
    assert b["status"]["phase"] == "Completed" and b["spec"]["defaultVolumesToFsBackup"] is True
    new = new_cluster(kube.api, state_dir, name)
    assert new["metadata"]["uid"] != b["metadata"]["uid"]
    pvbs2 = kube.list("PodVolumeBackup", VNS, label_selector=f"velero.io/backup-name={name}")
    assert len(pvbs2) == 1 and pvbs2[0]["metadata"]["labels"]["velero.io/backup-uid"] == new["metadata"]["uid"]
    assert pvbs2[0]["status"]["snapshotID"] == fs_setup["sid"]
