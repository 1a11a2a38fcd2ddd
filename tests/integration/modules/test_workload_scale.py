"""workload_scale against the test cluster: the REAL ReplicaSet/StatefulSet controllers delete and
recreate the pods; the module only changes replicas and waits."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ansible_run import run_module  # noqa: E402
from proof_helpers import session_journal as journal  # noqa: E402
from workload_helpers import live_pods, make_claim, make_session, pod_template  # noqa: E402

pytestmark = pytest.mark.integration

ANNOTATION = "data-restore.ansible/original"


def test_deployment_and_statefulset_stop_and_start(kubeconfig, kube, namespace, app_factory):
    web = app_factory(kind="Deployment", name="web", replicas=1)
    db = app_factory(kind="StatefulSet", name="db", replicas=3)
    make_session(kubeconfig, namespace)
    args = {"session": namespace, "namespace": namespace, "pvcs": web["pvcs"] + db["pvcs"], "wait_timeout": 120}

    planned = run_module("workload_scale", args, kubeconfig=kubeconfig, check=True, diff=True)
    assert planned["changed"] and not planned.get("failed"), planned
    assert sorted((w["kind"], w["action"]) for w in planned["workloads"]) == [
        ("Deployment", "stopped"), ("StatefulSet", "stopped")]
    assert kube.get("StatefulSet", namespace, "db")["spec"]["replicas"] == 3
    assert len(live_pods(kube, namespace, "db")) == 3

    stopped = run_module("workload_scale", dict(args, session_state="quiesced"), kubeconfig=kubeconfig, diff=True)
    assert stopped["changed"] and not stopped.get("failed"), stopped
    assert stopped["session_state"] == "quiesced" and journal(kube, namespace)["state"] == "quiesced"
    by_kind = dict((w["kind"], w) for w in stopped["workloads"])
    assert by_kind["Deployment"]["original"] == {"replicas": 1}
    assert by_kind["StatefulSet"]["original"] == {"replicas": 3}
    assert by_kind["StatefulSet"]["current"] == {"replicas": 0}
    assert len(stopped["pods_waited"]) == 4
    # the controllers really deleted the pods
    assert live_pods(kube, namespace, "web") == [] and live_pods(kube, namespace, "db") == []
    sts = kube.get("StatefulSet", namespace, "db")
    assert json.loads(sts["metadata"]["annotations"][ANNOTATION])["original"] == {"replicas": 3}
    # the PVCs stay (whenScaled Retain is the default)
    assert all(kube.get_or_none("PersistentVolumeClaim", namespace, pvc) for pvc in db["pvcs"])

    again = run_module("workload_scale", args, kubeconfig=kubeconfig)
    assert not again["changed"], again
    assert sorted(w["action"] for w in again["workloads"]) == ["already_stopped", "already_stopped"]

    started = run_module("workload_scale", dict(args, state="started"), kubeconfig=kubeconfig)
    assert started["changed"] and not started.get("failed"), started
    assert kube.get("StatefulSet", namespace, "db")["spec"]["replicas"] == 3
    assert kube.get("Deployment", namespace, "web")["spec"]["replicas"] == 1
    assert (kube.get("StatefulSet", namespace, "db")["status"].get("readyReplicas") or 0) == 3
    assert ANNOTATION not in (kube.get("Deployment", namespace, "web")["metadata"].get("annotations") or {})
    assert len(live_pods(kube, namespace, "db")) == 3
    # the Running pods that mount the claims, for Velero's post-restore hook annotations
    assert sorted(p["metadata"]["name"] for p in started["pods"]) == sorted(
        p["metadata"]["name"] for p in live_pods(kube, namespace, "db") + live_pods(kube, namespace, "web"))

    scale = [r for r in journal(kube, namespace)["undo"] if r["action"] == "scale"]
    assert len(scale) == 2 and all(r["status"] == "reverted" for r in scale)


def test_start_leaves_replicas_someone_changed(kubeconfig, kube, namespace, app_factory):
    web = app_factory(kind="Deployment", name="web", replicas=2)
    make_session(kubeconfig, namespace)
    args = {"session": namespace, "namespace": namespace, "pvcs": web["pvcs"], "wait_timeout": 120}
    assert run_module("workload_scale", args, kubeconfig=kubeconfig)["changed"]
    kube.patch("Deployment", namespace, "web", {"spec": {"replicas": 1}})
    started = run_module("workload_scale", dict(args, state="started"), kubeconfig=kubeconfig)
    assert started["workloads"][0]["action"] == "left_changed", started
    assert kube.get("Deployment", namespace, "web")["spec"]["replicas"] == 1


def test_statefulset_when_scaled_delete_is_refused(kubeconfig, kube, namespace, app_factory):
    db = app_factory(kind="StatefulSet", name="db", replicas=1)
    kube.patch("StatefulSet", namespace, "db", {"spec": {"persistentVolumeClaimRetentionPolicy": {
        "whenScaled": "Delete", "whenDeleted": "Retain"}}})
    make_session(kubeconfig, namespace)
    result = run_module("workload_scale", {"session": namespace, "namespace": namespace, "pvcs": db["pvcs"]},
                        kubeconfig=kubeconfig)
    assert result.get("failed") and "whenScaled=Delete" in result["msg"], result
    assert "Retain" in result["msg"]
    sts = kube.get("StatefulSet", namespace, "db")
    assert sts["spec"]["replicas"] == 1 and ANNOTATION not in (sts["metadata"].get("annotations") or {})
    assert journal(kube, namespace)["undo"] == []


def test_gitops_pause_is_skipped_without_the_apis(kubeconfig, kube, namespace, app_factory):
    web = app_factory(kind="Deployment", name="web", replicas=1)
    kube.patch("Deployment", namespace, "web", {"metadata": {"labels": {"app.kubernetes.io/instance": "shop"}}})
    make_session(kubeconfig, namespace)
    args = {"session": namespace, "namespace": namespace, "pvcs": web["pvcs"], "pause_gitops": True}
    stopped = run_module("workload_scale", args, kubeconfig=kubeconfig)
    assert stopped["changed"] and stopped["gitops"] == [], stopped
    assert run_module("workload_scale", dict(args, state="started"), kubeconfig=kubeconfig)["changed"]


def test_every_other_workload_kind_stops_and_starts(kubeconfig, kube, namespace, wait_for):
    """DaemonSet, a bare ReplicaSet, ReplicationController, Job and a CronJob's Job, stopped and started by
    the REAL controllers of kube-controller-manager (daemonset, replicaset, replicationcontroller, job, cronjob)."""
    node = sorted(n["metadata"]["name"] for n in kube.list("Node"))[0]
    for claim in ("ds-data", "rs-data", "rc-data", "job-data", "cron-data"):
        make_claim(kube, namespace, claim)
    kube.create("DaemonSet", {"metadata": {"name": "ds", "namespace": namespace}, "spec": {
        "selector": {"matchLabels": {"app": "ds"}},
        "template": pod_template("ds", "ds-data", nodeSelector={"kubernetes.io/hostname": node})}})
    kube.create("ReplicaSet", {"metadata": {"name": "rs", "namespace": namespace}, "spec": {
        "replicas": 1, "selector": {"matchLabels": {"app": "rs"}}, "template": pod_template("rs", "rs-data")}})
    kube.create("ReplicationController", {"metadata": {"name": "rc", "namespace": namespace}, "spec": {
        "replicas": 1, "selector": {"app": "rc"}, "template": pod_template("rc", "rc-data")}})
    kube.create("Job", {"metadata": {"name": "job", "namespace": namespace}, "spec": {
        "parallelism": 1, "completions": 1, "template": pod_template("job", "job-data", restartPolicy="Never")}})
    cron = kube.create("CronJob", {"metadata": {"name": "cron", "namespace": namespace}, "spec": {
        "schedule": "0 0 1 1 *", "jobTemplate": {"spec": {
            "template": pod_template("cron", "cron-data", restartPolicy="Never")}}}})
    # a Job the CronJob started (as `kubectl create job --from=cronjob/cron` does: controller reference)
    kube.create("Job", {"metadata": {"name": "cron-manual", "namespace": namespace, "ownerReferences": [{
        "apiVersion": "batch/v1", "kind": "CronJob", "name": "cron", "uid": cron["metadata"]["uid"],
        "controller": True, "blockOwnerDeletion": True}]}, "spec": {
        "parallelism": 1, "completions": 1, "template": pod_template("cron", "cron-data", restartPolicy="Never")}})
    apps = ("ds", "rs", "rc", "job", "cron")
    wait_for(lambda: all(any(p["status"].get("phase") == "Running" for p in live_pods(kube, namespace, a))
                         for a in apps), timeout=120, message="one Running pod per workload")
    make_session(kubeconfig, namespace)
    args = {"session": namespace, "namespace": namespace, "pvcs": ["ds-data", "rs-data", "rc-data", "job-data", "cron-data"],
            "wait_timeout": 120}

    stopped = run_module("workload_scale", args, kubeconfig=kubeconfig)
    assert stopped["changed"] and not stopped.get("failed"), stopped
    by_name = dict((w["name"], w) for w in stopped["workloads"])
    assert sorted((w["kind"], w["name"]) for w in stopped["workloads"]) == [
        ("CronJob", "cron"), ("DaemonSet", "ds"), ("Job", "cron-manual"), ("Job", "job"),
        ("ReplicaSet", "rs"), ("ReplicationController", "rc")], stopped["workloads"]
    assert by_name["cron"]["original"] == {"suspend": False} and by_name["job"]["original"] == {"parallelism": 1}
    assert by_name["ds"]["original"] == {"nodeSelector": {"kubernetes.io/hostname": node}}
    left = [p["metadata"]["name"] for a in apps for p in live_pods(kube, namespace, a)]
    assert left == [], left
    assert kube.get("CronJob", namespace, "cron")["spec"]["suspend"] is True
    assert kube.get("Job", namespace, "job")["spec"]["parallelism"] == 0
    assert kube.get("ReplicationController", namespace, "rc")["spec"]["replicas"] == 0
    assert kube.get("ReplicaSet", namespace, "rs")["spec"]["replicas"] == 0
    assert run_module("workload_scale", args, kubeconfig=kubeconfig)["changed"] is False

    started = run_module("workload_scale", dict(args, state="started"), kubeconfig=kubeconfig)
    assert started["changed"] and not started.get("failed"), started
    assert kube.get("CronJob", namespace, "cron")["spec"].get("suspend") is False
    assert kube.get("Job", namespace, "cron-manual")["spec"]["parallelism"] == 1
    assert kube.get("DaemonSet", namespace, "ds")["spec"]["template"]["spec"]["nodeSelector"] == {
        "kubernetes.io/hostname": node}
    wait_for(lambda: all(live_pods(kube, namespace, a) for a in apps), timeout=120, message="pods back")
    assert sorted(r["status"] for r in journal(kube, namespace)["undo"] if r["action"] == "scale") == ["reverted"] * 6
