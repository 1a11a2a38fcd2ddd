# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore session: journal and anchor of one data-only restore (DESIGN.md §3).

A ConfigMap ``data-restore-<session>`` in the Velero namespace holds one JSON document.
Its UID owns every PodVolumeRestore/DataDownload of the session and is the argument of the
``restore-wait`` init container: the node-agent writes the done file ``.velero/<owner uid>``
(velero-contract.md §2 "Done file", §7.5), and Kubernetes GC deletes the CRs with the session.

Rule: record before mutate. A step writes its undo record here first (``record_undo``), then
changes the cluster. The first record for an id wins, so a re-run after an interruption never
overwrites an original value with an already-changed one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import datetime
import json
import time
import uuid

from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils import names
from ansible_collections.velero.data_restore.plugins.module_utils.errors import (
    ConflictError,
    DataRestoreError,
    NotFoundError,
    PreflightError,
    SupersededError,
)

SCHEMA_VERSION = 1
DATA_KEY = "session.json"
MODES = ("in_place", "replace")
STATES = ("planned", "quiescing", "quiesced", "restoring", "restored", "swapping", "swapped",
          "resuming", "completed", "failed", "rolling_back", "rolled_back")
# Undo record actions of the volume swap (claims.py): what a swap records before it changes anything.
ACTION_RETAIN = "retain_pv"
ACTION_REBIND = "rebind"
ACTION_TEMPLATE = "template"
# The undo record action of a workload stopped by workload_scale (workloads.py).
ACTION_SCALE = "scale"
# Undo record statuses in which the recorded change is (or may be) in effect.
IN_EFFECT = ("recorded", "applied")
# Nothing is left to do in these states: a re-run adopts the run that holds the session instead of taking it over,
# so that it stays idempotent (the rollback role takes a completed replace over when it acts).
SETTLED_STATES = ("completed", "rolled_back")
# A restore re-run takes none of these over: nor a rollback under way, which belongs to the rollback run (the restore
# playbooks refuse it before any change; rollback.yml finishes it).
KEPT_BY_HOLDER_STATES = SETTLED_STATES + ("rolling_back",)
# How often an update is retried when someone else changed the session meanwhile.
CONFLICT_RETRIES = 8
# A write of a fenced module run re-reads the session when its copy is older than this (session.fence).
FENCE_FRESH_SECONDS = 5.0
fence_clock = time.monotonic
# A take-over from a run that may still have a module running waits this long before the new run acts: by then every
# module of the old run has its copy of the session re-read before its next write, and so is fenced (one second for
# a request already on its way). A session the old run's rescue marked failed needs no wait: that run is done.
TAKE_OVER_GRACE_SECONDS = FENCE_FRESH_SECONDS + 1.0
take_over_sleep = time.sleep

# JSON schema of the document, kept here so tests (and users) can validate a session.
SCHEMA = {
    "type": "object",
    "required": ["schemaVersion", "session", "state", "created", "updated", "volumes", "undo",
                 "hooks", "history"],
    "properties": {
        "schemaVersion": {"const": SCHEMA_VERSION},
        "session": {"type": "string", "maxLength": names.MAX_SESSION},
        "mode": {"enum": [None] + list(MODES)},
        "state": {"enum": list(STATES)},
        "backup": {"type": ["object", "null"]},
        "plan": {"type": ["object", "null"]},
        "volumes": {"type": "object"},
        "undo": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "action", "target", "original", "status", "recordedAt"],
                "properties": {
                    "id": {"type": "string"},
                    "action": {"type": "string"},
                    "target": {"type": "object"},
                    "original": {},
                    "status": {"enum": ["recorded", "applied", "reverted"]},
                    "recordedAt": {"type": "string"},
                },
            },
        },
        "hooks": {"type": "array"},
        "history": {"type": "array"},
        "created": {"type": "string"},
        "updated": {"type": "string"},
        "error": {"type": ["string", "null"]},
        # The playbook run that holds the session (take_over); absent in sessions of older releases.
        "run": {"type": ["object", "null"]},
    },
}


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id():
    """Id of one playbook run of a session (the preflight makes one when the playbook does not give its own)."""
    return "run-" + uuid.uuid4().hex[:12]


def run_for(session_run, session):
    """The run id the ``session_run`` option gives for ``session``: the option is one id, or ids by session name
    (what the roles pass, so that one play can hold several sessions)."""
    if isinstance(session_run, dict):
        return session_run.get(session) or None
    return session_run or None


def new_document(session, mode=None, backup=None, plan=None, run=None):
    stamp = now()
    return {
        "schemaVersion": SCHEMA_VERSION,
        "session": session,
        "mode": mode,
        "state": "planned",
        "backup": backup,
        "plan": plan,
        "volumes": {},
        "undo": [],
        "hooks": [],
        "history": [{"at": stamp, "event": "created"}],
        "created": stamp,
        "updated": stamp,
        "error": None,
        "run": {"id": run, "since": stamp} if run else None,
    }


def validate_document(doc):
    """Structural check without a jsonschema dependency; returns a list of problems."""
    problems = []
    for key in SCHEMA["required"]:
        if key not in doc:
            problems.append("missing key %r" % key)
    if doc.get("schemaVersion") != SCHEMA_VERSION:
        problems.append("schemaVersion %r is not %r" % (doc.get("schemaVersion"), SCHEMA_VERSION))
    if doc.get("state") not in STATES:
        problems.append("state %r is not one of %s" % (doc.get("state"), ", ".join(STATES)))
    if doc.get("mode") not in (None,) + MODES:
        problems.append("mode %r is not one of %s" % (doc.get("mode"), ", ".join(MODES)))
    for record in doc.get("undo") or []:
        for key in SCHEMA["properties"]["undo"]["items"]["required"]:
            if key not in record:
                problems.append("undo record %r lacks %r" % (record.get("id"), key))
    return problems


class Session(object):
    """A loaded session: the ConfigMap and its decoded document."""

    def __init__(self, config_map):
        self.config_map = config_map
        raw = (config_map.get("data") or {}).get(DATA_KEY) or "{}"
        try:
            self.doc = json.loads(raw)
        except ValueError:
            raise DataRestoreError(
                "ConfigMap %s/%s does not hold a valid session document (key %s is not JSON). It was "
                "changed by hand; restore it from a backup or delete it to start over."
                % (self.namespace, self.object_name, DATA_KEY))

    @property
    def name(self):
        return self.doc.get("session")

    @property
    def object_name(self):
        return self.config_map["metadata"]["name"]

    @property
    def namespace(self):
        return self.config_map["metadata"]["namespace"]

    @property
    def uid(self):
        return self.config_map["metadata"]["uid"]

    @property
    def state(self):
        return self.doc.get("state")

    @property
    def run(self):
        """Id of the playbook run that holds the session, or None."""
        return (self.doc.get("run") or {}).get("id")

    def owner_reference(self):
        """ownerReferences[0] of every CR the session creates (velero-contract.md §7.5)."""
        return {"apiVersion": "v1", "kind": "ConfigMap", "name": self.object_name, "uid": self.uid,
                "controller": True}

    def undo_record(self, record_id):
        for record in self.doc.get("undo") or []:
            if record["id"] == record_id:
                return record
        return None

    def swap_started(self, namespace, pvc):
        """The mode ("rebind" or "template") of a swap of PVC namespace/pvc that began and was not reverted, or None.

        A swap counts from its first journal record (written before any change), not from the ``swap`` entry of
        the volume (written when it ended): a run killed mid-swap has restored the data already and must continue
        the swap, never restore into a new claim again (the new claim may be deleted by then)."""
        claim = {"kind": "PersistentVolumeClaim", "namespace": namespace, "name": pvc}
        rebind = self.undo_record(undo_id(ACTION_REBIND, claim))
        if rebind is not None and rebind["status"] in IN_EFFECT:
            return "rebind"
        if self.template_swaps(namespace, pvc):
            return "template"
        return None

    def template_swaps(self, namespace, pvc):
        """The template-mode records in effect that switched a workload of ``namespace`` from claim ``pvc``."""
        return [r for r in self.doc.get("undo") or [] if r["action"] == ACTION_TEMPLATE and r["status"] in IN_EFFECT
                and r["target"].get("namespace") == namespace and pvc in (r.get("swaps") or {})]

    def swaps(self):
        """The swaps of a replace: {"started": [keys of the plan volumes whose swap began and was not reverted],
        "mode": "rebind", "template" or None (none recorded), "partial": True when some plan volume's swap began
        but not every volume is swapped - the workloads would then start on a mix of restored and old data (or
        on a claim the swap deleted), so a failed run rolls those swaps back before it starts them}."""
        started, modes, finished = [], set(), 0
        plan_volumes = (self.doc.get("plan") or {}).get("volumes") or []
        for rec in plan_volumes:
            mode = self.swap_started(rec.get("target_namespace"), rec.get("target_pvc"))
            if mode:
                started.append(rec.get("key"))
                modes.add(mode)
                entry = ((self.doc.get("volumes") or {}).get(rec.get("key")) or {}).get("swap") or {}
                finished += entry.get("state") == "swapped"
        if not modes:  # nothing in effect (e.g. rolled back): the mode the swaps were made with
            modes = recorded_swap_modes(self.doc)
        return {"started": started, "mode": sorted(modes)[0] if len(modes) == 1 else None,
                "partial": bool(started) and finished < len(plan_volumes)}

    def stopped_workloads(self):
        """The workloads ("Kind namespace/name") this session stopped (or began to: a record is written right before
        the stop, after the pre-restore hooks) and has not started again: a re-run skips the hooks, which ran
        already and whose pods are gone."""
        return sorted("%s %s/%s" % (r["target"].get("kind"), r["target"].get("namespace"), r["target"].get("name"))
                      for r in self.doc.get("undo") or [] if r["action"] == ACTION_SCALE and r["status"] in IN_EFFECT)

    def cleanup_began(self):
        """The volumes (PV names) cleanup.yml began to free (cleanup_began)."""
        return cleanup_began(self.doc)

    def freeing_volumes(self):
        """{PV name: uid} that a cleanup recorded before its first change (mark_freeing)."""
        return dict((self.doc.get("cleanup") or {}).get("pvs") or {})

    def result(self):
        """What modules return about the session."""
        return {"name": self.name, "object_name": self.object_name, "namespace": self.namespace,
                "uid": self.uid, "state": self.state, "swaps": self.swaps(),
                "stopped_workloads": self.stopped_workloads(), "cleanup_began": self.cleanup_began(),
                "document": copy.deepcopy(self.doc)}


def recorded_swap_modes(doc):
    """The modes the volumes' swaps were made with (their journal entries), whether in effect or reverted."""
    modes = set(((vol or {}).get("swap") or {}).get("mode") for vol in (doc.get("volumes") or {}).values())
    modes.discard(None)
    return modes


def cleanup_began(doc):
    """The volumes (PV names) cleanup.yml began to free: recorded in the journal right before its first change. A
    rollback from then on could swap back onto a volume being deleted, or one already gone."""
    marked = set(_freed_volume(r) for r in doc.get("undo") or [] if r.get("freeing"))
    return sorted(marked | set((doc.get("cleanup") or {}).get("pvs") or {}))


def refuse_rollback_after_cleanup(doc, session):
    """Checked on the document being written too: a rollback and a cleanup that overlap cannot both begin."""
    began = cleanup_began(doc)
    if began:
        raise PreflightError(
            "Restore session %r cannot be rolled back: cleanup.yml began to delete the volumes it kept "
            "(PersistentVolume %s), and a swap back would bind the workloads to a volume being deleted or gone. "
            "Nothing was changed. Finish the cleanup: ansible-playbook velero.data_restore.cleanup -e session=%s "
            "-e confirm=true." % (session, ", ".join(began), session))


def _freed_volume(record):
    """The PV an undo record marked freeing stands for: a retained PV, or the old PV of a rebind."""
    if record["action"] == ACTION_REBIND:
        return (record.get("original") or {}).get("old_pv")
    return record["target"].get("name")


# A ConfigMap holds at most 1 MiB (the apiserver refuses a larger one with 422). The preflight refuses a plan whose
# journal is expected to outgrow JOURNAL_BUDGET, leaving room for the history and hooks of re-runs.
CONFIG_MAP_LIMIT = 1024 * 1024
JOURNAL_BUDGET = 900 * 1024


def dump(doc):
    """The journal as stored: compact JSON (a quarter smaller than indented; `jq .` reads it)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def config_map_body(session, namespace, doc):
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": names.session_object_name(session),
            "namespace": namespace,
            "labels": names.session_labels(session, role="session"),
        },
        "data": {DATA_KEY: dump(doc)},
    }


def check_name(session):
    problem = names.validate_session_name(session)
    if problem:
        raise PreflightError("Invalid session name: %s." % problem)


def _cache(kube):
    """Per-process copy of the session ConfigMaps (set by module.run_module on its Kube): a module reads its
    session once and then writes with that resourceVersion; a conflicting writer makes the write fail with 409,
    which drops the copy and re-reads (update)."""
    return getattr(kube, "session_cache", None)


def _remember(kube, cm):
    cache = _cache(kube)
    if cache is not None and cm is not None:
        key = (cm["metadata"]["namespace"], cm["metadata"]["name"])
        cache[key] = copy.deepcopy(cm)
        stamps = getattr(kube, "session_read_at", None)
        if stamps is None:
            stamps = kube.session_read_at = {}
        stamps[key] = fence_clock()


def fence(kube, velero_namespace, session, run):
    """Make this module run refuse to act for ``run`` once another run holds ``session`` (set by module.run_module).

    Checked at every read of the session (load) and before every write of the Kube (``before_write``, with a
    session read at most FENCE_FRESH_SECONDS old), so a run that was taken over stops at its next step before it
    changes anything, and a module of it that was still running (a SIGKILL of ansible-playbook does not stop its
    worker) stops at its next write."""
    object_name = names.session_object_name(session)
    kube.session_fence = (velero_namespace, object_name, run)

    def before_write(verb, kind, name, _namespace):
        if verb == "update" and kind == k.CONFIG_MAP and name == object_name:
            return  # the journal itself: a take-over changed its resourceVersion, and update's re-read is fenced
        read_at = (getattr(kube, "session_read_at", None) or {}).get((velero_namespace, object_name))
        if read_at is None or fence_clock() - read_at > FENCE_FRESH_SECONDS:
            _forget(kube, velero_namespace, session)
        load(kube, velero_namespace, session)

    kube.before_write = before_write


def _check_fence(kube, sess):
    fenced = getattr(kube, "session_fence", None)
    if not fenced or fenced[:2] != (sess.namespace, sess.object_name):
        return
    run = fenced[2]
    if sess.run and sess.run != run:
        since = (sess.doc.get("run") or {}).get("since") or "?"
        raise SupersededError(
            "Restore session %r was taken over by run %s (at %s); this run (%s) stops here, before changing "
            "anything, so that two runs never act on the same volumes. The other run continues the restore: "
            "follow it, or once it has ended re-run with session=%s to take the session over again."
            % (sess.name, sess.run, since, run, sess.name), superseded_by=sess.run, session_run=run)


def _forget(kube, velero_namespace, session):
    cache = _cache(kube)
    if cache is not None:
        cache.pop((velero_namespace, names.session_object_name(session)), None)


def load(kube, velero_namespace, session):
    """The session, or None when it does not exist."""
    check_name(session)
    cache = _cache(kube)
    key = (velero_namespace, names.session_object_name(session))
    if cache is not None and key in cache:
        if cache[key] is None:
            return None
        found = Session(copy.deepcopy(cache[key]))
        _check_fence(kube, found)
        return found
    cm = kube.get(k.CONFIG_MAP, names.session_object_name(session), velero_namespace)
    if cm is None:
        if cache is not None:
            cache[key] = None  # absent for this run, until it creates it
        return None
    if (cm["metadata"].get("labels") or {}).get(names.LABEL_MANAGED_BY) != names.MANAGED_BY:
        raise PreflightError(
            "ConfigMap %s/%s exists but is not a velero.data_restore session (label %s=%s missing). "
            "Choose another session name."
            % (velero_namespace, cm["metadata"]["name"], names.LABEL_MANAGED_BY, names.MANAGED_BY))
    _remember(kube, cm)
    found = Session(cm)
    _check_fence(kube, found)
    return found


def require(kube, velero_namespace, session):
    found = load(kube, velero_namespace, session)
    if found is None:
        raise PreflightError(
            "Restore session %r not found (ConfigMap %s/%s). Create it first with "
            "velero.data_restore.restore_session (the preflight role does), or check "
            "velero_namespace." % (session, velero_namespace, names.session_object_name(session)))
    return found


def ensure(kube, velero_namespace, session, mode=None, backup=None, plan=None, check_mode=False, run=None):
    """Create the session if missing; returns (Session or None in check mode, changed).

    An existing session is reused when mode and backup agree; otherwise that is an error,
    since a re-run must continue the same restore. ``run``: take the session over for this playbook run
    (fence): the run that held it stops at its next step.
    """
    existing = load(kube, velero_namespace, session)
    if existing is not None:
        conflicts = []
        if mode and existing.doc.get("mode") not in (None, mode):
            conflicts.append("mode %s (asked: %s)" % (existing.doc.get("mode"), mode))
        old_backup = (existing.doc.get("backup") or {}).get("name")
        new_backup = (backup or {}).get("name")
        if new_backup and old_backup not in (None, new_backup):
            conflicts.append("backup %s (asked: %s)" % (old_backup, new_backup))
        if conflicts:
            raise PreflightError(
                "Session %r already exists with %s. Re-run with the same inputs to continue it, "
                "or pick another session name." % (session, "; ".join(conflicts)))
        changes = {}
        if mode and existing.doc.get("mode") is None:
            changes["mode"] = mode
        if backup and existing.doc.get("backup") is None:
            changes["backup"] = backup
        if plan is not None and existing.doc.get("plan") != plan and existing.state == "planned":
            changes["plan"] = plan
        event = None
        if run and existing.run != run:
            changes["run"] = {"id": run, "since": now(), "previous": existing.run}
            event = "run %s took over from %s" % (run, existing.run or "a run before runs were recorded")
        if not changes:
            return existing, False
        if check_mode:
            return existing, True

        def apply(doc):
            # Decided on this module's copy; a conflict re-reads, and the fresh document may have moved on (another
            # run started the restore meanwhile): a started session keeps its plan.
            if "plan" in changes and doc.get("state") != "planned":
                raise PreflightError(
                    "Restore session %r moved to %s while this run was planning it (another run continues it). "
                    "Re-run to continue the session with its recorded plan, or pick another session name."
                    % (session, doc.get("state")))
            doc.update(changes)

        updated = update(kube, velero_namespace, session, apply, event=event)
        if event and existing.run and existing.state != "failed":
            take_over_sleep(TAKE_OVER_GRACE_SECONDS)
        return updated, True
    if check_mode:
        return None, True
    doc = new_document(session, mode=mode, backup=backup, plan=plan, run=run)
    try:
        cm = kube.create(k.CONFIG_MAP, config_map_body(session, velero_namespace, doc), velero_namespace)
    except ConflictError:  # created concurrently: use that one
        _forget(kube, velero_namespace, session)
        return ensure(kube, velero_namespace, session, mode, backup, plan, check_mode, run)
    _remember(kube, cm)
    return Session(cm), True


def update(kube, velero_namespace, session, mutate, event=None, state=None):
    """Read-modify-write the document with optimistic concurrency; returns the new Session.

    ``mutate(doc)`` changes the dict in place. Retries on conflict with a fresh read. ``state``: move the
    session to this state (no error) in the same write - a module's last journal write and its
    ``session_state`` are then one request, and module.run_module finds nothing left to write.
    """
    if state:
        check_state(state)
        if not event:
            event = "state %s" % state
    for _attempt in range(CONFLICT_RETRIES):
        current = require(kube, velero_namespace, session)
        doc = _next_document(current.doc, mutate, event, state)
        if doc is None:
            return current
        body = copy.deepcopy(current.config_map)
        body["data"] = {DATA_KEY: dump(doc)}
        try:
            written = kube.replace(k.CONFIG_MAP, body, velero_namespace)
        except (ConflictError, NotFoundError):  # changed or deleted meanwhile: read again
            _forget(kube, velero_namespace, session)
            continue
        _remember(kube, written)
        return Session(written)
    raise DataRestoreError("Session %r kept changing while being updated (%d conflicts); is another "
                           "run using it? Retry when it is done." % (session, CONFLICT_RETRIES))


def _next_document(current, mutate, event=None, state=None):
    """The document ``update`` writes, or None when ``mutate`` changes nothing."""
    doc = copy.deepcopy(current)
    mutate(doc)
    if state:
        _apply_state(doc, state)
    if doc == current:
        return None
    doc["updated"] = now()
    if event:
        doc["history"].append({"at": doc["updated"], "event": event})
    return doc


def with_state(doc, state, error=None):
    """The document as set_state would write it (what check mode shows)."""
    return _next_document(doc, lambda d: _apply_state(d, state, error), event="state %s" % state) or doc


def undo_id(action, target):
    """Stable id of an undo record: the action and the object it concerns."""
    return "%s:%s/%s/%s" % (action, target.get("kind"), target.get("namespace") or "", target.get("name"))


def other_holders(kube, velero_namespace, session, record_id, include_releasing=False):
    """{session name: record} of the OTHER sessions whose journal holds ``record_id`` not yet reverted: a change
    (a GitOps pause) that serves them as well, which this session must not undo while they need it. A record
    marked ``releasing`` (its session is lifting the pause) holds nothing unless ``include_releasing``. One LIST
    of the session ConfigMaps; an unreadable document is skipped (it cannot be relied on, nor hold anything)."""
    items = kube.list(k.CONFIG_MAP, namespace=velero_namespace,
                      label_selector="%s=%s" % (names.LABEL_MANAGED_BY, names.MANAGED_BY))[0]
    out = {}
    for cm in items:
        try:
            other = Session(cm)
        except DataRestoreError:
            continue
        if other.name in (None, session):
            continue
        record = other.undo_record(record_id)
        if record is not None and record.get("status") != "reverted" and (include_releasing or not record.get("releasing")):
            out[other.name] = record
    return out


def record_undo(kube, velero_namespace, session, action, target, original, check_mode=False):
    """Record what is needed to undo `action` on `target` BEFORE the caller mutates it.

    Idempotent: an existing record for the same action and target is kept as it is (its
    original is the true one). Returns the record.
    """
    records = record_undo_many(kube, velero_namespace, session, [(action, target, original)], check_mode=check_mode)
    return records[undo_id(action, target)]


def record_undo_many(kube, velero_namespace, session, entries, renew_reverted=False, check_mode=False, renew=()):
    """record_undo for several ``(action, target, original)`` in ONE journal write, before the caller mutates
    any of them. An existing record is kept (first record wins); with ``renew_reverted`` a record whose change
    was already reverted starts a new cycle (status recorded, the new original and target); so does a record
    whose id is in ``renew`` (the caller found it stale: its object was recreated, or its change undone already).
    Returns {id: record}.

    An entry may carry a 4th element, extra fields of a new (or renewed) record, e.g. the claims a workload
    was stopped for: written with the record, so an interruption right after it loses nothing."""
    wanted, extras = [], {}
    for entry in entries:
        action, target, original = entry[:3]
        wanted.append((undo_id(action, target), action, target, original))
        extras[undo_id(action, target)] = dict(entry[3]) if len(entry) > 3 else {}
    current = require(kube, velero_namespace, session)
    if check_mode:
        return dict((rid, current.undo_record(rid) or _undo_entry(rid, action, target, original))
                    for rid, action, target, original in wanted)

    def apply(doc):
        by_id = dict((r["id"], r) for r in doc["undo"])
        for rid, action, target, original in wanted:
            record = by_id.get(rid)
            if record is None:
                record = _undo_entry(rid, action, target, original)
                record.update(copy.deepcopy(extras[rid]))
                doc["undo"].append(record)
                by_id[rid] = record
            elif (renew_reverted and record["status"] == "reverted") or rid in renew:
                record.update(status="recorded", original=copy.deepcopy(original), target=dict(target),
                              recordedAt=now())
                record.update(copy.deepcopy(extras[rid]))

    updated = update(kube, velero_namespace, session, apply,
                     event="recorded %s" % ", ".join(rid for rid, _a, _t, _o in wanted))
    return dict((rid, updated.undo_record(rid)) for rid, _a, _t, _o in wanted)


def set_undo_status_many(kube, velero_namespace, session, changes, check_mode=False, state=None):
    """set_undo_status for several records in one write: ``changes`` is {id: (status, {extra fields})}.

    ``state``: also move the session to this state in the same write (see update)."""
    if check_mode or not changes:
        return None

    def apply(doc):
        for record in doc["undo"]:
            if record["id"] in changes:
                status, extra = changes[record["id"]]
                record["status"] = status
                record.update(extra)

    return update(kube, velero_namespace, session, apply, state=state)


def mark_freeing(kube, velero_namespace, session, records, pvs):
    """The intent of a cleanup, in one write before its first change: the undo records whose PVs go (``records``:
    {id: status}) are marked, and the PVs to delete ({name: uid}) are kept, so that a re-run after a kill between
    a claim's delete and its PV's still finds the PV (it is no longer any claim's)."""
    def apply(doc):
        if doc.get("state") not in SETTLED_STATES:  # a rollback (or a restore) began since the cleanup read it
            raise PreflightError(
                "Restore session %r moved to %s while cleanup.yml was about to delete its volumes; nothing was "
                "changed. Let that run finish, then clean up." % (session, doc.get("state")))
        for record in doc["undo"]:
            if record["id"] in records:
                record["status"] = records[record["id"]]
                record["freeing"] = True
        cleanup = doc.setdefault("cleanup", {})
        cleanup["pvs"] = dict(cleanup.get("pvs") or {}, **pvs)

    return update(kube, velero_namespace, session, apply)


def _undo_entry(rid, action, target, original):
    return {"id": rid, "action": action, "target": dict(target), "original": copy.deepcopy(original),
            "status": "recorded", "recordedAt": now()}


def set_undo_status(kube, velero_namespace, session, record_id, status, check_mode=False, **extra):
    return set_undo_status_many(kube, velero_namespace, session, {record_id: (status, extra)}, check_mode=check_mode)


def set_state(kube, velero_namespace, session, state, error=None, check_mode=False):
    check_state(state)
    current = require(kube, velero_namespace, session)
    if current.state == state and current.doc.get("error") == error:
        return current, False
    if check_mode:
        return current, True

    def apply(doc):
        if state == "rolling_back":
            refuse_rollback_after_cleanup(doc, session)
        _apply_state(doc, state, error)

    return update(kube, velero_namespace, session, apply, event="state %s" % state), True


def check_state(state):
    """Fails before any read or write on a state name the journal does not know."""
    if state not in STATES:
        raise PreflightError("Unknown session state %r; use one of %s." % (state, ", ".join(STATES)))


def _apply_state(doc, state, error=None):
    doc["state"] = state
    doc["error"] = error


def set_volume(kube, velero_namespace, session, volume_key, fields, check_mode=False):
    """Merge `fields` into the per-volume record (e.g. phase, PVR name, bytes)."""
    current = require(kube, velero_namespace, session)
    record = (current.doc.get("volumes") or {}).get(volume_key) or {}
    if all(record.get(f) == v for f, v in fields.items()):
        return current, False
    if check_mode:
        return current, True

    def apply(doc):
        doc["volumes"].setdefault(volume_key, {}).update(fields)

    return update(kube, velero_namespace, session, apply), True


def append_hook_result(kube, velero_namespace, session, result, check_mode=False):
    if check_mode:
        return None

    def apply(doc):
        doc["hooks"].append(dict(result, at=now()))

    return update(kube, velero_namespace, session, apply)


def pending_undo(sess):
    """Undo records whose change is (or may be) in effect."""
    return [r for r in sess.doc.get("undo") or [] if r["status"] in ("recorded", "applied")]


def delete(kube, velero_namespace, session, force=False, check_mode=False):
    """Delete the session (GC removes its PVRs/DataDownloads). Returns changed.

    Refuses while undo records are still in effect, unless force: the session is the only
    record of retained PVs and original replica counts.
    """
    current = load(kube, velero_namespace, session)
    if current is None:
        return False
    pending = [r for r in pending_undo(current) if r["action"] != ACTION_RETAIN or r.get("keep") is not True]
    if pending and not force:
        raise PreflightError(
            "Session %r still holds %d undo record(s) in effect (%s). Resume or roll back first, "
            "or pass force=true if you accept losing them." % (
                session, len(pending), ", ".join(r["id"] for r in pending[:5])))
    if check_mode:
        return True
    _forget(kube, velero_namespace, session)
    return kube.delete(k.CONFIG_MAP, current.object_name, velero_namespace, uid=current.uid)
