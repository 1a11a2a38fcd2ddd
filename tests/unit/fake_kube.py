"""An in-memory stand-in for module_utils.kube.Kube, for unit tests of the domain layer.

It keeps objects per kind, assigns uid/resourceVersion/creationTimestamp, honours
generateName, merge patches, optimistic concurrency on replace, label and simple field
selectors, and records an event log so watches replay what changed after a resourceVersion.
``controllers`` are callables run when a watch has nothing left to deliver: they play the
part of cluster controllers (e.g. move a PVR to Completed) and return True if they changed
anything.
"""

import copy
import itertools
import re
import uuid

from ansible_collections.velero.data_restore.plugins.module_utils.errors import (
    ConflictError,
    ForbiddenError,
    MissingApiError,
    NotFoundError,
)
from ansible_collections.velero.data_restore.plugins.module_utils import kube as real_kube
from ansible_collections.velero.data_restore.plugins.module_utils.kube import WatchExpired, describe


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _selector_terms(selector):
    """The terms of a label selector: commas inside a set ("key in (a,b)") do not split."""
    terms, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and not depth:
            terms.append(current)
            current = ""
        else:
            current += char
    return terms + [current]


def _match_labels(labels, selector):
    if not selector:
        return True
    labels = labels or {}
    for term in _selector_terms(selector):
        term = term.strip()
        set_term = re.match(r"^(\S+)\s+(in|notin)\s+\((.*)\)$", term)
        if set_term:
            key, operator, values = set_term.groups()
            inside = labels.get(key) in [v.strip() for v in values.split(",")]
            if inside != (operator == "in"):
                return False
        elif "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            if labels.get(k.rstrip("=")) != v.lstrip("="):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _field(obj, path):
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _match_fields(obj, selector):
    if not selector:
        return True
    for term in selector.split(","):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if str(_field(obj, k) or "") == v:
                return False
        else:
            k, v = term.split("=", 1)
            if str(_field(obj, k.rstrip("=")) or "") != v.lstrip("="):
                return False
    return True


class FakeKube(object):
    host = "https://fake.invalid"

    def __init__(self, missing_kinds=()):
        self.objects = {}  # (kind, namespace, name) -> obj
        self.events = []  # (rv, type, kind, obj)
        self.controllers = []
        self.missing = set(missing_kinds)
        self.requests = []  # (verb, kind.kind)
        self.dry_run_deletes = []  # (kind.kind, namespace, name) of deletes sent with dry_run
        self._rv = itertools.count(100)
        self.expire_before = 0  # watches from an older rv raise WatchExpired
        self.fail_next = {}  # verb -> exception to raise once
        self.forbidden = set()  # (verb, kind) the identity lacks (forbid)
        self.before_write = None  # the session fence (module.run_module sets it on the real Kube)

    # -- helpers for tests -------------------------------------------------
    def forbid(self, verb, kind):
        """Answer every ``verb`` request on ``kind`` with 403, as the apiserver does without the RBAC rule."""
        self.forbidden.add((verb, kind))

    def allow(self, verb, kind):
        self.forbidden.discard((verb, kind))

    def add(self, kind, obj):
        """Seed an object (no request recorded)."""
        obj = copy.deepcopy(obj)
        obj.setdefault("apiVersion", kind.api_version)
        obj.setdefault("kind", kind.kind)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        if not kind.namespaced:
            meta.pop("namespace", None)
        return self._store(kind, obj, "ADDED")

    def find(self, kind, name, namespace=None):
        obj = self.objects.get((kind, namespace if kind.namespaced else None, name))
        return copy.deepcopy(obj) if obj else None

    def all(self, kind, namespace=None):
        return [copy.deepcopy(o) for (k, ns, _name), o in sorted(self.objects.items(), key=lambda i: str(i[0]))
                if k == kind and (namespace is None or ns == namespace)]

    def mutate(self, kind, name, namespace, fn):
        """Change an object as a controller would (records a MODIFIED event)."""
        obj = copy.deepcopy(self.objects[(kind, namespace if kind.namespaced else None, name)])
        fn(obj)
        return self._store(kind, obj, "MODIFIED")

    def remove(self, kind, name, namespace=None):
        key = (kind, namespace if kind.namespaced else None, name)
        obj = self.objects.pop(key)
        self.events.append((next(self._rv), "DELETED", kind, copy.deepcopy(obj)))

    def count(self, verb=None):
        return len([r for r in self.requests if verb is None or r[0] == verb])

    def _store(self, kind, obj, event_type):
        rv = next(self._rv)
        obj["metadata"]["resourceVersion"] = str(rv)
        key = (kind, obj["metadata"].get("namespace") if kind.namespaced else None, obj["metadata"]["name"])
        self.objects[key] = obj
        self.events.append((rv, event_type, kind, copy.deepcopy(obj)))
        return copy.deepcopy(obj)

    def _check(self, verb, kind, name=None, namespace=None):
        if verb in real_kube.WRITE_VERBS and self.before_write is not None:
            self.before_write(verb, kind, name, namespace)  # as Kube._call does
        self.requests.append((verb, kind.kind))
        if kind in self.missing:
            raise MissingApiError("The cluster does not serve %s (%s)." % (kind.kind, kind.api_version))
        if (verb, kind) in self.forbidden:
            raise ForbiddenError("missing RBAC permission verb=%s resource=%s apiGroup=%s"
                                 % (verb, kind.plural, real_kube.api_group(kind)), status=403)
        exc = self.fail_next.pop(verb, None)
        if exc is not None:
            raise exc

    # -- the Kube interface ------------------------------------------------
    def has_api(self, kind):
        return kind not in self.missing

    def resource(self, kind):
        self._check("discover", kind)
        return kind

    def get(self, kind, name, namespace=None):
        self._check("get", kind)
        return self.find(kind, name, namespace)

    def list(self, kind, namespace=None, label_selector=None, field_selector=None):
        self._check("list", kind)
        items = [o for o in self.all(kind, namespace)
                 if _match_labels(o["metadata"].get("labels"), label_selector)
                 and _match_fields(o, field_selector)]
        return items, str(next(self._rv))

    def watch(self, kind, namespace=None, label_selector=None, field_selector=None,
              resource_version=None, timeout_seconds=60):
        self._check("watch", kind)
        since = int(resource_version or 0)
        if since < self.expire_before:
            raise WatchExpired("too old resource version")
        delivered = since
        for _round in range(10000):
            pending = [e for e in self.events if e[0] > delivered]
            if not pending:
                if not any(c(self) for c in list(self.controllers)):
                    return  # server-side timeout: nothing more happens
                continue
            for rv, etype, k, obj in pending:
                delivered = rv
                if k != kind:
                    continue
                if namespace and obj["metadata"].get("namespace") != namespace:
                    continue
                if not (_match_labels(obj["metadata"].get("labels"), label_selector)
                        and _match_fields(obj, field_selector)):
                    continue
                yield etype, copy.deepcopy(obj)

    def create_many(self, kind, bodies, namespace=None, label=None, same=None):
        return real_kube.create_many(self, kind, bodies, namespace, label=label, same=same)

    def create(self, kind, body, namespace=None):
        self._check("create", kind, (body.get("metadata") or {}).get("name"), namespace)
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if kind.namespaced:
            meta["namespace"] = namespace or meta.get("namespace")
        if not meta.get("name"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        key = (kind, meta.get("namespace") if kind.namespaced else None, meta["name"])
        if key in self.objects:
            raise ConflictError("%s already exists" % describe(kind, meta["name"], meta.get("namespace")),
                                status=409, reason="AlreadyExists")
        meta["uid"] = str(uuid.uuid4())
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        obj.setdefault("apiVersion", kind.api_version)
        obj.setdefault("kind", kind.kind)
        return self._store(kind, obj, "ADDED")

    def patch(self, kind, name, patch, namespace=None, patch_type="merge"):
        self._check("patch", kind, name, namespace)
        current = self.find(kind, name, namespace)
        if current is None:
            raise NotFoundError("%s not found" % describe(kind, name, namespace), status=404)
        if patch_type == "json":
            import jsonpatch

            updated = jsonpatch.apply_patch(current, patch)
        else:
            updated = merge_patch(current, patch)
        return self._store(kind, updated, "MODIFIED")

    def replace(self, kind, body, namespace=None):
        self._check("update", kind, body["metadata"]["name"], namespace)
        name = body["metadata"]["name"]
        current = self.find(kind, name, namespace)
        if current is None:
            raise NotFoundError("%s not found" % describe(kind, name, namespace), status=404)
        if body["metadata"].get("resourceVersion") not in (None, current["metadata"]["resourceVersion"]):
            raise ConflictError("Conflict: %s was modified" % describe(kind, name, namespace), status=409)
        obj = copy.deepcopy(body)
        obj["metadata"]["uid"] = current["metadata"]["uid"]
        return self._store(kind, obj, "MODIFIED")

    def delete(self, kind, name, namespace=None, propagation_policy=None, uid=None, dry_run=False):
        self._check("delete", kind, name, namespace)
        key = (kind, namespace if kind.namespaced else None, name)
        if key not in self.objects:
            return False
        if dry_run:
            self.dry_run_deletes.append((kind.kind, namespace, name))
            return True
        obj = self.objects[key]
        if obj["metadata"].get("finalizers"):
            def mark(o):
                o["metadata"].setdefault("deletionTimestamp", "2026-01-01T00:00:01Z")
            self.mutate(kind, name, namespace, mark)
        else:
            self.remove(kind, name, namespace)
        return True
