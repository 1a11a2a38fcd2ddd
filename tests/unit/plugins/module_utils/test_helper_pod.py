"""helper_pod.py: the restore-wait init container exactly as Velero builds it, grouping, waits."""

import copy

import pytest

from ansible_collections.velero.data_restore.plugins.module_utils import helper_pod as hp
from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils.errors import (
    DataRestoreError,
    PreflightError,
    WaitTimeout,
)
from fake_kube import FakeKube
import data_path_fixtures as f


def params(**kw):
    p = dict(velero_namespace=f.VNS, session="s1", state="present", namespace=f.NS, pvcs=None, volumes=None,
             image=None, node_selector=None, affinity=None, tolerations=None, node_name=None,
             pin_to_consumer_node=False, labels=None, check_node_agent=True, wait=True, wait_timeout=30,
             max_volumes_per_pod=0)
    p.update(kw)
    return p


@pytest.fixture
def fake():
    fake = FakeKube()
    fake.sess = f.base_cluster(fake)
    fake.add(k.PVC, f.pvc("data", volume="pv-data"))
    fake.add(k.PV, f.pv("pv-data"))
    fake.controllers.append(f.kubelet())
    return fake


# The init container Velero's PodVolumeRestoreAction.Execute injects (velero-contract.md §2), for a pod with one
# restored volume "data", restore UID = session UID, no plugin ConfigMap, image of Deployment velero.
def velero_init_container(uid, volumes=("data",)):
    return {
        "name": "restore-wait",
        "image": "velero/velero:v1.18.1",
        "command": ["/velero-restore-helper"],
        "args": [uid],
        "env": [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "volumeMounts": [{"name": v, "mountPath": "/restores/" + v} for v in volumes],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "100m", "memory": "128Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}, "runAsUser": 1000, "runAsNonRoot": True},
    }


def test_helper_pod_matches_velero_init_container(fake):
    result = hp.run(fake, params(pvcs=["data"]))
    assert result["changed"] is True
    [entry] = result["pods"]
    pod = fake.find(k.POD, entry["name"], f.NS)
    assert pod["spec"]["initContainers"] == [velero_init_container(fake.sess.uid)]
    main = pod["spec"]["containers"][0]
    assert main["command"] == ["/velero-helper", "pause"] and main["image"] == "velero/velero:v1.18.1"
    assert main["securityContext"]["runAsNonRoot"] is True and main["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert "volumeMounts" not in main
    assert pod["spec"]["restartPolicy"] == "Always"
    assert pod["spec"]["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    assert "ownerReferences" not in pod["metadata"]  # cross-namespace owners are GC'd
    labels = pod["metadata"]["labels"]
    assert labels["data-restore.ansible/session"] == "s1" and labels["data-restore.ansible/role"] == "helper"
    assert entry == {"name": "restore-s1-shared", "namespace": f.NS, "uid": pod["metadata"]["uid"], "node": "node-1",
                     "group": "shared", "phase": "Pending", "restore_wait": "running", "volumes": {"data": "data"}}


@pytest.mark.parametrize("image, expected, noted", [
    ("velero", "velero/velero:v1.18.1", True),                        # no registry part: ignored
    ("registry.local/velero/velero", "registry.local/velero/velero:v1.18.1", True),  # no tag: tag appended
    ("registry.local:5000/velero", "registry.local:5000/velero:v1.18.1", True),      # port is not a tag
    ("registry.local/velero/velero:v1.18.0", "registry.local/velero/velero:v1.18.0", False),
])
def test_configmap_image(image, expected, noted):
    got, note = hp.resolve_image(f.plugin_config({"image": image}), "velero/velero:v1.18.1")
    assert got == expected
    assert bool(note) is noted


@pytest.mark.parametrize("server_image", ["velero/velero@sha256:" + "a" * 64, "registry.local/velero/velero"])
def test_a_tagless_configmap_image_next_to_a_server_image_without_tag_is_refused(server_image):
    """Velero appends its build version (internal/velero/images.go ImageTag), not "latest": a guess would pull an
    image that may not exist in a mirrored registry, or one of another version."""
    with pytest.raises(PreflightError, match="has no tag, and Velero appends its own version") as err:
        hp.resolve_image(f.plugin_config({"image": "registry.local/velero/velero-restore-helper"}), server_image)
    assert "option image" in err.value.msg


def test_image_option_overrides_everything(fake):
    fake.add(k.CONFIG_MAP, f.plugin_config({"image": "registry.local/velero/velero:v9"}))
    result = hp.run(fake, params(pvcs=["data"], image="mirror.local/velero:v1.18.1"))
    pod = fake.find(k.POD, result["pods"][0]["name"], f.NS)
    assert pod["spec"]["initContainers"][0]["image"] == "mirror.local/velero:v1.18.1"
    assert pod["spec"]["containers"][0]["image"] == "mirror.local/velero:v1.18.1"


def test_configmap_image_is_for_restore_wait_only(fake):
    fake.add(k.CONFIG_MAP, f.plugin_config({"image": "registry.local/velero/velero-restore-helper:v1.18.1"}))
    result = hp.run(fake, params(pvcs=["data"]))
    pod = fake.find(k.POD, result["pods"][0]["name"], f.NS)
    assert pod["spec"]["initContainers"][0]["image"] == "registry.local/velero/velero-restore-helper:v1.18.1"
    assert pod["spec"]["containers"][0]["image"] == "velero/velero:v1.18.1"  # has /velero-helper


def test_two_plugin_configmaps_are_an_error(fake):
    fake.add(k.CONFIG_MAP, f.plugin_config({}, name="a"))
    fake.add(k.CONFIG_MAP, f.plugin_config({}, name="b"))
    with pytest.raises(PreflightError, match="more than one ConfigMap.*a, b"):
        hp.run(fake, params(pvcs=["data"]))


def test_missing_velero_deployment():
    fake = FakeKube()
    with pytest.raises(PreflightError, match="Deployment velero/velero not found"):
        hp.resolve_settings(fake, f.VNS)


@pytest.mark.parametrize("data, expected", [
    ({}, {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "100m", "memory": "128Mi"}}),
    ({"cpuRequest": "200m", "memLimit": "1Gi", "memRequest": "256Mi", "cpuLimit": "1"},
     {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}),
    ({"cpuLimit": "0", "memLimit": "0"}, {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {}}),
    ({"cpuRequest": "2", "cpuLimit": "1"},  # request > limit: Velero falls back to the defaults
     {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "100m", "memory": "128Mi"}}),
    ({"memRequest": "lots"}, {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "100m", "memory": "128Mi"}}),
])
def test_configmap_resources(data, expected):
    got = hp.resolve_resources(f.plugin_config(data))[0]
    assert got == expected


@pytest.mark.parametrize("data, expected", [
    ({"secCtxRunAsUser": "1001", "secCtxRunAsGroup": "999", "secCtxAllowPrivilegeEscalation": "false"},
     {"runAsUser": 1001, "runAsGroup": 999, "allowPrivilegeEscalation": False}),
    ({"secCtx": "capabilities:\n  drop: [ALL]\nrunAsNonRoot: true\n"},
     {"capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True}),
    ({"secCtxRunAsUser": "1001", "secCtx": "runAsUser: 2000\n"}, {"runAsUser": 2000}),  # YAML wins (unmarshal after)
    ({"secCtxRunAsUser": "abc"}, hp.default_security_context()),
    ({"secCtx": "runAsUsr: 1\n"}, hp.default_security_context()),  # UnmarshalStrict: unknown field
    ({"image": "x/y"}, hp.default_security_context()),
])
def test_configmap_security_context(data, expected):
    got = hp.resolve_security_context(f.plugin_config(data))[0]
    assert got == expected


def test_configmap_command_and_security_context_reach_the_pod(fake):
    fake.add(k.CONFIG_MAP, f.plugin_config({"command": "/custom-helper", "secCtxRunAsUser": "1000680000"}))
    result = hp.run(fake, params(pvcs=["data"]))
    init = fake.find(k.POD, result["pods"][0]["name"], f.NS)["spec"]["initContainers"][0]
    assert init["command"] == ["/custom-helper"]
    assert init["securityContext"] == {"runAsUser": 1000680000}


def test_pod_volume_names_are_dns1123_and_stable():
    assert hp.pod_volume_name("data-db-0") == "data-db-0"
    dotted = hp.pod_volume_name("data.db")
    long_name = hp.pod_volume_name("x" * 200)
    for name in (dotted, long_name):
        assert len(name) <= 63 and name.replace("-", "").isalnum() and name == name.lower()
    assert dotted != hp.pod_volume_name("data-db") and dotted == hp.pod_volume_name("data.db")


def test_grouping_by_pv_node_constraint(fake):
    for name, host in (("a", "node-1"), ("b", "node-2"), ("c", None), ("d", "node-1")):
        fake.add(k.PVC, f.pvc(name, volume="pv-" + name))
        fake.add(k.PV, f.pv("pv-" + name, host))
    result = hp.run(fake, params(pvcs=["a", "b", "c", "d", "data"]))
    groups = dict((p["group"], p) for p in result["pods"])
    assert sorted(groups) == ["node-node-1", "node-node-2", "shared"]
    assert groups["node-node-1"]["volumes"] == {"a": "a", "d": "d"} and groups["node-node-1"]["node"] == "node-1"
    assert groups["node-node-2"]["volumes"] == {"b": "b"} and groups["node-node-2"]["node"] == "node-2"
    assert groups["shared"]["volumes"] == {"c": "c", "data": "data"}
    pod = fake.find(k.POD, groups["node-node-1"]["name"], f.NS)
    assert [m["mountPath"] for m in pod["spec"]["initContainers"][0]["volumeMounts"]] == ["/restores/a", "/restores/d"]


def test_plan_records_use_new_pvc_in_replace_mode(fake):
    fake.add(k.PVC, f.pvc("data-new", sc="sim-wffc"))
    records = [f.fs_record("data", new_pvc={"name": "data-new"}), f.dm_record("other")]
    result = hp.run(fake, params(namespace=None, volumes=records))
    assert [p["volumes"] for p in result["pods"]] == [{"data-new": "data-new"}]


def test_pin_to_consumer_node(fake):
    tol = {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}
    fake.add(k.POD, f.app_pod("db-0", ["data"], "node-2", tolerations=[tol]))
    result = hp.run(fake, params(pvcs=["data"], pin_to_consumer_node=True))
    [entry] = result["pods"]
    assert entry["group"] == "node-node-2" and entry["node"] == "node-2"
    pod = fake.find(k.POD, entry["name"], f.NS)
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-2"]}]}]
    assert pod["spec"]["tolerations"] == [tol]


@pytest.mark.parametrize("access", ["ReadWriteOnce", "ReadWriteMany"])
def test_a_claim_a_running_pod_still_mounts_is_restored_with_a_warning(fake, access):
    """quiesce=none: the user said the app is stopped, but a pod still mounts the claim (RWO: the helper is pinned
    to its node; RWX: nothing stops a second mount) - the restore writes under a live application: say so."""
    fake.add(k.PVC, f.pvc("shared", volume="pv-shared", access=(access,)))
    fake.add(k.PV, f.pv("pv-shared"))
    fake.add(k.POD, f.app_pod("app-0", ["shared"], "node-2"))
    result = hp.run(fake, params(pvcs=["shared"], pin_to_consumer_node=True))
    assert result["warnings"] == ["PVC %s/shared is still mounted by running pod(s) app-0: the backup's data is "
                                  "written under a live application. Stop it first (quiesce=scale) for a consistent "
                                  "restore." % f.NS]


def test_no_warning_when_no_pod_mounts_the_claim(fake):
    assert hp.run(fake, params(pvcs=["data"], pin_to_consumer_node=True))["warnings"] == []


def test_pin_refuses_rwop_in_use(fake):
    fake.add(k.PVC, f.pvc("solo", volume="pv-solo", access=("ReadWriteOncePod",)))
    fake.add(k.PV, f.pv("pv-solo"))
    fake.add(k.POD, f.app_pod("solo-0", ["solo"], "node-1"))
    with pytest.raises(PreflightError, match="ReadWriteOncePod and still mounted by pod"):
        hp.run(fake, params(pvcs=["solo"], pin_to_consumer_node=True))


def test_no_ready_node_agent_fails_at_once(fake):
    fake.remove(k.POD, "node-agent-node-1", f.VNS)
    fake.add(k.POD, f.node_agent_pod("node-1", ready=False))
    with pytest.raises(DataRestoreError, match="scheduled on node node-1, but no Running Velero node-agent"):
        hp.run(fake, params(pvcs=["data"]))


def test_image_pull_failure_fails_early(fake):
    fake.controllers[:] = []

    def pull_fails(fk):
        pod = fk.find(k.POD, "restore-s1-shared", f.NS)
        if pod and not pod["spec"].get("nodeName"):
            def bad(o):
                o["spec"]["nodeName"] = "node-1"
                o["status"] = {"phase": "Pending", "initContainerStatuses": [{
                    "name": "restore-wait", "image": "velero/velero:v1.18.1",
                    "state": {"waiting": {"reason": "ImagePullBackOff", "message": "pull denied"}}}]}
            fk.mutate(k.POD, "restore-s1-shared", f.NS, bad)
            return True
        return False
    fake.controllers.append(pull_fails)
    with pytest.raises(DataRestoreError, match="ImagePullBackOff pull denied.*option image"):
        hp.run(fake, params(pvcs=["data"]))


def test_timeout_names_pending_pods(fake):
    fake.controllers[:] = []
    with pytest.raises(WaitTimeout) as err:
        hp.run(fake, params(pvcs=["data"], wait_timeout=0))
    assert err.value.pending == ["restore-s1-shared (pending)"]


def test_a_pod_over_the_attach_limit_names_max_volumes_per_pod(fake):
    fake.controllers[:] = []

    def unschedulable(fk):
        pod = fk.find(k.POD, "restore-s1-shared", f.NS)
        if pod is not None and not (pod.get("status") or {}).get("conditions"):
            fk.mutate(k.POD, "restore-s1-shared", f.NS, lambda o: o.setdefault("status", {}).update(conditions=[{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/1 nodes are available: 1 node(s) exceed max volume count."}]))
            return True
        return False
    fake.controllers.append(unschedulable)
    with pytest.raises(WaitTimeout) as err:
        hp.run(fake, params(pvcs=["data"], wait_timeout=1))
    assert "exceed max volume count" in err.value.pending[0] and "max_volumes_per_pod" in err.value.pending[0]


def test_idempotent_rerun(fake):
    first = hp.run(fake, params(pvcs=["data"]))
    creates = fake.count("create")
    second = hp.run(fake, params(pvcs=["data"]))
    assert second["changed"] is False and fake.count("create") == creates
    assert second["pods"][0]["uid"] == first["pods"][0]["uid"]


def test_different_spec_is_not_replaced(fake):
    hp.run(fake, params(pvcs=["data"]))
    with pytest.raises(PreflightError, match="already exists with a different spec.*state=absent"):
        hp.run(fake, params(pvcs=["data"], image="other.local/velero:v1"))


def test_terminal_pod_is_reported(fake):
    result = hp.run(fake, params(pvcs=["data"]))
    fake.mutate(k.POD, result["pods"][0]["name"], f.NS, lambda o: o["status"].update(phase="Failed", reason="Evicted"))
    with pytest.raises(DataRestoreError, match="is Failed \\(Evicted\\)"):
        hp.run(fake, params(pvcs=["data"]))


def test_check_mode_creates_nothing(fake):
    fake.requests[:] = []
    result = hp.run(fake, params(pvcs=["data"]), check_mode=True)
    assert result["changed"] is True and result["pods"][0]["uid"] is None
    assert [r for r in fake.requests if r[0] in ("create", "patch", "update", "delete")] == []
    assert result["diff"]["after"]["pods"][0]["spec"]["initContainers"][0]["name"] == "restore-wait"


def test_check_mode_without_session():
    fake = FakeKube()
    fake.add(k.DEPLOYMENT, f.velero_deployment())
    fake.add(k.PVC, f.pvc("data"))
    result = hp.run(fake, params(pvcs=["data"]), check_mode=True)
    assert result["changed"] is True and fake.count("create") == 0


def test_block_and_missing_pvcs_refused(fake):
    fake.add(k.PVC, f.pvc("raw", volume="pv-raw", mode="Block"))
    with pytest.raises(PreflightError, match="Block mode.*data_download"):
        hp.run(fake, params(pvcs=["raw"]))
    with pytest.raises(PreflightError, match="nope not found in namespace shop"):
        hp.run(fake, params(pvcs=["nope"]))


def test_absent_deletes_and_waits(fake):
    hp.run(fake, params(pvcs=["data"]))
    result = hp.run(fake, params(state="absent", namespace=None))
    assert result["changed"] is True and result["deleted"] == ["shop/restore-s1-shared"]
    assert fake.find(k.POD, "restore-s1-shared", f.NS) is None
    again = hp.run(fake, params(state="absent"))
    assert again["changed"] is False


def test_absent_in_one_namespace_watches_from_its_list(fake):
    hp.run(fake, params(pvcs=["data"]))
    start = len(fake.requests)
    result = hp.run(fake, params(state="absent"))
    assert result["deleted"] == ["shop/restore-s1-shared"] and fake.find(k.POD, "restore-s1-shared", f.NS) is None
    assert [r for r in fake.requests[start:] if r[1] == "Pod"] == [("list", "Pod"), ("delete", "Pod"), ("watch", "Pod")]


def _raced(fake, relabel=None):
    """The next POST of a pod finds one of that name made a moment earlier (another run of the session)."""
    create = fake.create

    def create_after_the_other_run(kind, body, namespace=None):
        if kind is k.POD and fake.find(k.POD, body["metadata"]["name"], namespace) is None:
            other = copy.deepcopy(body)
            if relabel:
                other["metadata"]["labels"][relabel[0]] = relabel[1]
            create(kind, other, namespace)
        return create(kind, body, namespace)

    fake.create = create_after_the_other_run


def test_helper_pod_made_meanwhile_by_another_run_of_the_session_is_reused(fake):
    _raced(fake)
    result = hp.run(fake, params(pvcs=["data"]))
    [entry] = result["pods"]
    assert fake.find(k.POD, entry["name"], f.NS)["metadata"]["uid"] == entry["uid"]


def test_pod_of_that_name_made_meanwhile_by_someone_else_is_refused(fake):
    _raced(fake, relabel=("data-restore.ansible/session", "other"))
    with pytest.raises(PreflightError, match="does not belong to session s1"):
        hp.run(fake, params(pvcs=["data"]))


def test_the_wait_for_restore_wait_starts_from_the_list_that_found_no_helper_pod(fake):
    """One LIST of the session's helper pods decides what to create and seeds the wait (the watch delivers the
    created pod); the other Pod LIST is the node-agent check of the node it landed on."""
    fake.requests[:] = []
    result = hp.run(fake, params(pvcs=["data"]))
    assert result["pods"][0]["restore_wait"] == "running"
    assert [r for r in fake.requests if r[1] == "Pod"] == [
        ("list", "Pod"), ("create", "Pod"), ("watch", "Pod"), ("list", "Pod")], fake.requests


def zonal_pv(name, zone):
    obj = f.pv(name)
    obj["spec"]["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "topology.kubernetes.io/zone", "operator": "In", "values": [zone]}]}]}}
    return obj


def test_new_unbound_claims_follow_the_topology_of_their_originals(fake):
    """Replace mode, WaitForFirstConsumer class: the helper pod is the first consumer and decides where a new volume
    is provisioned. One pod for all would put every restored volume in one zone, and after the swap a workload
    pinned by its other volumes or its spread rules could not schedule."""
    for name, zone in (("db-0", "zone-a"), ("db-1", "zone-b")):
        fake.add(k.PVC, f.pvc(name, volume="pv-" + name))
        fake.add(k.PV, zonal_pv("pv-" + name, zone))
        fake.add(k.PVC, f.pvc(name + "-new", sc="sim-wffc"))
    records = [f.fs_record(name, new_pvc={"name": name + "-new"}) for name in ("db-0", "db-1")]
    groups = hp.plan_groups(fake, "s1", f.NS, ["db-0-new", "db-1-new"], origins={"db-0-new": "db-0",
                                                                                 "db-1-new": "db-1"})
    assert sorted(g["pvcs"] for g in groups) == [["db-0-new"], ["db-1-new"]]
    result = hp.run(fake, params(namespace=None, volumes=records, wait=False))
    zones = {}
    for entry in result["pods"]:
        pod = fake.find(k.POD, entry["name"], f.NS)
        terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"]
        zones[tuple(sorted(entry["volumes"]))] = [e["values"] for t in terms for e in t["matchExpressions"]]
    assert zones == {("db-0-new",): [["zone-a"]], ("db-1-new",): [["zone-b"]]}


def test_required_node_affinities_are_anded():
    user = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["a"]}]},
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["b"]}]}]}}}
    zone = {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}]}
    merged = hp.require_node_affinity(user, zone)
    terms = merged["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert [[e["values"][0] for e in t["matchExpressions"]] for t in terms] == [["a", "z1"], ["b", "z1"]]
    assert len(user["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchExpressions"]) == 1  # the caller's dict is left alone


def csi_pv(name, driver="sim.csi.example.com", zone=None):
    obj = zonal_pv(name, zone) if zone else f.pv(name)
    obj["spec"]["csi"] = {"driver": driver, "volumeHandle": name}
    return obj


def csi_node(name, limits):
    drivers = []
    for driver, count in limits.items():
        entry = {"name": driver, "nodeID": name}
        if count is not None:
            entry["allocatable"] = {"count": count}
        drivers.append(entry)
    return {"metadata": {"name": name}, "spec": {"drivers": drivers}}


def zone_claims(fake, count, driver="sim.csi.example.com"):
    names = ["v%02d" % i for i in range(count)]
    for name in names:
        fake.add(k.PVC, f.pvc(name, volume="pv-" + name))
        fake.add(k.PV, csi_pv("pv-" + name, driver, zone="zone-a"))
    return names


def test_a_group_over_the_nodes_csi_attach_limit_is_split(fake):
    """kube-scheduler refuses a pod with more volumes of a driver than a node's CSINode allows ("exceed max volume
    count"): one helper pod for all 5 volumes of a zone would stay Pending where nodes attach 2 at most."""
    fake.add(k.CSI_NODE, csi_node("node-1", {"sim.csi.example.com": 3, "other.csi": 1}))
    fake.add(k.CSI_NODE, csi_node("node-2", {"sim.csi.example.com": 2}))
    names = zone_claims(fake, 5)
    result = hp.run(fake, params(pvcs=names, wait=False))
    assert [(p["group"].rsplit("-", 1)[1], sorted(p["volumes"])) for p in result["pods"]] == [
        ("1", ["v00", "v01"]), ("2", ["v02", "v03"]), ("3", ["v04"])]
    assert len(set(p["group"].rsplit("-", 1)[0] for p in result["pods"])) == 1  # one zone group, three chunks
    assert [r for r in fake.requests if r[1] == "CSINode"] == [("list", "CSINode")]
    again = hp.run(fake, params(pvcs=names, wait=False))  # a re-run splits the same way and reuses the pods
    assert not again["changed"] and [p["name"] for p in again["pods"]] == [p["name"] for p in result["pods"]]


@pytest.mark.parametrize("limit_now,max_now", [(5, 0), (1, 0), (2, 3)],
                         ids=["limit-raised", "limit-lowered", "max-volumes-given"])
def test_a_rerun_keeps_the_split_of_the_existing_helper_pods(fake, limit_now, max_now):
    """The pods of the first run may be serving restores: another limit now must neither refuse them ("different
    spec") nor mount their claims in a second pod."""
    fake.add(k.CSI_NODE, csi_node("node-1", {"sim.csi.example.com": 2}))
    names = zone_claims(fake, 5)
    first = hp.run(fake, params(pvcs=names, wait=False))
    fake.mutate(k.CSI_NODE, "node-1", None, lambda o: o["spec"]["drivers"][0].update(allocatable={"count": limit_now}))
    again = hp.run(fake, params(pvcs=names, wait=False, max_volumes_per_pod=max_now))
    assert not again["changed"] and [p["name"] for p in again["pods"]] == [p["name"] for p in first["pods"]]
    assert [sorted(p["volumes"]) for p in again["pods"]] == [sorted(p["volumes"]) for p in first["pods"]]
    assert any("the split is kept" in w for w in again["warnings"]) == bool(max_now)


@pytest.mark.parametrize("count,first_max,max_now", [(5, 2, 2), (3, 0, 5)], ids=["same-split", "fits-in-one"])
def test_a_rerun_that_asks_for_the_kept_split_is_not_warned(fake, count, first_max, max_now):
    names = zone_claims(fake, count)
    first = hp.run(fake, params(pvcs=names, wait=False, max_volumes_per_pod=first_max))
    again = hp.run(fake, params(pvcs=names, wait=False, max_volumes_per_pod=max_now))
    assert [p["name"] for p in again["pods"]] == [p["name"] for p in first["pods"]]
    assert not any("the split is kept" in w for w in again["warnings"]), again["warnings"]


def test_the_split_is_kept_from_a_later_chunk_when_the_first_pod_is_gone(fake):
    """The chunks' sizes are equal but the last: chunk 2 starting at the third claim means 2 per pod."""
    fake.add(k.CSI_NODE, csi_node("node-1", {"sim.csi.example.com": 2}))
    names = zone_claims(fake, 5)
    first = hp.run(fake, params(pvcs=names, wait=False))
    fake.delete(k.POD, first["pods"][0]["name"], f.NS)
    fake.mutate(k.CSI_NODE, "node-1", None, lambda o: o["spec"]["drivers"][0].update(allocatable={"count": 5}))
    again = hp.run(fake, params(pvcs=names, wait=False))
    assert again["changed"]  # the first pod was created again
    assert [p["name"] for p in again["pods"]] == [p["name"] for p in first["pods"]]
    assert [sorted(p["volumes"]) for p in again["pods"]] == [["v00", "v01"], ["v02", "v03"], ["v04"]]
    fake.delete(k.POD, first["pods"][0]["name"], f.NS)
    fake.delete(k.POD, first["pods"][1]["name"], f.NS)
    last_only = hp.run(fake, params(pvcs=names, wait=False))  # chunk 3 alone: its first claim is the fifth
    assert last_only["changed"]
    assert [sorted(p["volumes"]) for p in last_only["pods"]] == [["v00", "v01"], ["v02", "v03"], ["v04"]]


def test_an_unsplit_helper_pod_stays_whole_when_a_limit_appears(fake):
    names = zone_claims(fake, 3)
    first = hp.run(fake, params(pvcs=names, wait=False))
    assert [len(p["volumes"]) for p in first["pods"]] == [3]
    fake.add(k.CSI_NODE, csi_node("node-1", {"sim.csi.example.com": 2}))
    again = hp.run(fake, params(pvcs=names, wait=False))
    assert not again["changed"] and [len(p["volumes"]) for p in again["pods"]] == [3]
    assert ("list", "CSINode") not in fake.requests[-5:]


def test_no_split_without_a_limit_and_no_csinode_read_for_single_volumes(fake):
    fake.add(k.CSI_NODE, csi_node("node-1", {"sim.csi.example.com": None, "other.csi": 1}))
    names = zone_claims(fake, 4)
    assert [len(p["volumes"]) for p in hp.run(fake, params(pvcs=names, wait=False))["pods"]] == [4]
    fake.requests[:] = []
    hp.run(fake, params(pvcs=["data"], wait=False))  # one volume per group: nothing to split, no LIST
    assert ("list", "CSINode") not in fake.requests


def test_max_volumes_per_pod_overrides_the_csinode_limit(fake):
    fake.add(k.CSI_NODE, csi_node("node-1", {"sim.csi.example.com": 2}))
    names = zone_claims(fake, 5)
    result = hp.run(fake, params(pvcs=names, wait=False, max_volumes_per_pod=4))
    assert [len(p["volumes"]) for p in result["pods"]] == [4, 1]
    assert ("list", "CSINode") not in fake.requests
    with pytest.raises(PreflightError, match="max_volumes_per_pod must be 0"):
        hp.run(fake, params(pvcs=names, max_volumes_per_pod=-1))


def test_unlisted_csinodes_warn_and_leave_the_group_whole(fake):
    names = zone_claims(fake, 3)
    fake.forbid("list", k.CSI_NODE)
    result = hp.run(fake, params(pvcs=names, wait=False))
    assert [len(p["volumes"]) for p in result["pods"]] == [3]
    assert any("velero-data-restore-attach-limits" in w and "max_volumes_per_pod" in w for w in result["warnings"])


def test_unbound_new_claims_take_the_limit_of_their_class_provisioner(fake):
    fake.add(k.STORAGE_CLASS, {"metadata": {"name": "fast"}, "provisioner": "sim.csi.example.com",
                               "volumeBindingMode": "WaitForFirstConsumer"})
    fake.add(k.CSI_NODE, csi_node("node-1", {"sim.csi.example.com": 2}))
    for name in ("a", "b", "c"):
        fake.add(k.PVC, f.pvc(name + "-new", sc="fast"))
    groups = hp.split_groups(fake, hp.plan_groups(fake, "s1", f.NS, ["a-new", "b-new", "c-new"]))
    assert [g["pvcs"] for g in groups] == [["a-new", "b-new"], ["c-new"]]
    assert [r for r in fake.requests if r[1] == "StorageClass"] == [("get", "StorageClass")]  # one GET per class
