# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Least privilege (issue 6 §4): docs/rbac.yml is enough, each required rule is needed, no secret leaks.

* static: every Kube facade call in plugins/module_utils (kind × verb) is covered by docs/rbac.yml;
* against the real RBAC authorizer of the test cluster: a ServiceAccount bound ONLY to the required
  rules runs the modules (impersonated through kubernetes.core's ``impersonate_user``, here via
  K8S_AUTH_IMPERSONATE_USER which every module honours) and the playbooks; dropping one required
  verb makes a NAMED step fail with ``missing RBAC permission verb=... resource=... apiGroup=...``;
* secrets: the ServiceAccount's token passed as ``api_key``, the kubeconfig's client key/cert and the
  DownloadRequest URL signature never appear in results or ``-vvv`` output;
* helper pods run non-root with all capabilities dropped.
"""

import ast
import base64
import glob
import os
import re
import sys
import threading

import pytest
import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ansible_run  # noqa: E402 pylint: disable=wrong-import-position
import proof_helpers as ph  # noqa: E402 pylint: disable=wrong-import-position

REPO = ph.REPO
MODULE_UTILS = os.path.join(REPO, "plugins", "module_utils")
VERB = {"get": "get", "list": "list", "watch": "watch", "create": "create", "patch": "patch",
        "replace": "update", "delete": "delete"}
# kube.py helpers taking (kube, kind, ...): the verbs they use.
HELPERS = {"create_or_take": ("create", "get"), "get_many": ("get", "list")}
# Steps only an optional object of docs/rbac.yml grants: the cleanup (claim_patch state=freed, velero-data-restore-cleanup).
OPTIONAL_FUNCTIONS = {"free", "_free_plan", "_wait_pvs_gone"}
# Kinds only optional objects grant: GitOps pauses, OpenShift, the nodes' CSI attach limits and taints, a storage
# location's CA Secret (a 403 is a warning or a narrower check).
OPTIONAL_KINDS = {"ARGO_APPLICATION", "FLUX_KUSTOMIZATION", "FLUX_HELM_RELEASE", "KEDA_SCALED_OBJECT",
                  "DEPLOYMENT_CONFIG", "CSI_NODE", "SECRET", "NODE"}


# ----------------------------------------------------------------------------- static coverage
def _kube_module():
    sys.path.insert(0, os.path.join(REPO, "collections"))
    from ansible_collections.velero.data_restore.plugins.module_utils import kube as k  # pylint: disable=import-error
    return k


def _calls_in_module_utils():
    """[(file:line, KIND constant, verb, function)] of every Kube call whose kind is a literal k.KIND, with the name
    of the function (innermost def) that makes it."""
    found = []
    for path in sorted(glob.glob(os.path.join(MODULE_UTILS, "*.py"))):
        if path.endswith("kube.py"):
            continue
        with open(path) as handle:
            tree = ast.parse(handle.read())
        owner = {}
        for func_def in ast.walk(tree):  # outer defs come first, so the innermost one is written last
            if isinstance(func_def, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(func_def):
                    owner[id(inner)] = func_def.name
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            where = "%s:%s" % (os.path.basename(path), node.lineno)
            if isinstance(func, ast.Name) and func.id == "wait_for" and len(node.args) >= 2:
                kind = node.args[1]
                verbs = ("list", "watch")
            elif isinstance(func, ast.Attribute) and func.attr in HELPERS and len(node.args) >= 2:
                kind = node.args[1]  # k.create_or_take(kube, k.KIND, ...), k.get_many(kube, k.KIND, ...)
                verbs = HELPERS[func.attr]
            elif isinstance(func, ast.Attribute) and func.attr == "create_many" and _is_kube(func.value):
                kind = node.args[0]  # with label= or same=, an object created meanwhile is read (create_or_take)
                verbs = ("create", "get") if any(kw.arg in ("label", "same") for kw in node.keywords) else ("create",)
            elif isinstance(func, ast.Attribute) and func.attr in VERB and _is_kube(func.value):
                kind = node.args[0]
                verbs = (VERB[func.attr],)
            else:
                continue
            if isinstance(kind, ast.Attribute) and isinstance(kind.value, ast.Name) and kind.value.id == "k":
                for verb in verbs:
                    found.append((where, kind.attr, verb, owner.get(id(node))))
    return found


def _is_kube(node):
    return (isinstance(node, ast.Name) and node.id == "kube") or \
        (isinstance(node, ast.Attribute) and node.attr in ("kube", "_kube"))


def test_rbac_yml_covers_every_call_in_module_utils():
    k = _kube_module()
    calls = _calls_in_module_utils()
    assert len(calls) > 20, "the AST scan found too few Kube calls: %r" % calls
    required = ph.rbac_usage.permissions(ph.required_documents())
    everything = ph.rbac_usage.permissions(ph.rbac_documents())
    missing = []
    for where, const, verb, function in calls:
        kind = getattr(k, const)
        need = (k.api_group(kind), kind.plural, verb)
        pool = everything if const in OPTIONAL_KINDS or function in OPTIONAL_FUNCTIONS else required
        if need not in pool:
            missing.append("%s: %s %s (apiGroup %r)" % (where, verb, kind.plural, need[0]))
    assert not missing, "docs/rbac.yml lacks rules used by the code:\n" + "\n".join(sorted(set(missing)))


def test_rbac_yml_every_rule_is_commented_and_labelled():
    with open(ph.RBAC_FILE) as handle:
        text = handle.read()
    docs = ph.rbac_documents()
    assert {d["metadata"]["labels"]["data-restore.ansible/rbac"] for d in docs} == {"required", "optional"}
    # a comment line precedes every "- apiGroups" rule (within its document)
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.strip().startswith("- apiGroups"):
            prev = lines[index - 1].strip()
            assert prev.startswith("#"), "rule at line %d has no comment" % (index + 1)
    optional = [d["metadata"]["name"] for d in docs if d["metadata"]["labels"]["data-restore.ansible/rbac"] == "optional"]
    assert "velero-data-restore-gitops" in optional and "velero-data-restore-openshift" in optional


# ----------------------------------------------------------------------------- cluster
def _has_module(name):
    return os.path.exists(os.path.join(REPO, "plugins", "modules", name + ".py"))


def _ok(result, step):
    assert not result.get("failed"), "step %s failed: %s" % (step, result.get("msg"))
    return result


def _module_flow(kubeconfig, namespace, pvcs, env, stop_at=None, tmpdir="/tmp"):
    """Named steps of an in-place restore done module by module, as ONE playbook run (one task per
    step, the play stops at the first failure). Returns {step: result} of the steps that ran."""
    session = "rbac-" + namespace
    steps = [
        ("session", "restore_session", dict(session=session, mode="in_place", backup={"name": "unknown"})),
        ("quiesce", "workload_scale", dict(session=session, namespace=namespace, pvcs=pvcs, state="stopped",
                                           wait_timeout=60)),
        ("helper_pod", "restore_helper_pod", dict(session=session, namespace=namespace, pvcs=pvcs, wait_timeout=60)),
        ("helper_pod_absent", "restore_helper_pod", dict(session=session, namespace=namespace, state="absent",
                                                         wait_timeout=60)),
        ("resume", "workload_scale", dict(session=session, namespace=namespace, pvcs=pvcs, state="started",
                                          wait_timeout=60)),
        ("session_absent", "restore_session", dict(session=session, state="absent", force=True)),
    ]
    tasks = []
    for step, module, args in steps:
        tasks.append({"name": step, "velero.data_restore." + module: args})
        if step == stop_at:
            break
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    path = os.path.join(str(tmpdir), "flow-%s.yml" % namespace)
    with open(path, "w") as handle:
        yaml.safe_dump(play, handle)
    rc, data, stdout, stderr = ansible_run.run_playbook(path, kubeconfig=kubeconfig, env=env, timeout=300)
    results = dict(ansible_run.task_results(data))
    assert results, "ansible produced no result (rc=%s): %s %s" % (rc, stdout[-2000:], stderr[-2000:])
    return results


def _admin_cleanup(api_client, namespace):
    """Remove the session ConfigMap; the namespace (helper pods, workloads) goes with the fixture."""
    from kubernetes import client as kc
    core = kc.CoreV1Api(api_client)
    for cm in core.list_namespaced_config_map(ph.VELERO_NS).items:
        if cm.metadata.name.endswith("rbac-" + namespace):
            core.delete_namespaced_config_map(cm.metadata.name, ph.VELERO_NS)


@pytest.mark.integration
@pytest.mark.sim_only
def test_module_steps_pass_with_exactly_the_documented_rules(api_client, kubeconfig, namespace, app_factory, tmp_path):
    app = app_factory(kind="Deployment", name="web")
    with ph.ServiceAccountGrant(api_client, [namespace]) as grant:
        results = _module_flow(kubeconfig, namespace, app["pvcs"], grant.env(), tmpdir=tmp_path)
        assert list(results) == ["session", "quiesce", "helper_pod", "helper_pod_absent", "resume", "session_absent"]
        for step, result in results.items():
            _ok(result, step)
        assert results["quiesce"]["changed"] and results["helper_pod"]["changed"]


# (role document, apiGroup, resource, verb, step that must fail) - the key rules of every step; the
# static test above covers the rest of docs/rbac.yml.
DROPS = [
    ("velero-data-restore-velero", "", "configmaps", "create", "session"),
    ("velero-data-restore-workloads", "apps", "deployments", "patch", "quiesce"),
    ("velero-data-restore-workloads", "apps", "replicasets", "get", "quiesce"),
    ("velero-data-restore-workloads", "", "pods", "create", "helper_pod"),
    ("velero-data-restore-workloads", "", "persistentvolumeclaims", "get", "helper_pod"),
    ("velero-data-restore-velero", "", "pods", "list", "helper_pod"),
    ("velero-data-restore-workloads", "", "pods", "delete", "helper_pod_absent"),
]


@pytest.mark.integration
@pytest.mark.sim_only
@pytest.mark.parametrize("role,group,resource,verb,step", DROPS,
                         ids=["%s-%s-%s" % (d[2], d[3], d[4]) for d in DROPS])
def test_dropping_a_required_rule_fails_a_named_step(api_client, kubeconfig, namespace, app_factory,
                                                     role, group, resource, verb, step, tmp_path):
    app = app_factory(kind="Deployment", name="web")
    with ph.ServiceAccountGrant(api_client, [namespace], drop=(role, group, resource, verb)) as grant:
        results = _module_flow(kubeconfig, namespace, app["pvcs"], grant.env(), stop_at=step, tmpdir=tmp_path)
        failed = [(s, r) for s, r in results.items() if r.get("failed")]
        assert failed, "no step failed without %s %s" % (verb, resource)
        name, result = failed[0]
        assert name == step, "expected step %s to fail, %s failed: %s" % (step, name, result.get("msg"))
        msg = result.get("msg", "")
        assert "missing RBAC permission verb=%s resource=%s" % (verb, resource) in msg, msg
        assert "apiGroup=%s" % (group or '""') in msg, msg
        assert "Traceback" not in (result.get("exception") or "") + msg
    _admin_cleanup(api_client, namespace)


def _kubeconfig_secrets(kubeconfig):
    with open(kubeconfig) as handle:
        conf = yaml.safe_load(handle)
    out = {}
    for user in conf.get("users") or []:
        for key, value in (user.get("user") or {}).items():
            if key in ("client-key-data", "client-certificate-data", "token", "password"):
                out["kubeconfig " + key] = value
                if key.endswith("-data"):
                    decoded = base64.b64decode(value).decode(errors="replace")
                    # the PEM body lines
                    body = [ln for ln in decoded.splitlines() if ln and not ln.startswith("-----")]
                    if body:
                        out["kubeconfig %s (decoded)" % key] = body[len(body) // 2]
    return out


@pytest.mark.integration
@pytest.mark.sim_only
def test_no_secret_in_results_or_verbose_output(api_client, kubeconfig, namespace, app_factory, backup_factory,
                                                tmp_path):
    app = app_factory(kind="Deployment", name="web")
    backup = backup_factory(method="fs")
    with open(kubeconfig) as handle:
        conf = yaml.safe_load(handle)
    cluster = conf["clusters"][0]["cluster"]
    ca = tmp_path / "ca.crt"
    ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    signatures = []
    stop = threading.Event()

    def watch_download_requests():
        from kubernetes import client as kc, watch
        api = kc.CustomObjectsApi(api_client)
        w = watch.Watch()
        while not stop.is_set():
            for event in w.stream(api.list_namespaced_custom_object, "velero.io", "v1", ph.VELERO_NS,
                                  "downloadrequests", timeout_seconds=2):
                url = ((event["object"].get("status") or {}).get("downloadURL")) or ""
                if "X-Amz-Signature=" in url:
                    signatures.append(url.split("X-Amz-Signature=")[1].split("&")[0])
                if stop.is_set():
                    break

    watcher = threading.Thread(target=watch_download_requests, daemon=True)
    watcher.start()
    outputs = []
    with ph.ServiceAccountGrant(api_client, [namespace]) as grant:
        token = grant.token()
        auth = dict(host=cluster["server"], api_key=token, ca_cert=str(ca))
        session = "secrets-" + namespace
        runs = [("restore_session", dict(auth, session=session, mode="in_place", backup={"name": backup["metadata"]["name"]}))]
        if _has_module("backup_info"):
            runs.append(("backup_info", dict(auth, name=backup["metadata"]["name"])))
        if _has_module("restore_plan"):
            runs.append(("restore_plan", dict(auth, backup=backup["metadata"]["name"], namespace=namespace)))
        runs.append(("restore_helper_pod", dict(auth, session=session, namespace=namespace, pvcs=app["pvcs"],
                                                wait_timeout=60)))
        runs.append(("restore_helper_pod", dict(auth, session=session, namespace=namespace, state="absent")))
        runs.append(("restore_session", dict(auth, session=session, state="absent", force=True)))
        for module, args in runs:
            play = [{"hosts": "localhost", "gather_facts": False,
                     "tasks": [{"name": "under test", "velero.data_restore." + module: args, "ignore_errors": True}]}]
            path = tmp_path / ("play-%d.yml" % len(outputs))
            path.write_text(yaml.safe_dump(play))
            rc, data, stdout, stderr = ansible_run.run_playbook(str(path), args=("-vvv",),
                                                                env={"K8S_AUTH_KUBECONFIG": ""})
            del rc
            outputs += [stdout, stderr]
            results = ansible_run.task_results(data)
            assert results, "no result from %s: %s" % (module, stderr[-2000:])
            assert not results[-1][1].get("failed") or module in ("backup_info", "restore_plan"), \
                "%s failed: %s" % (module, results[-1][1].get("msg"))
    stop.set()
    secrets_ = {"api_key (ServiceAccount token)": token}
    secrets_.update(_kubeconfig_secrets(kubeconfig))
    for index, sig in enumerate(signatures):
        secrets_["X-Amz-Signature #%d" % index] = sig
    ph.assert_no_secret(outputs, secrets_, "ansible -vvv output")
    reports = glob.glob(os.path.join(REPO, "reports", "*")) + glob.glob(str(tmp_path / "*report*"))
    ph.assert_no_secret([open(p, errors="replace").read() for p in reports if os.path.isfile(p)], secrets_, "report")
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in "".join(outputs), "api_key not masked in -vvv invocation"
    if _has_module("backup_info"):
        assert signatures, "backup_info created no DownloadRequest with a signed URL: the URL check proved nothing"


@pytest.mark.integration
@pytest.mark.sim_only
def test_helper_pod_runs_non_root_without_capabilities(api_client, kubeconfig, namespace, app_factory):
    from kubernetes import client as kc
    app = app_factory(kind="Deployment", name="web")
    session = "secctx-" + namespace
    env = {}
    _ok(ansible_run.run_module("restore_session", dict(session=session, mode="in_place", backup={"name": "x"}),
                               kubeconfig=kubeconfig), "session")
    try:
        _ok(ansible_run.run_module("workload_scale", dict(session=session, namespace=namespace, pvcs=app["pvcs"],
                                                          state="stopped"), kubeconfig=kubeconfig, env=env), "quiesce")
        _ok(ansible_run.run_module("restore_helper_pod", dict(session=session, namespace=namespace, pvcs=app["pvcs"],
                                                              wait_timeout=60), kubeconfig=kubeconfig), "helper")
        pods = kc.CoreV1Api(api_client).list_namespaced_pod(
            namespace, label_selector="data-restore.ansible/session=%s" % session).items
        assert pods, "no helper pod found by session label"
        for pod in pods:
            raw = api_client.sanitize_for_serialization(pod)
            pod_ctx = raw["spec"].get("securityContext") or {}
            for ctr in raw["spec"].get("initContainers", []) + raw["spec"]["containers"]:
                ctx = ctr.get("securityContext") or {}
                non_root = ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot"))
                uid = ctx.get("runAsUser", pod_ctx.get("runAsUser"))
                assert non_root is True and uid not in (None, 0), "%s runs as root: %s" % (ctr["name"], ctx)
                assert "ALL" in ((ctx.get("capabilities") or {}).get("drop") or []), ctr["name"]
                assert not ctx.get("privileged") and ctx.get("allowPrivilegeEscalation") is False, ctr["name"]
    finally:
        ansible_run.run_module("restore_helper_pod", dict(session=session, namespace=namespace, state="absent"),
                               kubeconfig=kubeconfig)
        ansible_run.run_module("workload_scale", dict(session=session, namespace=namespace, pvcs=app["pvcs"],
                                                      state="started"), kubeconfig=kubeconfig)
        ansible_run.run_module("restore_session", dict(session=session, state="absent", force=True),
                               kubeconfig=kubeconfig)


def _report_texts(directory):
    out = []
    for path in glob.glob(os.path.join(str(directory), "*")):
        if os.path.isfile(path):
            with open(path, errors="replace") as handle:
                out.append(handle.read())
    return out


FLOWS = [("restore_in_place.yml", {}), ("restore_replace.yml", {})]


@pytest.mark.integration
@pytest.mark.sim_only
@pytest.mark.parametrize("playbook,extra", FLOWS, ids=["in_place", "replace"])
def test_playbook_flow_as_service_account(api_client, kubeconfig, namespace, app_factory, backup_factory, state_dir,
                                          tmp_path, playbook, extra):
    """The real flows, impersonated, bound only to the required rules; data restored; no secret in
    the -vvv output or the reports."""
    app = app_factory(kind="Deployment", name="web")
    backup = backup_factory(method="fs")["metadata"]["name"]
    ph.scramble(api_client, state_dir, app)
    with ph.ServiceAccountGrant(api_client, [namespace]) as grant, ph.SignatureWatcher(api_client) as sigs:
        rc, results, failed, stdout, stderr = ph.run_restore(playbook, kubeconfig, dict(
            extra, source_namespace=namespace, backup=backup, report_directory=str(tmp_path)),
            env=grant.env(), args=("-vvv",))
    assert rc == 0 and not failed, "failed: %s" % [(n, r.get("msg")) for n, r in failed]
    ph.assert_data_matches(api_client, state_dir, app)
    ph.replicas_back(api_client, app)
    secrets_ = _kubeconfig_secrets(kubeconfig)
    secrets_.update(sigs.secrets())
    assert sigs.signatures, "no DownloadRequest URL was served: the signature check proved nothing"
    ph.assert_no_secret([stdout, stderr], secrets_, "ansible-playbook -vvv output")
    reports = _report_texts(tmp_path)
    assert reports, "the flow wrote no report into %s" % tmp_path
    ph.assert_no_secret(reports, secrets_, "report")


# (playbook, role document, apiGroup, resource, verb, substring of the task that must fail)
FLOW_DROPS = [
    ("restore_in_place.yml", "velero-data-restore-velero", "velero.io", "podvolumerestores", "create",
     "PodVolumeRestores"),
    ("restore_replace.yml", "velero-data-restore-cluster", "", "persistentvolumes", "patch", ""),
]


@pytest.mark.integration
@pytest.mark.sim_only
@pytest.mark.parametrize("playbook,role,group,resource,verb,task", FLOW_DROPS,
                         ids=["in_place-podvolumerestores-create", "replace-persistentvolumes-patch"])
def test_playbook_flow_names_the_missing_permission(api_client, kubeconfig, namespace, app_factory, backup_factory,
                                                    tmp_path, playbook, role, group, resource, verb, task):
    app = app_factory(kind="Deployment", name="web")
    backup = backup_factory(method="fs")["metadata"]["name"]
    with ph.ServiceAccountGrant(api_client, [namespace], drop=(role, group, resource, verb)) as grant:
        rc, results, failed, stdout, stderr = ph.run_restore(playbook, kubeconfig, dict(
            source_namespace=namespace, backup=backup, report_directory=str(tmp_path)), env=grant.env())
    want = "missing RBAC permission verb=%s resource=%s apiGroup=%s" % (verb, resource, group or '""')
    hits = [(name, r.get("msg")) for name, r in results if want in (r.get("msg") or "")]
    assert rc != 0 and hits, "no task reported %r; failed tasks: %s" % (want, [(n, r.get("msg")) for n, r in failed])
    assert task in hits[0][0], hits
    # workloads resumed by the failure handling (on_failure default: resume)
    ph.replicas_back(api_client, app)
    del stdout, stderr


@pytest.mark.integration
def test_placeholder_pod_runs_non_root_without_capabilities(api_client):
    """data_download's placeholder consumer pod, built from the settings resolved on the cluster
    (Velero's plugin ConfigMap if any, else the restricted default)."""
    _kube_module()
    from kubernetes.dynamic import DynamicClient
    from ansible_collections.velero.data_restore.plugins.module_utils import data_download, helper_pod  # pylint: disable=import-error
    from ansible_collections.velero.data_restore.plugins.module_utils.kube import Kube  # pylint: disable=import-error
    settings = helper_pod.resolve_settings(Kube(DynamicClient(api_client)), ph.VELERO_NS)
    for mode in ("Filesystem", "Block"):
        body = data_download.placeholder_body("secctx", "ns", "claim", mode, settings)
        pod_ctx = body["spec"].get("securityContext") or {}
        for ctr in body["spec"]["containers"]:
            ctx = ctr.get("securityContext") or {}
            assert ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is True, ctx
            assert ctx.get("runAsUser", pod_ctx.get("runAsUser")) not in (None, 0), ctx
            assert "ALL" in ((ctx.get("capabilities") or {}).get("drop") or []), ctx
            assert ctx.get("allowPrivilegeEscalation") is False and not ctx.get("privileged"), ctx
        assert body["spec"].get("automountServiceAccountToken") is False


def _bound_volumes(api_client, namespace, pvcs):
    from kubernetes import client as kc
    core = kc.CoreV1Api(api_client)
    return dict((name, core.read_namespaced_persistent_volume_claim(name, namespace).spec.volume_name) for name in pvcs)


def _pv_exists(api_client, name):
    from kubernetes import client as kc
    from kubernetes.client.rest import ApiException
    try:
        kc.CoreV1Api(api_client).read_persistent_volume(name)
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


@pytest.mark.integration
@pytest.mark.sim_only
def test_cleanup_as_service_account_needs_only_the_cleanup_object(api_client, kubeconfig, namespace, app_factory,
                                                                  backup_factory, state_dir, tmp_path):
    """playbooks/cleanup.yml after a replace, impersonated. With the required rules only it fails naming the
    missing permission and changes nothing (the old volume is kept, the session too); with the optional
    velero-data-restore-cleanup object added it frees the old volume and deletes the session."""
    app = app_factory(kind="Deployment", name="web")
    backup = backup_factory(method="fs")["metadata"]["name"]
    ph.scramble(api_client, state_dir, app)
    session = "rbac-clean-" + namespace[-8:]
    old_pvs = _bound_volumes(api_client, namespace, app["pvcs"])
    try:
        with ph.ServiceAccountGrant(api_client, [namespace]) as grant:
            rc, _results, failed, _out, _err = ph.run_restore("restore_replace.yml", kubeconfig, dict(
                source_namespace=namespace, backup=backup, session=session, report_directory=str(tmp_path)),
                env=grant.env())
            assert rc == 0 and not failed, [(n, r.get("msg")) for n, r in failed]
            ph.assert_data_matches(api_client, state_dir, app)
            assert set(_bound_volumes(api_client, namespace, app["pvcs"]).values()).isdisjoint(old_pvs.values())
            assert all(_pv_exists(api_client, pv) for pv in old_pvs.values()), "replace must keep the old volumes"

            rc, results, failed, _out, _err = ph.run_restore("cleanup.yml", kubeconfig, dict(
                session=session, confirm=True), env=grant.env())
            want = 'missing RBAC permission verb=delete resource=persistentvolumes apiGroup=""'
            assert rc != 0 and any(want in (r.get("msg") or "") for _n, r in failed), (
                [(n, r.get("msg")) for n, r in failed])
            assert all(_pv_exists(api_client, pv) for pv in old_pvs.values())
            assert kube_configmap(api_client, "data-restore-" + session) is not None

        with ph.ServiceAccountGrant(api_client, [namespace], optional=["velero-data-restore-cleanup"]) as grant:
            rc, results, failed, _out, _err = ph.run_restore("cleanup.yml", kubeconfig, dict(
                session=session, confirm=True), env=grant.env())
            assert rc == 0 and not failed, [(n, r.get("msg")) for n, r in failed]
        assert not any(_pv_exists(api_client, pv) for pv in old_pvs.values()), "cleanup left an old volume"
        assert kube_configmap(api_client, "data-restore-" + session) is None
        ph.assert_data_matches(api_client, state_dir, app)  # the restored volumes stay
        del results
    finally:
        _admin_cleanup(api_client, namespace)
        if kube_configmap(api_client, "data-restore-" + session) is not None:
            from kubernetes import client as kc
            kc.CoreV1Api(api_client).delete_namespaced_config_map("data-restore-" + session, ph.VELERO_NS)


def kube_configmap(api_client, name):
    from kubernetes import client as kc
    from kubernetes.client.rest import ApiException
    try:
        return kc.CoreV1Api(api_client).read_namespaced_config_map(name, ph.VELERO_NS)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _hook_log(api_client, session):
    import json
    cm = kube_configmap(api_client, "data-restore-" + session)
    return json.loads(cm.data["session.json"]).get("hooks") or [] if cm is not None else []


@pytest.mark.integration
@pytest.mark.sim_only
@pytest.mark.parametrize("with_hooks_object", [False, True], ids=["required_only", "with_hooks_object"])
def test_command_hook_as_service_account_needs_the_hooks_object(api_client, kubeconfig, namespace, app_factory,
                                                                backup_factory, tmp_path, with_hooks_object):
    """A pre- and a post-restore command hook, run as a ServiceAccount (its token: impersonation does not reach
    k8s_exec's WebSocket). pods/exec is only in the optional velero-data-restore-hooks object: without it the
    apiserver refuses the exec (403, recorded in the hook log); with it the exec is authorized and reaches the
    node (the test cluster has no kubelet to run it, so it fails there - never with a 403)."""
    app = app_factory(kind="Deployment", name="web")
    backup = backup_factory(method="fs")["metadata"]["name"]
    session = "rbac-hook-" + namespace[-8:]
    hook = {"name": "flush", "command": ["sh", "-c", "sync"], "pod_selector": "app=web", "on_error": "continue",
            "timeout": 10}
    optional = ["velero-data-restore-hooks"] if with_hooks_object else []
    try:
        with ph.ServiceAccountGrant(api_client, [namespace], optional=optional) as grant:
            rc, _results, failed, _out, _err = ph.run_restore("restore_in_place.yml", grant.token_kubeconfig(
                kubeconfig, tmp_path), dict(
                source_namespace=namespace, backup=backup, session=session, report_directory=str(tmp_path),
                pre_restore_hooks=[hook], post_restore_hooks=[dict(hook, name="resume")]))
        assert rc == 0 and not failed, [(n, r.get("msg")) for n, r in failed]
        log = [h for h in _hook_log(api_client, session) if h.get("type") == "command"]
        assert [h["phase"] for h in log] == ["pre", "post"], log
        for entry in log:
            # The status itself, not the digits: an audit-id or a date in the message can hold "403".
            forbidden = bool(re.search(r'"code":\s*403\b|Handshake status 403\b|"reason":\s*"Forbidden"',
                                       entry["message"]))
            assert forbidden != with_hooks_object, entry
            if not with_hooks_object:
                assert '"pods/exec"' in entry["message"] or "pods/exec" in entry["message"], entry
    finally:
        _admin_cleanup(api_client, namespace)
        if kube_configmap(api_client, "data-restore-" + session) is not None:
            from kubernetes import client as kc
            kc.CoreV1Api(api_client).delete_namespaced_config_map("data-restore-" + session, ph.VELERO_NS)
