"""Small raw-REST Kubernetes client, watch-based informers and a work queue.

Everything is plain dicts (the JSON the API server sends), so core objects and Velero
custom resources are handled the same way.  Watches use ``kubernetes.watch.Watch`` with
the resourceVersion of the last list/event and relist on 410 Gone.
"""
from __future__ import annotations

import heapq
import json
import logging
import threading
import time
import urllib.parse
from typing import Any, Callable

import kubernetes
from kubernetes import watch
from kubernetes.client.rest import ApiException

log = logging.getLogger("sim.kube")

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSONPATCH = "application/json-patch+json"

# kind -> (api prefix, plural, namespaced)
RESOURCES = {
    "Pod": ("/api/v1", "pods", True),
    "PersistentVolumeClaim": ("/api/v1", "persistentvolumeclaims", True),
    "PersistentVolume": ("/api/v1", "persistentvolumes", False),
    "Node": ("/api/v1", "nodes", False),
    "Namespace": ("/api/v1", "namespaces", False),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "Event": ("/api/v1", "events", True),
    "StorageClass": ("/apis/storage.k8s.io/v1", "storageclasses", False),
    "CSINode": ("/apis/storage.k8s.io/v1", "csinodes", False),
    "Lease": ("/apis/coordination.k8s.io/v1", "leases", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "StatefulSet": ("/apis/apps/v1", "statefulsets", True),
    "DaemonSet": ("/apis/apps/v1", "daemonsets", True),
    "ReplicaSet": ("/apis/apps/v1", "replicasets", True),
    "ReplicationController": ("/api/v1", "replicationcontrollers", True),
    "Job": ("/apis/batch/v1", "jobs", True),
    "CronJob": ("/apis/batch/v1", "cronjobs", True),
    "Backup": ("/apis/velero.io/v1", "backups", True),
    "PodVolumeBackup": ("/apis/velero.io/v1", "podvolumebackups", True),
    "PodVolumeRestore": ("/apis/velero.io/v1", "podvolumerestores", True),
    "BackupStorageLocation": ("/apis/velero.io/v1", "backupstoragelocations", True),
    "DownloadRequest": ("/apis/velero.io/v1", "downloadrequests", True),
    "DataUpload": ("/apis/velero.io/v2alpha1", "datauploads", True),
    "DataDownload": ("/apis/velero.io/v2alpha1", "datadownloads", True),
}

API_VERSION = {
    "/api/v1": "v1",
    "/apis/storage.k8s.io/v1": "storage.k8s.io/v1",
    "/apis/coordination.k8s.io/v1": "coordination.k8s.io/v1",
    "/apis/apps/v1": "apps/v1",
    "/apis/batch/v1": "batch/v1",
    "/apis/velero.io/v1": "velero.io/v1",
    "/apis/velero.io/v2alpha1": "velero.io/v2alpha1",
}


def api_version(kind: str) -> str:
    return API_VERSION[RESOURCES[kind][0]]


class Kube:
    """Raw JSON access to the API server."""

    def __init__(self, kubeconfig: str | None = None, api_client=None):
        if api_client is None:
            api_client = kubernetes.config.new_client_from_config(config_file=kubeconfig)
        self.api = api_client

    # -- paths -----------------------------------------------------------------
    @staticmethod
    def path(kind: str, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        prefix, plural, namespaced = RESOURCES[kind]
        p = prefix
        if namespaced and namespace:
            p += f"/namespaces/{namespace}"
        p += f"/{plural}"
        if name:
            p += f"/{name}"
        if sub:
            p += f"/{sub}"
        return p

    def request(self, method: str, path: str, body: Any = None, query: dict | None = None,
                content_type: str = "application/json", timeout: float | None = 30) -> Any:
        q = [(k, v) for k, v in (query or {}).items() if v is not None]
        resp = self.api.call_api(
            path, method, query_params=q,
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body, auth_settings=["BearerToken"], _preload_content=False,
            _request_timeout=timeout, _return_http_data_only=True)
        data = resp.data
        return json.loads(data) if data else None

    # -- verbs -----------------------------------------------------------------
    def get(self, kind, namespace=None, name=None, sub=None):
        return self.request("GET", self.path(kind, namespace, name, sub))

    def get_or_none(self, kind, namespace=None, name=None):
        try:
            return self.get(kind, namespace, name)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def list(self, kind, namespace=None, label_selector=None, field_selector=None) -> list[dict]:
        r = self.request("GET", self.path(kind, namespace),
                         query={"labelSelector": label_selector, "fieldSelector": field_selector})
        return r.get("items", [])

    def create(self, kind, body, namespace=None):
        body.setdefault("apiVersion", api_version(kind))
        body.setdefault("kind", kind)
        ns = namespace or body.get("metadata", {}).get("namespace")
        return self.request("POST", self.path(kind, ns), body=body)

    def replace(self, kind, body, sub=None):
        md = body["metadata"]
        return self.request("PUT", self.path(kind, md.get("namespace"), md["name"], sub), body=body)

    def patch(self, kind, namespace, name, body, sub=None, content_type=MERGE):
        return self.request("PATCH", self.path(kind, namespace, name, sub), body=body, content_type=content_type)

    def delete(self, kind, namespace, name, grace: int | None = None, uid: str | None = None,
               propagation: str | None = None, ignore_missing=True):
        body: dict = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if grace is not None:
            body["gracePeriodSeconds"] = grace
        if uid:
            body["preconditions"] = {"uid": uid}
        if propagation:
            body["propagationPolicy"] = propagation
        try:
            return self.request("DELETE", self.path(kind, namespace, name), body=body)
        except ApiException as e:
            if ignore_missing and e.status in (404, 409):
                return None
            raise

    # -- watch support -----------------------------------------------------------
    def lister(self, kind, namespace=None, label_selector=None, field_selector=None):
        """Returns a function usable with ``kubernetes.watch.Watch().stream``.

        It has no ``:return:`` docstring, so Watch hands back raw dict objects.
        """
        path = self.path(kind, namespace)

        def list_fn(watch=False, resource_version=None, timeout_seconds=None,
                    _preload_content=True, allow_watch_bookmarks=None, **_ignored):
            q = {"labelSelector": label_selector, "fieldSelector": field_selector,
                 "resourceVersion": resource_version,
                 "timeoutSeconds": timeout_seconds}
            if watch:
                q["watch"] = "true"
                q["allowWatchBookmarks"] = "true"
            qs = [(k, v) for k, v in q.items() if v is not None]
            resp = self.api.call_api(
                path, "GET", query_params=qs, header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"], _preload_content=False,
                _request_timeout=(timeout_seconds or 60) + 30, _return_http_data_only=True)
            if _preload_content:
                return json.loads(resp.data)
            return resp
        return list_fn


def key_of(obj: dict) -> str:
    md = obj["metadata"]
    return f"{md.get('namespace', '')}/{md['name']}"


class Informer(threading.Thread):
    """List+watch one resource type, keep a cache, call ``handler(type, obj, old)``.

    On every (re)list the handler sees ADDED/MODIFIED for every object and DELETED for
    cached objects that vanished, like a client-go informer's replace.
    """

    def __init__(self, kube: Kube, kind: str, namespace: str | None = None,
                 label_selector: str | None = None, field_selector: str | None = None,
                 name: str | None = None):
        super().__init__(daemon=True, name=name or f"informer-{kind}")
        self.kube = kube
        self.kind = kind
        self.list_fn = kube.lister(kind, namespace, label_selector, field_selector)
        self.cache: dict[str, dict] = {}
        self.lock = threading.RLock()
        self.handlers: list[Callable[[str, dict, dict | None], None]] = []
        self.synced = threading.Event()
        self._stop = threading.Event()

    def add_handler(self, fn):
        self.handlers.append(fn)

    def _fire(self, typ, obj, old):
        for h in self.handlers:
            try:
                h(typ, obj, old)
            except Exception:  # noqa: BLE001
                log.exception("%s handler failed", self.kind)

    def get(self, namespace, name) -> dict | None:
        with self.lock:
            return self.cache.get(f"{namespace or ''}/{name}")

    def items(self) -> list[dict]:
        with self.lock:
            return list(self.cache.values())

    def _relist(self) -> str:
        r = self.list_fn()
        items = r.get("items", [])
        new = {}
        for it in items:
            it.setdefault("kind", self.kind)
            new[key_of(it)] = it
        with self.lock:
            old = self.cache
            self.cache = new
        for k, o in old.items():
            if k not in new:
                self._fire("DELETED", o, o)
        for k, it in new.items():
            self._fire("MODIFIED" if k in old else "ADDED", it, old.get(k))
        return r["metadata"]["resourceVersion"]

    def stop(self):
        self._stop.set()

    def run(self):
        rv = None
        while not self._stop.is_set():
            try:
                if rv is None:
                    rv = self._relist()
                    self.synced.set()
                w = watch.Watch()
                for ev in w.stream(self.list_fn, resource_version=rv, timeout_seconds=50):
                    typ = ev["type"]
                    obj = ev["raw_object"]
                    new_rv = obj.get("metadata", {}).get("resourceVersion")
                    if new_rv:
                        rv = new_rv
                    if typ == "BOOKMARK":
                        continue
                    obj.setdefault("kind", self.kind)
                    k = key_of(obj)
                    with self.lock:
                        old = self.cache.get(k)
                        if typ == "DELETED":
                            self.cache.pop(k, None)
                        else:
                            self.cache[k] = obj
                    self._fire(typ, obj, old)
                    if self._stop.is_set():
                        w.stop()
            except ApiException as e:
                if e.status == 410:
                    log.info("%s watch expired (410), relisting", self.kind)
                    rv = None
                else:
                    log.warning("%s watch error: %s", self.kind, e)
                    time.sleep(1)
                    rv = None
            except Exception as e:  # noqa: BLE001
                log.warning("%s watch broken: %r; relisting", self.kind, e)
                time.sleep(1)
                rv = None


class WorkQueue:
    """Deduplicating, delayable queue; a key is never processed by two workers at once."""

    def __init__(self, name: str):
        self.name = name
        self.cv = threading.Condition()
        self.heap: list[tuple[float, int, str]] = []
        self.due: dict[str, float] = {}
        self.processing: set[str] = set()
        self.dirty: set[str] = set()
        self.seq = 0

    def add(self, key: str, delay: float = 0.0):
        when = time.monotonic() + delay
        with self.cv:
            if key in self.processing and delay == 0:
                self.dirty.add(key)
                return
            cur = self.due.get(key)
            if cur is not None and cur <= when:
                return
            self.due[key] = when
            self.seq += 1
            heapq.heappush(self.heap, (when, self.seq, key))
            self.cv.notify()

    def get(self) -> str:
        with self.cv:
            while True:
                now = time.monotonic()
                while self.heap and (self.heap[0][2] not in self.due or self.due[self.heap[0][2]] != self.heap[0][0]):
                    heapq.heappop(self.heap)  # stale entry
                if self.heap and self.heap[0][0] <= now:
                    when, _seq, key = self.heap[0]
                    if key in self.processing:
                        # wait until the running worker finishes; retry shortly
                        heapq.heappop(self.heap)
                        self.seq += 1
                        self.due[key] = now + 0.2
                        heapq.heappush(self.heap, (now + 0.2, self.seq, key))
                        continue
                    heapq.heappop(self.heap)
                    del self.due[key]
                    self.processing.add(key)
                    return key
                timeout = (self.heap[0][0] - now) if self.heap else None
                self.cv.wait(timeout)

    def done(self, key: str):
        with self.cv:
            self.processing.discard(key)
            if key in self.dirty:
                self.dirty.discard(key)
                self.due[key] = time.monotonic()
                self.seq += 1
                heapq.heappush(self.heap, (self.due[key], self.seq, key))
                self.cv.notify()


def run_workers(queue: WorkQueue, fn: Callable[[str], float | None], count: int = 1):
    """Start ``count`` worker threads.  ``fn(key)`` may return a requeue delay."""

    def loop():
        while True:
            key = queue.get()
            delay = None
            try:
                delay = fn(key)
            except ApiException as e:
                if e.status == 409:
                    delay = 0.2
                elif e.status == 404:
                    delay = None
                else:
                    log.warning("%s: %s: %s", queue.name, key, e)
                    delay = 2
            except Exception:  # noqa: BLE001
                log.exception("%s: %s failed", queue.name, key)
                delay = 2
            finally:
                queue.done(key)
            if delay is not None:
                queue.add(key, delay)

    for i in range(count):
        threading.Thread(target=loop, daemon=True, name=f"{queue.name}-{i}").start()


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def parse_time(s: str | None) -> float | None:
    if not s:
        return None
    import calendar
    return calendar.timegm(time.strptime(s.replace(".000000", "")[:19], "%Y-%m-%dT%H:%M:%S"))


def quote(s: str) -> str:
    return urllib.parse.quote(s, safe="")
