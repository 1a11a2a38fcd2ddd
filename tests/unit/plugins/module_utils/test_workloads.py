import json

import pytest

from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils import session as s
from ansible_collections.velero.data_restore.plugins.module_utils import workloads as w
from ansible_collections.velero.data_restore.plugins.module_utils.errors import ForbiddenError, PreflightError, WaitTimeout
from ansible_collections.velero.data_restore.plugins.module_utils.pods import is_terminal
from fake_kube import FakeKube

VNS = "velero"
NS = "shop"
SESSION = "nightly"
MUTATING = ("create", "patch", "update", "delete")


def owner(obj, controller=True):
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": controller, "blockOwnerDeletion": True}


def pod(name, claims, owner_obj=None, phase="Running", ns=NS):
    meta = {"name": name, "namespace": ns}
    if owner_obj is not None:
        meta["ownerReferences"] = [owner(owner_obj)]
    return {"metadata": meta,
            "spec": {"containers": [{"name": "app", "image": "busybox"}],
                     "volumes": [{"name": "v%d" % i, "persistentVolumeClaim": {"claimName": c}}
                                 for i, c in enumerate(claims)] + [{"name": "tmp", "emptyDir": {}}]},
            "status": {"phase": phase}}


def top_is_stopped(fk, obj):
    """The chain of controllers of obj, stopped if any member is stopped."""
    refs = (obj["metadata"].get("ownerReferences") or [])
    for ref in refs:
        if not ref.get("controller") or ref["kind"] not in w.KINDS:
            continue
        kind = w.KINDS[ref["kind"]].kind
        parent = fk.find(kind, ref["name"], obj["metadata"].get("namespace"))
        if parent is None:
            return False
        return w.KINDS[ref["kind"]].is_stopped(parent) or top_is_stopped(fk, parent)
    return False


def workload_controller(fk):
    """Plays the ReplicaSet/StatefulSet/... controllers: removes pods of stopped workloads,
    reports readiness of running ones."""
    changed = False
    for p in fk.all(k.POD):
        if not is_terminal(p) and top_is_stopped(fk, p):
            fk.remove(k.POD, p["metadata"]["name"], p["metadata"]["namespace"])
            changed = True
    for kind in (k.DEPLOYMENT, k.STATEFUL_SET, k.REPLICA_SET):
        for obj in fk.all(kind):
            want = obj["spec"].get("replicas", 1)
            status = obj.get("status") or {}
            if status.get("readyReplicas") != want or status.get("observedGeneration") is None:
                def ready(o, want=want):
                    o["status"] = {"readyReplicas": want, "replicas": want, "observedGeneration": 1}
                fk.mutate(kind, obj["metadata"]["name"], obj["metadata"]["namespace"], ready)
                changed = True
    return changed


@pytest.fixture
def fk():
    fake = FakeKube(missing_kinds=(k.DEPLOYMENT_CONFIG, k.ARGO_APPLICATION, k.FLUX_KUSTOMIZATION,
                                   k.FLUX_HELM_RELEASE, k.KEDA_SCALED_OBJECT, k.KEDA_SCALED_JOB))
    s.ensure(fake, VNS, SESSION, mode="in_place")
    fake.controllers.append(workload_controller)
    return fake


def deployment(fk, name="web", replicas=3, claim="data", labels=None, annotations=None):
    dep = fk.add(k.DEPLOYMENT, {"metadata": {"name": name, "namespace": NS, "labels": labels or {},
                                             "annotations": annotations or {}},
                                "spec": {"replicas": replicas, "template": {"spec": {}}},
                                "status": {"readyReplicas": replicas, "observedGeneration": 1}})
    rs = fk.add(k.REPLICA_SET, {"metadata": {"name": name + "-5d9f", "namespace": NS,
                                             "ownerReferences": [owner(dep)]},
                                "spec": {"replicas": replicas},
                                "status": {"readyReplicas": replicas, "observedGeneration": 1}})
    for i in range(replicas):
        fk.add(k.POD, pod("%s-5d9f-%d" % (name, i), [claim], rs))
    return dep


def statefulset(fk, name="db", replicas=3, when_scaled=None):
    spec = {"replicas": replicas, "serviceName": name,
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}], "template": {"spec": {}}}
    if when_scaled:
        spec["persistentVolumeClaimRetentionPolicy"] = {"whenScaled": when_scaled, "whenDeleted": "Retain"}
    sts = fk.add(k.STATEFUL_SET, {"metadata": {"name": name, "namespace": NS}, "spec": spec,
                                  "status": {"readyReplicas": replicas, "observedGeneration": 1}})
    for i in range(replicas):
        fk.add(k.POD, pod("%s-%d" % (name, i), ["data-%s-%d" % (name, i)], sts))
    return sts


def params(**kw):
    base = dict(state="stopped", velero_namespace=VNS, session=SESSION, namespace=NS, pvcs=[], workloads=None,
                pause_gitops=False, wait=True, wait_timeout=30)
    base.update(kw)
    return base


def record(fk, kind, name):
    sess = s.require(fk, VNS, SESSION)
    return sess.undo_record(s.undo_id("scale", {"kind": kind, "namespace": NS, "name": name}))


# ----------------------------------------------------------------------------- owner chains
def test_pod_replicaset_deployment_chain(fk):
    dep = deployment(fk)
    found, warnings = w.discover(fk, NS, ["data"])
    assert [(o["kind"], o["metadata"]["uid"]) for o in found] == [("Deployment", dep["metadata"]["uid"])]
    assert warnings == []


def test_pod_statefulset_chain_and_claim_template_naming_when_scaled_to_zero(fk):
    statefulset(fk, "db", 2)
    fk.add(k.STATEFUL_SET, {"metadata": {"name": "cache", "namespace": NS},
                            "spec": {"replicas": 0, "volumeClaimTemplates": [{"metadata": {"name": "store"}}]}})
    found = w.discover(fk, NS, ["data-db-1", "store-cache-4"])[0]
    assert sorted(o["metadata"]["name"] for o in found) == ["cache", "db"]
    found = w.discover(fk, NS, ["store-cache-x"])[0]
    assert found == []


def test_a_statefulsets_pods_find_it_in_the_claim_template_list_without_a_get(fk):
    statefulset(fk, "db", 2)
    del fk.requests[:]
    found = w.discover(fk, NS, ["data-db-0", "data-db-1"])[0]
    assert [o["metadata"]["name"] for o in found] == ["db"]
    assert fk.requests == [("list", "Pod"), ("list", "StatefulSet"), ("list", "CronJob")]  # idle CronJobs too


def test_the_owners_of_many_statefulset_pods_are_not_listed_twice(fk):
    replicas = k.GET_MANY_LIMIT + 1  # enough pods for the owner prefetch
    statefulset(fk, "db", replicas)
    del fk.requests[:]
    found = w.discover(fk, NS, ["data-db-%d" % i for i in range(replicas)])[0]
    assert [o["metadata"]["name"] for o in found] == ["db"]
    assert fk.requests == [("list", "Pod"), ("list", "StatefulSet"), ("list", "CronJob")]  # idle CronJobs too


def test_pod_job_cronjob_chain_returns_cronjob_and_running_job(fk):
    cj = fk.add(k.CRON_JOB, {"metadata": {"name": "report", "namespace": NS}, "spec": {"schedule": "* * * * *"}})
    job = fk.add(k.JOB, {"metadata": {"name": "report-2911", "namespace": NS, "ownerReferences": [owner(cj)]},
                         "spec": {"parallelism": 2}})
    fk.add(k.POD, pod("report-2911-x", ["data"], job))
    found = w.discover(fk, NS, ["data"])[0]
    assert sorted(o["kind"] for o in found) == ["CronJob", "Job"]


def test_pod_daemonset_chain_and_terminal_pods_ignored(fk):
    ds = fk.add(k.DAEMON_SET, {"metadata": {"name": "agent", "namespace": NS}, "spec": {"template": {"spec": {}}}})
    fk.add(k.POD, pod("agent-x", ["data"], ds))
    dep = deployment(fk, "old", 1, claim="data")
    fk.mutate(k.POD, "old-5d9f-0", NS, lambda p: p["status"].update(phase="Succeeded"))
    found = w.discover(fk, NS, ["data"])[0]
    assert [o["kind"] for o in found] == ["DaemonSet"]
    assert dep["metadata"]["uid"] not in [o["metadata"]["uid"] for o in found]


def test_deploymentconfig_only_when_api_exists():
    fake = FakeKube()
    dc = fake.add(k.DEPLOYMENT_CONFIG, {"metadata": {"name": "legacy", "namespace": NS}, "spec": {"replicas": 1}})
    rc = fake.add(k.REPLICATION_CONTROLLER, {"metadata": {"name": "legacy-3", "namespace": NS,
                                                          "ownerReferences": [owner(dc)]}, "spec": {"replicas": 1}})
    fake.add(k.POD, pod("legacy-3-x", ["data"], rc))
    assert [o["kind"] for o in w.discover(fake, NS, ["data"])[0]] == ["DeploymentConfig"]
    fake.missing.add(k.DEPLOYMENT_CONFIG)  # the DeploymentConfig cannot be stopped here, and would start the RC again
    with pytest.raises(PreflightError, match="ReplicationController shop/legacy-3, whose pods mount the PVC, is "
                                             "controlled by DeploymentConfig legacy"):
        w.discover(fake, NS, ["data"])


def test_owner_uid_mismatch_stops_the_walk(fk):
    dep = deployment(fk)
    fk.remove(k.DEPLOYMENT, "web", NS)
    fk.add(k.DEPLOYMENT, {"metadata": {"name": "web", "namespace": NS}, "spec": {"replicas": 1}})
    found = w.discover(fk, NS, ["data"])[0]
    assert [o["kind"] for o in found] == ["ReplicaSet"]
    assert found[0]["metadata"]["uid"] != dep["metadata"]["uid"]


def test_bare_pod_is_refused_with_a_fix(fk):
    fk.add(k.POD, pod("debug", ["data"]))
    with pytest.raises(PreflightError, match="has no controller"):
        w.scale(fk, params(pvcs=["data"]))
    assert fk.count("patch") == 0


@pytest.mark.parametrize("top", ["operator", "rollout", "scaled_job"])
def test_a_controller_workload_scale_cannot_stop_on_top_is_refused_in_preflight(fk, top):
    """It would scale the workload back up (or make new Jobs) during the restore: refused before any change, by
    the preflight's rules and by the stop, naming it and the way out."""
    if top == "operator":
        deployment(fk)
        fk.mutate(k.DEPLOYMENT, "web", NS, lambda o: o["metadata"].update(ownerReferences=[
            {"apiVersion": "example.com/v1", "kind": "Shop", "name": "shop", "uid": "u-1", "controller": True}]))
        owner = "Shop shop"
    elif top == "rollout":
        rs = fk.add(k.REPLICA_SET, {"metadata": {"name": "web-6f7", "namespace": NS, "ownerReferences": [
            {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "web", "uid": "r1", "controller": True}]},
            "spec": {"replicas": 2}})
        fk.add(k.POD, pod("web-6f7-a", ["data"], rs))
        owner = "Rollout web"
    else:
        job = fk.add(k.JOB, {"metadata": {"name": "worker-x1", "namespace": NS, "ownerReferences": [
            {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob", "name": "worker", "uid": "sj1",
             "controller": True}]}, "spec": {"parallelism": 1, "template": {"spec": {}}}})
        fk.add(k.POD, pod("worker-x1-abc", ["data"], job))
        owner = "ScaledJob worker"
    (problem,) = w.stop_refusals(fk, NS, ["data"], warnings=[], session=SESSION)
    assert "controlled by %s" % owner in problem and "quiesce=none" in problem, problem
    with pytest.raises(PreflightError, match="controlled by %s" % owner):
        w.scale(fk, params(pvcs=["data"]))
    assert fk.count("patch") == 0


# ----------------------------------------------------------------------------- stop / start
def test_stop_records_before_patch_and_waits_until_pods_gone(fk):
    deployment(fk)
    before = len(fk.requests)
    result = w.scale(fk, params(pvcs=["data"]))
    assert result["changed"]
    (item,) = result["workloads"]
    assert item["action"] == "stopped" and item["original"] == {"replicas": 3} and item["current"] == {"replicas": 0}
    requests = fk.requests[before:]
    first_record = requests.index(("update", "ConfigMap"))
    patch = requests.index(("patch", "Deployment"))
    assert first_record < patch
    rec = record(fk, "Deployment", "web")
    assert rec["original"] == {"replicas": 3} and rec["status"] == "applied" and rec["pvcs"] == ["data"]
    dep = fk.find(k.DEPLOYMENT, "web", NS)
    note = json.loads(dep["metadata"]["annotations"][w.ANNOTATION_ORIGINAL])
    assert note == {"original": {"replicas": 3}, "pvcs": ["data"], "session": SESSION}
    assert fk.all(k.POD, NS) == []
    assert len(result["pods_waited"]) == 3
    assert result["diff"] == {"before": {"Deployment/shop/web": {"replicas": 3}},
                              "after": {"Deployment/shop/web": {"replicas": 0}}}


def test_stop_again_is_unchanged(fk):
    deployment(fk)
    w.scale(fk, params(pvcs=["data"]))
    # pods are gone: found again from the session records, or by name
    before = fk.count("patch")
    result = w.scale(fk, params(pvcs=["data"]))
    assert not result["changed"] and [i["action"] for i in result["workloads"]] == ["already_stopped"]
    result = w.scale(fk, params(workloads=[{"kind": "Deployment", "name": "web", "namespace": NS}]))
    assert not result["changed"]
    assert result["workloads"][0]["action"] == "already_stopped"
    assert result["workloads"][0]["original"] == {"replicas": 3}
    assert fk.count("patch") == before


def helper_pod(fk, session, name="helper", claim="data", role="helper"):
    """A helper/placeholder pod of this collection (no controller), as helper_pod.py/data_download.py make it."""
    body = pod(name, [claim])
    body["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "velero.data_restore",
                                  "data-restore.ansible/session": session, "data-restore.ansible/role": role}
    return fk.add(k.POD, body)


def test_rerun_after_quiesce_ignores_the_sessions_own_helper_pods(fk):
    deployment(fk)
    w.scale(fk, params(pvcs=["data"]))
    # the run was killed after quiesce, once the helper pod mounted the PVC; the re-run stops again
    helper_pod(fk, SESSION)
    helper_pod(fk, SESSION, name="consumer", role="consumer")
    before = fk.count("patch")
    result = w.scale(fk, params(pvcs=["data"], wait_timeout=2))
    assert not result["changed"] and [i["action"] for i in result["workloads"]] == ["already_stopped"]
    assert result["pods_waited"] == [] and fk.count("patch") == before
    assert fk.find(k.POD, "helper", NS) is not None  # not waited for, not touched


def test_first_stop_with_own_helper_pod_present_stops_only_the_workload(fk):
    deployment(fk)
    helper_pod(fk, SESSION)
    result = w.scale(fk, params(pvcs=["data"], wait_timeout=5))
    assert [i["action"] for i in result["workloads"]] == ["stopped"]
    assert not [p for p in result["pods_waited"] if "helper" in p]


def test_helper_pod_of_another_session_is_a_conflict_naming_it(fk):
    deployment(fk)
    helper_pod(fk, "other-restore")
    before = len(fk.events)
    with pytest.raises(PreflightError) as err:
        w.scale(fk, params(pvcs=["data"]))
    assert "restore session 'other-restore'" in err.value.msg and "shop/helper" in err.value.msg
    assert err.value.details["other_session"] == "other-restore"
    assert len(fk.events) == before  # refused before any change


def test_start_restores_removes_annotation_marks_reverted(fk):
    deployment(fk)
    w.scale(fk, params(pvcs=["data"]))
    result = w.scale(fk, params(state="started", pvcs=["data"]))
    assert result["changed"]
    (item,) = result["workloads"]
    assert item["action"] == "started" and item["current"] == {"replicas": 3}
    dep = fk.find(k.DEPLOYMENT, "web", NS)
    assert dep["spec"]["replicas"] == 3
    assert w.ANNOTATION_ORIGINAL not in dep["metadata"]["annotations"]
    assert record(fk, "Deployment", "web")["status"] == "reverted"
    again = w.scale(fk, params(state="started", workloads=[{"kind": "Deployment", "name": "web"}]))
    assert not again["changed"] and again["workloads"][0]["action"] == "already_started"


def test_a_start_whose_readiness_wait_fails_says_it_started_the_workloads(fk):
    """The failure of the readiness wait lists the starts it made (journaled): a rescue must not start and wait for
    them a second time, nor tell the user to start them by hand."""
    deployment(fk)
    w.scale(fk, params(pvcs=["data"]))
    fk.controllers.remove(workload_controller)  # its pods never get ready
    with pytest.raises(WaitTimeout) as err:
        w.scale(fk, params(state="started", pvcs=["data"], wait_timeout=1))
    assert "to be ready" in err.value.msg
    assert err.value.details["changed"] is True
    assert [(i["name"], i["action"], i["current"]) for i in err.value.details["workloads"]] == [
        ("web", "started", {"replicas": 3})]
    assert record(fk, "Deployment", "web")["status"] == "reverted"


def test_start_returns_the_running_pods_of_the_claims_for_post_restore_hooks(fk):
    deployment(fk, replicas=1)
    w.scale(fk, params(pvcs=["data"]))
    rs = fk.find(k.REPLICA_SET, "web-5d9f", NS)
    fk.add(k.POD, pod("web-5d9f-new", ["data"], rs))  # what the ReplicaSet controller starts
    helper_pod(fk, SESSION, name="restore-helper")  # this session's own pod is not a workload pod
    result = w.scale(fk, params(state="started", pvcs=["data"]))
    assert [p["metadata"]["name"] for p in result["pods"]] == ["web-5d9f-new"]
    assert result["pods"][0]["spec"]["containers"] == [{"name": "app"}]
    assert w.scale(fk, params(state="started", pvcs=["data"], wait=False))["pods"] == []


def test_start_deletes_the_sessions_helper_pods_first_when_asked(fk):
    deployment(fk, replicas=1)
    w.scale(fk, params(pvcs=["data"]))
    helper_pod(fk, SESSION, name="restore-helper")
    helper_pod(fk, "other-restore", name="other-helper")  # another session's: left alone
    patched_with_helper = []
    original = fk.patch

    def patch(kind, name, body, namespace=None, patch_type="merge"):
        patched_with_helper.append(fk.find(k.POD, "restore-helper", NS) is not None)
        return original(kind, name, body, namespace, patch_type)

    fk.patch = patch
    result = w.scale(fk, params(state="started", pvcs=["data"], delete_helper_pods=True))
    assert result["helper_pods_deleted"] == ["%s/restore-helper" % NS] and result["changed"]
    assert patched_with_helper == [False]  # gone before the workload's patch
    assert fk.find(k.POD, "other-helper", NS) is not None
    assert w.scale(fk, params(state="started", pvcs=["data"], delete_helper_pods=True))["helper_pods_deleted"] == []
    with pytest.raises(PreflightError, match="delete_helper_pods needs session and namespace"):
        w.scale(fk, params(state="started", workloads=[{"kind": "Deployment", "name": "web"}], namespace=None,
                           delete_helper_pods=True))


def test_start_leaves_a_value_someone_else_changed(fk):
    deployment(fk)
    w.scale(fk, params(pvcs=["data"], wait=False))
    fk.mutate(k.DEPLOYMENT, "web", NS, lambda o: o["spec"].update(replicas=2))
    result = w.scale(fk, params(state="started", pvcs=["data"], wait=False))
    assert result["workloads"][0]["action"] == "left_changed"
    assert "changed by someone else" in result["warnings"][0]
    dep = fk.find(k.DEPLOYMENT, "web", NS)
    assert dep["spec"]["replicas"] == 2 and w.ANNOTATION_ORIGINAL not in dep["metadata"]["annotations"]
    assert record(fk, "Deployment", "web")["status"] == "reverted"


def test_start_without_session_uses_the_annotation(fk):
    deployment(fk)
    w.scale(fk, params(pvcs=["data"]))
    result = w.scale(fk, params(state="started", session=None, pvcs=["data"]))
    assert result["workloads"][0]["action"] == "started"
    assert fk.find(k.DEPLOYMENT, "web", NS)["spec"]["replicas"] == 3


def test_stop_needs_a_session(fk):
    deployment(fk)
    with pytest.raises(PreflightError, match="needs session"):
        w.scale(fk, params(session=None, pvcs=["data"]))


def test_statefulset_when_scaled_delete_is_refused_with_zero_mutations(fk):
    deployment(fk)
    statefulset(fk, "db", 1, when_scaled="Delete")
    before = sum(fk.count(v) for v in MUTATING)
    with pytest.raises(PreflightError, match="whenScaled=Delete"):
        w.scale(fk, params(pvcs=["data", "data-db-0"]))
    assert sum(fk.count(v) for v in MUTATING) == before
    assert fk.find(k.DEPLOYMENT, "web", NS)["spec"]["replicas"] == 3


def test_statefulset_stop_and_start(fk):
    statefulset(fk, "db", 3, when_scaled="Retain")
    result = w.scale(fk, params(pvcs=["data-db-0", "data-db-1", "data-db-2"]))
    assert [i["action"] for i in result["workloads"]] == ["stopped"]
    assert fk.all(k.POD, NS) == []
    result = w.scale(fk, params(state="started", pvcs=["data-db-0"]))
    assert fk.find(k.STATEFUL_SET, "db", NS)["spec"]["replicas"] == 3
    assert result["workloads"][0]["action"] == "started"


@pytest.mark.parametrize("kind,body,stopped,original", [
    (k.JOB, {"spec": {"parallelism": 4}, "status": {"active": 1}}, {"parallelism": 0}, {"parallelism": 4}),
    (k.CRON_JOB, {"spec": {"schedule": "@daily"}}, {"suspend": True}, {"suspend": False}),
    (k.DAEMON_SET, {"spec": {"template": {"spec": {"nodeSelector": {"disk": "ssd"}}}},
                    "status": {"desiredNumberScheduled": 0, "numberReady": 0, "updatedNumberScheduled": 0}},
     {"nodeSelector": {"disk": "ssd", w.QUIESCE_NODE_SELECTOR: "true"}}, {"nodeSelector": {"disk": "ssd"}}),
    (k.REPLICATION_CONTROLLER, {"spec": {"replicas": 2}, "status": {"readyReplicas": 2}}, {"replicas": 0},
     {"replicas": 2}),
])
def test_each_kind_stops_and_starts(fk, kind, body, stopped, original):
    obj = dict(body, metadata={"name": "x", "namespace": NS})
    fk.add(kind, obj)
    named = [{"kind": kind.kind, "name": "x", "namespace": NS}]
    result = w.scale(fk, params(workloads=named))
    assert result["workloads"][0]["original"] == original
    assert result["workloads"][0]["current"] == stopped
    assert w.KINDS[kind.kind].is_stopped(fk.find(kind, "x", NS))
    result = w.scale(fk, params(state="started", workloads=named, wait=False))
    assert result["workloads"][0]["current"] == original
    assert not w.KINDS[kind.kind].is_stopped(fk.find(kind, "x", NS))


def test_check_mode_reports_without_changing_or_recording(fk):
    deployment(fk)
    before = sum(fk.count(v) for v in MUTATING)
    result = w.scale(fk, params(pvcs=["data"]), check_mode=True)
    assert result["changed"] and result["workloads"][0]["action"] == "stopped"
    assert result["diff"]["after"] == {"Deployment/shop/web": {"replicas": 0}}
    assert sum(fk.count(v) for v in MUTATING) == before
    assert record(fk, "Deployment", "web") is None


def test_resume_of_interrupted_start_is_not_a_foreign_change(fk):
    deployment(fk)
    w.scale(fk, params(pvcs=["data"]))
    # start patched the object, then died before the journal said "reverted"
    fk.mutate(k.DEPLOYMENT, "web", NS, lambda o: (o["spec"].update(replicas=3),
                                                  o["metadata"]["annotations"].pop(w.ANNOTATION_ORIGINAL)))
    result = w.scale(fk, params(state="started", workloads=[{"kind": "Deployment", "name": "web"}]))
    assert result["workloads"][0]["action"] == "already_started" and result["warnings"] == []
    assert record(fk, "Deployment", "web")["status"] == "reverted"


# ----------------------------------------------------------------------------- GitOps
def gitops_kube():
    fake = FakeKube(missing_kinds=(k.DEPLOYMENT_CONFIG,))
    s.ensure(fake, VNS, SESSION, mode="in_place")
    fake.controllers.append(workload_controller)
    fake.add(k.ARGO_APPLICATION, {"metadata": {"name": "shop", "namespace": "argocd"}, "spec": {}})
    fake.add(k.ARGO_APPLICATION, {"metadata": {"name": "other", "namespace": "argocd"}, "spec": {}})
    fake.add(k.FLUX_KUSTOMIZATION, {"metadata": {"name": "apps", "namespace": "flux-system"},
                                    "spec": {"suspend": False}})
    fake.add(k.FLUX_HELM_RELEASE, {"metadata": {"name": "web", "namespace": NS}, "spec": {}})
    fake.add(k.KEDA_SCALED_OBJECT, {"metadata": {"name": "web-scaler", "namespace": NS},
                                    "spec": {"scaleTargetRef": {"name": "web"}}})
    return fake


def test_a_gitops_managed_workload_stopped_without_pause_gitops_is_warned_about():
    fake = gitops_kube()
    fake.remove(k.KEDA_SCALED_OBJECT, "web-scaler", NS)  # KEDA is refused instead (below)
    deployment(fake, labels={w.FLUX_KS_NAME: "apps", w.ARGO_INSTANCE_LABEL: "shop"},
               annotations={w.ARGO_TRACKING: "shop:apps/Deployment:shop/web"})
    before = len(fake.requests)
    result = w.scale(fake, params(pvcs=["data"]))
    (warning,) = [x for x in result["warnings"] if "pause_gitops" in x]
    assert "Deployment shop/web is managed by Argo CD" in warning and "Flux" in warning
    assert not [r for r in fake.requests[before:] if r[1] in ("Application", "Kustomization")]
    # Helm's instance label alone is not taken for Argo CD
    fake2 = gitops_kube()
    fake2.remove(k.KEDA_SCALED_OBJECT, "web-scaler", NS)
    deployment(fake2, labels={w.ARGO_INSTANCE_LABEL: "shop"})
    assert not [x for x in w.scale(fake2, params(pvcs=["data"]))["warnings"] if "pause_gitops" in x]


def _writes(fake, since):
    return [r for r in fake.requests[since:] if r[0] in k.WRITE_VERBS]


def test_a_keda_scaled_workload_is_refused_without_pause_gitops_before_any_change():
    """KEDA keeps a target at minReplicaCount (and scales it from zero on an active trigger): stopped without a pause,
    the app would start again and write while its volumes are restored."""
    fake = gitops_kube()
    deployment(fake)
    journal = s.require(fake, VNS, SESSION).doc
    before = len(fake.requests)
    with pytest.raises(PreflightError) as refused:
        w.scale(fake, params(pvcs=["data"]))
    msg = refused.value.msg
    assert "Deployment shop/web is scaled by KEDA ScaledObject shop/web-scaler" in msg
    assert "Set pause_gitops=true" in msg
    assert "kubectl annotate scaledobject web-scaler -n shop autoscaling.keda.sh/paused-replicas=0" in msg
    # every entry of the failure's workload list says what happened to it (the playbooks' rescues read actions)
    assert [(ref["kind"], ref["name"], ref["action"]) for ref in refused.value.details["workloads"]] == [
        ("Deployment", "web", "refused")]
    assert not _writes(fake, before)
    assert s.require(fake, VNS, SESSION).doc == journal
    assert fake.find(k.DEPLOYMENT, "web", NS)["spec"]["replicas"] == 3
    # with pause_gitops the same stop pauses the ScaledObject and goes on
    assert w.scale(fake, params(pvcs=["data"], pause_gitops=True))["workloads"][0]["action"] == "stopped"


@pytest.mark.parametrize("annotations, refused", [
    ({w.KEDA_PAUSED: "0"}, False),
    ({w.KEDA_PAUSED_AT_CURRENT: "true"}, False),
    ({w.KEDA_PAUSED_AT_CURRENT: "1"}, False),
    ({w.KEDA_PAUSED: "4"}, True),  # KEDA scales the target to 4 and holds it there
    ({w.KEDA_PAUSED: "4", w.KEDA_PAUSED_AT_CURRENT: "true"}, True),  # paused-replicas wins
    ({w.KEDA_PAUSED_AT_CURRENT: "false"}, True),
    ({w.KEDA_PAUSED_AT_CURRENT: "yes"}, False),  # KEDA: anything but a false value pauses
    ({w.KEDA_PAUSED: "00"}, False),  # ParseInt: 0
    ({w.KEDA_PAUSED: "zero"}, True),
    ({}, True),
])
def test_a_scaled_object_paused_at_zero_or_at_the_current_count_keeps_the_workload_stopped(annotations, refused):
    fake = gitops_kube()
    fake.mutate(k.KEDA_SCALED_OBJECT, "web-scaler", NS, lambda o: o["metadata"].update(annotations=annotations))
    deployment(fake)
    if refused:
        with pytest.raises(PreflightError):
            w.scale(fake, params(pvcs=["data"]))
    else:
        assert w.scale(fake, params(pvcs=["data"]))["workloads"][0]["action"] == "stopped"


def _idle_keda_deployment(fake):
    """Deployment "web" idle at zero replicas (KEDA minReplicaCount 0): no pod, its template mounts claim data."""
    fake.add(k.DEPLOYMENT, {"metadata": {"name": "web", "namespace": NS},
                            "spec": {"replicas": 0, "template": {"spec": {"volumes": [
                                {"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}},
                            "status": {"observedGeneration": 1}})
    fake.mutate(k.KEDA_SCALED_OBJECT, "web-scaler", NS, lambda o: o["spec"].update(minReplicaCount=0))


def test_an_idle_keda_target_mounting_the_claim_is_refused_without_pause_gitops():
    """Idle at zero it has no pod, so nothing found it: a trigger during the restore started it on the volume."""
    fake = gitops_kube()
    _idle_keda_deployment(fake)
    before = len(fake.requests)
    with pytest.raises(PreflightError, match="Deployment shop/web is scaled by KEDA ScaledObject shop/web-scaler.*"
                                             "idle at zero replicas now"):
        w.scale(fake, params(pvcs=["data"]))
    assert not _writes(fake, before)


def test_an_idle_keda_target_gets_its_scaled_object_paused_with_pause_gitops():
    fake = gitops_kube()
    _idle_keda_deployment(fake)
    result = w.scale(fake, params(pvcs=["data"], pause_gitops=True))
    assert [(g["kind"], g["name"], g["result"]) for g in result["gitops"]] == [("ScaledObject", "web-scaler", "paused")]
    assert fake.find(k.KEDA_SCALED_OBJECT, "web-scaler", NS)["metadata"]["annotations"][w.KEDA_PAUSED] == "0"
    started = w.scale(fake, params(state="started", pvcs=["data"]))
    assert [g["result"] for g in started["gitops"]] == ["resumed"]
    assert w.KEDA_PAUSED not in fake.find(k.KEDA_SCALED_OBJECT, "web-scaler", NS)["metadata"]["annotations"]
    assert fake.find(k.DEPLOYMENT, "web", NS)["spec"]["replicas"] == 0


def test_an_idle_keda_target_of_another_claim_is_left_alone():
    fake = gitops_kube()
    _idle_keda_deployment(fake)
    fake.add(k.POD, {"metadata": {"name": "other", "namespace": NS}, "spec": {"volumes": []},
                     "status": {"phase": "Running"}})
    assert w.scale(fake, params(pvcs=["logs"]))["workloads"] == []


def test_keda_targets_are_matched_by_kind_and_name():
    fake = gitops_kube()
    fake.mutate(k.KEDA_SCALED_OBJECT, "web-scaler", NS,
                lambda o: o["spec"].update(scaleTargetRef={"kind": "StatefulSet", "name": "web"}))
    deployment(fake)
    assert w.scale(fake, params(pvcs=["data"]))["workloads"][0]["action"] == "stopped"


def test_without_keda_installed_nothing_is_listed(fk):
    deployment(fk)
    w.scale(fk, params(pvcs=["data"]))
    assert not [r for r in fk.requests if r[1] == "ScaledObject"]


def test_a_forbidden_list_of_scaled_objects_is_warned_about_and_the_stop_goes_on():
    fake = gitops_kube()
    deployment(fake)
    fake.forbid("list", k.KEDA_SCALED_OBJECT)
    result = w.scale(fake, params(pvcs=["data"]))
    assert result["workloads"][0]["action"] == "stopped"
    assert [x for x in result["warnings"] if "cannot list the KEDA ScaledObjects of namespace shop" in x]


def test_gitops_pauses_recorded_and_resumed():
    fake = gitops_kube()
    deployment(fake, labels={w.ARGO_INSTANCE_LABEL: "shop", w.FLUX_KS_NAME: "apps",
                             w.FLUX_KS_NAMESPACE: "flux-system", w.FLUX_HR_NAME: "web",
                             w.FLUX_HR_NAMESPACE: NS})
    result = w.scale(fake, params(pvcs=["data"], pause_gitops=True))
    assert sorted((g["kind"], g["name"], g["result"]) for g in result["gitops"]) == [
        ("Application", "shop", "paused"), ("HelmRelease", "web", "paused"),
        ("Kustomization", "apps", "paused"), ("ScaledObject", "web-scaler", "paused")]
    app = fake.find(k.ARGO_APPLICATION, "shop", "argocd")
    assert app["metadata"]["annotations"][w.ARGO_SKIP] == "true"
    assert "annotations" not in fake.find(k.ARGO_APPLICATION, "other", "argocd")["metadata"]
    assert fake.find(k.FLUX_KUSTOMIZATION, "apps", "flux-system")["spec"]["suspend"] is True
    assert fake.find(k.FLUX_HELM_RELEASE, "web", NS)["spec"]["suspend"] is True
    assert fake.find(k.KEDA_SCALED_OBJECT, "web-scaler", NS)["metadata"]["annotations"][w.KEDA_PAUSED] == "0"
    actions = set(r["action"] for r in s.require(fake, VNS, SESSION).doc["undo"])
    assert actions == {"scale", "pause_argocd", "suspend_flux", "pause_keda"}

    result = w.scale(fake, params(state="started", pvcs=["data"]))
    assert all(g["result"] == "resumed" for g in result["gitops"]) and len(result["gitops"]) == 4
    assert w.ARGO_SKIP not in fake.find(k.ARGO_APPLICATION, "shop", "argocd")["metadata"]["annotations"]
    assert fake.find(k.FLUX_KUSTOMIZATION, "apps", "flux-system")["spec"]["suspend"] is False
    assert w.KEDA_PAUSED not in fake.find(k.KEDA_SCALED_OBJECT, "web-scaler", NS)["metadata"]["annotations"]
    assert all(r["status"] == "reverted" for r in s.require(fake, VNS, SESSION).doc["undo"])


def test_argo_tracking_id_annotation_finds_app_in_any_namespace():
    fake = gitops_kube()
    fake.add(k.ARGO_APPLICATION, {"metadata": {"name": "shop", "namespace": "team-a"}, "spec": {}})
    deployment(fake, annotations={w.ARGO_TRACKING: "team-a_shop:apps/Deployment:shop/web"})
    result = w.scale(fake, params(pvcs=["data"], pause_gitops=True))
    argo = [g for g in result["gitops"] if g["kind"] == "Application"]
    assert [(g["namespace"], g["name"]) for g in argo] == [("team-a", "shop")]


def _argo_paused(result):
    return sorted((g["namespace"], g["name"]) for g in result["gitops"] if g["kind"] == "Application")


def test_argo_same_name_in_two_instances_pauses_the_one_listing_the_workload():
    fake = gitops_kube()
    fake.add(k.ARGO_APPLICATION, {"metadata": {"name": "shop", "namespace": "argocd-team-b"},
                                  "spec": {"destination": {"namespace": NS}},
                                  "status": {"resources": [{"kind": "Deployment", "namespace": NS, "name": "web"}]}})
    deployment(fake, labels={w.ARGO_INSTANCE_LABEL: "shop"})
    result = w.scale(fake, params(pvcs=["data"], pause_gitops=True))
    assert _argo_paused(result) == [("argocd-team-b", "shop")]
    assert "annotations" not in fake.find(k.ARGO_APPLICATION, "shop", "argocd")["metadata"]


def test_argo_same_name_without_status_pauses_the_one_deploying_to_the_namespace():
    fake = gitops_kube()
    fake.add(k.ARGO_APPLICATION, {"metadata": {"name": "shop", "namespace": "argocd-team-b"},
                                  "spec": {"destination": {"namespace": NS}}})
    deployment(fake, labels={w.ARGO_INSTANCE_LABEL: "shop"})
    assert _argo_paused(w.scale(fake, params(pvcs=["data"], pause_gitops=True))) == [("argocd-team-b", "shop")]


def _argo_app_listing(fake, name, *workload_names):
    fake.add(k.ARGO_APPLICATION, {"metadata": {"name": name, "namespace": "argocd"}, "spec": {}, "status": {
        "resources": [{"group": "apps", "kind": "Deployment", "namespace": NS, "name": n} for n in workload_names]}})


@pytest.mark.parametrize("labels", [
    {"argocd.argoproj.io/instance": "shop-prod"},  # application.instanceLabelKey set in argocd-cm
    {"argocd.argoproj.io/instance": "shop-prod", w.ARGO_INSTANCE_LABEL: "web-release"},  # ... and Helm's label
], ids=["custom-key", "custom-key-and-helm-label"])
def test_argo_app_with_a_custom_instance_label_key_is_found_by_its_status_resources(labels):
    """Without the default label or the tracking annotation the Application is not named on the workload: self-heal
    would scale it back up mid-restore unless the Application listing it in status.resources is paused."""
    fake = gitops_kube()
    _argo_app_listing(fake, "shop-prod", "web")
    deployment(fake, labels=labels)
    result = w.scale(fake, params(pvcs=["data"], pause_gitops=True))
    assert _argo_paused(result) == [("argocd", "shop-prod")]
    assert fake.find(k.ARGO_APPLICATION, "shop-prod", "argocd")["metadata"]["annotations"][w.ARGO_SKIP] == "true"
    assert "annotations" not in fake.find(k.ARGO_APPLICATION, "shop", "argocd")["metadata"]
    w.scale(fake, params(state="started", pvcs=["data"]))
    assert w.ARGO_SKIP not in fake.find(k.ARGO_APPLICATION, "shop-prod", "argocd")["metadata"]["annotations"]


def test_argo_applications_are_listed_once_for_all_workloads_and_unlisted_ones_are_left_alone():
    fake = gitops_kube()
    _argo_app_listing(fake, "unrelated", "api")
    deployment(fake, name="web")
    deployment(fake, name="worker")
    before = len(fake.requests)
    result = w.scale(fake, params(pvcs=["data"], pause_gitops=True))
    assert sorted(x["name"] for x in result["workloads"]) == ["web", "worker"]
    assert _argo_paused(result) == []
    assert [r for r in fake.requests[before:] if r[1] == "Application"] == [("list", "Application")]


def test_argo_same_name_and_nothing_to_tell_them_apart_pauses_both():
    fake = gitops_kube()
    fake.add(k.ARGO_APPLICATION, {"metadata": {"name": "shop", "namespace": "argocd-team-b"}, "spec": {}})
    deployment(fake, labels={w.ARGO_INSTANCE_LABEL: "shop"})
    result = w.scale(fake, params(pvcs=["data"], pause_gitops=True))
    assert _argo_paused(result) == [("argocd", "shop"), ("argocd-team-b", "shop")]
    w.scale(fake, params(state="started", pvcs=["data"]))
    for ns in ("argocd", "argocd-team-b"):
        assert w.ARGO_SKIP not in fake.find(k.ARGO_APPLICATION, "shop", ns)["metadata"].get("annotations", {})


def test_start_lifts_the_pauses_of_a_stop_that_failed_before_scaling():
    """The ScaledObject's pause is refused after Argo CD and Flux were paused: nothing was stopped, so a start of the
    session (what the playbooks' rescue runs) lifts those pauses, and says of the refused one that it never
    happened."""
    fake = gitops_kube()
    deployment(fake, labels={w.ARGO_INSTANCE_LABEL: "shop", w.FLUX_KS_NAME: "apps",
                             w.FLUX_KS_NAMESPACE: "flux-system"})
    fake.forbid("patch", k.KEDA_SCALED_OBJECT)
    with pytest.raises(ForbiddenError) as refused:
        w.scale(fake, params(pvcs=["data"], pause_gitops=True))
    fake.allow("patch", k.KEDA_SCALED_OBJECT)
    assert "verb=patch resource=scaledobjects" in refused.value.msg
    assert ("No workload was stopped; session %s paused Application argocd/shop, Kustomization flux-system/apps "
            "before (state=started with the same session lifts them)." % SESSION) in refused.value.msg
    assert fake.find(k.ARGO_APPLICATION, "shop", "argocd")["metadata"]["annotations"][w.ARGO_SKIP] == "true"
    assert fake.find(k.DEPLOYMENT, "web", NS)["spec"]["replicas"] == 3  # not stopped

    result = w.scale(fake, params(state="started", pvcs=["data"]))
    assert sorted((g["kind"], g["result"]) for g in result["gitops"]) == [
        ("Application", "resumed"), ("Kustomization", "resumed"), ("ScaledObject", "not_paused")]
    assert result["warnings"] == [] and result["changed"]
    assert w.ARGO_SKIP not in fake.find(k.ARGO_APPLICATION, "shop", "argocd")["metadata"]["annotations"]
    assert fake.find(k.FLUX_KUSTOMIZATION, "apps", "flux-system")["spec"]["suspend"] is False
    assert all(r["status"] == "reverted" for r in s.require(fake, VNS, SESSION).doc["undo"])


def test_rerun_after_a_kill_between_pause_and_its_mark_ties_the_pause_to_the_workload():
    fake = gitops_kube()
    deployment(fake, labels={w.ARGO_INSTANCE_LABEL: "shop"})
    set_status = s.set_undo_status

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("SIGKILL after the Application was patched")
    w.sessions.set_undo_status = killed
    try:
        with pytest.raises(KeyboardInterrupt):
            w.scale(fake, params(pvcs=["data"], pause_gitops=True))
    finally:
        w.sessions.set_undo_status = set_status
    argo = [r for r in s.require(fake, VNS, SESSION).doc["undo"] if r["action"] == w.ACTION_ARGOCD][0]
    assert argo["status"] == "recorded" and not argo.get("workloads")

    again = w.scale(fake, params(pvcs=["data"], pause_gitops=True))
    assert [g["result"] for g in again["gitops"] if g["kind"] == "Application"] == ["already_paused"]
    argo = [r for r in s.require(fake, VNS, SESSION).doc["undo"] if r["action"] == w.ACTION_ARGOCD][0]
    assert argo["status"] == "applied" and argo["workloads"] == ["Deployment %s/web" % NS]
    # tied to the workload: a start of other claims keeps it, the start of the workload lifts it
    assert w.scale(fake, params(state="started", pvcs=["other-claim"]))["gitops"] == []
    started = w.scale(fake, params(state="started", pvcs=["data"]))
    assert ("Application", "resumed") in [(g["kind"], g["result"]) for g in started["gitops"]]
    assert w.ARGO_SKIP not in fake.find(k.ARGO_APPLICATION, "shop", "argocd")["metadata"]["annotations"]


def test_start_of_other_claims_keeps_the_pauses_of_workloads_still_stopped():
    fake = gitops_kube()
    deployment(fake, labels={w.ARGO_INSTANCE_LABEL: "shop"})
    w.scale(fake, params(pvcs=["data"], pause_gitops=True))
    result = w.scale(fake, params(state="started", pvcs=["other-claim"]))
    assert result["gitops"] == []
    assert fake.find(k.ARGO_APPLICATION, "shop", "argocd")["metadata"]["annotations"][w.ARGO_SKIP] == "true"


def test_gitops_apis_missing_nothing_paused_and_only_real_marks_warned_about(fk):
    # Helm sets the instance label too: alone it is no sign of Argo CD; Flux's label is (its API is not served here)
    deployment(fk, labels={w.ARGO_INSTANCE_LABEL: "shop", w.FLUX_KS_NAME: "apps"})
    result = w.scale(fk, params(pvcs=["data"], pause_gitops=True))
    assert result["gitops"] == [] and result["workloads"][0]["action"] == "stopped"
    assert len(result["warnings"]) == 1 and "no Flux object" in result["warnings"][0], result["warnings"]


def test_check_mode_plans_without_an_existing_session(fk):
    deployment(fk)
    before = sum(fk.count(v) for v in MUTATING)
    result = w.scale(fk, params(session="not-yet", pvcs=["data"]), check_mode=True)
    assert result["changed"] and result["workloads"][0]["action"] == "stopped"
    assert sum(fk.count(v) for v in MUTATING) == before
    with pytest.raises(PreflightError, match="not found"):
        w.scale(fk, params(session="not-yet", pvcs=["data"]))


# ----------------------------------------------------------------------------- review findings (2026-12-04)
def _recreate_web(fk):
    for kind, name in ((k.DEPLOYMENT, "web"), (k.REPLICA_SET, "web-5d9f")):
        fk.remove(kind, name, NS)
    for p in fk.all(k.POD, NS):
        fk.remove(k.POD, p["metadata"]["name"], NS)
    deployment(fk)  # same name, new uid (helm reinstall, GitOps prune and recreate)


@pytest.mark.parametrize("rescued", [True, False], ids=["started-before", "left-stopped"])
def test_a_workload_recreated_between_runs_is_started_again(fk, rescued):
    deployment(fk)
    w.scale(fk, params(pvcs=["data"]))
    if rescued:
        w.scale(fk, params(state="started", pvcs=["data"]))
    _recreate_web(fk)
    w.scale(fk, params(pvcs=["data"]))
    record = s.require(fk, VNS, SESSION).undo_record("scale:Deployment/shop/web")
    assert record["target"]["uid"] == fk.find(k.DEPLOYMENT, "web", NS)["metadata"]["uid"]
    w.scale(fk, params(state="started", pvcs=["data"]))
    assert fk.find(k.DEPLOYMENT, "web", NS)["spec"]["replicas"] == 3


def test_a_workload_recreated_while_stopped_closes_its_record_and_lifts_its_pauses():
    """Recreated during the restore (kubectl replace --force, a GitOps re-create): its record stayed applied for good,
    so the pauses kept for it were never lifted - Argo CD stayed at skip-reconcile, KEDA at 0 replicas."""
    fake = gitops_kube()
    deployment(fake, labels={w.ARGO_INSTANCE_LABEL: "shop"})
    w.scale(fake, params(pvcs=["data"], pause_gitops=True))
    assert fake.find(k.ARGO_APPLICATION, "shop", "argocd")["metadata"]["annotations"][w.ARGO_SKIP] == "true"
    _recreate_web(fake)
    new_uid = fake.find(k.DEPLOYMENT, "web", NS)["metadata"]["uid"]
    result = w.scale(fake, params(state="started", pvcs=["data"]))
    assert [(x["name"], x["action"]) for x in result["workloads"]] == [("web", "gone")]
    assert [x for x in result["warnings"] if "Deployment shop/web, which this session stopped, was recreated (uid %s)"
            % new_uid in x], result["warnings"]
    assert fake.find(k.ARGO_APPLICATION, "shop", "argocd")["metadata"]["annotations"].get(w.ARGO_SKIP) is None
    assert w.KEDA_PAUSED not in fake.find(k.KEDA_SCALED_OBJECT, "web-scaler", NS)["metadata"]["annotations"]
    sess = s.require(fake, VNS, SESSION)
    assert sess.stopped_workloads() == []
    assert sess.undo_record("scale:Deployment/shop/web")["outcome"] == "gone"
    assert fake.find(k.DEPLOYMENT, "web", NS)["spec"]["replicas"] == 3  # the new one is left as it is
    again = w.scale(fake, params(state="started", pvcs=["data"]))
    assert not again["changed"] and not [x for x in again["warnings"] if "which this session stopped" in x]


def test_a_stopped_job_deleted_while_stopped_no_longer_counts_as_stopped(fk):
    """A CronJob's running Job stopped with it, then deleted (ttlSecondsAfterFinished, or by hand): the session kept
    it as stopped, so a re-run skipped the pre-restore hooks."""
    cj = fk.add(k.CRON_JOB, {"metadata": {"name": "compact", "namespace": NS}, "spec": {
        "schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}}}}})
    job = fk.add(k.JOB, {"metadata": {"name": "compact-1", "namespace": NS, "ownerReferences": [owner(cj)]},
                         "spec": {"parallelism": 1, "template": {"spec": {}}}})
    fk.add(k.POD, pod("compact-1-x", ["data"], job))
    w.scale(fk, params(pvcs=["data"], wait=False))
    for p in fk.all(k.POD, NS):
        fk.remove(k.POD, p["metadata"]["name"], NS)
    fk.remove(k.JOB, "compact-1", NS)
    preview = w.scale(fk, params(state="started", pvcs=["data"]), check_mode=True)
    assert ("compact-1", "gone") in [(x["name"], x["action"]) for x in preview["workloads"]]
    assert len(s.require(fk, VNS, SESSION).stopped_workloads()) == 2, "check mode closed a record"
    result = w.scale(fk, params(state="started", pvcs=["data"]))
    assert ("compact-1", "gone") in [(x["name"], x["action"]) for x in result["workloads"]]
    assert [x for x in result["warnings"] if "Job shop/compact-1, which this session stopped, was deleted" in x]
    assert s.require(fk, VNS, SESSION).stopped_workloads() == []
    assert fk.find(k.CRON_JOB, "compact", NS)["spec"].get("suspend") is False


def test_a_rerun_stop_after_a_killed_start_keeps_a_scale_by_hand(fk, monkeypatch):
    deployment(fk)
    w.scale(fk, params(pvcs=["data"]))

    def killed(*_args, **_kwargs):
        raise KeyboardInterrupt("SIGKILL after the start's patch, before its journal write")

    with monkeypatch.context() as patched:
        patched.setattr(w.sessions, "set_undo_status_many", killed)
        with pytest.raises(KeyboardInterrupt):
            w.scale(fk, params(state="started", pvcs=["data"]))
    fk.mutate(k.DEPLOYMENT, "web", NS, lambda o: o["spec"].update(replicas=5))  # the user scales by hand
    w.scale(fk, params(pvcs=["data"]))
    w.scale(fk, params(state="started", pvcs=["data"]))
    assert fk.find(k.DEPLOYMENT, "web", NS)["spec"]["replicas"] == 5


def test_a_second_cycle_keeps_a_keda_pause_the_user_set_in_between():
    fake = gitops_kube()
    deployment(fake)
    w.scale(fake, params(pvcs=["data"], pause_gitops=True))
    w.scale(fake, params(state="started", pvcs=["data"]))
    rs = fake.find(k.REPLICA_SET, "web-5d9f", NS)
    for i in range(3):
        fake.add(k.POD, pod("web-5d9f-n%d" % i, ["data"], rs))
    fake.mutate(k.KEDA_SCALED_OBJECT, "web-scaler", NS,
                lambda o: o["metadata"].setdefault("annotations", {}).update({w.KEDA_PAUSED: "4"}))
    w.scale(fake, params(pvcs=["data"], pause_gitops=True))
    w.scale(fake, params(state="started", pvcs=["data"]))
    assert fake.find(k.KEDA_SCALED_OBJECT, "web-scaler", NS)["metadata"]["annotations"].get(w.KEDA_PAUSED) == "4"


def test_an_idle_cronjob_that_mounts_the_claim_is_suspended_and_resumed(fk):
    deployment(fk)
    fk.add(k.CRON_JOB, {"metadata": {"name": "compact", "namespace": NS}, "spec": {
        "schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}}}}})
    fk.add(k.CRON_JOB, {"metadata": {"name": "other", "namespace": NS}, "spec": {
        "schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "logs"}}]}}}}}})
    w.scale(fk, params(pvcs=["data"]))
    assert fk.find(k.CRON_JOB, "compact", NS)["spec"].get("suspend") is True
    assert not fk.find(k.CRON_JOB, "other", NS)["spec"].get("suspend")
    w.scale(fk, params(state="started", pvcs=["data"]))
    assert fk.find(k.CRON_JOB, "compact", NS)["spec"].get("suspend") is False


# ----------------------------------------------------------------------------- KEDA ScaledJob
@pytest.fixture
def keda_fk():
    """KEDA served (ScaledJob and ScaledObject); the other optional APIs are not."""
    fake = FakeKube(missing_kinds=(k.DEPLOYMENT_CONFIG, k.ARGO_APPLICATION, k.FLUX_KUSTOMIZATION, k.FLUX_HELM_RELEASE))
    s.ensure(fake, VNS, SESSION, mode="in_place")
    fake.controllers.append(workload_controller)
    return fake


def scaled_job(fake, name="worker", claim="data", annotations=None):
    return fake.add(k.KEDA_SCALED_JOB, {"metadata": {"name": name, "namespace": NS, "annotations": annotations or {}},
                                        "spec": {"jobTargetRef": {"parallelism": 1, "template": {"spec": {"volumes": [
                                            {"name": "d", "persistentVolumeClaim": {"claimName": claim}}]}}}}})


def scaled_job_run(fake, sj, name="worker-x1"):
    """A Job the ScaledJob started, and its running pod."""
    job = fake.add(k.JOB, {"metadata": {"name": name, "namespace": NS, "ownerReferences": [owner(sj)]},
                           "spec": {"parallelism": 1, "template": {"spec": {}}}})
    fake.add(k.POD, pod(name + "-abc", list(w.claim_names(w.pod_template(sj))), job))
    return job


@pytest.mark.parametrize("value, paused", [
    (None, False), ("true", True), ("1", True), ("yes", True),  # ParseBool error: KEDA pauses
    ("false", False), ("0", False), ("F", False), ("", True)])
def test_a_scaled_job_is_stopped_where_keda_reads_its_paused_annotation_as_paused(value, paused):
    """KEDA's checkIfPaused (scaledjob_controller.go): strconv.ParseBool of the value; a value that is no bool
    pauses too."""
    annotations = {} if value is None else {w.KEDA_PAUSED_AT_CURRENT: value}
    assert w.scaledjob_is_stopped({"kind": "ScaledJob", "metadata": {"annotations": annotations}}) is paused


def test_a_scaled_jobs_running_job_is_stopped_and_the_scaled_job_paused_then_both_put_back(keda_fk):
    sj = scaled_job(keda_fk)
    scaled_job_run(keda_fk, sj)
    assert w.stop_refusals(keda_fk, NS, ["data"], warnings=[], session=SESSION) == []
    before = len(keda_fk.requests)
    result = w.scale(keda_fk, params(pvcs=["data"]))
    by_kind = dict((item["kind"], item) for item in result["workloads"])
    assert sorted(by_kind) == ["Job", "ScaledJob"]
    assert by_kind["ScaledJob"]["original"] == {"paused": None} and by_kind["ScaledJob"]["current"] == {"paused": "true"}
    assert by_kind["Job"]["current"] == {"parallelism": 0}
    requests = keda_fk.requests[before:]
    assert requests.index(("update", "ConfigMap")) < requests.index(("patch", "ScaledJob"))  # journal first
    annotations = keda_fk.find(k.KEDA_SCALED_JOB, "worker", NS)["metadata"]["annotations"]
    assert annotations[w.KEDA_PAUSED_AT_CURRENT] == "true"  # the pause and the original, in one patch
    assert json.loads(annotations[w.ANNOTATION_ORIGINAL])["original"] == {"paused": None}
    assert record(keda_fk, "ScaledJob", "worker")["original"] == {"paused": None}
    assert not [p for p in keda_fk.all(k.POD, NS) if not is_terminal(p)]

    w.scale(keda_fk, params(state="started", pvcs=["data"], wait=False))  # no Job controller runs here
    annotations = keda_fk.find(k.KEDA_SCALED_JOB, "worker", NS)["metadata"].get("annotations") or {}
    assert w.KEDA_PAUSED_AT_CURRENT not in annotations and w.ANNOTATION_ORIGINAL not in annotations
    assert keda_fk.find(k.JOB, "worker-x1", NS)["spec"]["parallelism"] == 1


def test_a_scaled_job_the_user_had_unpaused_with_false_gets_false_back(keda_fk):
    scaled_job(keda_fk, annotations={w.KEDA_PAUSED_AT_CURRENT: "false"})
    w.scale(keda_fk, params(pvcs=["data"]))
    assert keda_fk.find(k.KEDA_SCALED_JOB, "worker", NS)["metadata"]["annotations"][w.KEDA_PAUSED_AT_CURRENT] == "true"
    w.scale(keda_fk, params(state="started", pvcs=["data"]))
    assert keda_fk.find(k.KEDA_SCALED_JOB, "worker", NS)["metadata"]["annotations"][w.KEDA_PAUSED_AT_CURRENT] == "false"


def test_an_idle_scaled_job_mounting_the_claim_is_paused_and_one_of_another_claim_left_alone(keda_fk):
    """No Job runs, so no pod leads to it; KEDA would start one while the data is written."""
    scaled_job(keda_fk, "compact", "data")
    scaled_job(keda_fk, "other", "logs")
    (item,) = w.scale(keda_fk, params(pvcs=["data"]))["workloads"]
    assert (item["kind"], item["name"], item["action"]) == ("ScaledJob", "compact", "stopped")
    assert w.scaledjob_is_stopped(keda_fk.find(k.KEDA_SCALED_JOB, "compact", NS))
    assert not w.scaledjob_is_stopped(keda_fk.find(k.KEDA_SCALED_JOB, "other", NS))
    w.scale(keda_fk, params(state="started", pvcs=["data"]))
    assert not w.scaledjob_is_stopped(keda_fk.find(k.KEDA_SCALED_JOB, "compact", NS))


def test_a_scaled_job_the_user_paused_stays_paused(keda_fk):
    sj = scaled_job(keda_fk, annotations={w.KEDA_PAUSED_AT_CURRENT: "true"})
    scaled_job_run(keda_fk, sj)
    result = w.scale(keda_fk, params(pvcs=["data"]))
    actions = dict((i["kind"], i["action"]) for i in result["workloads"])
    assert actions == {"ScaledJob": "already_stopped", "Job": "stopped"}
    w.scale(keda_fk, params(state="started", pvcs=["data"], wait=False))
    assert keda_fk.find(k.KEDA_SCALED_JOB, "worker", NS)["metadata"]["annotations"][w.KEDA_PAUSED_AT_CURRENT] == "true"
    assert keda_fk.find(k.JOB, "worker-x1", NS)["spec"]["parallelism"] == 1


def test_a_forbidden_list_of_scaled_jobs_is_a_warning_and_the_stop_goes_on(keda_fk):
    """The ScaledJob rule came after the ScaledObject one: a role made from an older docs/rbac.yml lacks it."""
    deployment(keda_fk)
    keda_fk.forbid("list", k.KEDA_SCALED_JOB)
    result = w.scale(keda_fk, params(pvcs=["data"]))
    assert [x["action"] for x in result["workloads"]] == ["stopped"]
    assert [x for x in result["warnings"] if "cannot list the KEDA ScaledJobs of namespace shop" in x]


def test_a_scaled_job_owner_of_another_api_group_is_refused_as_a_foreign_controller(keda_fk):
    job = keda_fk.add(k.JOB, {"metadata": {"name": "worker-x1", "namespace": NS, "ownerReferences": [
        {"apiVersion": "example.com/v1", "kind": "ScaledJob", "name": "worker", "uid": "sj1", "controller": True}]},
        "spec": {"parallelism": 1, "template": {"spec": {}}}})
    keda_fk.add(k.POD, pod("worker-x1-abc", ["data"], job))
    (problem,) = w.stop_refusals(keda_fk, NS, ["data"], warnings=[], session=SESSION)
    assert "controlled by ScaledJob worker" in problem
    assert ("get", "ScaledJob") not in keda_fk.requests  # KEDA's ScaledJob named "worker" is another object


def test_a_start_refuses_while_another_session_restores_another_claim_of_the_workload(fk):
    """web mounts a and b; session s1 stops it for a; session other finds it stopped (records nothing) and restores
    b with its helper pod. s1's start would let web write into b mid-restore: refused, nothing started."""
    from ansible_collections.velero.data_restore.plugins.module_utils import names
    s.ensure(fk, VNS, "other", mode="in_place")
    dep = fk.add(k.DEPLOYMENT, {"metadata": {"name": "web", "namespace": NS}, "spec": {"replicas": 2, "template": {
        "spec": {"volumes": [{"name": "a", "persistentVolumeClaim": {"claimName": "a"}},
                             {"name": "b", "persistentVolumeClaim": {"claimName": "b"}}]}}}})
    rs = fk.add(k.REPLICA_SET, {"metadata": {"name": "web-1", "namespace": NS, "ownerReferences": [owner(dep)]},
                                "spec": {"replicas": 2}})
    for i in range(2):
        fk.add(k.POD, pod("web-1-%d" % i, ["a", "b"], rs))
    w.scale(fk, params(pvcs=["a"]))
    w.scale(fk, dict(params(pvcs=["b"]), session="other"))
    helper = fk.add(k.POD, {"metadata": {"name": "helper-b", "namespace": NS, "labels": {
        names.LABEL_MANAGED_BY: names.MANAGED_BY, names.LABEL_SESSION: "other"}},
        "spec": {"volumes": [{"name": "b", "persistentVolumeClaim": {"claimName": "b"}}]},
        "status": {"phase": "Running"}})
    with pytest.raises(PreflightError, match="restore session 'other' is restoring now"):
        w.scale(fk, params(state="started", pvcs=["a"], wait=False))
    assert fk.find(k.DEPLOYMENT, "web", NS)["spec"]["replicas"] == 0
    fk.remove(k.POD, helper["metadata"]["name"], NS)  # the other session is done
    w.scale(fk, params(state="started", pvcs=["a"], wait=False))
    assert fk.find(k.DEPLOYMENT, "web", NS)["spec"]["replicas"] == 2


def test_a_stop_killed_during_its_wait_counts_as_stopped_for_the_hooks():
    """The records are written right before the stop (after the pre-restore hooks) and marked applied after the wait:
    a re-run after a kill in the wait must skip the hooks too, whose pods are gone."""
    fake = FakeKube(missing_kinds=(k.DEPLOYMENT_CONFIG, k.ARGO_APPLICATION, k.FLUX_KUSTOMIZATION,
                                   k.FLUX_HELM_RELEASE, k.KEDA_SCALED_OBJECT, k.KEDA_SCALED_JOB))
    s.ensure(fake, VNS, SESSION, mode="in_place")
    fake.controllers.append(workload_controller)
    deployment(fake)
    scaler = w.Scaler(fake, VNS, SESSION)
    scaler.stop(scaler.targets_for_stop(None, NS, ["data"]), NS, ["data"])  # killed before mark_applied
    assert record(fake, "Deployment", "web")["status"] == "recorded"
    assert s.require(fake, VNS, SESSION).stopped_workloads() == ["Deployment shop/web"]
    w.scale(fake, params(state="started", pvcs=["data"]))
    assert s.require(fake, VNS, SESSION).stopped_workloads() == []


def test_a_scale_by_hand_while_left_stopped_is_kept_by_the_rerun(fk):
    """on_failure=leave_stopped, then the user brought the app back at another size (kubectl scale keeps this
    collection's annotation): the re-run stopped it and the start put back the first run's original (review of
    2026-12-06)."""
    deployment(fk)
    w.scale(fk, params(pvcs=["data"]))
    fk.mutate(k.DEPLOYMENT, "web", NS, lambda o: o["spec"].update(replicas=5))
    rs = fk.find(k.REPLICA_SET, "web-5d9f", NS)
    for i in range(5):
        fk.add(k.POD, pod("web-5d9f-m%d" % i, ["data"], rs))
    again = w.scale(fk, params(pvcs=["data"]))
    assert again["workloads"][0]["action"] == "stopped" and again["workloads"][0]["original"] == {"replicas": 5}
    assert [m for m in again["warnings"] if "runs again" in m and "taken as its original now" in m], again["warnings"]
    w.scale(fk, params(state="started", pvcs=["data"]))
    assert fk.find(k.DEPLOYMENT, "web", NS)["spec"]["replicas"] == 5


@pytest.mark.parametrize("first_done", ["owner", "sharer"])
def test_a_pause_shared_by_two_sessions_is_lifted_only_by_the_last_one(first_done):
    """One Flux Kustomization for two namespaces, each restored in its own session: the second session finds it
    suspended by the first. Whichever finishes first must leave it suspended (the other's workloads are still
    stopped and restoring); the last one puts the original back."""
    fake = gitops_kube()
    fake.remove(k.KEDA_SCALED_OBJECT, "web-scaler", NS)
    s.ensure(fake, VNS, "other", mode="in_place")
    labels = {w.FLUX_KS_NAME: "apps", w.FLUX_KS_NAMESPACE: "flux-system"}
    deployment(fake, "web", labels=labels, claim="data")
    deployment(fake, "api", labels=labels, claim="uploads")
    owner = w.scale(fake, params(pvcs=["data"], pause_gitops=True))
    sharer = w.scale(fake, params(session="other", pvcs=["uploads"], pause_gitops=True))
    assert [g["result"] for g in owner["gitops"]] == ["paused"]
    assert [(g["result"], g["shared_with"]) for g in sharer["gitops"]] == [("shared", [SESSION])]

    def suspended():
        return fake.find(k.FLUX_KUSTOMIZATION, "apps", "flux-system")["spec"]["suspend"]

    first, last = (SESSION, "other") if first_done == "owner" else ("other", SESSION)
    claims = {SESSION: ["data"], "other": ["uploads"]}
    done = w.scale(fake, params(session=first, state="started", pvcs=claims[first]))
    assert [g["result"] for g in done["gitops"]] == ["kept_for_other_session"]
    assert [x for x in done["warnings"] if "stays paused" in x and last in x], done["warnings"]
    assert suspended() is True  # the other session's workloads are still stopped
    done = w.scale(fake, params(session=last, state="started", pvcs=claims[last]))
    assert [g["result"] for g in done["gitops"]] == ["resumed"]
    assert suspended() is False  # the original, recorded by the session that paused it


def _shared_kustomization(share=True):
    """Two sessions (SESSION: web/data, "other": api/uploads) behind one Flux Kustomization: SESSION stopped its
    workload and paused it; with ``share``, "other" stopped its own and shares the pause."""
    fake = gitops_kube()
    fake.remove(k.KEDA_SCALED_OBJECT, "web-scaler", NS)
    s.ensure(fake, VNS, "other", mode="in_place")
    labels = {w.FLUX_KS_NAME: "apps", w.FLUX_KS_NAMESPACE: "flux-system"}
    deployment(fake, "web", labels=labels, claim="data")
    deployment(fake, "api", labels=labels, claim="uploads")
    w.scale(fake, params(pvcs=["data"], pause_gitops=True))
    if share:
        w.scale(fake, params(session="other", pvcs=["uploads"], pause_gitops=True))
    return fake


def _kustomization_record(fake, session):
    (record,) = [r for r in s.require(fake, VNS, session).doc["undo"] if r["target"]["kind"] == "Kustomization"]
    return record


def test_two_sessions_that_lift_a_shared_pause_at_once_both_lift_it():
    """Each marks its record releasing before it reads the other: one that sees the other releasing lifts the pause
    (before, two starts at the same moment each saw the other holding it, and it stayed paused for good)."""
    fake = _shared_kustomization()
    rid = _kustomization_record(fake, "other")["id"]
    s.set_undo_status(fake, VNS, "other", rid, "applied", releasing=True)  # "other" is lifting it right now
    done = w.scale(fake, params(state="started", pvcs=["data"]))
    assert [g["result"] for g in done["gitops"]] == ["resumed"], done["gitops"]
    assert fake.find(k.FLUX_KUSTOMIZATION, "apps", "flux-system")["spec"]["suspend"] is False
    assert _kustomization_record(fake, SESSION)["status"] == "reverted"
    assert not _kustomization_record(fake, SESSION)["releasing"]


def test_a_pause_lifted_while_another_session_shares_it_is_paused_again(monkeypatch):
    """The sharer read the holder while it was lifting the pause; the holder lifted it before the sharer's record
    was written. The sharer looks again after recording, and pauses it itself."""
    fake = _shared_kustomization(share=False)
    rid = _kustomization_record(fake, SESSION)["id"]
    s.set_undo_status(fake, VNS, SESSION, rid, "applied", releasing=True)
    read_holders = s.other_holders

    def holders_then_lifted(*args, **kwargs):
        found = read_holders(*args, **kwargs)
        fake.mutate(k.FLUX_KUSTOMIZATION, "apps", "flux-system", lambda o: o["spec"].update(suspend=False))
        return found

    monkeypatch.setattr(s, "other_holders", holders_then_lifted)
    shared = w.scale(fake, params(session="other", pvcs=["uploads"], pause_gitops=True))
    assert [(g["result"], g["shared_with"]) for g in shared["gitops"]] == [("paused", [SESSION])], shared["gitops"]
    assert fake.find(k.FLUX_KUSTOMIZATION, "apps", "flux-system")["spec"]["suspend"] is True
    assert _kustomization_record(fake, "other")["status"] == "applied"


def test_a_session_that_shares_a_pause_while_it_is_lifted_gets_it_back(monkeypatch):
    """The holder read no other session, then another session recorded its share and saw the pause still in place
    (so did not pause it itself), then the holder lifted it: the holder reads again after the lift and puts the
    pause back for that session."""
    fake = _shared_kustomization()
    other_rid = _kustomization_record(fake, "other")["id"]
    s.set_undo_status(fake, VNS, "other", other_rid, "reverted")  # as if "other" had not shared it yet
    read_holders, reads = s.other_holders, []

    def late_share(*args, **kwargs):
        reads.append(1)
        if len(reads) == 2:  # "other" shares it between the holder's first read and its lift
            s.set_undo_status(fake, VNS, "other", other_rid, "applied")
        return read_holders(*args, **kwargs)

    monkeypatch.setattr(s, "other_holders", late_share)
    done = w.scale(fake, params(state="started", pvcs=["data"]))
    assert [(g["result"], g.get("shared_with")) for g in done["gitops"]] == [("kept_for_other_session", ["other"])]
    assert [x for x in done["warnings"] if "began to share the pause while this one lifted it" in x], done["warnings"]
    assert fake.find(k.FLUX_KUSTOMIZATION, "apps", "flux-system")["spec"]["suspend"] is True


def test_a_stop_after_a_killed_lift_holds_the_pause_again():
    """A start of this session marked the pause releasing and was killed; the re-run stops again: the pause serves
    that stop, so the other sessions must count it as held again."""
    fake = _shared_kustomization()
    rid = _kustomization_record(fake, SESSION)["id"]
    s.set_undo_status(fake, VNS, SESSION, rid, "applied", releasing=True)
    again = w.scale(fake, params(pvcs=["data"], pause_gitops=True))
    assert [g["result"] for g in again["gitops"]] == ["already_paused"], again["gitops"]
    assert not _kustomization_record(fake, SESSION)["releasing"]
    assert sorted(s.other_holders(fake, VNS, "other", rid)) == [SESSION]


def test_a_pause_the_user_made_is_not_recorded_nor_lifted():
    fake = gitops_kube()
    fake.remove(k.KEDA_SCALED_OBJECT, "web-scaler", NS)
    fake.mutate(k.FLUX_KUSTOMIZATION, "apps", "flux-system", lambda o: o["spec"].update(suspend=True))
    deployment(fake, "web", labels={w.FLUX_KS_NAME: "apps", w.FLUX_KS_NAMESPACE: "flux-system"})
    stop = w.scale(fake, params(pvcs=["data"], pause_gitops=True))
    assert [g["result"] for g in stop["gitops"]] == ["already_paused"]
    start = w.scale(fake, params(state="started", pvcs=["data"]))
    assert start["gitops"] == []
    assert fake.find(k.FLUX_KUSTOMIZATION, "apps", "flux-system")["spec"]["suspend"] is True


def test_pause_gitops_warns_about_marks_it_found_nothing_to_pause_for():
    """Argo CD in another cluster (hub and spoke), Flux applying from elsewhere: the workload carries their marks,
    nothing here can be paused - said, not silent."""
    fake = FakeKube(missing_kinds=(k.DEPLOYMENT_CONFIG, k.ARGO_APPLICATION, k.FLUX_KUSTOMIZATION,
                                   k.FLUX_HELM_RELEASE, k.KEDA_SCALED_OBJECT, k.KEDA_SCALED_JOB))
    s.ensure(fake, VNS, SESSION, mode="in_place")
    fake.controllers.append(workload_controller)
    deployment(fake, labels={w.FLUX_KS_NAME: "apps"}, annotations={w.ARGO_TRACKING: "shop:apps/Deployment:shop/web"})
    result = w.scale(fake, params(pvcs=["data"], pause_gitops=True))
    assert result["gitops"] == [] and [i["action"] for i in result["workloads"]] == ["stopped"]
    found = [x for x in result["warnings"] if "no Argo CD object" in x or "no Flux object" in x]
    assert len(found) == 2 and all("Deployment shop/web" in x and "pause its sync yourself" in x for x in found), \
        result["warnings"]


def test_pause_gitops_does_not_warn_when_it_paused_the_tool_for_every_workload():
    fake = gitops_kube()
    fake.remove(k.KEDA_SCALED_OBJECT, "web-scaler", NS)
    labels = {w.FLUX_KS_NAME: "apps", w.FLUX_KS_NAMESPACE: "flux-system"}
    deployment(fake, "web", labels=labels, claim="data")
    deployment(fake, "api", labels=labels, claim="data")  # the same Kustomization serves both
    result = w.scale(fake, params(pvcs=["data"], pause_gitops=True))
    assert [g["result"] for g in result["gitops"]] == ["paused"]
    assert not [x for x in result["warnings"] if "no Flux object" in x], result["warnings"]


def test_an_application_an_applicationset_generates_is_paused_with_a_warning():
    fake = gitops_kube()
    fake.remove(k.KEDA_SCALED_OBJECT, "web-scaler", NS)
    fake.mutate(k.ARGO_APPLICATION, "shop", "argocd", lambda o: o["metadata"].update(ownerReferences=[
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet", "name": "shops", "uid": "u1",
         "controller": True}]))
    deployment(fake, labels={w.ARGO_INSTANCE_LABEL: "shop"})
    result = w.scale(fake, params(pvcs=["data"], pause_gitops=True))
    assert [g["result"] for g in result["gitops"]] == ["paused"]
    (warning,) = [x for x in result["warnings"] if "ApplicationSet shops" in x]
    assert "preservedFields" in warning and w.ARGO_SKIP in warning


def test_the_argo_instance_label_of_an_app_in_any_namespace_names_namespace_and_app():
    fake = gitops_kube()
    fake.remove(k.KEDA_SCALED_OBJECT, "web-scaler", NS)
    fake.add(k.ARGO_APPLICATION, {"metadata": {"name": "shop", "namespace": "team-a"}, "spec": {}})
    deployment(fake, labels={w.ARGO_INSTANCE_LABEL: "team-a_shop"})
    result = w.scale(fake, params(pvcs=["data"], pause_gitops=True))
    assert [(g["namespace"], g["name"]) for g in result["gitops"] if g["kind"] == "Application"] == [
        ("team-a", "shop")]


def test_an_on_delete_statefulset_with_a_staged_revision_is_warned_about(fk):
    statefulset(fk, "db", 1)
    fk.mutate(k.STATEFUL_SET, "db", NS, lambda o: (o["spec"].update(updateStrategy={"type": "OnDelete"}),
                                                   o["status"].update(currentRevision="db-1", updateRevision="db-2")))
    result = w.scale(fk, params(pvcs=["data-db-0"]))
    (warning,) = [x for x in result["warnings"] if "OnDelete" in x]
    assert "staged revision db-2" in warning and "(db-1)" in warning


def test_a_stop_whose_wait_fails_reports_the_change_it_made(fk):
    deployment(fk)
    fk.controllers.remove(workload_controller)  # the pods never go
    with pytest.raises(WaitTimeout) as err:
        w.scale(fk, params(pvcs=["data"], wait_timeout=1))
    assert err.value.details["changed"] is True
    assert [(i["name"], i["action"]) for i in err.value.details["workloads"]] == [("web", "stopped")]
