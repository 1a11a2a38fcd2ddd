"""workload_scale pause_gitops against a real API server that serves the Argo CD, Flux and KEDA APIs.

No Argo CD, Flux or KEDA controller runs here: the test installs stand-in CRDs with their real group, version,
kind and plural (schemas left open), so what is proven is what the collection does to those objects - find the
ones that manage a workload, pause them before it stops the workload, put back exactly what was there when it
starts it again - through the real API server's discovery, merge patches and RBAC (the optional rules of
docs/rbac.yml, as an impersonated ServiceAccount). That the tools honour the marks is their documented contract:
Argo CD's argocd.argoproj.io/skip-reconcile annotation, Flux's spec.suspend, KEDA's
autoscaling.keda.sh/paused-replicas annotation.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proof_helpers as ph  # noqa: E402 pylint: disable=wrong-import-position
import stand_in_apis  # noqa: E402 pylint: disable=wrong-import-position
from ansible_run import run_module  # noqa: E402 pylint: disable=wrong-import-position
from workload_helpers import make_session  # noqa: E402 pylint: disable=wrong-import-position

pytestmark = [pytest.mark.integration, pytest.mark.sim_only]

# (group, version, kind, plural)
GITOPS_APIS = [
    ("argoproj.io", "v1alpha1", "Application", "applications"),
    ("kustomize.toolkit.fluxcd.io", "v1", "Kustomization", "kustomizations"),
    ("helm.toolkit.fluxcd.io", "v2", "HelmRelease", "helmreleases"),
    ("keda.sh", "v1alpha1", "ScaledObject", "scaledobjects"),
]
ARGO_SKIP = "argocd.argoproj.io/skip-reconcile"
KEDA_PAUSED = "autoscaling.keda.sh/paused-replicas"


@pytest.fixture(scope="module")
def gitops_apis(api_client):
    """The four GitOps / autoscaler APIs served for the tests of this module only (and KEDA's ScaledJobs, which KEDA
    serves next to its ScaledObjects: the stop looks for idle ones mounting the claims)."""
    apis = GITOPS_APIS + [("keda.sh", "v1alpha1", "ScaledJob", "scaledjobs")]
    with stand_in_apis.served_for_module(api_client, [stand_in_apis.crd(*api) for api in apis]) as custom:
        yield custom


def _create(custom, api, namespace, name, body):
    group, version, kind, plural = api
    body = dict(body, apiVersion="%s/%s" % (group, version), kind=kind)
    body.setdefault("metadata", {}).update(name=name, namespace=namespace)
    return custom.create_namespaced_custom_object(group, version, namespace, plural, body)


def _get(custom, api, namespace, name):
    group, version, _kind, plural = api
    return custom.get_namespaced_custom_object(group, version, namespace, plural, name)


def _managed_app(kube, custom, namespace, app_factory, argo_paused_before=False):
    """A Deployment that Argo CD (instance label), Flux (Kustomization labels) and KEDA (ScaledObject) all manage,
    and a StatefulSet of a Flux HelmRelease."""
    web = app_factory(kind="Deployment", name="web", replicas=1)
    db = app_factory(kind="StatefulSet", name="db", replicas=1)
    kube.patch("Deployment", namespace, "web", {"metadata": {"labels": {
        "app.kubernetes.io/instance": "shop", "kustomize.toolkit.fluxcd.io/name": "apps",
        "kustomize.toolkit.fluxcd.io/namespace": namespace}}})
    kube.patch("StatefulSet", namespace, "db", {"metadata": {"labels": {
        "helm.toolkit.fluxcd.io/name": "db", "helm.toolkit.fluxcd.io/namespace": namespace}}})
    argo, ks, hr, keda = GITOPS_APIS
    _create(custom, argo, namespace, "shop", {
        "metadata": {"annotations": {ARGO_SKIP: "true"} if argo_paused_before else {}},
        "spec": {"destination": {"namespace": namespace}, "syncPolicy": {"automated": {"selfHeal": True}}}})
    _create(custom, ks, namespace, "apps", {"spec": {"interval": "1m", "path": "./apps", "prune": True}})
    _create(custom, hr, namespace, "db", {"spec": {"interval": "5m", "chart": {"spec": {"chart": "postgres"}}}})
    _create(custom, keda, namespace, "web-scaler", {"spec": {"scaleTargetRef": {"name": "web"}, "minReplicaCount": 1}})
    # a ScaledObject of another Deployment is left alone
    _create(custom, keda, namespace, "other-scaler", {"spec": {"scaleTargetRef": {"name": "other"}}})
    return web["pvcs"] + db["pvcs"]


def _marks(custom, namespace):
    argo, ks, hr, keda = GITOPS_APIS
    return {
        "argo": (_get(custom, argo, namespace, "shop")["metadata"].get("annotations") or {}).get(ARGO_SKIP),
        "kustomization": (_get(custom, ks, namespace, "apps").get("spec") or {}).get("suspend"),
        "helmrelease": (_get(custom, hr, namespace, "db").get("spec") or {}).get("suspend"),
        "keda": (_get(custom, keda, namespace, "web-scaler")["metadata"].get("annotations") or {}).get(KEDA_PAUSED),
        "other keda": (_get(custom, keda, namespace, "other-scaler")["metadata"].get("annotations") or {}).get(
            KEDA_PAUSED),
    }


PAUSED = {"argo": "true", "kustomization": True, "helmrelease": True, "keda": "0", "other keda": None}
# Flux's spec.suspend comes back as false (its default) where it was unset
RESUMED = {"argo": None, "kustomization": False, "helmrelease": False, "keda": None, "other keda": None}


def _by_kind(gitops):
    return sorted((g["kind"], g["name"], g["result"]) for g in gitops)


def test_stop_pauses_every_manager_and_start_puts_back_what_was_there(kube, kubeconfig, namespace, app_factory,
                                                                      gitops_apis):
    pvcs = _managed_app(kube, gitops_apis, namespace, app_factory)
    make_session(kubeconfig, namespace)
    args = {"session": namespace, "namespace": namespace, "pvcs": pvcs, "pause_gitops": True}

    preview = run_module("workload_scale", args, kubeconfig=kubeconfig, check=True)
    assert not preview.get("failed") and len(preview["gitops"]) == 4, preview
    assert _marks(gitops_apis, namespace)["argo"] is None, "check mode changed the Application"

    stopped = run_module("workload_scale", args, kubeconfig=kubeconfig)
    assert not stopped.get("failed"), stopped
    assert _by_kind(stopped["gitops"]) == [
        ("Application", "shop", "paused"), ("HelmRelease", "db", "paused"), ("Kustomization", "apps", "paused"),
        ("ScaledObject", "web-scaler", "paused")], stopped["gitops"]
    assert _marks(gitops_apis, namespace) == PAUSED
    assert kube.get("Deployment", namespace, "web")["spec"]["replicas"] == 0

    again = run_module("workload_scale", args, kubeconfig=kubeconfig)
    assert not again.get("failed") and not again["changed"], again
    assert set(g["result"] for g in again["gitops"]) == {"already_paused"}, again["gitops"]

    started = run_module("workload_scale", dict(args, state="started"), kubeconfig=kubeconfig)
    assert not started.get("failed") and started["changed"], started
    assert set(g["result"] for g in started["gitops"]) == {"resumed"}, started["gitops"]
    assert _marks(gitops_apis, namespace) == RESUMED
    assert kube.get("Deployment", namespace, "web")["spec"]["replicas"] == 1


def test_a_pause_the_user_had_set_stays(kube, kubeconfig, namespace, app_factory, gitops_apis):
    pvcs = _managed_app(kube, gitops_apis, namespace, app_factory, argo_paused_before=True)
    make_session(kubeconfig, namespace)
    args = {"session": namespace, "namespace": namespace, "pvcs": pvcs, "pause_gitops": True}
    stopped = run_module("workload_scale", args, kubeconfig=kubeconfig)
    assert ("Application", "shop", "already_paused") in _by_kind(stopped["gitops"]), stopped["gitops"]
    started = run_module("workload_scale", dict(args, state="started"), kubeconfig=kubeconfig)
    assert not started.get("failed"), started
    assert _marks(gitops_apis, namespace)["argo"] == "true", "the user's own skip-reconcile was removed"
    assert _marks(gitops_apis, namespace)["keda"] is None


def test_an_argo_app_with_a_custom_instance_label_key_is_found_by_its_status_resources(kube, kubeconfig, namespace,
                                                                                       app_factory, gitops_apis):
    """application.instanceLabelKey set to argocd.argoproj.io/instance in argocd-cm (to keep clear of Helm's label):
    the workload does not name its Application the default way; the Application's status.resources lists it."""
    web = app_factory(kind="Deployment", name="web", replicas=1)
    kube.patch("Deployment", namespace, "web", {"metadata": {"labels": {"argocd.argoproj.io/instance": "shop-prod"}}})
    argo = GITOPS_APIS[0]
    _create(gitops_apis, argo, namespace, "shop-prod", {
        "spec": {"destination": {"namespace": namespace}, "syncPolicy": {"automated": {"selfHeal": True}}},
        "status": {"resources": [{"group": "apps", "version": "v1", "kind": "Deployment", "namespace": namespace,
                                  "name": "web"}]}})
    _create(gitops_apis, argo, namespace, "unrelated", {"spec": {}, "status": {"resources": [
        {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": namespace, "name": "api"}]}})
    make_session(kubeconfig, namespace)
    args = {"session": namespace, "namespace": namespace, "pvcs": web["pvcs"], "pause_gitops": True}

    def skip(name):
        return (_get(gitops_apis, argo, namespace, name)["metadata"].get("annotations") or {}).get(ARGO_SKIP)

    stopped = run_module("workload_scale", args, kubeconfig=kubeconfig)
    assert not stopped.get("failed"), stopped
    assert [(g["kind"], g["name"], g["result"]) for g in stopped["gitops"] if g["kind"] == "Application"] == [
        ("Application", "shop-prod", "paused")], stopped["gitops"]
    assert (skip("shop-prod"), skip("unrelated")) == ("true", None)
    started = run_module("workload_scale", dict(args, state="started"), kubeconfig=kubeconfig)
    assert not started.get("failed"), started
    assert skip("shop-prod") is None


def test_as_a_service_account_with_the_optional_rules(api_client, kube, kubeconfig, namespace, app_factory,
                                                      gitops_apis):
    """docs/rbac.yml's required + optional rules are enough for the pauses (real RBAC, impersonated)."""
    pvcs = _managed_app(kube, gitops_apis, namespace, app_factory)
    make_session(kubeconfig, namespace)
    args = {"session": namespace, "namespace": namespace, "pvcs": pvcs, "pause_gitops": True}
    with ph.ServiceAccountGrant(api_client, [namespace], optional=True) as grant:
        stopped = run_module("workload_scale", args, kubeconfig=kubeconfig, env=grant.env())
        assert not stopped.get("failed") and len(stopped["gitops"]) == 4, stopped
        assert _marks(gitops_apis, namespace) == PAUSED
        started = run_module("workload_scale", dict(args, state="started"), kubeconfig=kubeconfig, env=grant.env())
        assert not started.get("failed"), started
    assert _marks(gitops_apis, namespace)["keda"] is None


@pytest.mark.parametrize("group,resource,verb", [
    ("argoproj.io", "applications", "patch"),
    ("argoproj.io", "applications", "list"),
    ("keda.sh", "scaledobjects", "patch"),
    ("kustomize.toolkit.fluxcd.io", "kustomizations", "get"),
])
def test_without_an_optional_rule_the_stop_names_it_and_changes_nothing(api_client, kube, kubeconfig, namespace,
                                                                        app_factory, gitops_apis, group, resource,
                                                                        verb):
    pvcs = _managed_app(kube, gitops_apis, namespace, app_factory)
    make_session(kubeconfig, namespace)
    args = {"session": namespace, "namespace": namespace, "pvcs": pvcs, "pause_gitops": True}
    drop = ("velero-data-restore-gitops", group, resource, verb)
    with ph.ServiceAccountGrant(api_client, [namespace], optional=True, drop=drop) as grant:
        stopped = run_module("workload_scale", args, kubeconfig=kubeconfig, env=grant.env())
    want = "missing RBAC permission verb=%s resource=%s apiGroup=%s" % (verb, resource, group)
    assert stopped.get("failed") and want in stopped["msg"], stopped
    if resource == "scaledobjects":  # refused after the Application and the Kustomization were paused
        assert "No workload was stopped; session %s paused Application %s/shop" % (namespace, namespace) \
            in stopped["msg"], stopped["msg"]
    # the workloads were not stopped while a manager could not be paused (it would scale them back up)
    assert kube.get("Deployment", namespace, "web")["spec"]["replicas"] == 1
    assert kube.get("StatefulSet", namespace, "db")["spec"]["replicas"] == 1
    # pauses applied before the refused one are in the journal: state=started (what the playbooks' rescue runs)
    # puts every manager back as it was
    started = run_module("workload_scale", dict(args, state="started"), kubeconfig=kubeconfig)
    assert not started.get("failed"), started
    marks = _marks(gitops_apis, namespace)
    assert all(marks[name] in (None, RESUMED[name]) for name in marks), (marks, started)  # None: never paused


def test_without_pause_gitops_a_keda_scaled_workload_is_refused_before_any_change(kube, kubeconfig, namespace,
                                                                                  app_factory, gitops_apis):
    """KEDA would start the stopped Deployment again (minReplicaCount 1) while its volumes are restored."""
    pvcs = _managed_app(kube, gitops_apis, namespace, app_factory)
    make_session(kubeconfig, namespace)
    args = {"session": namespace, "namespace": namespace, "pvcs": pvcs}
    refused = run_module("workload_scale", args, kubeconfig=kubeconfig)
    assert refused.get("failed"), refused
    assert "Deployment %s/web is scaled by KEDA ScaledObject %s/web-scaler" % (namespace, namespace) \
        in refused["msg"], refused["msg"]
    assert kube.get("Deployment", namespace, "web")["spec"]["replicas"] == 1
    assert kube.get("StatefulSet", namespace, "db")["spec"]["replicas"] == 1
    assert _marks(gitops_apis, namespace) == {name: None for name in PAUSED}

    # paused by the user at zero replicas: KEDA keeps it stopped, the stop goes on (Flux's labels are warned about)
    keda = GITOPS_APIS[3]
    gitops_apis.patch_namespaced_custom_object(keda[0], keda[1], namespace, keda[3], "web-scaler",
                                               {"metadata": {"annotations": {KEDA_PAUSED: "0"}}})
    stopped = run_module("workload_scale", args, kubeconfig=kubeconfig)
    assert not stopped.get("failed"), stopped
    assert kube.get("Deployment", namespace, "web")["spec"]["replicas"] == 0
    assert [w for w in stopped.get("warnings", []) if "managed by Flux" in w], stopped.get("warnings")
    started = run_module("workload_scale", dict(args, state="started"), kubeconfig=kubeconfig)
    assert not started.get("failed"), started


def test_without_the_optional_rules_the_keda_check_is_a_warning(api_client, kube, kubeconfig, namespace, app_factory,
                                                                gitops_apis):
    """docs/rbac.yml's required rules alone: the LIST of ScaledObjects is forbidden, the stop warns and goes on."""
    pvcs = _managed_app(kube, gitops_apis, namespace, app_factory)
    make_session(kubeconfig, namespace)
    args = {"session": namespace, "namespace": namespace, "pvcs": pvcs}
    with ph.ServiceAccountGrant(api_client, [namespace]) as grant:
        stopped = run_module("workload_scale", args, kubeconfig=kubeconfig, env=grant.env())
        assert not stopped.get("failed"), stopped
        assert [w for w in stopped.get("warnings", []) if "cannot list the KEDA ScaledObjects of namespace %s"
                % namespace in w], stopped.get("warnings")
        started = run_module("workload_scale", dict(args, state="started"), kubeconfig=kubeconfig, env=grant.env())
        assert not started.get("failed"), started
