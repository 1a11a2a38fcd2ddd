"""workload_scale on an OpenShift DeploymentConfig, against a real API server that serves apps.openshift.io/v1.

OpenShift is not available here: a stand-in CRD serves DeploymentConfigs (real group, version, kind, plural, the
status subresource; schema left open), and a small loop in this test plays the one part of OpenShift's
DeploymentConfig controller the module relies on - it keeps the DeploymentConfig's ReplicationController at the
DeploymentConfig's replicas and reports readyReplicas / observedGeneration back. The ReplicationController, its
pods and the owner chain pod -> ReplicationController -> DeploymentConfig are real (kube-controller-manager's
replication controller, the simulated kubelet), and so is RBAC (the optional openshift rules of docs/rbac.yml).
"""

import os
import sys
import threading

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proof_helpers as ph  # noqa: E402 pylint: disable=wrong-import-position
from ansible_run import run_module  # noqa: E402 pylint: disable=wrong-import-position
import stand_in_apis  # noqa: E402 pylint: disable=wrong-import-position
from workload_helpers import live_pods, make_claim, make_session, pod_template  # noqa: E402 pylint: disable=wrong-import-position

pytestmark = [pytest.mark.integration, pytest.mark.sim_only]

GROUP, VERSION, PLURAL = "apps.openshift.io", "v1", "deploymentconfigs"


@pytest.fixture(scope="module")
def deployment_configs(api_client):
    body = stand_in_apis.crd(GROUP, VERSION, "DeploymentConfig", PLURAL, status_subresource=True)
    with stand_in_apis.served_for_module(api_client, [body]) as custom:
        yield custom


class StandInController(object):
    """OpenShift's DeploymentConfig controller, reduced to what workload_scale observes: RC replicas follow the
    DC's, and the DC's status reports the RC's ready pods for the DC's generation."""

    def __init__(self, kube, custom, namespace, name, rc):
        self.kube, self.custom, self.namespace, self.name, self.rc = kube, custom, namespace, name, rc
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=10)

    def _loop(self):
        while not self.stop.wait(0.2):
            try:
                self._sync()
            except Exception:  # pylint: disable=broad-except
                pass  # next tick (e.g. the object is being replaced)

    def _sync(self):
        dc = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name)
        want = dc["spec"].get("replicas", 1)
        rc = self.kube.get("ReplicationController", self.namespace, self.rc)
        if rc["spec"].get("replicas") != want:
            self.kube.patch("ReplicationController", self.namespace, self.rc, {"spec": {"replicas": want}})
            return
        status = {"observedGeneration": dc["metadata"]["generation"], "replicas": want,
                  "readyReplicas": (rc.get("status") or {}).get("readyReplicas") or 0}
        if (dc.get("status") or {}) != status:
            self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, self.namespace, PLURAL, self.name,
                                                              {"status": status})


def _legacy_app(kube, custom, namespace):
    """DeploymentConfig "legacy" with its ReplicationController "legacy-1" (controller reference to the DC), one
    pod mounting claim "dc-data"."""
    make_claim(kube, namespace, "dc-data")
    template = pod_template("legacy", "dc-data")
    dc = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, {
        "apiVersion": "%s/%s" % (GROUP, VERSION), "kind": "DeploymentConfig",
        "metadata": {"name": "legacy", "namespace": namespace},
        "spec": {"replicas": 1, "selector": {"app": "legacy"}, "template": template}})
    kube.create("ReplicationController", {"metadata": {
        "name": "legacy-1", "namespace": namespace, "ownerReferences": [{
            "apiVersion": "%s/%s" % (GROUP, VERSION), "kind": "DeploymentConfig", "name": "legacy",
            "uid": dc["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]},
        "spec": {"replicas": 1, "selector": {"app": "legacy"}, "template": template}})
    return StandInController(kube, custom, namespace, "legacy", "legacy-1")


def _running(kube, namespace):
    return [p for p in live_pods(kube, namespace, "legacy") if p["status"].get("phase") == "Running"]


def _dc_replicas(custom, namespace):
    return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "legacy")["spec"]["replicas"]


def test_deployment_config_stops_and_starts(kube, kubeconfig, namespace, deployment_configs, wait_for):
    with _legacy_app(kube, deployment_configs, namespace):
        wait_for(lambda: _running(kube, namespace), timeout=120, message="the DeploymentConfig's pod Running")
        make_session(kubeconfig, namespace)
        args = {"session": namespace, "namespace": namespace, "pvcs": ["dc-data"], "wait_timeout": 120}

        stopped = run_module("workload_scale", args, kubeconfig=kubeconfig)
        assert stopped["changed"] and not stopped.get("failed"), stopped
        # the top controller is stopped, not the ReplicationController under it (the DC would scale it back)
        assert [(w["kind"], w["name"], w["original"]) for w in stopped["workloads"]] == [
            ("DeploymentConfig", "legacy", {"replicas": 1})], stopped["workloads"]
        assert _dc_replicas(deployment_configs, namespace) == 0
        assert live_pods(kube, namespace, "legacy") == []
        assert run_module("workload_scale", args, kubeconfig=kubeconfig)["changed"] is False

        started = run_module("workload_scale", dict(args, state="started"), kubeconfig=kubeconfig)
        assert started["changed"] and not started.get("failed"), started
        assert _dc_replicas(deployment_configs, namespace) == 1
        assert _running(kube, namespace), "start returned before the DeploymentConfig's pod was Running"


def test_deployment_config_as_a_service_account(api_client, kube, kubeconfig, namespace, deployment_configs,
                                                wait_for):
    """The optional openshift rules of docs/rbac.yml are what a DeploymentConfig needs; without patch the stop
    names the permission."""
    with _legacy_app(kube, deployment_configs, namespace):
        wait_for(lambda: _running(kube, namespace), timeout=120, message="the DeploymentConfig's pod Running")
        make_session(kubeconfig, namespace)
        args = {"session": namespace, "namespace": namespace, "pvcs": ["dc-data"], "wait_timeout": 120}
        drop = ("velero-data-restore-openshift", GROUP, PLURAL, "patch")
        with ph.ServiceAccountGrant(api_client, [namespace], optional=True, drop=drop) as grant:
            refused = run_module("workload_scale", args, kubeconfig=kubeconfig, env=grant.env())
        assert refused.get("failed") and ("missing RBAC permission verb=patch resource=deploymentconfigs "
                                          "apiGroup=apps.openshift.io") in refused["msg"], refused
        assert _dc_replicas(deployment_configs, namespace) == 1
        with ph.ServiceAccountGrant(api_client, [namespace], optional=True) as grant:
            stopped = run_module("workload_scale", args, kubeconfig=kubeconfig, env=grant.env())
            assert stopped["changed"] and not stopped.get("failed"), stopped
            started = run_module("workload_scale", dict(args, state="started"), kubeconfig=kubeconfig,
                                 env=grant.env())
            assert started["changed"] and not started.get("failed"), started
        assert _dc_replicas(deployment_configs, namespace) == 1
