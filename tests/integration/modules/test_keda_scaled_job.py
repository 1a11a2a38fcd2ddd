"""workload_scale and a KEDA ScaledJob, against the real API server and the real Job controller.

No KEDA controller runs here: stand-in CRDs with KEDA's group, version, kinds and plurals (schemas left open) are
served, and the Job a ScaledJob "started" is a real Job with the controller ownerReference KEDA sets. What is proven:
the stop pauses the ScaledJob (annotation autoscaling.keda.sh/paused, which KEDA 2.11+ reads in scaledjob_controller.go
checkIfPaused), stops its running Job through the real Job controller, pauses an idle ScaledJob whose job template
mounts a restored claim, and the start puts back exactly what was there - as an impersonated ServiceAccount bound to
docs/rbac.yml.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proof_helpers as ph  # noqa: E402 pylint: disable=wrong-import-position
import stand_in_apis  # noqa: E402 pylint: disable=wrong-import-position
from ansible_run import run_module  # noqa: E402 pylint: disable=wrong-import-position
from workload_helpers import live_pods, make_claim, make_session, pod_template  # noqa: E402 pylint: disable=wrong-import-position

pytestmark = [pytest.mark.integration, pytest.mark.sim_only]

GROUP, VERSION = "keda.sh", "v1alpha1"
KEDA_APIS = [(GROUP, VERSION, "ScaledObject", "scaledobjects"), (GROUP, VERSION, "ScaledJob", "scaledjobs")]
PAUSED = "autoscaling.keda.sh/paused"
ORIGINAL = "data-restore.ansible/original"


@pytest.fixture(scope="module")
def keda(api_client):
    with stand_in_apis.served_for_module(api_client, [stand_in_apis.crd(*api) for api in KEDA_APIS]) as custom:
        yield custom


def _scaled_job(custom, namespace, name, claim, annotations=None):
    return custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "scaledjobs", {
        "apiVersion": "%s/%s" % (GROUP, VERSION), "kind": "ScaledJob",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "spec": {"jobTargetRef": {"parallelism": 1, "template": pod_template(name, claim, restartPolicy="Never")},
                 "triggers": [{"type": "cron", "metadata": {"timezone": "UTC", "start": "0 * * * *",
                                                            "end": "5 * * * *", "desiredReplicas": "1"}}]}})


def _annotations(custom, namespace, name):
    obj = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "scaledjobs", name)
    return obj["metadata"].get("annotations") or {}


def _worker_running(kube, custom, namespace, wait_for):
    """ScaledJob "worker" with a Job it started (KEDA's controller reference), whose pod runs on claim work-data;
    idle ScaledJob "compact" on claim idle-data; ScaledJob "other" on a claim this restore leaves alone."""
    for claim in ("work-data", "idle-data", "other-data"):
        make_claim(kube, namespace, claim)
    worker = _scaled_job(custom, namespace, "worker", "work-data")
    _scaled_job(custom, namespace, "compact", "idle-data")
    _scaled_job(custom, namespace, "other", "other-data")
    kube.create("Job", {"metadata": {"name": "worker-x1", "namespace": namespace, "ownerReferences": [{
        "apiVersion": "%s/%s" % (GROUP, VERSION), "kind": "ScaledJob", "name": "worker",
        "uid": worker["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]}, "spec": {
        "parallelism": 1, "completions": 1, "template": pod_template("worker", "work-data", restartPolicy="Never")}})
    wait_for(lambda: any(p["status"].get("phase") == "Running" for p in live_pods(kube, namespace, "worker")),
             timeout=120, message="the Job's pod Running")
    return {"session": namespace, "namespace": namespace, "pvcs": ["work-data", "idle-data"], "wait_timeout": 120}


def test_a_scaled_job_is_paused_its_job_stopped_and_both_put_back(api_client, kube, kubeconfig, namespace, keda,
                                                                  wait_for):
    args = _worker_running(kube, keda, namespace, wait_for)
    make_session(kubeconfig, namespace)
    with ph.ServiceAccountGrant(api_client, [namespace], optional=True) as grant:
        preview = run_module("workload_scale", args, kubeconfig=kubeconfig, check=True, env=grant.env())
        assert preview["changed"] and not preview.get("failed"), preview
        assert PAUSED not in _annotations(keda, namespace, "worker"), "check mode paused the ScaledJob"

        stopped = run_module("workload_scale", args, kubeconfig=kubeconfig, env=grant.env())
        assert stopped["changed"] and not stopped.get("failed"), stopped
        assert sorted((w["kind"], w["name"], w["action"]) for w in stopped["workloads"]) == [
            ("Job", "worker-x1", "stopped"), ("ScaledJob", "compact", "stopped"),
            ("ScaledJob", "worker", "stopped")], stopped["workloads"]
        for name in ("worker", "compact"):
            marks = _annotations(keda, namespace, name)
            assert marks[PAUSED] == "true" and ORIGINAL in marks, marks
        assert PAUSED not in _annotations(keda, namespace, "other")
        assert kube.get("Job", namespace, "worker-x1")["spec"]["parallelism"] == 0
        assert live_pods(kube, namespace, "worker") == []  # the real Job controller deleted it; the stop waited
        assert run_module("workload_scale", args, kubeconfig=kubeconfig, env=grant.env())["changed"] is False

        started = run_module("workload_scale", dict(args, state="started"), kubeconfig=kubeconfig, env=grant.env())
        assert started["changed"] and not started.get("failed"), started
    for name in ("worker", "compact"):
        marks = _annotations(keda, namespace, name)
        assert PAUSED not in marks and ORIGINAL not in marks, marks
    assert kube.get("Job", namespace, "worker-x1")["spec"]["parallelism"] == 1
    wait_for(lambda: live_pods(kube, namespace, "worker"), timeout=120, message="the Job's pod back")


def test_without_the_keda_rules_the_stop_names_the_permission_and_changes_nothing(api_client, kube, kubeconfig,
                                                                                  namespace, keda, wait_for):
    args = _worker_running(kube, keda, namespace, wait_for)
    make_session(kubeconfig, namespace)
    with ph.ServiceAccountGrant(api_client, [namespace], optional=False) as grant:
        stopped = run_module("workload_scale", args, kubeconfig=kubeconfig, env=grant.env())
    assert stopped.get("failed"), stopped
    assert "missing RBAC permission verb=get resource=scaledjobs apiGroup=keda.sh" in stopped["msg"], stopped["msg"]
    assert kube.get("Job", namespace, "worker-x1")["spec"]["parallelism"] == 1
    assert all(PAUSED not in _annotations(keda, namespace, n) for n in ("worker", "compact", "other"))


def test_a_template_swap_patches_the_scaled_jobs_job_template_and_reverts_it(kube, kubeconfig, namespace, keda,
                                                                             wait_for):
    for claim in ("work-data", "work-data-restored"):
        make_claim(kube, namespace, claim)
        wait_for(lambda c=claim: (kube.get("PersistentVolumeClaim", namespace, c).get("status") or {}).get("phase")
                 == "Bound", 60, message="PVC %s bound" % claim)
    _scaled_job(keda, namespace, "worker", "work-data")
    assert run_module("restore_session", {"session": namespace, "mode": "replace"}, kubeconfig=kubeconfig)["changed"]
    args = {"session": namespace, "mode": "template", "volumes": [
        {"namespace": namespace, "pvc": "work-data", "new_pvc": "work-data-restored"}]}

    def mounted():
        obj = keda.get_namespaced_custom_object(GROUP, VERSION, namespace, "scaledjobs", "worker")
        return obj["spec"]["jobTargetRef"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]

    swapped = run_module("claim_patch", args, kubeconfig=kubeconfig)
    assert swapped["changed"] and swapped["volumes"][0]["workloads"] == ["ScaledJob/worker"], swapped
    assert mounted() == "work-data-restored"
    back = run_module("claim_patch", dict(args, state="reverted"), kubeconfig=kubeconfig)
    assert back["changed"] and not back.get("failed"), back
    assert mounted() == "work-data"
