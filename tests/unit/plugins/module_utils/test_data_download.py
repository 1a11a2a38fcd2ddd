"""data_download.py: new PVC with selector, DataDownload body, WFFC placeholder, rebind wait, cancel."""

import pytest

from ansible_collections.velero.data_restore.plugins.module_utils import data_download as dd
from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils import names
from ansible_collections.velero.data_restore.plugins.module_utils import session as sessions
from ansible_collections.velero.data_restore.plugins.module_utils.errors import (
    DataRestoreError,
    PreflightError,
    WaitTimeout,
)
from fake_kube import FakeKube
import data_path_fixtures as f


def params(**kw):
    p = dict(velero_namespace=f.VNS, session="s1", state="present", volumes=None, namespace=None,
             placeholder="auto", image=None, node_selector=None, tolerations=None, data_mover_config=None,
             retry_failed=False, fail_fast=False, fail_on_timeout=True, wait=True, wait_timeout=60)
    p.update(kw)
    return p


def crd(with_size=True):
    props = {"targetVolume": {}, "snapshotID": {}, "cancel": {}, "nodeOS": {}}
    if with_size:
        props["snapshotSize"] = {"type": "integer"}
    return {"metadata": {"name": "datadownloads.velero.io"},
            "spec": {"versions": [{"name": "v2alpha1", "schema": {"openAPIV3Schema": {"properties": {
                "spec": {"properties": props}}}}}]}}


def setup(with_size=True, **agent):
    fake = FakeKube()
    fake.sess = f.base_cluster(fake)
    fake.add(k.CRD, crd(with_size))
    fake.add(k.STORAGE_CLASS, f.storage_class("sim-immediate"))
    fake.add(k.STORAGE_CLASS, f.storage_class("sim-wffc", "WaitForFirstConsumer"))
    fake.controllers.append(f.scheduler_selected_node())
    fake.controllers.append(f.dd_agent(**agent))
    return fake


def test_claim_and_datadownload_bodies():
    fake = setup()
    agent = fake.controllers.pop()
    rec = f.dm_record("data", mode="Block")
    result = dd.run(fake, params(volumes=[rec], wait=False, data_mover_config={"WriteSparseFiles": True}))
    assert result["changed"] is True
    claim = fake.find(k.PVC, "data-restored", f.NS)
    selector = dd.selector_value("s1", f.NS, "data-restored")
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                             "volumeMode": "Block", "storageClassName": "sim-immediate",
                             "selector": {"matchLabels": {"velero.io/dynamic-pv-restore": selector}}}
    assert "volumeName" not in claim["spec"]
    assert selector.startswith("shop.data-restored.") and len(selector) <= 63
    assert selector == dd.selector_value("s1", f.NS, "data-restored") != dd.selector_value("s2", f.NS, "data-restored")
    name = dd.dd_name("s1", f.NS, "data-restored")
    obj = fake.find(k.DATA_DOWNLOAD, name, f.VNS)
    assert obj["apiVersion"] == "velero.io/v2alpha1" and len(name) <= 63
    assert obj["metadata"]["ownerReferences"] == [fake.sess.owner_reference()]
    assert obj["metadata"]["labels"]["data-restore.ansible/session"] == "s1"
    assert obj["spec"] == {
        "targetVolume": {"pvc": "data-restored", "namespace": f.NS, "pv": ""},
        "backupStorageLocation": "default", "datamover": "", "snapshotID": "snap-data",
        "sourceNamespace": "shop-old", "operationTimeout": "10m0s", "nodeOS": "linux", "snapshotSize": 4096,
        "dataMoverConfig": {"WriteSparseFiles": "true"},
    }
    assert "status" not in obj
    # Immediate class: no placeholder
    assert fake.all(k.POD, f.NS) == []
    fake.controllers.append(agent)


def test_snapshot_size_is_sent_without_reading_the_crd():
    """A CRD older than v1.18 prunes snapshotSize (it only sizes the cache volume): no CRD read is spent on it."""
    fake = setup(with_size=False)
    fake.controllers.pop()
    dd.run(fake, params(volumes=[f.dm_record("data")], wait=False))
    spec = fake.find(k.DATA_DOWNLOAD, dd.dd_name("s1", f.NS, "data-restored"), f.VNS)["spec"]
    assert spec["snapshotSize"] == 4096 and ("get", "CustomResourceDefinition") not in fake.requests


@pytest.mark.parametrize("mode", ["Filesystem", "Block"])
def test_wffc_placeholder_then_bound_and_completed(mode):
    fake = setup()
    result = dd.run(fake, params(volumes=[f.dm_record("data", sc="sim-wffc", mode=mode)]))
    assert result["done"] is True
    [vol] = result["volumes"]
    assert vol["phase"] == "Completed" and vol["pv"] == "pvc-restored-1" and vol["pvc_phase"] == "Bound"
    claim = fake.find(k.PVC, "data-restored", f.NS)
    assert claim["spec"]["volumeName"] == "pvc-restored-1"
    # placeholder existed with the right mount and was deleted after completion
    [created] = [o for o in result["diff"]["after"]["objects"] if o["kind"] == "Pod"]
    ctr = created["spec"]["containers"][0]
    assert created["spec"]["restartPolicy"] == "Always" and ctr["securityContext"]["runAsNonRoot"] is True
    assert ctr["securityContext"]["capabilities"] == {"drop": ["ALL"]} and ctr["image"] == f.VELERO_IMAGE
    if mode == "Block":
        assert ctr["volumeDevices"] == [{"name": "target", "devicePath": dd.DEVICE_PATH}] and "volumeMounts" not in ctr
    else:
        assert ctr["volumeMounts"] == [{"name": "target", "mountPath": dd.MOUNT_PATH}]
    assert result["placeholders_deleted"] == ["shop/%s" % created["metadata"]["name"]]
    assert fake.find(k.POD, created["metadata"]["name"], f.NS) is None
    assert sessions.require(fake, f.VNS, "s1").doc["volumes"]["shop/data"]["phase"] == "Completed"


def test_without_placeholder_wffc_never_starts():
    fake = setup()
    with pytest.raises(WaitTimeout, match="not accepted by any node-agent.*selected-node"):
        dd.run(fake, params(volumes=[f.dm_record("data", sc="sim-wffc")], placeholder="never", wait_timeout=1))


def test_rebind_failure_timeout_points_at_node_agent_logs():
    fake = setup(rebind_fails=True)
    with pytest.raises(WaitTimeout) as err:
        dd.run(fake, params(volumes=[f.dm_record("data")], wait_timeout=1))
    msg = err.value.msg
    assert "shop/data" in msg and "rebind step did not finish" in msg and "InProgress forever" in msg
    assert "logs ds/node-agent" in msg
    assert err.value.pending and "InProgress" in err.value.pending[0]


def test_timeout_without_failing_returns_hints():
    fake = setup(rebind_fails=True)
    result = dd.run(fake, params(volumes=[f.dm_record("data")], wait_timeout=0, fail_on_timeout=False))
    assert result["done"] is False and result["pending"]


def _completed_but_not_bound():
    """DataDownload Completed, the node-agent set the PVC's volumeName, the PV controller has not bound it yet."""
    fake = setup()
    fake.controllers.pop()  # no node-agent: the test sets the state
    rec = f.dm_record("data")
    dd.run(fake, params(volumes=[rec], wait=False))
    name = dd.dd_name("s1", f.NS, "data-restored")
    fake.mutate(k.DATA_DOWNLOAD, name, f.VNS, lambda o: o.setdefault("status", {}).update(
        phase="Completed", progress={"totalBytes": 2048, "bytesDone": 2048}, completionTimestamp="2026-01-01T00:00:40Z"))

    def rebound(o):
        o["spec"]["volumeName"] = "pvc-restored-1"
        o["status"] = {"phase": "Pending"}
    fake.mutate(k.PVC, "data-restored", f.NS, rebound)
    return fake, rec


def test_completed_but_pvc_not_bound_yet_is_progress_without_fail_on_timeout():
    fake, rec = _completed_but_not_bound()
    result = dd.run(fake, params(volumes=[rec], wait_timeout=1, fail_on_timeout=False))
    assert result["done"] is False
    assert result["pending"] == ["shop/data-restored (Pending)"]
    assert "1/1 volumes completed" in result["progress"] and "not Bound" in result["progress"]
    assert result["volumes"][0]["pvc_phase"] == "Pending"
    # next slice: bound now, done; it starts from the completed DataDownloads (no LIST, no watch of them)
    assert [o["status"]["phase"] for o in result["resume"]["objects"]] == ["Completed"]
    fake.mutate(k.PVC, "data-restored", f.NS, lambda o: o["status"].update(phase="Bound"))
    fake.requests[:] = []
    again = dd.run(fake, params(volumes=[rec], wait_timeout=5, fail_on_timeout=False, resume=result["resume"]))
    assert again["done"] is True and again["volumes"][0]["pv"] == "pvc-restored-1"
    assert [r for r in fake.requests if r[1] == "DataDownload"] == [], fake.requests


def test_completed_but_pvc_not_bound_fails_with_fail_on_timeout():
    fake, rec = _completed_but_not_bound()
    with pytest.raises(WaitTimeout) as err:
        dd.run(fake, params(volumes=[rec], wait_timeout=1))
    assert "not Bound to the restored PV yet" in err.value.msg


def test_idempotent_rerun():
    fake = setup()
    first = dd.run(fake, params(volumes=[f.dm_record("data", sc="sim-wffc")]))
    creates = fake.count("create")
    again = dd.run(fake, params(volumes=[f.dm_record("data", sc="sim-wffc")]))
    assert again["changed"] is False and fake.count("create") == creates
    assert again["volumes"][0]["pv"] == first["volumes"][0]["pv"]


def test_rerun_while_in_progress_does_not_duplicate():
    fake = setup()
    agent = fake.controllers.pop()
    dd.run(fake, params(volumes=[f.dm_record("data")], wait=False))
    creates = fake.count("create")
    dd.run(fake, params(volumes=[f.dm_record("data")], wait=False))
    assert fake.count("create") == creates
    fake.controllers.append(agent)
    assert dd.run(fake, params(volumes=[f.dm_record("data")]))["done"] is True


def test_check_mode():
    fake = setup()
    fake.requests[:] = []
    result = dd.run(fake, params(volumes=[f.dm_record("data", sc="sim-wffc")]), check_mode=True)
    assert result["changed"] is True
    # a WaitForFirstConsumer class: the placeholder pod that would bind the claim is reported too
    assert [a["action"] for a in result["actions"]] == ["create claim", "create datadownload", "create placeholder pod"]
    assert [r for r in fake.requests if r[0] in ("create", "patch", "update", "delete")] == []


def test_check_mode_says_done_only_when_the_data_downloads_are_final_and_their_claims_bound():
    fake = setup()
    agent = fake.controllers.pop()
    dd.run(fake, params(volumes=[f.dm_record("data")], wait=False))
    assert dd.run(fake, params(volumes=[f.dm_record("data")]), check_mode=True)["done"] is False  # still New
    fake.controllers.append(agent)
    dd.run(fake, params(volumes=[f.dm_record("data")]))
    again = dd.run(fake, params(volumes=[f.dm_record("data")]), check_mode=True)
    assert again["changed"] is False and again["done"] is True
    # a completed DataDownload whose claim is not Bound: the run still waits
    fake.mutate(k.PVC, "data-restored", f.NS, lambda claim: claim.setdefault("status", {}).update(phase="Pending"))
    assert dd.run(fake, params(volumes=[f.dm_record("data")]), check_mode=True)["done"] is False


def test_adopt_unbound_claim_with_selector():
    fake = setup()
    fake.add(k.PVC, f.pvc("data-restored", selector="mine-123"))
    result = dd.run(fake, params(volumes=[f.dm_record("data")]))
    assert result["done"] is True and result["volumes"][0]["selector"] == "mine-123"
    assert fake.find(k.PV, "pvc-restored-1")["metadata"]["labels"] == {"velero.io/dynamic-pv-restore": "mine-123"}


@pytest.mark.parametrize("claim, message", [
    (f.pvc("data-restored"), "without a velero.io/dynamic-pv-restore selector"),
    (f.pvc("data-restored", volume="pv-x"), "already bound to PV pv-x"),
])
def test_refuse_unusable_existing_claim(claim, message):
    fake = setup()
    fake.add(k.PVC, claim)
    with pytest.raises(PreflightError, match=message):
        dd.run(fake, params(volumes=[f.dm_record("data")]))


@pytest.mark.parametrize("change, message", [
    (dict(node_os="auto"), "auto never matches a node"),
    (dict(data_mover="acme"), "ignores DataDownloads whose datamover"),
    (dict(operation_timeout="0s"), "non-zero Go duration"),
    (dict(operation_timeout="ten minutes"), "non-zero Go duration"),
    (dict(new_pvc=None), "has no new_pvc"),
    (dict(method="fs"), "only data-mover"),
])
def test_refusals(change, message):
    fake = setup()
    rec = f.dm_record("data")
    rec.update(change)
    with pytest.raises(PreflightError, match=message):
        dd.run(fake, params(volumes=[rec]))


def test_failed_reported_then_retried():
    fake = setup()
    agent = fake.controllers.pop()
    dd.run(fake, params(volumes=[f.dm_record("data")], wait=False))
    name = dd.dd_name("s1", f.NS, "data-restored")
    fake.mutate(k.DATA_DOWNLOAD, name, f.VNS, lambda o: o.update(status={"phase": "Failed", "message": "timeout on preparing data download"}))
    with pytest.raises(DataRestoreError, match="timeout on preparing data download.*retry_failed"):
        dd.run(fake, params(volumes=[f.dm_record("data")]))
    fake.controllers.append(agent)
    result = dd.run(fake, params(volumes=[f.dm_record("data")], retry_failed=True))
    assert result["done"] is True


def test_absent_cancels_deletes_and_removes_unbound_claims():
    fake = setup()
    fake.controllers.pop()
    dd.run(fake, params(volumes=[f.dm_record("data", sc="sim-wffc")], wait=False))
    fake.controllers.append(f.dd_agent())
    name = dd.dd_name("s1", f.NS, "data-restored")
    fake.mutate(k.DATA_DOWNLOAD, name, f.VNS, lambda o: o["metadata"].update(finalizers=["velero.io/data-upload-download-finalizer"]))
    result = dd.run(fake, params(state="absent", volumes=[f.dm_record("data", sc="sim-wffc")]))
    assert result["deleted"] == [name] and result["canceled"] == [name]
    assert result["claims_deleted"] == ["shop/data-restored"] and len(result["placeholders_deleted"]) == 1
    assert fake.find(k.DATA_DOWNLOAD, name, f.VNS) is None and fake.find(k.PVC, "data-restored", f.NS) is None


def test_absent_keeps_bound_claims():
    fake = setup()
    dd.run(fake, params(volumes=[f.dm_record("data")]))
    result = dd.run(fake, params(state="absent"))
    assert result["claims_kept"] == ["shop/data-restored"] and result["claims_deleted"] == []


@pytest.mark.parametrize("bound", [True, False])
def test_absent_of_the_whole_session_leaves_veleros_own_restore_claim_alone(bound):
    """Velero's temporary restore claim (exposer createRestorePVC: named after the DataDownload, in Velero's
    namespace) copies the target claim's labels, ours included: a cleanup of the whole session took it for one of
    its new claims - reported, or deleted while unbound."""
    fake = setup()
    fake.controllers.pop()
    dd.run(fake, params(volumes=[f.dm_record("data")], wait=False))
    target = fake.find(k.PVC, "data-restored", f.NS)
    name = dd.dd_name("s1", f.NS, "data-restored")
    velero_claim = {"metadata": {"name": name, "namespace": f.VNS, "labels": dict(target["metadata"]["labels"])},
                    "spec": {"resources": {"requests": {"storage": "1Gi"}}}}
    if bound:
        velero_claim["spec"]["volumeName"] = "pvc-tmp"
    fake.add(k.PVC, velero_claim)
    result = dd.run(fake, params(state="absent", wait=False))
    assert "%s/%s" % (f.VNS, name) not in result["claims_kept"] + result["claims_deleted"], result
    assert fake.find(k.PVC, name, f.VNS) is not None


def test_go_durations():
    assert dd.go_duration_seconds("10m0s") == 600 and dd.go_duration_seconds("1h30m") == 5400
    assert dd.go_duration_seconds("0s") == 0 and dd.go_duration_seconds("10") is None


def test_a_slice_of_many_volumes_reads_claims_pods_and_classes_once_not_per_volume():
    """A later wait slice of 20 WFFC volumes (everything exists, still running): one LIST per kind, each
    StorageClass once, and the wait starts from the DataDownload LIST - not 3 reads per volume."""
    fake = setup()
    records = [f.dm_record("vol-%02d" % i, sc="sim-wffc") for i in range(20)]
    agent = fake.controllers.pop()  # slow node-agent: the first slice only creates
    dd.run(fake, params(volumes=records, wait_timeout=0, fail_on_timeout=False))
    fake.requests[:] = []
    again = dd.run(fake, params(volumes=records, wait_timeout=0, fail_on_timeout=False))
    assert again["done"] is False and again["changed"] is False
    reads = [r for r in fake.requests if r[0] in ("get", "list")]
    assert sorted(reads) == sorted([("get", "ConfigMap"), ("list", "DataDownload"), ("list", "PersistentVolumeClaim"),
                                    ("get", "StorageClass"), ("list", "Pod")]), fake.requests
    fake.controllers.append(agent)
    fake.requests[:] = []
    done = dd.run(fake, params(volumes=records, wait_timeout=60))
    assert done["done"] is True and len(done["volumes"]) == 20
    assert len([r for r in fake.requests if r == ("list", "DataDownload")]) == 1, fake.requests


def _dd_lists(fake):
    return len([r for r in fake.requests if r == ("list", "DataDownload")])


def test_a_later_wait_slice_continues_the_watch_of_the_one_before_without_listing():
    fake = setup()
    records = [f.dm_record("data")]
    agent = fake.controllers.pop()  # slow node-agent: nothing happens during the first slice
    first = dd.run(fake, params(volumes=records, wait_timeout=0, fail_on_timeout=False))
    assert first["done"] is False and first["resume"]["resource_version"]
    assert [o["metadata"]["name"] for o in first["resume"]["objects"]] == [dd.dd_name("s1", f.NS, "data-restored")]
    assert all(set(o["metadata"]) <= set(dd.pvrs.RESUME_METADATA) and o["spec"]["targetVolume"]
               for o in first["resume"]["objects"])
    fake.controllers.append(agent)
    fake.requests[:] = []
    second = dd.run(fake, params(volumes=records, wait_timeout=60, fail_on_timeout=False, resume=first["resume"]))
    assert second["done"] is True and second["volumes"][0]["phase"] == "Completed" and second["volumes"][0]["pv"]
    assert _dd_lists(fake) == 0 and fake.count("create") == 0, fake.requests
    assert "resume" not in second


def test_a_resume_whose_resource_version_expired_lists_the_datadownloads_again():
    fake = setup()
    records = [f.dm_record("data")]
    agent = fake.controllers.pop()
    first = dd.run(fake, params(volumes=records, wait_timeout=0, fail_on_timeout=False))
    fake.controllers.append(agent)
    fake.expire_before = 10 ** 9  # the API server no longer has that resourceVersion (HTTP 410)
    fake.requests[:] = []
    with pytest.raises(WaitTimeout):  # every watch is refused here, so the wait cannot finish ...
        dd.run(fake, params(volumes=records, wait_timeout=1, resume=first["resume"]))
    assert _dd_lists(fake) >= 1  # ... but it listed again instead of trusting the old state


@pytest.mark.parametrize("resume, message", [
    ({"objects": []}, "resume must be the resume value.*list the DataDownloads again"),
    ({"resource_version": "12", "objects": "x"}, "resume must be the resume value"),
    ({"resource_version": "12", "objects": [{"metadata": {"name": "s1-shop-data", "labels": names.session_labels(
        "s1", role="pvr")}}]}, "not a DataDownload of session s1"),
    ({"resource_version": "12", "objects": [{"metadata": {"name": "s2-shop-data", "labels": names.session_labels(
        "s2", role=dd.ROLE)}}]}, "not a DataDownload of session s1"),
])
def test_a_resume_that_is_not_this_sessions_datadownloads_fails_before_any_request(resume, message):
    fake = setup()
    fake.requests[:] = []
    with pytest.raises(PreflightError, match=message):
        dd.run(fake, params(volumes=[f.dm_record("data")], resume=resume))
    assert fake.requests == []


def test_a_volume_whose_swap_began_gets_no_new_claim_again():
    """A replace killed mid-swap (after the new claim was deleted): a re-run must not create an empty new claim that
    nothing binds (review finding D2); the swap continues instead."""
    fake = setup()
    rec = f.dm_record("data")
    target = {"kind": "PersistentVolumeClaim", "namespace": rec["target_namespace"], "name": rec["target_pvc"]}
    sessions.record_undo(fake, f.VNS, "s1", sessions.ACTION_REBIND, target, {"old_pv": "pv-old", "new_pv": "pv-new"})
    before = len([r for r in fake.requests if r[0] in ("create", "patch", "update", "delete")])
    with pytest.raises(PreflightError, match="swap of PVC shop/data began"):
        dd.run(fake, params(volumes=[rec]))
    assert len([r for r in fake.requests if r[0] in ("create", "patch", "update", "delete")]) == before
    assert fake.find(k.PVC, "data-restored", f.NS) is None


def test_an_unknown_node_os_is_left_out_the_crd_refuses_an_empty_one():
    """A new cluster has no DataUpload: nodeOS is unknown (""). Velero's CRD has enum auto/linux/windows, so "" would
    be refused by the API server; Velero leaves it out (omitempty) and the node-agent reads that as linux."""
    import os
    import yaml

    crd_path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "..", "shared", "velero", "crds",
                            "velero.io_datadownloads.yaml")
    enum = ["auto", "linux", "windows"]
    if os.path.exists(crd_path):  # the CRD as Velero v1.18.1 ships it, when the shared folder is next to the repo
        with open(crd_path) as handle:
            crd = yaml.safe_load(handle)
        enum = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["nodeOS"]["enum"]
    fake = setup()
    fake.controllers.pop()
    dd.run(fake, params(volumes=[f.dm_record("data", node_os="")], wait=False))
    spec = fake.all(k.DATA_DOWNLOAD)[0]["spec"]
    assert "nodeOS" not in spec
    fake = setup()
    fake.controllers.pop()
    dd.run(fake, params(volumes=[f.dm_record("data", node_os="windows")], wait=False))
    assert fake.all(k.DATA_DOWNLOAD)[0]["spec"]["nodeOS"] == "windows" and "" not in enum


# The nodes of base_cluster's node-agent pods: a placeholder keeps to them, one selector term per node (the API server
# takes one value for In on metadata.name).
AGENT_NODES = [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
               for node in ("node-1", "node-2")]


def test_the_placeholder_keeps_to_the_nodes_a_node_agent_runs_on():
    """Only the node-agent of the node the placeholder picks prepares the DataDownload (its restore pod runs there);
    on a node without one it waited for Velero's 30-minute prepare timeout. Running pods labelled role=node-agent
    count, as in Velero's isRunningInNode (the Windows DaemonSet's too)."""
    fake = setup()
    fake.mutate(k.POD, "node-agent-node-2", f.VNS, lambda o: o["status"].update(phase="Pending"))
    windows = f.node_agent_pod("win-1")
    windows["metadata"].update(name="node-agent-windows-win-1", labels={"name": "node-agent-windows", "role": "node-agent"})
    fake.add(k.POD, windows)
    result = dd.run(fake, params(volumes=[f.dm_record("data", sc="sim-wffc")], wait=False))
    [created] = [o for o in result["diff"]["after"]["objects"] if o["kind"] == "Pod"]
    terms = created["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"]
    assert [t["matchFields"] for t in terms] == [[{"key": "metadata.name", "operator": "In", "values": [node]}]
                                                 for node in ("node-1", "win-1")]


def test_the_placeholder_carries_the_topology_of_the_original_volume():
    """WaitForFirstConsumer: the placeholder decides where the new volume is provisioned - in the zone of the volume
    it replaces, so the workload can still schedule after the swap."""
    fake = setup()
    fake.add(k.PVC, f.pvc("data", volume="pv-data"))
    pv = f.pv("pv-data")
    pv["spec"]["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["zone-b"]}]}]}}
    fake.add(k.PV, pv)
    result = dd.run(fake, params(volumes=[f.dm_record("data", sc="sim-wffc", target_pvc="data")], wait=False))
    [created] = [o for o in result["diff"]["after"]["objects"] if o["kind"] == "Pod"]
    required = created["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required == {"nodeSelectorTerms": [dict(term, matchExpressions=[
        {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["zone-b"]},
        {"key": "kubernetes.io/os", "operator": "NotIn", "values": ["windows"]}]) for term in AGENT_NODES]}


@pytest.mark.parametrize("node_os, operator", [("", "NotIn"), ("linux", "NotIn"), ("windows", "In")])
def test_the_placeholder_keeps_to_the_nodes_of_velero_restore_pod_os(node_os, operator):
    """Velero's restore pod must run on the node the placeholder was scheduled to, and it requires kubernetes.io/os In
    [windows] for a windows DataDownload, else NotIn [windows] (generic_restore.go createRestorePod): a placeholder on
    a node of the other OS made the DataDownload time out."""
    fake = setup()
    result = dd.run(fake, params(volumes=[f.dm_record("data", sc="sim-wffc", node_os=node_os)], wait=False))
    [created] = [o for o in result["diff"]["after"]["objects"] if o["kind"] == "Pod"]
    required = created["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required == {"nodeSelectorTerms": [dict(term, matchExpressions=[
        {"key": "kubernetes.io/os", "operator": operator, "values": ["windows"]}]) for term in AGENT_NODES]}
    tolerated = [(t["key"], t["value"], t["effect"]) for t in created["spec"].get("tolerations") or []]
    assert tolerated == ([("os", "windows", "NoSchedule"), ("os", "windows", "NoExecute")] if node_os == "windows"
                         else [])


def test_data_mover_config_values_kopia_refuses_are_refused_before_any_change():
    fake = setup()
    fake.controllers.pop()
    with pytest.raises(PreflightError, match="data_mover_config.WriteSparseFiles is 'maybe'"):
        dd.run(fake, params(volumes=[f.dm_record("data")], wait=False, data_mover_config={"WriteSparseFiles": "maybe"}))
    assert not fake.all(k.DATA_DOWNLOAD) and not fake.all(k.PVC)


def test_a_datadownload_of_the_session_for_another_snapshot_is_refused_before_any_change():
    fake = setup()
    records = [f.dm_record("data", sc="sim-immediate"), f.dm_record("logs", sc="sim-immediate")]
    dd.run(fake, params(volumes=records[:1]))
    writes = [r for r in fake.requests if r[0] not in ("get", "list", "watch")]
    other = [records[1], dict(records[0], snapshot_id="snap-of-another-backup")]  # the refused one comes second
    with pytest.raises(PreflightError) as err:
        dd.run(fake, params(volumes=other))
    assert "DataDownload" in err.value.msg and "this run asks for snapshot snap-of-another-backup" in err.value.msg
    assert [r for r in fake.requests if r[0] not in ("get", "list", "watch")] == writes


def test_the_run_that_deletes_the_placeholders_reports_a_change():
    """The placeholder pods are deleted by the run that sees the DataDownloads complete (in the playbooks, a later
    wait slice): that run said changed=False (until 2026-12-05), and so did its check mode."""
    fake = setup()
    agent = fake.controllers.pop()
    rec = f.dm_record("data", sc="sim-wffc")
    first = dd.run(fake, params(volumes=[rec], wait=False))
    assert first["changed"] and len(fake.all(k.POD, f.NS)) == 1
    writes = [r for r in fake.requests if r[0] not in ("get", "list", "watch")]
    assert dd.run(fake, params(volumes=[rec]), check_mode=True)["changed"] is False  # not complete: nothing to do
    # as if the DataDownload had completed meanwhile: check mode predicts the delete of the placeholder
    [obj] = fake.all(k.DATA_DOWNLOAD, f.VNS)
    fake.mutate(k.DATA_DOWNLOAD, obj["metadata"]["name"], f.VNS,
                lambda o: o.setdefault("status", {}).update(phase="Completed"))
    assert dd.run(fake, params(volumes=[rec]), check_mode=True)["changed"] is True
    assert dd.run(fake, params(volumes=[rec], wait=False), check_mode=True)["changed"] is False  # no wait, no delete
    fake.mutate(k.DATA_DOWNLOAD, obj["metadata"]["name"], f.VNS, lambda o: o["status"].update(phase="New"))
    assert [r for r in fake.requests if r[0] not in ("get", "list", "watch")] == writes
    fake.controllers.append(agent)
    second = dd.run(fake, params(volumes=[rec]))  # waits: the agent completes it, the PVC binds
    assert second["placeholders_deleted"] and second["changed"] is True
    assert dd.run(fake, params(volumes=[rec]), check_mode=True)["changed"] is False
    assert dd.run(fake, params(volumes=[rec]))["changed"] is False


# -- review of 2026-12-06 ------------------------------------------------------------------------------------------
def test_a_data_download_being_deleted_is_created_again_once_it_is_gone():
    """Left terminating (state=absent wait=false, a cancel cut short): it was reused, then reported Canceled."""
    fake = setup()
    agent = fake.controllers.pop()
    rec = f.dm_record("data")
    dd.run(fake, params(volumes=[rec], wait=False))
    name = dd.dd_name("s1", f.NS, "data-restored")
    fake.mutate(k.DATA_DOWNLOAD, name, f.VNS, lambda o: (
        o["metadata"].update(finalizers=["velero.io/data-upload-download-finalizer"]),
        o.setdefault("status", {}).update(phase="InProgress")))
    dd.run(fake, params(state="absent", volumes=[rec], wait=False))
    fake.controllers.append(agent)
    assert dd.run(fake, params(volumes=[rec], wait_timeout=30))["done"] is True


def test_an_unusable_claim_is_refused_before_anything_is_created():
    fake = setup()
    fake.controllers.pop()
    fake.add(k.PVC, f.pvc("b-restored", volume="pv-users"))  # the second volume's new claim name: a bound claim
    with pytest.raises(PreflightError, match="already bound"):
        dd.run(fake, params(volumes=[f.dm_record("a"), f.dm_record("b")], wait=False))
    assert fake.find(k.PVC, "a-restored", f.NS) is None
    assert fake.find(k.DATA_DOWNLOAD, dd.dd_name("s1", f.NS, "a-restored"), f.VNS) is None


def test_a_later_wait_slice_goes_on_waiting_for_the_others_when_one_failed():
    """A DataDownload that failed during a slice made the next slice fail at once (fail_fast=false ignored), while
    the others ran on unwatched; it is reported once the wait ends, and recorded."""
    fake = setup()
    fake.controllers.pop()
    recs = [f.dm_record("a"), f.dm_record("b")]
    dd.run(fake, params(volumes=recs, wait=False))
    failing = dd.dd_name("s1", f.NS, "a-restored")
    fired = []

    def fail_a_once(cluster):
        if fired:
            return False
        fired.append(1)
        cluster.mutate(k.DATA_DOWNLOAD, failing, f.VNS, lambda o: o.update(status={"phase": "Failed", "message": "boom"}))
        return True
    fake.controllers.append(fail_a_once)
    first = dd.run(fake, params(volumes=recs, wait_timeout=1, fail_on_timeout=False))
    assert first["done"] is False
    second = dd.run(fake, params(volumes=recs, wait_timeout=1, fail_on_timeout=False, resume=first["resume"]))
    assert second["done"] is False and second["pending"]
    other = dd.dd_name("s1", f.NS, "b-restored")
    fake.mutate(k.DATA_DOWNLOAD, other, f.VNS, lambda o: o.update(status={"phase": "Canceled"}))
    with pytest.raises(DataRestoreError, match="shop/a .*Failed: boom"):
        dd.run(fake, params(volumes=recs, wait_timeout=1, fail_on_timeout=False, resume=second["resume"]))
    assert sessions.require(fake, f.VNS, "s1").doc["volumes"]["shop/a"]["phase"] == "Failed"


def _failing_agent(name):
    """A node-agent that fails DataDownload ``name`` whenever it sees it New."""
    def run(cluster):
        obj = cluster.find(k.DATA_DOWNLOAD, name, f.VNS)
        if obj is None or va_phase(obj) not in ("", "New"):
            return False
        cluster.mutate(k.DATA_DOWNLOAD, name, f.VNS, lambda o: o.update(status={"phase": "Failed", "message": "boom"}))
        return True
    return run


def va_phase(obj):
    return (obj.get("status") or {}).get("phase") or ""


def test_a_create_that_retried_a_failed_one_hands_its_wait_a_resume_too():
    """The replace role retries when its run starts (wait=false) and only waits in its slices: without a resume after a
    retry, the first slice refused at once a DataDownload that failed again, unwatched others running on."""
    fake = setup()
    name = dd.dd_name("s1", f.NS, "a-restored")
    fake.controllers[-1] = _failing_agent(name)
    recs = [f.dm_record("a")]
    with pytest.raises(DataRestoreError):
        dd.run(fake, params(volumes=recs))
    created = dd.run(fake, params(volumes=recs, wait=False, retry_failed=True))
    assert created["changed"] is True
    assert [o["metadata"]["name"] for o in created["resume"]["objects"]] == [name]
    with pytest.raises(DataRestoreError, match="retry_failed=true"):  # failed again: reported by the wait, not refused
        dd.run(fake, params(volumes=recs, wait_timeout=5, fail_on_timeout=False, resume=created["resume"]))
    assert sessions.require(fake, f.VNS, "s1").doc["volumes"]["shop/a"]["phase"] == "Failed"


def failed_once():
    """(fake, the DataDownload's name, the node-agent controller, records, the first run's result) after a run whose
    DataDownload failed (a failing node-agent stands in for the real one)."""
    fake = setup()
    name = dd.dd_name("s1", f.NS, "a-restored")
    agent = fake.controllers[-1]
    fake.controllers[-1] = _failing_agent(name)
    recs = [f.dm_record("a")]
    first = dd.run(fake, params(volumes=recs, wait=False))
    with pytest.raises(DataRestoreError):
        dd.run(fake, params(volumes=recs, resume=first["resume"]))
    return fake, name, agent, recs, first


def test_retry_failed_is_honoured_with_resume():
    fake, _name, agent, recs, first = failed_once()
    fake.controllers[-1] = agent
    again = dd.run(fake, params(volumes=recs, retry_failed=True, resume=first["resume"]))
    assert again["done"] is True and again["volumes"][0]["phase"] == "Completed"


def test_a_dd_created_again_waits_until_the_restore_pod_of_its_name_is_gone():
    fake, name, agent, recs, first = failed_once()
    fake.add(k.POD, f.data_path_pod(name, "velero.io/data-download"))
    fake.controllers[-1:] = [f.terminates_after(k.DATA_DOWNLOAD, name, "velero.io/data-download"), agent]
    seen = f.creates_with_pod_gone(fake, k.DATA_DOWNLOAD, name)
    again = dd.run(fake, params(volumes=recs, retry_failed=True, resume=first["resume"]))
    assert again["volumes"][0]["phase"] == "Completed" and seen == [True], seen


def node(name, *taints, **labels):
    """A Node whose kubernetes.io/hostname label is its name unless ``hostname`` says otherwise; taints as
    (key, value, effect)."""
    meta_labels = {"kubernetes.io/hostname": labels.pop("hostname", name), "kubernetes.io/os": labels.pop("os", "linux")}
    return {"metadata": {"name": name, "labels": meta_labels},
            "spec": {"taints": [dict({"key": key, "effect": effect}, **({"value": value} if value else {}))
                                for key, value, effect in taints]}}


def _placeholder_terms(result):
    [created] = [o for o in result["diff"]["after"]["objects"] if o["kind"] == "Pod"]
    terms = created["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"]
    return [t["matchFields"][0]["values"][0] for t in terms], created["spec"].get("tolerations") or []


DEDICATED = {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}


def test_a_node_whose_taint_velero_restore_pod_does_not_tolerate_is_left_out_of_the_placeholder_nodes():
    """Velero pins its restore pod with nodeSelector kubernetes.io/hostname=<the placeholder's node> and gives it only
    the node-agent's tolerations of util.ThirdPartyTolerations keys: on a tainted node it stayed Pending and the
    DataDownload failed after the 30-minute prepare timeout. The user's tolerations do not bring the node back."""
    fake = setup()
    fake.add(k.NODE, node("node-1", ("dedicated", "db", "NoSchedule")))
    fake.add(k.NODE, node("node-2", ("spot", "", "PreferNoSchedule")))
    result = dd.run(fake, params(volumes=[f.dm_record("data", sc="sim-wffc")], tolerations=[DEDICATED], wait=False))
    nodes, tolerations = _placeholder_terms(result)
    assert nodes == ["node-2"] and tolerations == [DEDICATED]


def test_a_node_whose_hostname_label_is_not_its_name_is_left_out_of_the_placeholder_nodes():
    fake = setup()
    fake.add(k.NODE, node("node-1", hostname="ip-10-0-0-1"))
    fake.add(k.NODE, node("node-2"))
    nodes = _placeholder_terms(dd.run(fake, params(volumes=[f.dm_record("data", sc="sim-wffc")], wait=False)))[0]
    assert nodes == ["node-2"]
    fake.add(k.NODE, node("node-2", hostname="ip-10-0-0-2"))
    with pytest.raises(PreflightError, match=r"node-1 \(its kubernetes.io/hostname label \(ip-10-0-0-1\) is not its"):
        dd.run(fake, params(volumes=[f.dm_record("other", sc="sim-wffc")]))


def test_only_nodes_velero_restore_pod_cannot_use_are_refused_before_any_change():
    fake = setup()
    fake.add(k.NODE, node("node-1", ("dedicated", "db", "NoSchedule")))
    fake.add(k.NODE, node("node-2", ("node.kubernetes.io/unreachable", "", "NoExecute")))
    fake.requests[:] = []
    with pytest.raises(PreflightError) as err:
        dd.run(fake, params(volumes=[f.dm_record("data", sc="sim-wffc")], tolerations=[DEDICATED]))
    msg = err.value.msg
    assert "No node can take the placeholder pod of shop/data" in msg
    assert "node-1 (untolerated taint(s) dedicated=db:NoSchedule)" in msg
    assert "node-2 (untolerated taint(s) node.kubernetes.io/unreachable:NoExecute)" in msg
    assert "kubernetes.azure.com/scalesetpriority and CriticalAddonsOnly" in msg and "remove the taint" in msg
    assert not [r for r in fake.requests if r[0] in ("create", "patch", "update", "delete")], fake.requests
    assert fake.all(k.DATA_DOWNLOAD) == [] and fake.find(k.PVC, "data-restored", f.NS) is None


@pytest.mark.parametrize("node_os, daemonset", [("linux", "node-agent"), ("windows", "node-agent-windows")])
def test_a_taint_of_a_key_velero_lets_through_from_the_node_agent_keeps_the_node(node_os, daemonset):
    """The node-agent's toleration of a util.ThirdPartyTolerations key goes onto Velero's restore pod (from the
    DaemonSet of the DataDownload's OS), and so onto the placeholder; other keys do not. A Windows restore pod
    tolerates os=windows too."""
    fake = setup()

    def agent_of(o):
        o["metadata"]["labels"]["name"] = daemonset
        o["spec"]["tolerations"] = [{"key": "CriticalAddonsOnly", "operator": "Exists"},
                                    {"key": "dedicated", "operator": "Exists"}]
    for name in ("node-1", "node-2"):
        fake.mutate(k.POD, "node-agent-%s" % name, f.VNS, agent_of)
    windows = [("os", "windows", "NoSchedule"), ("os", "windows", "NoExecute")] if node_os == "windows" else []
    fake.add(k.NODE, node("node-1", ("CriticalAddonsOnly", "true", "NoSchedule"), *windows, os=node_os))
    fake.add(k.NODE, node("node-2", ("dedicated", "db", "NoSchedule"), *windows, os=node_os))
    result = dd.run(fake, params(volumes=[f.dm_record("data", sc="sim-wffc", node_os=node_os)], wait=False))
    nodes, tolerations = _placeholder_terms(result)
    assert nodes == ["node-1"]
    assert tolerations == [{"key": "CriticalAddonsOnly", "operator": "Exists"}] + [
        {"key": key, "operator": "Equal", "value": value, "effect": effect} for key, value, effect in windows]


def test_when_the_nodes_cannot_be_read_the_placeholder_tolerates_only_what_velero_restore_pod_does():
    """Without the right to list nodes the scheduler applies the taints: the user's tolerations could take the
    placeholder to a node the restore pod cannot use."""
    fake = setup()
    fake.add(k.NODE, node("node-1", ("dedicated", "db", "NoSchedule")))
    fake.forbid("list", k.NODE)
    result = dd.run(fake, params(volumes=[f.dm_record("data", sc="sim-wffc")], tolerations=[DEDICATED], wait=False))
    assert _placeholder_terms(result) == (["node-1", "node-2"], [])


def test_the_rebind_hint_says_the_restored_pv_is_deleted_only_when_velero_retained_it():
    """RebindVolume's deferred delete runs only when SetPVReclaimPolicy changed the policy (retained != nil,
    generic_restore.go): with a Retain class the restored PV survives, bound to no claim."""
    hint = dd._stuck_hint({"phase": "InProgress", "total_bytes": 10, "bytes_done": 10})
    assert "InProgress forever" in hint
    assert "deleted if its StorageClass's reclaimPolicy is Delete" in hint
    assert "kept, bound to no claim, if it is Retain" in hint
