# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small, typed facade over the Kubernetes API.

The domain layer talks to the cluster only through :class:`Kube`; unit tests hand it an
in-memory fake with the same methods. Objects are plain dicts (the JSON the API returns).
Every API failure becomes one of the exceptions in errors.py, with a message that names the
object and the permission or fix.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import os
import re
import threading
import time
from collections import namedtuple
from decimal import Decimal, InvalidOperation

from ansible_collections.velero.data_restore.plugins.module_utils.errors import (
    ApiError,
    ConflictError,
    DataRestoreError,
    ForbiddenError,
    MissingApiError,
    NotFoundError,
)

# A kind the collection uses: apiVersion, kind, plural (for RBAC messages), namespaced.
Kind = namedtuple("Kind", "api_version kind plural namespaced")

POD = Kind("v1", "Pod", "pods", True)
PVC = Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims", True)
PV = Kind("v1", "PersistentVolume", "persistentvolumes", False)
CONFIG_MAP = Kind("v1", "ConfigMap", "configmaps", True)
SECRET = Kind("v1", "Secret", "secrets", True)
NAMESPACE = Kind("v1", "Namespace", "namespaces", False)
NODE = Kind("v1", "Node", "nodes", False)
EVENT = Kind("v1", "Event", "events", True)
REPLICATION_CONTROLLER = Kind("v1", "ReplicationController", "replicationcontrollers", True)
STORAGE_CLASS = Kind("storage.k8s.io/v1", "StorageClass", "storageclasses", False)
CSI_NODE = Kind("storage.k8s.io/v1", "CSINode", "csinodes", False)
DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments", True)
STATEFUL_SET = Kind("apps/v1", "StatefulSet", "statefulsets", True)
REPLICA_SET = Kind("apps/v1", "ReplicaSet", "replicasets", True)
DAEMON_SET = Kind("apps/v1", "DaemonSet", "daemonsets", True)
JOB = Kind("batch/v1", "Job", "jobs", True)
CRON_JOB = Kind("batch/v1", "CronJob", "cronjobs", True)
DEPLOYMENT_CONFIG = Kind("apps.openshift.io/v1", "DeploymentConfig", "deploymentconfigs", True)
CRD = Kind("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", False)

BACKUP = Kind("velero.io/v1", "Backup", "backups", True)
POD_VOLUME_BACKUP = Kind("velero.io/v1", "PodVolumeBackup", "podvolumebackups", True)
POD_VOLUME_RESTORE = Kind("velero.io/v1", "PodVolumeRestore", "podvolumerestores", True)
DOWNLOAD_REQUEST = Kind("velero.io/v1", "DownloadRequest", "downloadrequests", True)
BACKUP_STORAGE_LOCATION = Kind("velero.io/v1", "BackupStorageLocation", "backupstoragelocations", True)
DATA_UPLOAD = Kind("velero.io/v2alpha1", "DataUpload", "datauploads", True)
DATA_DOWNLOAD = Kind("velero.io/v2alpha1", "DataDownload", "datadownloads", True)

ARGO_APPLICATION = Kind("argoproj.io/v1alpha1", "Application", "applications", True)
FLUX_KUSTOMIZATION = Kind("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "kustomizations", True)
FLUX_HELM_RELEASE = Kind("helm.toolkit.fluxcd.io/v2", "HelmRelease", "helmreleases", True)
KEDA_SCALED_OBJECT = Kind("keda.sh/v1alpha1", "ScaledObject", "scaledobjects", True)
KEDA_SCALED_JOB = Kind("keda.sh/v1alpha1", "ScaledJob", "scaledjobs", True)

KINDS_BY_NAME = dict(
    (k.kind, k)
    for k in (
        POD, PVC, PV, CONFIG_MAP, SECRET, NAMESPACE, NODE, EVENT, REPLICATION_CONTROLLER, STORAGE_CLASS, CSI_NODE,
        DEPLOYMENT, STATEFUL_SET, REPLICA_SET, DAEMON_SET, JOB, CRON_JOB, DEPLOYMENT_CONFIG, CRD,
        BACKUP, POD_VOLUME_BACKUP, POD_VOLUME_RESTORE, DOWNLOAD_REQUEST, BACKUP_STORAGE_LOCATION,
        DATA_UPLOAD, DATA_DOWNLOAD, ARGO_APPLICATION, FLUX_KUSTOMIZATION, FLUX_HELM_RELEASE,
        KEDA_SCALED_OBJECT, KEDA_SCALED_JOB,
    )
)

LIST_PAGE_SIZE = 500

# How long a request is retried while the API server is unreachable or answers 429/5xx, e.g.
# during an apiserver restart or a control-plane upgrade. Override with this environment variable.
RETRY_SECONDS_ENV = "VELERO_DATA_RESTORE_API_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 30
TRANSIENT_STATUSES = (429, 500, 502, 503, 504)


_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_QUANTITY_FACTORS = {None: 1, "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": 10 ** 3,
                     "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15, "E": 10 ** 18, "Ki": 2 ** 10,
                     "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}


def parse_quantity(value):
    """A Kubernetes quantity ("10Gi", "500M", "1e9", "100m") as Decimal, or None when it does not parse."""
    match = _QUANTITY.match(str(value).strip())
    if not match:
        return None
    try:
        return Decimal(match.group(1)) * _QUANTITY_FACTORS[match.group(2)]
    except InvalidOperation:
        return None


def describe(kind, name=None, namespace=None):
    """'PodVolumeRestore velero/foo' — how messages name an object."""
    where = "%s/%s" % (namespace, name) if namespace and name else (name or namespace or "")
    return ("%s %s" % (kind.kind, where)).strip()


def _raw_json(response):
    """The decoded body of an unserialized response: a LIST of thousands of objects skips the dynamic client's
    ResourceInstance round trip (several times faster)."""
    import json

    data = response.data
    return json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)


def api_group(kind):
    return kind.api_version.split("/")[0] if "/" in kind.api_version else ""


class WatchExpired(Exception):
    """The watch's resourceVersion is too old (HTTP 410): list again and watch from there."""


# API groups (at the versions of the kinds above) that every conformant cluster serves: their resources are built
# from the Kind, without a discovery request (a fresh AWX job has no discovery cache: one GET per group saved).
KUBERNETES_GROUPS = ("", "apps", "batch", "storage.k8s.io", "apiextensions.k8s.io", "coordination.k8s.io")
# Velero's group: discovered (its absence is an error that names the fix), without the pre-check of optional groups.
VELERO_GROUP = "velero.io"

# The verbs of Kube._call that change the cluster.
WRITE_VERBS = ("create", "patch", "update", "delete")

# Parallel POSTs of Kube.create_many (the kubernetes client's connection pool holds 5 x CPUs connections).
CREATE_WORKERS = 8

# Client-side limits (connect, read seconds) of every request: without them a frozen apiserver, or a connection a
# load balancer dropped without a reset, blocks the module forever, past every wait's deadline and retry window.
# A watch may stay silent for its whole timeoutSeconds, so its read limit is that plus WATCH_READ_SLACK.
REQUEST_TIMEOUT = (10, 60)
WATCH_READ_SLACK = 30


def timed_watcher(read_seconds):
    """A kubernetes Watch whose request carries a read timeout (the dynamic client's watch() takes none)."""
    from kubernetes import watch as kube_watch

    class TimedWatch(kube_watch.Watch):
        def stream(self, func, *args, **kwargs):
            kwargs["_request_timeout"] = (REQUEST_TIMEOUT[0], read_seconds)
            return super(TimedWatch, self).stream(func, *args, **kwargs)

    return TimedWatch()


def run_parallel(calls, workers=CREATE_WORKERS):
    """Run the callables ``workers`` at a time; returns their results in order. When some raise, the first
    error is raised after every call has finished (so the caller's journal can be kept true)."""
    calls = list(calls)
    if workers <= 1 or len(calls) <= 2:
        return [call() for call in calls]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(workers, len(calls))) as pool:
        futures = [pool.submit(call) for call in calls]
    results, first_error = [], None
    for future in futures:
        try:
            results.append(future.result())
        except DataRestoreError as exc:
            first_error = first_error or exc
    if first_error is not None:
        raise first_error
    return results


def create_many(kube, kind, bodies, namespace=None, workers=1, label=None, same=None):
    """``kube.create`` for each body, ``workers`` at a time; see Kube.create_many."""
    bodies = list(bodies)
    if workers > 1 and len(bodies) > 2:
        kube.resource(kind)  # discover once, before the threads
    return run_parallel([lambda body=body: create_or_take(kube, kind, body, namespace, label, same)
                         for body in bodies], workers)


def create_or_take(kube, kind, body, namespace=None, label=None, same=None):
    """``kube.create``, but when an object of that name exists already, take it if it is the one this call
    would create: ``same(existing, body)`` says so (or raises its own error); ``label`` is the usual test, the
    same value of that label (this session's) as ``body``. Without either, the ConflictError stands.

    Why: a killed ansible-playbook leaves its running module alive (ansible's worker has a session of its
    own), so a re-run may create the same object at the same time; a re-run also meets what a killed run made."""
    try:
        return kube.create(kind, body, namespace)
    except ConflictError:
        if same is None and not label:
            raise
        meta = body["metadata"]
        current = kube.get(kind, meta["name"], namespace or meta.get("namespace"))
        if current is None:
            raise
        if same is None:
            want = (meta.get("labels") or {}).get(label)
            taken = bool(want) and (current["metadata"].get("labels") or {}).get(label) == want
        else:
            taken = same(current, body)
        if not taken:
            raise
        return current


# Up to this many objects are read with one GET each; more with one LIST of the namespace (or cluster).
GET_MANY_LIMIT = 3


def get_many(kube, kind, names, namespace=None):
    """{name: object or None} for ``names``: a GET each for a few, else one LIST (fewer requests for a
    restore of many volumes; a LIST of PersistentVolumes returns the whole cluster's, paginated)."""
    names = sorted(set(n for n in names if n))
    if len(names) <= GET_MANY_LIMIT:
        return dict((name, kube.get(kind, name, namespace)) for name in names)
    found = dict((o["metadata"]["name"], o) for o in kube.list(kind, namespace=namespace)[0])
    return dict((name, found.get(name)) for name in names)


class Kube(object):
    # Writes of independent objects may run in parallel threads (run_parallel); the fake client of the unit
    # tests leaves this at 1.
    parallel_workers = CREATE_WORKERS

    """Facade over kubernetes' DynamicClient.

    ``dynamic`` is a ``kubernetes.dynamic.DynamicClient``. Methods return plain dicts.
    """

    def __init__(self, dynamic, host=None, retry_seconds=None, clock=time.monotonic, sleep=time.sleep):
        self._dynamic = dynamic
        self.host = host
        self._resources = {}
        self._missing = set()
        self._groups_served = {}  # api_version -> bool: one GET per optional group version and module run
        # Parallel reads (run_parallel) discover a kind once, not once per thread.
        self._discovery_lock = threading.Lock()
        if retry_seconds is None:
            retry_seconds = float(os.environ.get(RETRY_SECONDS_ENV) or DEFAULT_RETRY_SECONDS)
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._sleep = sleep
        # before_write(verb, kind, name, namespace) before every write: the session fence of module.run_module.
        self.before_write = None

    def _call(self, verb, kind, name, namespace, request, repeatable):
        """Run request(); retry transient failures until retry_seconds, then raise a domain error.

        Reads are repeatable. A write is retried only when the connection could not be opened
        (the server never saw it) or the server answered 429/5xx, so it is never applied twice.
        """
        fenced = verb in WRITE_VERBS and self.before_write is not None
        deadline = self._clock() + self.retry_seconds
        delay = 0.5
        while True:
            if fenced:
                # Before every attempt: a write retried for up to retry_seconds must not land after another run
                # took the session over (its grace is shorter than the retries).
                self.before_write(verb, kind, name, namespace)
            try:
                return request()
            except DataRestoreError:
                raise
            except Exception as exc:  # pylint: disable=broad-except
                err = _translate(exc, verb, kind, name, namespace, self.host)
                transient = err.status in TRANSIENT_STATUSES or (
                    err.status is None and (repeatable or _connection_refused(exc)))
                if not transient or self._clock() + delay > deadline:
                    raise err
                self._sleep(delay)
                delay = min(delay * 2, 4.0)

    # -- discovery ---------------------------------------------------------
    def _group_served(self, kind):
        """For optional API groups (OpenShift, GitOps tools): one GET of the group version. The dynamic
        client's discoverer answers an unknown group by walking every API group again (~20 requests)."""
        if api_group(kind) == VELERO_GROUP:
            return True
        if kind.api_version not in self._groups_served:
            self._groups_served[kind.api_version] = self._group_version_served(kind)
        return self._groups_served[kind.api_version]

    def _group_version_served(self, kind):
        try:
            self._dynamic.client.call_api("/apis/%s" % kind.api_version, "GET", auth_settings=["BearerToken"],
                                          _preload_content=False, _return_http_data_only=True,
                                          _request_timeout=REQUEST_TIMEOUT)
            return True
        except Exception as exc:  # pylint: disable=broad-except
            if getattr(exc, "status", None) == 404:
                return False
            return True  # unknown: let discovery decide

    def resource(self, kind):
        if kind in self._resources:
            return self._resources[kind]
        with self._discovery_lock:
            return self._discover(kind)

    def _discover(self, kind):
        if kind not in self._resources and api_group(kind) in KUBERNETES_GROUPS:
            self._resources[kind] = self._builtin_resource(kind)
        if kind not in self._resources:
            def discover():
                from kubernetes.dynamic.exceptions import ResourceNotFoundError

                try:
                    if not self._group_served(kind):
                        raise ResourceNotFoundError("group %s not served" % kind.api_version)
                    return self._dynamic.resources.get(api_version=kind.api_version, kind=kind.kind)
                except ResourceNotFoundError:
                    raise MissingApiError(
                        "The cluster does not serve %s (%s). %s"
                        % (kind.kind, kind.api_version, _missing_api_hint(kind)),
                        kind=kind.kind,
                        api_version=kind.api_version,
                    )

            self._resources[kind] = self._call("discover", kind, None, None, discover, True)
        return self._resources[kind]

    def _builtin_resource(self, kind):
        """The dynamic client's resource of a kind every cluster serves, built from the Kind (as discovery would)."""
        from kubernetes.dynamic.resource import Resource

        group = api_group(kind)
        return Resource(prefix="apis" if group else "api", group=group, api_version=kind.api_version.split("/")[-1],
                        kind=kind.kind, name=kind.plural, namespaced=kind.namespaced, preferred=True,
                        client=self._dynamic)

    def has_api(self, kind):
        if kind in self._missing:
            return False
        try:
            self.resource(kind)
            return True
        except MissingApiError:
            self._missing.add(kind)  # one discovery request per kind and module run, not one per question
            return False

    # -- reads -------------------------------------------------------------
    def get(self, kind, name, namespace=None):
        """The object, or None when it does not exist."""
        res = self.resource(kind)
        try:
            return self._call("get", kind, name, namespace,
                              lambda: res.get(name=name, namespace=namespace,
                                              _request_timeout=REQUEST_TIMEOUT).to_dict(), True)
        except NotFoundError:
            return None

    def list(self, kind, namespace=None, label_selector=None, field_selector=None):
        """All objects (paginated server-side) and the list's resourceVersion."""
        res = self.resource(kind)
        items, token, version = [], None, None
        while True:
            params = dict(namespace=namespace, limit=LIST_PAGE_SIZE)
            if label_selector:
                params["label_selector"] = label_selector
            if field_selector:
                params["field_selector"] = field_selector
            if token:
                params["_continue"] = token
            page = self._call("list", kind, None, namespace,
                              lambda params=params: _raw_json(res.get(serialize=False, _request_timeout=REQUEST_TIMEOUT,
                                                                      **params)), True)
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            version = version or meta.get("resourceVersion")
            token = meta.get("continue")
            if not token:
                break
        for item in items:  # list items carry no kind; callers rely on it
            item.setdefault("kind", kind.kind)
            item.setdefault("apiVersion", kind.api_version)
        return items, version

    def watch(self, kind, namespace=None, label_selector=None, field_selector=None,
              resource_version=None, timeout_seconds=60):
        """Yield (event_type, object) until the server closes the watch.

        Raises WatchExpired when resource_version is too old.
        """
        res = self.resource(kind)
        # Rounded up: a watch cut short by a fraction of a second would cost one more watch request.
        seconds = max(1, int(math.ceil(timeout_seconds)))
        params = dict(namespace=namespace, timeout=seconds, watcher=timed_watcher(seconds + WATCH_READ_SLACK))
        if label_selector:
            params["label_selector"] = label_selector
        if field_selector:
            params["field_selector"] = field_selector
        if resource_version:
            params["resource_version"] = resource_version
        try:
            for event in self._dynamic.watch(res, **params):
                obj = event.get("raw_object") or {}
                if event.get("type") == "ERROR":
                    if obj.get("code") == 410:
                        raise WatchExpired(obj.get("message"))
                    raise ApiError("Watch of %s failed: %s" % (kind.kind, obj.get("message")),
                                   status=obj.get("code"))
                yield event.get("type"), obj
        except WatchExpired:
            raise
        except ApiError:
            raise
        except Exception as exc:
            if getattr(exc, "status", None) == 410:
                raise WatchExpired(str(exc))
            raise _translate(exc, "watch", kind, None, namespace, self.host)

    # -- writes ------------------------------------------------------------
    def create(self, kind, body, namespace=None):
        res = self.resource(kind)
        name = (body.get("metadata") or {}).get("name") or (body.get("metadata") or {}).get("generateName")
        return self._call("create", kind, name, namespace,
                          lambda: res.create(body=body, namespace=namespace,
                                             _request_timeout=REQUEST_TIMEOUT).to_dict(), False)

    def create_many(self, kind, bodies, namespace=None, label=None, same=None):
        """Create several objects, up to CREATE_WORKERS at a time (one POST each; a restore of 200 volumes
        would otherwise wait for 200 round trips in a row). Returns them in order; when some fail, the first
        error is raised after every request has finished, so the caller's journal stays true. ``label``,
        ``same``: see create_or_take."""
        if bodies and self.before_write is not None:
            self.before_write("create", kind, None, namespace)  # once here, so the threads find the session read
        return create_many(self, kind, bodies, namespace, workers=CREATE_WORKERS, label=label, same=same)

    def patch(self, kind, name, patch, namespace=None, patch_type="merge"):
        """Merge patch by default (safe on kinds without a status subresource)."""
        res = self.resource(kind)
        content_type = {
            "merge": "application/merge-patch+json",
            "json": "application/json-patch+json",
            "strategic": "application/strategic-merge-patch+json",
        }[patch_type]
        return self._call("patch", kind, name, namespace,
                          lambda: res.patch(body=patch, name=name, namespace=namespace, content_type=content_type,
                                            _request_timeout=REQUEST_TIMEOUT).to_dict(), False)

    def replace(self, kind, body, namespace=None):
        """PUT with the body's resourceVersion: a ConflictError means someone else changed it."""
        res = self.resource(kind)
        name = body["metadata"]["name"]
        return self._call("update", kind, name, namespace,
                          lambda: res.replace(body=body, name=name, namespace=namespace,
                                              _request_timeout=REQUEST_TIMEOUT).to_dict(), False)

    def delete(self, kind, name, namespace=None, propagation_policy=None, uid=None, dry_run=False):
        """Delete; returns False when the object was already gone. ``dry_run``: the apiserver authorizes and
        admits the delete but does not do it (a 403 before any change)."""
        res = self.resource(kind)
        body = {}
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        if uid:
            body["preconditions"] = {"uid": uid}
        if dry_run:
            body["dryRun"] = ["All"]
        try:
            # Deleting twice is harmless (the second answers 404), so a delete is repeatable.
            self._call("delete", kind, name, namespace,
                       lambda: res.delete(name=name, namespace=namespace, body=body or None,
                                          _request_timeout=REQUEST_TIMEOUT), True)
            return True
        except NotFoundError:
            return False


def _connection_refused(exc):
    """True when the request never reached the server (connect failed), so it may be sent again."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        name = type(exc).__name__
        if name in ("NewConnectionError", "ConnectionRefusedError", "ConnectTimeoutError"):
            return True
        exc = getattr(exc, "reason", None) or exc.__cause__ or exc.__context__
    return False


def _missing_api_hint(kind):
    if api_group(kind) == "velero.io":
        return ("Velero's CRDs are not installed in this cluster, or the API version is too old: "
                "install Velero (v1.16 or newer) or point the connection options at the cluster "
                "where Velero runs.")
    return "Install the component that provides it, or leave the related option unset."


def _translate(exc, verb, kind, name, namespace, host):
    """Turn a kubernetes client exception into a domain error with an actionable message."""
    status = getattr(exc, "status", None)
    what = describe(kind, name, namespace) if name else (
        "%s in namespace %s" % (kind.plural, namespace) if namespace else kind.plural)
    reason = _api_message(exc)
    if status == 404:
        return NotFoundError("%s not found" % what, status=404, reason=reason)
    if status == 403:
        group = api_group(kind) or '""'
        return ForbiddenError(
            "Forbidden: cannot %s %s: missing RBAC permission verb=%s resource=%s apiGroup=%s%s. "
            "Grant it (see docs/rbac.yml) or use credentials that have it. API said: %s"
            % (verb, what, verb, kind.plural, group,
               " namespace=%s" % namespace if namespace else "", reason),
            status=403, reason=reason)
    if status == 409:
        return ConflictError("Conflict on %s %s: %s" % (verb, what, reason), status=409, reason=reason)
    if status == 401:
        return ApiError("Unauthorized at %s: the credentials were rejected. Check api_key, client "
                        "certificate or kubeconfig/context." % (host or "the API server"),
                        status=401, reason=reason)
    if status == 422 or status == 400:
        return ApiError("The API server rejected %s of %s: %s" % (verb, what, reason),
                        status=status, reason=reason)
    if status is None:
        return ApiError(
            "Cannot reach the Kubernetes API at %s (%s %s): %s. Check kubeconfig/context/host and "
            "that the cluster is up." % (host or "the configured host", verb, what, exc),
            status=None, reason=str(exc))
    return ApiError("Kubernetes API error %s on %s of %s: %s" % (status, verb, what, reason),
                    status=status, reason=reason)


def _api_message(exc):
    body = getattr(exc, "body", None)
    if body:
        try:
            import json

            return json.loads(body).get("message") or str(body)
        except Exception:
            return str(body)
    return getattr(exc, "summary", lambda: str(exc))() if hasattr(exc, "summary") else str(exc)
