"""Integration tests for the real control plane started by tests/cluster/cluster.py.

Run: .venv/bin/python -m pytest tests/cluster/test_controlplane.py -m integration -q
(starts the cluster if it is not running; the first run builds the binary).
With VELERO_E2E=1 and KUBECONFIG set they run against that cluster instead.
"""
from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cluster as cp  # noqa: E402

k8s = pytest.importorskip("kubernetes")
from kubernetes import client, config  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

pytestmark = pytest.mark.integration

EXTERNAL = os.environ.get("VELERO_E2E") == "1" and bool(os.environ.get("KUBECONFIG"))


def _wait_for(what, fn, timeout=60.0, interval=0.25):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last={last!r})")


@pytest.fixture(scope="module")
def kubeconfig() -> str:
    return cp.ensure_cluster()


@pytest.fixture(scope="module")
def api(kubeconfig) -> client.ApiClient:
    c = config.new_client_from_config(config_file=kubeconfig)
    yield c
    c.close()


@pytest.fixture()
def namespace(api):
    core = client.CoreV1Api(api)
    name = f"cp-test-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    try:
        core.delete_namespace(name, propagation_policy="Background")
    except ApiException:
        pass


def test_server_version_is_1_34(api):
    info = client.VersionApi(api).get_code()
    if EXTERNAL:
        assert info.major == "1"
        return
    assert info.git_version.startswith("v1.34."), info.git_version
    assert (info.major, info.minor) == ("1", "34")
    assert info.git_version == cp.k8s_version()


def test_metrics_endpoint(api):
    resp = api.call_api("/metrics", "GET", auth_settings=["BearerToken"],
                        _preload_content=False, _return_http_data_only=True)
    text = resp.data.decode()
    assert "apiserver_request_total" in text
    assert "etcd_request_duration_seconds" in text or "etcd_requests_total" in text


@pytest.mark.parametrize("crd", ["podvolumerestores.velero.io", "datadownloads.velero.io"])
def test_velero_crds_established(api, crd):
    obj = client.ApiextensionsV1Api(api).read_custom_resource_definition(crd)
    conds = {c.type: c.status for c in (obj.status.conditions or [])}
    assert conds.get("Established") == "True", conds
    assert conds.get("NamesAccepted") == "True", conds


def test_velero_namespace_exists(api):
    ns = client.CoreV1Api(api).read_namespace("velero")
    assert ns.status.phase == "Active"


def test_serviceaccount_without_bindings_is_forbidden(api, namespace):
    core = client.CoreV1Api(api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody")))
    tr = core.create_namespaced_service_account_token(
        "nobody", namespace,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)))
    token = tr.status.token
    assert token

    cfg = client.Configuration()
    cfg.host = api.configuration.host
    cfg.ssl_ca_cert = api.configuration.ssl_ca_cert
    cfg.api_key = {"authorization": token}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    with client.ApiClient(cfg) as sa_api:
        # authenticated (not 401) as the service account ...
        review = client.AuthenticationV1Api(sa_api).create_self_subject_review(
            client.V1SelfSubjectReview())
        assert review.status.user_info.username == f"system:serviceaccount:{namespace}:nobody"
        # ... but RBAC grants it nothing.
        with pytest.raises(ApiException) as exc:
            client.CoreV1Api(sa_api).list_namespaced_pod(namespace)
        assert exc.value.status == 403, exc.value


def test_deployment_creates_replicaset_and_pods(api, namespace):
    apps = client.AppsV1Api(api)
    core = client.CoreV1Api(api)
    labels = {"app": "cp-test"}
    dep = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[
                    client.V1Container(name="c", image="registry.invalid/test/pause:1")]))))
    created = apps.create_namespaced_deployment(namespace, dep)

    def replicasets():
        rss = apps.list_namespaced_replica_set(namespace, label_selector="app=cp-test").items
        return [rs for rs in rss
                if any(o.uid == created.metadata.uid for o in (rs.metadata.owner_references or []))]

    rs = _wait_for("ReplicaSet from the deployment controller", replicasets)[0]

    def pods():
        items = core.list_namespaced_pod(namespace, label_selector="app=cp-test").items
        owned = [p for p in items
                 if any(o.uid == rs.metadata.uid for o in (p.metadata.owner_references or []))]
        return owned if len(owned) == 2 else None

    owned = _wait_for("2 pods from the replicaset controller", pods)
    for p in owned:
        # real ServiceAccount admission ran
        assert p.spec.service_account_name == "default"


def test_pvc_gets_protection_finalizer(api, namespace):
    core = client.CoreV1Api(api)
    pvc = client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="data"),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"})))
    created = core.create_namespaced_persistent_volume_claim(namespace, pvc)
    assert "kubernetes.io/pvc-protection" in (created.metadata.finalizers or [])
