# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared helpers of the proof suites (rbac, bad_input, faults, bench).

* RBAC: bind a ServiceAccount to exactly the rules of docs/rbac.yml (optionally minus one verb);
* zero-mutation check: snapshot every object (namespaced kinds in given namespaces + PVs);
* "nothing lost": every PV that held data still exists or is bound to the workload;
* secret scanning of outputs.
"""

import hashlib
import json
import os
import secrets
import sys
import time

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RBAC_FILE = os.path.join(REPO, "docs", "rbac.yml")
sys.path.insert(0, os.path.join(REPO, "tools"))

import rbac_usage  # noqa: E402 pylint: disable=wrong-import-position,import-error

VELERO_NS = os.environ.get("VELERO_NAMESPACE", "velero")

# Kinds whose objects other actors write all the time (not mutations of the collection).
NOISY = {"events", "leases", "endpoints", "endpointslices"}


# ----------------------------------------------------------------------------- RBAC
def rbac_documents():
    """The RBAC objects of docs/rbac.yml (read by tools/rbac_usage.py)."""
    return rbac_usage.rbac_documents()


def required_documents():
    return [d for d in rbac_documents() if d["metadata"]["labels"]["data-restore.ansible/rbac"] == "required"]


def _without(rules, group, resource, verb):
    """Rules with ``verb`` removed from ``resource`` (split out of its rule)."""
    out, removed = [], False
    for rule in rules:
        if group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]:
            others = [r for r in rule["resources"] if r != resource]
            if others:
                out.append(dict(rule, resources=others))
            verbs = [v for v in rule["verbs"] if v != verb]
            if verbs:
                out.append(dict(rule, resources=[resource], verbs=verbs))
            removed = True
        else:
            out.append(rule)
    return out, removed


class ServiceAccountGrant(object):
    """A ServiceAccount bound only to docs/rbac.yml (minus ``drop`` = (role, group, resource, verb)).

    ``optional``: False binds the required objects only, True every optional one too, a list of names
    the required objects plus those optional ones."""

    def __init__(self, api_client, target_namespaces, velero_ns=VELERO_NS, drop=None, optional=False):
        from kubernetes import client as kc
        self.core = kc.CoreV1Api(api_client)
        self.rbac = kc.RbacAuthorizationV1Api(api_client)
        self.authz = kc.AuthorizationV1Api(api_client)
        self.suffix = secrets.token_hex(3)
        self.sa_ns = target_namespaces[0]
        self.sa = "restorer-" + self.suffix
        self.user = "system:serviceaccount:%s:%s" % (self.sa_ns, self.sa)
        self.targets = list(target_namespaces)
        self.velero_ns = velero_ns
        self.drop = drop
        self.optional = optional
        self.cluster_objects = []

    def env(self):
        return {"K8S_AUTH_IMPERSONATE_USER": self.user}

    def _wants(self, optional_name):
        if isinstance(self.optional, bool):
            return self.optional
        return optional_name in self.optional

    def __enter__(self):
        self.core.create_namespaced_service_account(self.sa_ns, {"metadata": {"name": self.sa}})
        subject = [{"kind": "ServiceAccount", "name": self.sa, "namespace": self.sa_ns}]
        dropped = False
        for doc in rbac_documents():
            labels = doc["metadata"]["labels"]
            if labels["data-restore.ansible/rbac"] != "required" and not self._wants(doc["metadata"]["name"]):
                continue
            rules = doc["rules"]
            if self.drop and self.drop[0] == doc["metadata"]["name"]:
                rules, hit = _without(rules, *self.drop[1:])
                dropped = dropped or hit
            name = "%s-%s" % (doc["metadata"]["name"], self.suffix)
            if doc["kind"] == "Role":
                self.rbac.create_namespaced_role(self.velero_ns, {"metadata": {"name": name, "labels": labels},
                                                                  "rules": rules})
                self.rbac.create_namespaced_role_binding(self.velero_ns, {
                    "metadata": {"name": name}, "subjects": subject,
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}})
                continue
            self.rbac.create_cluster_role({"metadata": {"name": name, "labels": labels}, "rules": rules})
            self.cluster_objects.append(("role", name))
            ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}
            if doc["metadata"]["name"] in ("velero-data-restore-workloads", "velero-data-restore-openshift"):
                for ns in self.targets:
                    self.rbac.create_namespaced_role_binding(ns, {"metadata": {"name": name}, "subjects": subject,
                                                                  "roleRef": ref})
            else:
                self.rbac.create_cluster_role_binding({"metadata": {"name": name}, "subjects": subject,
                                                       "roleRef": ref})
                self.cluster_objects.append(("binding", name))
        if not isinstance(self.optional, bool):
            unknown = set(self.optional) - set(d["metadata"]["name"] for d in rbac_documents())
            assert not unknown, "docs/rbac.yml has no objects %s" % sorted(unknown)
        if self.drop and not dropped:
            raise AssertionError("docs/rbac.yml has no rule %r to drop" % (self.drop,))
        # RBAC is served from informers: wait until the grant is visible.
        self.wait_allowed("create", "configmaps", "", self.velero_ns)
        return self

    def allowed(self, verb, resource, group="", namespace=None):
        review = self.authz.create_subject_access_review({
            "spec": {"user": self.user, "groups": ["system:serviceaccounts", "system:serviceaccounts:%s" % self.sa_ns,
                                                   "system:authenticated"],
                     "resourceAttributes": {"verb": verb, "resource": resource, "group": group,
                                            "namespace": namespace or ""}}})
        return bool(review.status.allowed)

    def wait_allowed(self, verb, resource, group="", namespace=None, timeout=10):
        expected = not (self.drop and self.drop[2] == resource and self.drop[3] == verb and self.drop[1] == group)
        deadline = time.monotonic() + timeout
        while self.allowed(verb, resource, group, namespace) != expected:
            if time.monotonic() > deadline:
                raise AssertionError("RBAC grant for %s not visible after %ss" % (self.user, timeout))
            time.sleep(0.1)

    def token(self, seconds=3600):
        req = self.core.create_namespaced_service_account_token(
            self.sa, self.sa_ns, {"spec": {"expirationSeconds": seconds}})
        return req.status.token

    def token_kubeconfig(self, admin_kubeconfig, directory):
        """A kubeconfig that authenticates AS the ServiceAccount (a bearer token, no client certificate).
        Impersonation is not enough for kubernetes.core.k8s_exec: the kubernetes client's WebSocket sends only
        the Authorization header (kubernetes/stream/ws_client.py create_websocket), so an exec would run as the
        impersonating admin."""
        with open(admin_kubeconfig) as handle:
            admin = yaml.safe_load(handle)
        cluster = admin["clusters"][0]
        conf = {"apiVersion": "v1", "kind": "Config", "clusters": [cluster],
                "users": [{"name": self.sa, "user": {"token": self.token()}}],
                "contexts": [{"name": self.sa, "context": {"cluster": cluster["name"], "user": self.sa}}],
                "current-context": self.sa}
        path = os.path.join(str(directory), "kubeconfig-" + self.sa)
        with open(path, "w") as handle:
            yaml.safe_dump(conf, handle)
        return path

    def __exit__(self, *exc):
        for kind, name in reversed(self.cluster_objects):
            try:
                if kind == "role":
                    self.rbac.delete_cluster_role(name)
                else:
                    self.rbac.delete_cluster_role_binding(name)
            except Exception:  # pylint: disable=broad-except
                pass
        for doc in rbac_documents():
            if doc["kind"] == "Role":
                name = "%s-%s" % (doc["metadata"]["name"], self.suffix)
                for call in (self.rbac.delete_namespaced_role_binding, self.rbac.delete_namespaced_role):
                    try:
                        call(name, self.velero_ns)
                    except Exception:  # pylint: disable=broad-except
                        pass
        return False


# ----------------------------------------------------------------------------- snapshots
def _listable(api_client):
    """(group/version, plural, namespaced) of every listable resource the server serves."""
    out = []
    raw = api_client.call_api("/api/v1", "GET", response_type="object", _return_http_data_only=True)
    for res in raw["resources"]:
        if "/" not in res["name"] and "list" in res.get("verbs", []):
            out.append(("v1", res["name"], res["namespaced"]))
    groups = api_client.call_api("/apis", "GET", response_type="object", _return_http_data_only=True)
    for group in groups["groups"]:
        gv = group["preferredVersion"]["groupVersion"]
        try:
            raw = api_client.call_api("/apis/" + gv, "GET", response_type="object", _return_http_data_only=True)
        except Exception:  # pylint: disable=broad-except
            continue
        for res in raw["resources"]:
            if "/" not in res["name"] and "list" in res.get("verbs", []):
                out.append((gv, res["name"], res["namespaced"]))
    return out


def _content_hash(obj):
    body = dict(obj)
    body.pop("status", None)
    meta = dict(body.get("metadata") or {})
    for key in ("resourceVersion", "managedFields", "generation"):
        meta.pop(key, None)
    body["metadata"] = meta
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]


def snapshot(api_client, namespaces, include_pvs=True, shared=(VELERO_NS,), tokens=None):
    """{(resource, namespace, name): (uid, resourceVersion, content hash without status)}.

    The test cluster is shared with other suites running at the same time: in the ``shared``
    namespaces (the Velero namespace) and among PVs only objects that mention one of ``tokens``
    (default: the non-shared namespaces; add backup/session names) are kept - every object the
    collection would create or change for this test names them (session plan keys, PVR/DataDownload
    target namespaces, DownloadRequest backup name, PV claimRef).
    """
    result = {}
    tokens = list(tokens or []) + [ns for ns in namespaces if ns not in shared]
    for gv, plural, namespaced in _listable(api_client):
        if plural in NOISY:
            continue
        prefix = "/api/v1" if gv == "v1" else "/apis/" + gv
        paths = []
        if namespaced:
            paths = [(ns, "%s/namespaces/%s/%s" % (prefix, ns, plural)) for ns in namespaces]
        elif plural == "persistentvolumes" and include_pvs:
            paths = [(None, "%s/%s" % (prefix, plural))]
        for ns, path in paths:
            try:
                data = api_client.call_api(path, "GET", response_type="object", _return_http_data_only=True)
            except Exception:  # pylint: disable=broad-except
                continue
            for item in data.get("items") or []:
                md = item["metadata"]
                if md["name"] == "kube-root-ca.crt":
                    continue  # published into every new namespace by kube-controller-manager
                if ns is None or ns in shared:
                    text = json.dumps(item, default=str)
                    if not any(token in text for token in tokens):
                        continue
                result[(plural, ns, md["name"])] = (md.get("uid"), md.get("resourceVersion"), _content_hash(item))
    return result


def diff_snapshots(before, after, status_tolerant_namespaces=()):
    """Human-readable list of mutations between two snapshots.

    An object whose resourceVersion changed counts as mutated, except in
    ``status_tolerant_namespaces`` (and PVs) where a change of status alone (written by the
    simulated controllers: BSL validation, pod status) is tolerated when spec/metadata are equal.
    """
    changes = []
    for key in sorted(set(before) | set(after), key=str):
        b, a = before.get(key), after.get(key)
        if b is None:
            changes.append("created %s" % (key,))
        elif a is None:
            changes.append("deleted %s" % (key,))
        elif b[0] != a[0]:
            changes.append("recreated %s" % (key,))
        elif b[1] != a[1]:
            tolerant = key[1] in status_tolerant_namespaces or key[1] is None
            if not tolerant or b[2] != a[2]:
                changes.append("modified %s (resourceVersion %s -> %s)" % (key, b[1], a[1]))
    return changes


# ----------------------------------------------------------------------------- nothing lost
def pvs_with_data(api_client, state_dir, namespaces):
    """{pv name: (namespace, claim)} of every bound PV of ``namespaces`` whose volume holds data."""
    from kubernetes import client as kc
    core = kc.CoreV1Api(api_client)
    out = {}
    for pv in core.list_persistent_volume().items:
        ref = pv.spec.claim_ref
        if not ref or ref.namespace not in namespaces:
            continue
        path = os.path.join(state_dir, "volumes", pv.metadata.name)
        has = os.path.exists(path + ".img") or (os.path.isdir(path) and any(os.scandir(path)))
        if has:
            out[pv.metadata.name] = (ref.namespace, ref.name)
    return out


def assert_nothing_lost(api_client, state_dir, before):
    """Every PV that held data before still exists (with its data) or its claim is bound again."""
    from kubernetes import client as kc
    core = kc.CoreV1Api(api_client)
    existing = {pv.metadata.name: pv for pv in core.list_persistent_volume().items}
    lost = []
    for name, (ns, claim) in before.items():
        if name in existing and os.path.exists(os.path.join(state_dir, "volumes", name)) or \
                os.path.exists(os.path.join(state_dir, "volumes", name + ".img")):
            continue
        try:
            pvc = core.read_namespaced_persistent_volume_claim(claim, ns)
            if pvc.status.phase == "Bound":
                continue
        except Exception:  # pylint: disable=broad-except
            pass
        lost.append("%s (claim %s/%s)" % (name, ns, claim))
    assert not lost, "volumes lost: %s" % ", ".join(lost)


# ----------------------------------------------------------------------------- secrets
def assert_no_secret(texts, secrets_, what="output"):
    leaks = []
    for label, value in secrets_.items():
        if not value or len(value) < 8:
            continue
        for index, text in enumerate(texts):
            if value in (text or ""):
                leaks.append("%s found in %s #%d" % (label, what, index))
    assert not leaks, "; ".join(leaks)


# ----------------------------------------------------------------------------- flows
PLAYBOOKS = os.path.join(REPO, "playbooks")


def scramble(api_client, state_dir, app):
    """Overwrite every file of every Filesystem volume of ``app`` (same names, other bytes):
    the data a restore must bring back is then exactly the backup's."""
    from sim.storage import pvc_volume_path  # pylint: disable=import-error
    from sim.velero import write_files  # pylint: disable=import-error
    for claim, files in app["files"].items():
        path = pvc_volume_path(api_client, state_dir, app["namespace"], claim)
        write_files(path, {name: b"scrambled " + secrets.token_bytes(16) for name in files})


def data_matches(api_client, state_dir, app):
    """{claim: True|reason} comparing each PVC's current volume with the data of ``app`` byte for byte."""
    from sim.storage import pvc_volume_path  # pylint: disable=import-error
    from sim.velero import read_tree  # pylint: disable=import-error
    out = {}
    for claim, files in app["files"].items():
        try:
            tree = read_tree(pvc_volume_path(api_client, state_dir, app["namespace"], claim))
        except Exception as exc:  # pylint: disable=broad-except
            out[claim] = "unreadable: %s" % exc
            continue
        bad = [name for name, data in files.items() if tree.get(name) != data]
        out[claim] = True if not bad else "differs: %s" % ", ".join(sorted(bad))
    return out


def assert_data_matches(api_client, state_dir, *apps):
    problems = {}
    for app in apps:
        problems.update({k: v for k, v in data_matches(api_client, state_dir, app).items() if v is not True})
    assert not problems, "restored data differs from the backup: %s" % problems


def replicas_back(api_client, app, timeout=60):
    """Wait until the workload of ``app`` has its ready replicas back (returns True) or raise."""
    from kubernetes import client as kc
    apps_api = kc.AppsV1Api(api_client)
    read = apps_api.read_namespaced_deployment if app["kind"] == "Deployment" else apps_api.read_namespaced_stateful_set
    deadline = time.monotonic() + timeout
    while True:
        obj = read(app["name"], app["namespace"])
        want = obj.spec.replicas or 0
        if want >= 1 and (obj.status.ready_replicas or 0) >= want:
            return True
        if time.monotonic() > deadline:
            raise AssertionError("%s %s/%s: spec.replicas=%s ready=%s after %ss" % (
                app["kind"], app["namespace"], app["name"], obj.spec.replicas, obj.status.ready_replicas, timeout))
        time.sleep(0.3)


def run_restore(playbook, kubeconfig, extra_vars, env=None, args=(), timeout=600, cwd=None):
    """Run playbooks/<playbook>, or a playbook by its name (velero.data_restore.<playbook>) or path, in ``cwd``
    (default the repository); returns (rc, [(task name, result)], failed ones, stdout, stderr)."""
    import ansible_run  # pylint: disable=import-error
    if not (os.path.isabs(str(playbook)) or str(playbook).startswith("velero.data_restore.")):
        playbook = os.path.join(PLAYBOOKS, playbook)
    rc, data, stdout, stderr = ansible_run.run_playbook(playbook, extra_vars=extra_vars,
                                                        kubeconfig=kubeconfig, env=env, timeout=timeout, args=args,
                                                        cwd=cwd or ansible_run.REPO)
    results = ansible_run.task_results(data)
    failed = [(name, r) for name, r in results if r.get("failed") and not r.get("ignore_errors")]
    return rc, results, failed, stdout, stderr


def plan_of(results):
    """The plan the preflight role's plan task returned in a run_restore result list."""
    plans = [r["plan"] for name, r in results if "Build and validate the restore plan" in name and "plan" in r]
    assert plans, "no plan task result among %s" % [name for name, _r in results]
    return plans[0]


# ----------------------------------------------------------------------------- the session journal
def session_configmap(session):
    """The name of the ConfigMap (in the Velero namespace) that holds a session's journal."""
    return "data-restore-" + session


def session_journal(kube, session):
    """The session's journal document, or None when its ConfigMap does not exist."""
    cm = kube.get_or_none("ConfigMap", VELERO_NS, session_configmap(session))
    return json.loads((cm.get("data") or {}).get("session.json") or "{}") if cm else None


def drop_session(kube, session):
    """Test teardown: delete the session's ConfigMap if a run created it."""
    if kube.get_or_none("ConfigMap", VELERO_NS, session_configmap(session)):
        kube.delete("ConfigMap", VELERO_NS, session_configmap(session))


# ----------------------------------------------------------------------------- "Velero not installed"
class HideVeleroProxy(object):
    """Plain-HTTP proxy to the test cluster's apiserver that hides the velero.io API group (as if
    Velero's CRDs were not installed), authenticating upstream with the admin client certificate.
    ``kubeconfig`` (written to ``directory``) points a client at it."""

    def __init__(self, admin_kubeconfig, directory):
        self.admin_kubeconfig = admin_kubeconfig
        self.directory = str(directory)
        self.server = None
        self.kubeconfig = None

    def __enter__(self):
        import base64
        import http.server
        import socketserver
        import ssl
        import threading
        import urllib.request

        with open(self.admin_kubeconfig) as handle:
            conf = yaml.safe_load(handle)
        upstream = conf["clusters"][0]["cluster"]["server"]
        user = conf["users"][0]["user"]
        paths = {}
        for key in ("certificate-authority-data", "client-certificate-data", "client-key-data"):
            path = os.path.join(self.directory, key)
            with open(path, "wb") as handle:
                handle.write(base64.b64decode(conf["clusters"][0]["cluster"][key] if key.startswith("certificate-authority")
                                              else user[key]))
            paths[key] = path
        context = ssl.create_default_context(cafile=paths["certificate-authority-data"])
        context.load_cert_chain(paths["client-certificate-data"], paths["client-key-data"])

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _forward(self):
                path = self.path.split("?")[0].rstrip("/")
                if path.startswith("/apis/velero.io"):
                    body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                       "message": "the server could not find the requested resource",
                                       "reason": "NotFound", "code": 404}).encode()
                    self.send_response(404)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "accept-encoding")}
                if path in ("/apis", "/api"):
                    headers["Accept"] = "application/json"
                req = urllib.request.Request(upstream + self.path, data=data, method=self.command, headers=headers)
                try:
                    resp = urllib.request.urlopen(req, context=context, timeout=30)
                    status, body, rh = resp.status, resp.read(), resp.headers
                except urllib.error.HTTPError as exc:
                    status, body, rh = exc.code, exc.read(), exc.headers
                if path == "/apis" and status == 200:
                    doc = json.loads(body)
                    doc["groups"] = [g for g in doc.get("groups", []) if g.get("name") != "velero.io"]
                    body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", rh.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.kubeconfig = os.path.join(self.directory, "no-velero.kubeconfig")
        with open(self.kubeconfig, "w") as handle:
            yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "no-velero",
                            "clusters": [{"name": "no-velero", "cluster": {
                                "server": "http://127.0.0.1:%d" % self.server.server_address[1]}}],
                            "users": [{"name": "anon", "user": {}}],
                            "contexts": [{"name": "no-velero", "context": {"cluster": "no-velero", "user": "anon"}}]},
                           handle)
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        return False


class SignatureWatcher(object):
    """Collects the X-Amz-Signature values of every DownloadRequest URL served while active."""

    def __init__(self, api_client, velero_ns=VELERO_NS):
        import threading
        self.api_client = api_client
        self.velero_ns = velero_ns
        self.signatures = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        from kubernetes import client as kc, watch
        api = kc.CustomObjectsApi(self.api_client)
        while not self.stop.is_set():
            try:
                for event in watch.Watch().stream(api.list_namespaced_custom_object, "velero.io", "v1",
                                                  self.velero_ns, "downloadrequests", timeout_seconds=2):
                    url = ((event["object"].get("status") or {}).get("downloadURL")) or ""
                    if "X-Amz-Signature=" in url:
                        self.signatures.append(url.split("X-Amz-Signature=")[1].split("&")[0])
                    if self.stop.is_set():
                        break
            except Exception:  # pylint: disable=broad-except
                time.sleep(0.2)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        return False

    def secrets(self):
        return {"X-Amz-Signature #%d" % i: s for i, s in enumerate(self.signatures)}
