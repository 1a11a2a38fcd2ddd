# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Swap restored volumes under workloads, and back (DESIGN.md §5.3).

``rebind`` keeps the PVC name: both PVs are set to Retain, the original and the restored PVC are
deleted, the restored PV's claimRef is pointed at the original name and the original PVC is recreated
with ``volumeName`` = restored PV; the PV controller binds the pre-bound pair. The old PV stays
Released/Retain for rollback. ``template`` patches pod templates to the new claim name instead.

``ensure_new_claim`` creates the new claim of a replace-mode plan record (``new_pvc``) that a
PodVolumeRestore restores into; ``new_claim_body`` is the one builder of that claim, shared with
data_download (which adds the ``velero.io/dynamic-pv-restore`` selector its DataDownload needs).

Every step reads the current state first and the session holds what was there before, so a run
killed anywhere (e.g. after the original PVC was deleted, before it was recreated) completes when it
is run again. A PV is never deleted, and its Delete reclaim policy is only restored while it is Bound.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import time

from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils import names
from ansible_collections.velero.data_restore.plugins.module_utils import pod_volume_restore as pvrs
from ansible_collections.velero.data_restore.plugins.module_utils import session as sessions
from ansible_collections.velero.data_restore.plugins.module_utils import velero_api as va
from ansible_collections.velero.data_restore.plugins.module_utils.errors import (
    DataRestoreError,
    ForbiddenError,
    MissingApiError,
    PreflightError,
)
from ansible_collections.velero.data_restore.plugins.module_utils.waiting import WaitState, wait_for
from ansible_collections.velero.data_restore.plugins.module_utils.pods import is_terminal, pods_holding
from ansible_collections.velero.data_restore.plugins.module_utils.workloads import (
    JOB_STARTERS,
    claim_template_patterns,
    controller_ref,
    gitops_markers,
    job_finished,
    pod_label,
    pod_template,
    served,
)

ACTION_RETAIN = sessions.ACTION_RETAIN
ACTION_REBIND = sessions.ACTION_REBIND
ACTION_TEMPLATE = sessions.ACTION_TEMPLATE
MODES = ("rebind", "template")
STATES = ("swapped", "reverted", "prepared", "freed")
CLAIM_ROLE = "claim"
RESTORE_VIA_DD = "data_download"
RETAIN = "Retain"
# Binding annotations the PV controller writes; a recreated claim must not carry them.
BINDING_ANNOTATION_PREFIX = "pv.kubernetes.io/"
DROPPED_ANNOTATIONS = ("volume.kubernetes.io/selected-node",)
# The class annotation of claims made before storageClassName existed; Kubernetes still prefers it to the spec
# field (component-helpers storage/volume GetPersistentVolumeClaimClass), and the PV binder refuses a claim whose
# class so read differs from its volume's.
BETA_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
PVC_SPEC_KEYS = ("accessModes", "resources", "storageClassName", "volumeMode", "volumeAttributesClassName")


def volume_label(vol):
    return "%s/%s" % (vol["namespace"], vol["pvc"])


def normalize_volumes(volumes):
    """Plan records ({key, target_namespace, target_pvc, new_pvc: {name}}) or {namespace, pvc, new_pvc}."""
    out = []
    for item in volumes or []:
        namespace = item.get("target_namespace") or item.get("namespace")
        pvc = item.get("target_pvc") or item.get("pvc")
        new = item.get("new_pvc")
        new_name = new.get("name") if isinstance(new, dict) else new
        if not namespace or not pvc:
            raise PreflightError("Volume %r needs namespace and pvc (or target_namespace and target_pvc)." % (item,))
        out.append({"key": item.get("key") or "%s/%s" % (namespace, pvc), "namespace": namespace, "pvc": pvc,
                    "new_pvc": new_name})
    return out


def claim_class(pvc):
    """The claim's StorageClass name as Kubernetes reads it: the beta annotation first, then storageClassName."""
    annotations = (pvc.get("metadata") or {}).get("annotations") or {}
    if BETA_CLASS_ANNOTATION in annotations:
        return annotations[BETA_CLASS_ANNOTATION]
    return (pvc.get("spec") or {}).get("storageClassName")


def claim_snapshot(pvc):
    """What is needed to recreate a PVC: labels, annotations, ownerReferences, spec, uid."""
    meta = pvc["metadata"]
    return {"name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid"),
            "labels": dict(meta.get("labels") or {}), "annotations": dict(meta.get("annotations") or {}),
            "ownerReferences": copy.deepcopy(meta.get("ownerReferences") or []),
            "spec": copy.deepcopy(pvc.get("spec") or {})}


def recreate_body(snapshot, pv, owner_references=None, warnings=None):
    """A claim like ``snapshot`` pre-bound to PersistentVolume ``pv`` (no selector, no binding annotations).

    The PV binder binds a pre-bound claim only when it satisfies the volume (k8s pv_controller.go
    checkVolumeSatisfyClaim): the class and the volume attributes class are the PV's, and the request is at most
    the PV's capacity (a claim whose expansion is still pending asks for more; ``warnings`` gets a line then).
    ``owner_references``: the claim's owners now (see ClaimPatcher._owners); None keeps the recorded ones.
    """
    annotations = dict((key, value) for key, value in snapshot["annotations"].items()
                       if not key.startswith(BINDING_ANNOTATION_PREFIX) and key not in DROPPED_ANNOTATIONS)
    annotations.pop(BETA_CLASS_ANNOTATION, None)  # it would override the class set below
    meta = {"name": snapshot["name"], "namespace": snapshot["namespace"], "labels": snapshot["labels"],
            "annotations": annotations}
    owners = snapshot.get("ownerReferences") if owner_references is None else owner_references
    if owners:
        meta["ownerReferences"] = copy.deepcopy(owners)
    spec = dict((key, copy.deepcopy(snapshot["spec"][key])) for key in PVC_SPEC_KEYS if key in snapshot["spec"])
    pv_spec = pv.get("spec") or {}
    spec["storageClassName"] = pv_spec.get("storageClassName") or ""
    spec.pop("volumeAttributesClassName", None)
    if pv_spec.get("volumeAttributesClassName"):
        spec["volumeAttributesClassName"] = pv_spec["volumeAttributesClassName"]
    capacity = (pv_spec.get("capacity") or {}).get("storage")
    request = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if capacity and (request is None or (k.parse_quantity(request) or 0) > (k.parse_quantity(capacity) or 0)):
        spec.setdefault("resources", {}).setdefault("requests", {})["storage"] = capacity
        if request is not None and warnings is not None:
            warnings.append(
                "PVC %s/%s asked for %s, more than the %s of volume %s (an expansion not finished yet); it is "
                "recreated asking for %s, or the volume would not bind. Ask for %s again once this run is done "
                "(kubectl patch pvc -n %s %s -p '{\"spec\":{\"resources\":{\"requests\":{\"storage\":\"%s\"}}}}')."
                % (snapshot["namespace"], snapshot["name"], request, capacity, pv["metadata"]["name"], capacity,
                   request, snapshot["namespace"], snapshot["name"], request))
    spec["volumeName"] = pv["metadata"]["name"]
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": spec}


# ----------------------------------------------------------------------------- the new claim (replace mode)
def new_claim_body(rec, session, selector=None):
    """The new PVC of plan record ``rec`` (``new_pvc``: name, storage_class, size, access_modes, volume_mode).

    Session labels (role ``claim``) and the volume-key annotation. ``selector``: the
    ``velero.io/dynamic-pv-restore`` value a DataDownload target needs, set at creation (immutable).
    """
    new_pvc = rec.get("new_pvc") or {}
    key = rec.get("key") or new_pvc.get("name")
    if not new_pvc.get("name"):
        raise PreflightError("Volume %s has no new_pvc: only a replace-mode plan (velero.data_restore.restore_plan "
                             "mode=replace) has a new claim to create." % key, volume=key)
    if not rec.get("target_namespace"):
        raise PreflightError("Volume %s: the plan record lacks target_namespace; build it with "
                             "velero.data_restore.restore_plan." % key, volume=key)
    if not new_pvc.get("size"):
        raise PreflightError("Volume %s: new_pvc.size is missing." % key, volume=key)
    spec = {
        "accessModes": list(new_pvc.get("access_modes") or ["ReadWriteOnce"]),
        "resources": {"requests": {"storage": str(new_pvc["size"])}},
        "volumeMode": new_pvc.get("volume_mode") or rec.get("volume_mode") or "Filesystem",
    }
    if selector:
        spec["selector"] = {"matchLabels": {va.LABEL_DYNAMIC_PV_RESTORE: selector}}
    if new_pvc.get("storage_class"):
        spec["storageClassName"] = new_pvc["storage_class"]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": new_pvc["name"],
            "namespace": rec["target_namespace"],
            "labels": names.session_labels(session, CLAIM_ROLE),
            "annotations": {pvrs.ANNOTATION_VOLUME_KEY: pvrs.volume_key(rec)},
        },
        "spec": spec,
    }


def refuse_new_claim_mid_swap(sess, namespace, pvc, new_pvc):
    """A volume whose swap began (and was not reverted) has its data restored already, and the swap may have deleted
    its new claim: restoring again would create an empty claim that nothing binds. Refuse and say how to go on."""
    mode = sess.swap_started(namespace, pvc) if sess is not None else None
    if mode:
        raise PreflightError(
            "The swap of PVC %s/%s began (%s, recorded in restore session %r): its data was restored already, so "
            "the new claim %s is not created again. Continue the swap (re-run the replace playbook with the same "
            "session, or velero.data_restore.claim_patch state=swapped) or roll it back (playbooks/rollback.yml)."
            % (namespace, pvc, mode, sess.name, new_pvc), pvc="%s/%s" % (namespace, pvc))


def is_session_claim(pvc, session):
    labels = (pvc.get("metadata") or {}).get("labels") or {}
    return labels.get(names.LABEL_MANAGED_BY) == names.MANAGED_BY and labels.get(names.LABEL_SESSION) == session


def ensure_new_claim(kube, velero_namespace, session, rec, check_mode=False):
    """Create the new PVC of plan record ``rec`` unless this session's is there already (idempotent).

    Recorded in the session (volume ``new_pvc``) before it is created. A PVC of that name that is not
    this session's is refused. Returns {key, namespace, pvc, new_pvc, state, changed, body}; state is
    ``created``, ``exists`` or ``would_create`` (check mode).
    """
    body = new_claim_body(rec, session)
    meta = body["metadata"]
    namespace, name, key = meta["namespace"], meta["name"], pvrs.volume_key(rec)
    out = {"key": key, "namespace": namespace, "pvc": rec.get("target_pvc"), "new_pvc": name, "changed": False}
    existing = kube.get(k.PVC, name, namespace)
    if existing is not None:
        if not is_session_claim(existing, session):
            labels = (existing.get("metadata") or {}).get("labels") or {}
            raise PreflightError(
                "PVC %s/%s (the new claim for %s) already exists and is not one of restore session %r (labels %s). "
                "Delete or rename it if it is not needed, or restore with another session name (the new claim's "
                "name derives from it)." % (namespace, name, key, session,
                                            ", ".join("%s=%s" % kv for kv in sorted(labels.items())) or "none"),
                pvc="%s/%s" % (namespace, name))
        out["state"] = "exists"
        return out
    out.update(state="would_create" if check_mode else "created", changed=True, body=body)
    if check_mode:
        return out
    sessions.set_volume(kube, velero_namespace, session, key, {"new_pvc": name,
                                                               "restore_via": rec.get("restore_via")})
    k.create_or_take(kube, k.PVC, body, namespace, label=names.LABEL_SESSION)
    return out


def prepare_claims(kube, params, check_mode=False):
    """claim_patch state=prepared: the new PVCs of replace-mode plan records (DataDownload ones excepted)."""
    session = params["session"]
    records = params.get("volumes") or []
    if not records:
        raise PreflightError("volumes is empty: give the plan volume records of a replace-mode plan.")
    sess = sessions.load(kube, params["velero_namespace"], session)
    if sess is None and not check_mode:
        sessions.require(kube, params["velero_namespace"], session)
    for rec in records:  # before any change
        refuse_new_claim_mid_swap(sess, rec.get("target_namespace"), rec.get("target_pvc"),
                                  (rec.get("new_pvc") or {}).get("name"))
    results, after = [], {}
    for rec in records:
        if rec.get("restore_via") == RESTORE_VIA_DD:
            results.append({"key": pvrs.volume_key(rec), "namespace": rec.get("target_namespace"),
                            "pvc": rec.get("target_pvc"), "new_pvc": (rec.get("new_pvc") or {}).get("name"),
                            "state": "skipped", "changed": False})
            continue  # velero.data_restore.data_download creates its claim (with the selector)
        result = ensure_new_claim(kube, params["velero_namespace"], session, rec, check_mode=check_mode)
        body = result.pop("body", None)
        if body is not None:
            after[result["key"]] = body
        results.append(result)
    return dict(changed=any(r["changed"] for r in results), volumes=results, warnings=[],
                diff=dict(before={}, after=after))


def _phase(obj):
    return (obj.get("status") or {}).get("phase")


def _deleting(obj):
    return bool(obj is not None and obj["metadata"].get("deletionTimestamp"))


def _volume_name(pvc):
    return ((pvc or {}).get("spec") or {}).get("volumeName")


def pv_target(pv):
    return {"kind": "PersistentVolume", "namespace": None, "name": pv["metadata"]["name"],
            "uid": pv["metadata"].get("uid")}


def in_use_message(namespace, claims, users):
    """Why ``claims`` cannot be deleted or swapped now, naming the pods that hold them and what to do."""
    running = [p for p in users if not is_terminal(p)]
    finished = [p for p in users if is_terminal(p)]
    parts = []
    if running:
        parts.append("PVC(s) %s in namespace %s are in use by pod(s) %s. Stop their workloads first "
                     "(velero.data_restore.workload_scale state=stopped) and re-run."
                     % (", ".join(claims), namespace, ", ".join(pod_label(p) for p in running)))
    if finished:
        parts.append("Finished pod(s) %s still hold PVC(s) %s in namespace %s: Kubernetes keeps a claim while a "
                     "scheduled pod names it, whatever its phase (kubernetes.io/pvc-protection). Delete those pods "
                     "(kubectl delete pod -n %s %s) and re-run."
                     % (", ".join(pod_label(p) for p in finished), ", ".join(claims), namespace, namespace,
                        " ".join(p["metadata"]["name"] for p in finished)))
    return " ".join(parts)


class ClaimPatcher(object):
    def __init__(self, kube, velero_namespace, session_name, check_mode=False, timeout=600, on_progress=None,
                 wait=True):
        self.kube = kube
        self.velero_namespace = velero_namespace
        self.session_name = session_name
        self.check_mode = check_mode
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.on_progress = on_progress
        self.wait = wait
        self.warnings = []
        # In check mode a session that a previous task would have created may be missing: plan without it.
        self.journaled = not (check_mode and sessions.load(kube, velero_namespace, session_name) is None)
        if self.journaled:
            sessions.require(kube, velero_namespace, session_name)

    # -- journal helpers -------------------------------------------------------
    def begun_modes(self, volumes):
        """{volume key: "rebind" or "template"} for the volumes whose swap began and was not reverted."""
        if not self.journaled:
            return {}
        sess = sessions.require(self.kube, self.velero_namespace, self.session_name)
        out = {}
        for vol in volumes:
            began = sess.swap_started(vol["namespace"], vol["pvc"])
            if began:
                out[vol["key"]] = began
        return out

    def _record(self, rid):
        if not self.journaled:
            return None
        return sessions.require(self.kube, self.velero_namespace, self.session_name).undo_record(rid)

    def _undo_records(self):
        if not self.journaled:
            return []
        return sessions.require(self.kube, self.velero_namespace, self.session_name).doc.get("undo") or []

    def _status(self, rid, status, **extra):
        if not self.check_mode:
            sessions.set_undo_status(self.kube, self.velero_namespace, self.session_name, rid, status, **extra)

    def _remaining(self):
        return max(0, self.deadline - time.monotonic())

    # -- cluster helpers -------------------------------------------------------
    def _refuse_in_use(self, namespace, claims, keeps_claims=False):
        """Refuse the pods that hold ``claims``: running ones, and finished ones unless the change ``keeps_claims``
        (pvc-protection stops only the delete of a claim a scheduled pod names)."""
        pods = self.kube.list(k.POD, namespace=namespace)[0]
        users = pods_holding(pods, [c for c in claims if c])
        if keeps_claims:
            users = [p for p in users if not is_terminal(p)]
        running = [p for p in users if not is_terminal(p)]
        if self.check_mode and running:
            # In a check run the playbooks' stop before this step did not happen: say what a real run needs.
            self.warnings.append("Check mode: " + in_use_message(namespace, [c for c in claims if c], running)
                                 + " (The restore and rollback playbooks stop them before this step.)")
            users = [p for p in users if is_terminal(p)]
        if users:
            raise PreflightError(in_use_message(namespace, [c for c in claims if c], users),
                                 pods=[p["metadata"]["name"] for p in users])

    def _retain(self, pv_name):
        pv = self.kube.get(k.PV, pv_name)
        if pv is None:
            raise DataRestoreError("PersistentVolume %s recorded in session %s no longer exists; it cannot be "
                                   "retained or bound again." % (pv_name, self.session_name))
        if pv["spec"].get("persistentVolumeReclaimPolicy") != RETAIN:
            sessions.record_undo(self.kube, self.velero_namespace, self.session_name, ACTION_RETAIN,
                                 pv_target(pv), {"persistentVolumeReclaimPolicy":
                                                 pv["spec"].get("persistentVolumeReclaimPolicy")})
            self.kube.patch(k.PV, pv_name, {"spec": {"persistentVolumeReclaimPolicy": RETAIN}})
            self._status(sessions.undo_id(ACTION_RETAIN, pv_target(pv)), "applied")
        return pv

    def _restore_policy(self, pv_name):
        """Give a PV its recorded reclaim policy back, but a Delete policy only while it is Bound."""
        pv = self.kube.get(k.PV, pv_name)
        if pv is None:
            return
        rid = sessions.undo_id(ACTION_RETAIN, pv_target(pv))
        record = self._record(rid)
        if record is None or record["status"] == "reverted":
            return
        policy = record["original"].get("persistentVolumeReclaimPolicy")
        if policy != RETAIN and (_phase(pv) != "Bound" or self._claim_deleting(pv)):
            self.warnings.append("PersistentVolume %s is %s: it keeps reclaim policy Retain instead of %s so that "
                                 "it is not deleted; delete it yourself once it is not needed."
                                 % (pv_name, _phase(pv) if _phase(pv) != "Bound" else "bound to a claim being "
                                    "deleted", policy))
            return
        if pv["spec"].get("persistentVolumeReclaimPolicy") != policy:
            self.kube.patch(k.PV, pv_name, {"spec": {"persistentVolumeReclaimPolicy": policy}})
        self._status(rid, "reverted")

    def _claim_deleting(self, pv):
        """True when the claim a PV is bound to is being deleted: a Delete policy would take the volume with it."""
        ref = pv["spec"].get("claimRef") or {}
        if not ref.get("name"):
            return False
        return _deleting(self.kube.get(k.PVC, ref["name"], ref.get("namespace")))

    def _delete_claims(self, namespace, claims):
        """Delete the given PVC objects and wait until they are gone (pvc-protection: once unused)."""
        gone = {}
        for claim in claims:
            meta = claim["metadata"]
            self.kube.delete(k.PVC, meta["name"], namespace, uid=meta["uid"])
            gone[meta["uid"]] = meta["name"]
        if not gone:
            return

        def predicate(objs):
            pending = ["PersistentVolumeClaim %s/%s" % (namespace, o["metadata"]["name"]) for o in objs
                       if o["metadata"].get("uid") in gone]
            return WaitState(not pending, pending, progress="%d PVC(s) still deleting" % len(pending))

        wait_for(self.kube, k.PVC, predicate, namespace=namespace, timeout=self._remaining(),
                 on_progress=self.on_progress,
                 what="PVC(s) %s to be deleted (kubernetes.io/pvc-protection removes them once no pod uses them)"
                 % ", ".join(sorted(gone.values())))

    def _point_pv(self, pv_name, namespace, claim_name, claim_uid=None):
        """Pre-bind a PV to a claim name (no uid) unless it is already bound to that claim."""
        pv = self.kube.get(k.PV, pv_name)
        if pv is None:
            raise DataRestoreError("PersistentVolume %s recorded in session %s no longer exists; PVC %s/%s cannot be "
                                   "bound to it." % (pv_name, self.session_name, namespace, claim_name))
        ref = pv["spec"].get("claimRef") or {}
        if ref.get("name") == claim_name and ref.get("namespace") == namespace and (
                not ref.get("uid") or (claim_uid and ref.get("uid") == claim_uid)):
            return pv
        # Like Velero's ResetPVBinding: a user pre-binding, so drop bound-by-controller too.
        return self.kube.patch(k.PV, pv_name, {
            "metadata": {"annotations": {BOUND_BY_CONTROLLER: None}},
            "spec": {"claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": namespace,
                                  "name": claim_name, "uid": None, "resourceVersion": None}}})

    def _owners(self, namespace, live, snapshot):
        """The ownerReferences of a recreated claim: those of the live claim it replaces (the garbage collector keeps
        them current), else the recorded ones whose owner still exists with that uid. A claim that names only owners
        that are gone is deleted by the garbage collector, and its volume with it once its Delete policy is back."""
        if live is not None:
            return live["metadata"].get("ownerReferences") or []
        kept = []
        for ref in snapshot.get("ownerReferences") or []:
            kind = k.KINDS_BY_NAME.get(ref.get("kind"))
            if kind is None or kind.api_version != ref.get("apiVersion"):
                kind = k.Kind(ref.get("apiVersion"), ref.get("kind"), (ref.get("kind") or "").lower() + "s", True)
            try:
                owner = self.kube.get(kind, ref.get("name"), namespace)
            except (ForbiddenError, MissingApiError) as exc:
                owner, reason = None, "it cannot be read (%s)" % exc
            else:
                reason = "it no longer exists with uid %s" % ref.get("uid")
            if owner is not None and owner["metadata"].get("uid") == ref.get("uid"):
                kept.append(ref)
                continue
            self.warnings.append(
                "PVC %s/%s is recreated without its owner reference to %s %s: %s, and the garbage collector would "
                "delete the claim." % (namespace, snapshot["name"], ref.get("kind"), ref.get("name"), reason))
        return kept

    def _create_bound(self, snapshot, pv_name, live=None):
        """Create the claim of ``snapshot`` pre-bound to PV ``pv_name`` unless it exists, and wait until it is Bound.
        ``live``: the claim it replaces, as read before it was deleted."""
        namespace, name = snapshot["namespace"], snapshot["name"]
        current = self.kube.get(k.PVC, name, namespace)
        if _deleting(current):
            # Taken as bound, it would be deleted later with the volume's Delete policy given back.
            raise DataRestoreError(
                "PVC %s/%s is being deleted: a pod that names it still holds it (kubernetes.io/pvc-protection). "
                "PersistentVolume %s keeps reclaim policy Retain. Delete the pods that name the claim, wait until "
                "the claim is gone, and re-run with session=%s." % (namespace, name, pv_name, self.session_name))
        existed = [current] if current is not None else []

        def take(found, _body):
            # Recreated meanwhile by another run of this session (the claim carries the user's labels, not
            # ours): taken here, its volume is checked below.
            existed.append(found)
            return True

        if current is None:
            pv = self._point_pv(pv_name, namespace, name)
            body = recreate_body(snapshot, pv, owner_references=self._owners(namespace, live, snapshot),
                                 warnings=self.warnings)
            current = k.create_or_take(self.kube, k.PVC, body, namespace, same=take)
        if _volume_name(current) != pv_name:
            raise DataRestoreError(
                "PVC %s/%s exists but names volume %s instead of %s; someone recreated it meanwhile. Delete it "
                "(it is not in use) and re-run to continue the swap." % (namespace, name, _volume_name(current),
                                                                         pv_name))
        if existed:
            self._point_pv(pv_name, namespace, name, current["metadata"]["uid"])
        if not self.wait:
            return

        def predicate(objs):
            bound = [o for o in objs if o["metadata"]["name"] == name and _phase(o) == "Bound"
                     and _volume_name(o) == pv_name]
            return WaitState(bool(bound), [] if bound else ["PersistentVolumeClaim %s/%s" % (namespace, name)],
                             progress=None if bound else "waiting for %s/%s to bind %s" % (namespace, name, pv_name))

        wait_for(self.kube, k.PVC, predicate, namespace=namespace, timeout=self._remaining(),
                 on_progress=self.on_progress, what="PVC %s/%s to be Bound to %s" % (namespace, name, pv_name))

    # -- rebind ----------------------------------------------------------------
    def rebind(self, vol):
        namespace, name, new_name = vol["namespace"], vol["pvc"], vol["new_pvc"]
        target = {"kind": "PersistentVolumeClaim", "namespace": namespace, "name": name}
        rid = sessions.undo_id(ACTION_REBIND, target)
        record = self._record(rid)
        result = dict(vol, mode="rebind", changed=False)
        if record is None or record["status"] == "reverted":
            original = self._plan_rebind(vol)
            result.update(old_pv=original["old_pv"], new_pv=original["new_pv"], state="would_swap", changed=True,
                          diff=({name: original["old_pv"]}, {name: original["new_pv"]}))
            if self.check_mode:
                return result
            # Record before mutate: both reclaim policies, then the claims.
            self._retain(original["old_pv"])
            self._retain(original["new_pv"])
            if record is None:
                sessions.record_undo(self.kube, self.velero_namespace, self.session_name, ACTION_REBIND, target,
                                     original)
            self._status(rid, "recorded", original=original, phase="swapping")
            record = self._record(rid)
        original = record["original"]
        old_pv, new_pv = original["old_pv"], original["new_pv"]
        result.update(old_pv=old_pv, new_pv=new_pv, new_pvc=original["new_pvc"]["name"])
        current = self.kube.get(k.PVC, name, namespace)
        # A claim being deleted (a pod still holds it) is gone for this purpose: bound now, deleted later.
        deleting = _deleting(current)
        bound_to_new = current is not None and _volume_name(current) == new_pv and _phase(current) == "Bound" \
            and not deleting
        if bound_to_new and record.get("phase") == "swapping" and record["status"] == "applied":
            # A swap with wait=false: the recreated claim has bound since; the journal says so once.
            if not self.check_mode:
                self._status(rid, "applied", phase="swapped")
            record = dict(record, phase="swapped")
            result["changed"] = True
        if bound_to_new and record.get("phase") == "swapped":
            result["state"] = "swapped"
            # A run killed before its last write left the volume without its swap entry: the swap would count as
            # partial for good (the rescue of a later failure rolls back partial swaps) and the report shows no PVs.
            if self._write_swap_entry(vol["key"], "rebind", old_pv, new_pv, name, only_missing=True):
                result["changed"] = True
            return result
        result.update(state="would_swap" if self.check_mode else "swapped", changed=True,
                      diff=({name: _volume_name(current)}, {name: new_pv}))
        new_claim = self.kube.get(k.PVC, original["new_pvc"]["name"], namespace)
        if current is None or _volume_name(current) != new_pv or deleting:
            self._refuse_in_use(namespace, [name, original["new_pvc"]["name"]])
        if self.check_mode:
            return result
        if record.get("phase") != "swapping":
            self._status(rid, record["status"], phase="swapping")
        self._retain(old_pv)
        self._retain(new_pv)
        doomed = []
        if new_claim is not None and _volume_name(new_claim) == new_pv:
            doomed.append(new_claim)
        if current is not None and (_volume_name(current) != new_pv or deleting):
            if _volume_name(current) not in (old_pv, new_pv, None):
                raise DataRestoreError(
                    "PVC %s/%s is bound to %s, neither the original %s nor the restored %s; someone changed it "
                    "during the swap. Fix it by hand (session %s holds both PVs)." % (
                        namespace, name, _volume_name(current), old_pv, new_pv, self.session_name))
            doomed.append(current)
        self._delete_claims(namespace, doomed)
        self._create_bound(original["pvc"], new_pv, live=current)
        self._status(rid, "applied", phase="swapped" if self.wait else "swapping")
        self._write_swap_entry(vol["key"], "rebind", old_pv, new_pv, name)
        return result

    def _write_swap_entry(self, key, mode, old_pv, new_pv, pvc, only_missing=False):
        """The volume's swap entry in the journal (what the report and the rescue read). ``only_missing``: only when
        it does not say this swap is done yet. Returns whether it was (or, in check mode, would be) written."""
        entry = {"mode": mode, "old_pv": old_pv, "new_pv": new_pv, "pvc": pvc, "state": "swapped"}
        if only_missing:
            recorded = ((sessions.require(self.kube, self.velero_namespace, self.session_name).doc.get("volumes") or {})
                        .get(key) or {}).get("swap") or {}
            if (recorded.get("mode"), recorded.get("state")) == (mode, "swapped"):
                return False
        if not self.check_mode:
            sessions.set_volume(self.kube, self.velero_namespace, self.session_name, key, {"swap": entry})
        return True

    def _plan_rebind(self, vol):
        namespace, name, new_name = vol["namespace"], vol["pvc"], vol["new_pvc"]
        if not new_name:
            raise PreflightError("Volume %s has no new_pvc: rebind needs the restored PVC to swap in."
                                 % volume_label(vol))
        claims = {}
        for claim_name in (name, new_name):
            claim = self.kube.get(k.PVC, claim_name, namespace)
            if claim is None:
                raise PreflightError("PVC %s/%s not found; nothing to swap. Check the volume's namespace and "
                                     "names." % (namespace, claim_name))
            if _phase(claim) != "Bound" or not _volume_name(claim):
                raise PreflightError("PVC %s/%s is %s, not Bound to a volume; a swap needs both claims Bound "
                                     "(wait for the restore to finish)."
                                     % (namespace, claim_name, _phase(claim) or "unbound"))
            claims[claim_name] = claim
        if _volume_name(claims[name]) == _volume_name(claims[new_name]):
            raise PreflightError("PVCs %s/%s and %s are bound to the same volume %s." % (
                namespace, name, new_name, _volume_name(claims[name])))
        self._refuse_in_use(namespace, [name, new_name])
        pvs = {}
        for claim_name, claim in claims.items():
            pv = self.kube.get(k.PV, _volume_name(claim))
            if pv is None:
                raise PreflightError("PersistentVolume %s of PVC %s/%s not found." % (
                    _volume_name(claim), namespace, claim_name))
            pvs[claim_name] = pv
        return {"pvc": claim_snapshot(claims[name]), "new_pvc": claim_snapshot(claims[new_name]),
                "old_pv": pvs[name]["metadata"]["name"], "new_pv": pvs[new_name]["metadata"]["name"],
                "old_pv_uid": pvs[name]["metadata"].get("uid"), "new_pv_uid": pvs[new_name]["metadata"].get("uid"),
                "old_pv_reclaim_policy": pvs[name]["spec"].get("persistentVolumeReclaimPolicy"),
                "new_pv_reclaim_policy": pvs[new_name]["spec"].get("persistentVolumeReclaimPolicy")}

    def revert_rebind(self, vol):
        namespace, name = vol["namespace"], vol["pvc"]
        target = {"kind": "PersistentVolumeClaim", "namespace": namespace, "name": name}
        rid = sessions.undo_id(ACTION_REBIND, target)
        record = self._record(rid)
        result = dict(vol, mode="rebind", changed=False, old_pv=None, new_pv=None)
        if record is None:
            result["state"] = "not_swapped"
            self.warnings.append("Session %s has no rebind record for PVC %s/%s; nothing to revert."
                                 % (self.session_name, namespace, name))
            if not self.check_mode:
                # A swap killed after it retained the PVs, before its rebind record: give them their policy back.
                for claim_name in (name, vol.get("new_pvc")):
                    claim = self.kube.get(k.PVC, claim_name, namespace) if claim_name else None
                    if claim is not None and _phase(claim) == "Bound" and _volume_name(claim):
                        self._restore_policy(_volume_name(claim))
            return result
        original = record["original"]
        old_pv, new_pv = original["old_pv"], original["new_pv"]
        new_snapshot = original["new_pvc"]
        result.update(old_pv=old_pv, new_pv=new_pv, new_pvc=new_snapshot["name"])
        if record["status"] == "reverted":
            result["state"] = "reverted"
            return result
        current = self.kube.get(k.PVC, name, namespace)
        new_claim = self.kube.get(k.PVC, new_snapshot["name"], namespace)
        result.update(state="would_revert" if self.check_mode else "reverted", changed=True,
                      diff=({name: _volume_name(current)}, {name: old_pv}))
        if current is None or _volume_name(current) != old_pv or _deleting(current):
            self._refuse_in_use(namespace, [name])
        if self.check_mode:
            return result
        self._status(rid, record["status"], phase="reverting")
        self._retain(old_pv)
        self._retain(new_pv)
        if current is not None and (_volume_name(current) not in (old_pv, None) or _deleting(current)):
            if _volume_name(current) not in (old_pv, new_pv, None):
                raise DataRestoreError(
                    "PVC %s/%s is bound to %s, neither %s nor %s; fix it by hand (session %s holds both PVs)."
                    % (namespace, name, _volume_name(current), old_pv, new_pv, self.session_name))
            self._delete_claims(namespace, [current])
        self._create_bound(original["pvc"], old_pv, live=current)
        if new_claim is None or _volume_name(new_claim) == new_pv:
            self._create_bound(new_snapshot, new_pv, live=new_claim)
        for pv_name in (old_pv, new_pv):
            self._restore_policy(pv_name)
        self._status(rid, "reverted", phase="reverted")
        sessions.set_volume(self.kube, self.velero_namespace, self.session_name, vol["key"], {"swap": {
            "mode": "rebind", "old_pv": old_pv, "new_pv": new_pv, "pvc": name, "state": "reverted"}})
        return result

    # -- template --------------------------------------------------------------
    def template(self, vol):
        namespace, name, new_name = vol["namespace"], vol["pvc"], vol["new_pvc"]
        if not new_name:
            raise PreflightError("Volume %s has no new_pvc: template mode needs the claim to switch to."
                                 % volume_label(vol))
        new_claim = self.kube.get(k.PVC, new_name, namespace)
        if new_claim is None:
            raise PreflightError("PVC %s/%s not found; create/restore it first." % (namespace, new_name))
        old_claim = self.kube.get(k.PVC, name, namespace)
        users = template_users(self.kube, namespace, name)
        result = dict(vol, mode="template", changed=False, old_pv=_volume_name(old_claim),
                      new_pv=_volume_name(new_claim), workloads=[], state="swapped")
        before, after = {}, {}
        for obj in users:
            ref = {"kind": obj["kind"], "namespace": namespace, "name": obj["metadata"]["name"],
                   "uid": obj["metadata"]["uid"]}
            volumes = template_volumes(obj)
            changed_volumes = swap_claims(volumes, {name: new_name})
            label = "%s/%s" % (obj["kind"], obj["metadata"]["name"])
            result["workloads"].append(label)
            before[label], after[label] = volumes, changed_volumes
            result.update(changed=True, state="would_swap" if self.check_mode else "swapped")
            if self.check_mode:
                continue
            rid = sessions.undo_id(ACTION_TEMPLATE, ref)
            record = sessions.record_undo(self.kube, self.velero_namespace, self.session_name, ACTION_TEMPLATE,
                                          ref, {"volumes": volumes})
            swaps = dict(record.get("swaps") or {})
            swaps[name] = new_name
            self._status(rid, "recorded", swaps=swaps)
            self.kube.patch(KIND_OF[obj["kind"]], obj["metadata"]["name"], template_patch(obj["kind"], changed_volumes),
                            namespace)
            self._status(rid, "applied")
        if not users and not self.check_mode:
            finished = self._finish_interrupted_template(namespace, name)
            result["workloads"].extend(finished)
            recorded = ((sessions.require(self.kube, self.velero_namespace, self.session_name).doc.get("volumes") or {})
                        .get(vol["key"]) or {}).get("swap") or {}
            if finished and (recorded.get("mode"), recorded.get("state")) != ("template", "swapped"):
                result["changed"] = True  # the volume's swap entry is written below
        if not users and not self._template_swapped(namespace, name):
            # The preflight refuses this; the app changed since. "swapped" would hide that it runs on the old data.
            raise DataRestoreError(
                "No %s in namespace %s mounts PVC %s any more (the preflight found one), so the template swap would "
                "patch nothing and the app would go on with the old data. Point the workload at PVC %s/%s yourself, "
                "or roll the session back (playbooks/rollback.yml) and restore with swap_mode=rebind."
                % (TEMPLATE_KINDS_TEXT, namespace, name, namespace, new_name),
                pvc=name)
        result["diff"] = (before, after)
        if result["changed"]:
            self._write_swap_entry(vol["key"], "template", result["old_pv"], result["new_pv"], name)
        return result

    def _finish_interrupted_template(self, namespace, claim):
        """A run killed between a template patch and its journal writes left the record ``recorded``, or the volume
        without its ``swap`` entry, although the workload already mounts the new claim (so it is no user of ``claim``
        any more): mark the record applied (the caller writes the swap entry), so that a rollback finds the swap.
        Returns the workloads that mount the new claim by a record of this session."""
        finished = []
        for record in sessions.require(self.kube, self.velero_namespace, self.session_name).template_swaps(
                namespace, claim):
            swaps, target = record["swaps"], record["target"]
            obj = self.kube.get(KIND_OF[target["kind"]], target["name"], namespace)
            if obj is None or obj["metadata"].get("uid") != target.get("uid"):
                continue
            mounted = [(v.get("persistentVolumeClaim") or {}).get("claimName") for v in template_volumes(obj)]
            if swaps[claim] in mounted:
                if record["status"] != "applied":
                    self._status(record["id"], "applied")
                finished.append("%s/%s" % (target["kind"], target["name"]))
        return finished

    def _template_swapped(self, namespace, claim):
        return any(r["action"] == ACTION_TEMPLATE and r["target"].get("namespace") == namespace
                   and claim in (r.get("swaps") or {}) for r in self._undo_records())

    def revert_template(self, vol):
        namespace, name = vol["namespace"], vol["pvc"]
        result = dict(vol, mode="template", changed=False, old_pv=None, new_pv=None, workloads=[],
                      state="reverted")
        before, after = {}, {}
        records = [r for r in self._undo_records()
                   if r["action"] == ACTION_TEMPLATE and r["target"].get("namespace") == namespace
                   and name in (r.get("swaps") or {}) and r["status"] != "reverted"]
        if records:
            # Patched back under running pods, a workload would roll out onto the original volume while its old pods
            # still write to the restored one (lost when cleanup deletes it): they are stopped first (rollback.yml).
            self._refuse_in_use(namespace, sorted(set(r["swaps"][name] for r in records)), keeps_claims=True)
        for record in records:
            swaps = record["swaps"]
            target = record["target"]
            obj = self.kube.get(KIND_OF[target["kind"]], target["name"], namespace)
            label = "%s/%s" % (target["kind"], target["name"])
            result["workloads"].append(label)
            if obj is None or obj["metadata"].get("uid") != target.get("uid"):
                self.warnings.append("%s %s/%s is gone; nothing to revert there." % (
                    target["kind"], namespace, target["name"]))
            else:
                volumes = template_volumes(obj)
                back = swap_claims(volumes, {swaps[name]: name})
                before[label], after[label] = volumes, back
                result.update(changed=True, state="would_revert" if self.check_mode else "reverted")
                if not self.check_mode and back != volumes:
                    self.kube.patch(KIND_OF[target["kind"]], target["name"], template_patch(target["kind"], back),
                                    namespace)
            if not self.check_mode:
                left = dict(swaps)
                left.pop(name)
                self._status(record["id"], "reverted" if not left else record["status"], swaps=left)
        result["diff"] = (before, after)
        return result

    def refuse_after_cleanup(self):
        """A swap back needs the volumes the session kept: none once cleanup began to delete them."""
        sess = sessions.load(self.kube, self.velero_namespace, self.session_name)
        if sess is not None:  # no session: nothing recorded to revert (revert_* say so)
            sessions.refuse_rollback_after_cleanup(sess.doc, self.session_name)

    # -- cleanup ---------------------------------------------------------------
    def free(self):
        """Free what a settled session kept (cleanup): after a completed replace the old PVs of finished rebinds,
        after a rollback the session's new claims (and their PVs when those do not go with them); a retained PV
        that is Bound gets its recorded reclaim policy back. Everything is decided before the first change, and
        nothing is deleted when a recorded PV cannot be accounted for: the session is the only record of it."""
        sess = sessions.require(self.kube, self.velero_namespace, self.session_name)
        if sess.state not in sessions.SETTLED_STATES:
            raise PreflightError(
                "Restore session %r is %s, not completed or rolled back: its volumes may be mid-restore or mid-swap, "
                "and it holds the only record of them. Finish it (re-run the restore playbook with session=%s) or roll "
                "it back (playbooks/rollback.yml), then clean up." % (self.session_name, sess.state, self.session_name))
        plan = self._free_plan(sess)
        result = dict(changed=bool(plan["claims"] or plan["pvs"] or plan["policies"]),
                      deleted_claims=["%s/%s" % (c["metadata"]["namespace"], c["metadata"]["name"])
                                      for c in plan["claims"]],
                      deleted_pvs=sorted(plan["pvs"]),
                      policies_restored=[{"pv": name, "policy": policy} for name, policy, _rid in plan["policies"]],
                      kept=plan["kept"])
        if plan["kept"]:
            raise PreflightError(
                "Session %r keeps %s; nothing was changed, so that the session stays the record of them. %s" % (
                    self.session_name, ", ".join(k_["name"] for k_ in plan["kept"]),
                    " ".join(k_["reason"] for k_ in plan["kept"])), kept=plan["kept"])
        if self.check_mode or not result["changed"]:
            return result
        # Authorization before the first change: without the optional cleanup rules (delete persistentvolumes) the
        # dry-run answers 403 here, not after the reclaim policies were patched and the journal marked.
        for claim in plan["claims"]:
            self.kube.delete(k.PVC, claim["metadata"]["name"], claim["metadata"]["namespace"], dry_run=True)
        for name in sorted(plan["pvs"]):
            self.kube.delete(k.PV, name, dry_run=True)
        # The intent first: the records of the PVs about to go say so, and the journal keeps which PVs (and uids).
        sessions.mark_freeing(self.kube, self.velero_namespace, self.session_name, plan["records"], plan["pvs"])
        for name, policy, rid in plan["policies"]:
            self.kube.patch(k.PV, name, {"spec": {"persistentVolumeReclaimPolicy": policy}})
        by_namespace = {}
        for claim in plan["claims"]:
            by_namespace.setdefault(claim["metadata"]["namespace"], []).append(claim)
        for namespace, claims_ in sorted(by_namespace.items()):
            self._delete_claims(namespace, claims_)
        for name in sorted(plan["pvs"]):
            pv = self.kube.get(k.PV, name)
            if pv is None or pv["metadata"].get("uid") != plan["pvs"][name]:
                continue  # reclaimed with its claim (policy Delete); or gone, and another PV took its name
            if pv["spec"].get("persistentVolumeReclaimPolicy") != "Delete":
                # Delete lets the storage free the volume behind the PV, not just the PV object.
                self.kube.patch(k.PV, name, {"spec": {"persistentVolumeReclaimPolicy": "Delete"}})
            self.kube.delete(k.PV, name, uid=pv["metadata"]["uid"])
        if plan["pvs"]:
            self._wait_pvs_gone(plan["pvs"])
        sessions.set_undo_status_many(self.kube, self.velero_namespace, self.session_name, dict(
            (rid, ("reverted", {})) for _name, _policy, rid in plan["policies"]))
        return result

    def _free_plan(self, sess):
        """What free() does: {"claims": [PVC objects], "pvs": {name: uid}, "policies": [(pv, policy, record id)],
        "records": {id: status of the records marked freeing}, "kept": [{"name", "reason"}]} (reads only).

        A PV is freed only while it is the object the session recorded (its uid): a PV deleted by hand since, whose
        name a new PV took, is not the session's."""
        retained = dict((r["target"]["name"], r) for r in sess.doc.get("undo") or []
                        if r["action"] == ACTION_RETAIN and r["status"] in sessions.IN_EFFECT)
        rolled_back = sess.state == "rolled_back"
        claims_, pvs, kept, records = [], set(), [], {}
        recorded_uids = dict((name, r["target"].get("uid")) for name, r in retained.items())
        # PVs a cleanup killed part-way recorded: their claims may be gone already.
        for name, uid in sess.freeing_volumes().items():
            pvs.add(name)
            recorded_uids[name] = uid
        if rolled_back:
            for rec in (sess.doc.get("plan") or {}).get("volumes") or []:
                namespace, new_name = rec.get("target_namespace"), (rec.get("new_pvc") or {}).get("name")
                claim = self.kube.get(k.PVC, new_name, namespace) if new_name else None
                if claim is None or not is_session_claim(claim, self.session_name):
                    continue
                users = pods_holding(self.kube.list(k.POD, namespace=namespace)[0], [new_name])
                if users:
                    kept.append({"name": "PersistentVolumeClaim %s/%s" % (namespace, new_name),
                                 "reason": "The session was rolled back, but " + in_use_message(
                                     namespace, [new_name], users)})
                    continue
                claims_.append(claim)
                if _volume_name(claim):
                    pvs.add(_volume_name(claim))
        else:
            for record in sess.doc.get("undo") or []:
                if record["action"] != ACTION_REBIND or record["status"] not in sessions.IN_EFFECT:
                    continue
                original = record["original"]
                snapshot = original["pvc"]
                claim = self.kube.get(k.PVC, snapshot["name"], snapshot["namespace"])
                if record.get("phase") == "swapped" and claim is not None and _volume_name(claim) == original["new_pv"]:
                    pvs.add(original["old_pv"])
                    records[record["id"]] = record["status"]
                    if original.get("old_pv_uid"):  # recorded since 2026-12-05
                        recorded_uids[original["old_pv"]] = original["old_pv_uid"]
                elif record.get("phase") == "swapped":
                    # finished, then the claim was swapped again (another session) or deleted
                    kept.append({"name": "PersistentVolume %s" % original["old_pv"],
                                 "reason": "PVC %s/%s is %s now, no longer the volume %s this session swapped in "
                                           "(another restore session, or someone, changed it since); PV %s, the "
                                           "data from before this session's swap, is left for you to decide: delete "
                                           "it yourself once not needed, then delete the session (restore_session "
                                           "state=absent force=true)."
                                           % (snapshot["namespace"], snapshot["name"],
                                              "bound to %s" % _volume_name(claim) if claim is not None else "gone",
                                              original["new_pv"], original["old_pv"])})
                else:
                    kept.append({"name": "PersistentVolume %s" % original["old_pv"],
                                 "reason": "The swap of PVC %s/%s to %s did not finish (record %s, %s); re-run the "
                                           "replace playbook with session=%s to finish it, or roll it back."
                                           % (snapshot["namespace"], snapshot["name"], original["new_pv"],
                                              record["status"], record.get("phase"), self.session_name)})
        claim_uids = set(c["metadata"]["uid"] for c in claims_)
        policies, live_uids = [], {}
        for name, record in sorted(retained.items()):
            pv = self.kube.get(k.PV, name)
            if pv is None or not self._is_recorded_pv(pv, recorded_uids):
                pvs.discard(name)
                continue
            if name in pvs:
                records[record["id"]] = record["status"]
                continue
            if _phase(pv) == "Bound" and self._claim_deleting(pv):
                ref = pv["spec"]["claimRef"]
                kept.append({"name": "PersistentVolume %s" % name,
                             "reason": "PV %s is bound to PVC %s/%s, which is being deleted; it keeps reclaim policy "
                                       "Retain. Delete the pods that hold the claim, then re-run."
                                       % (name, ref.get("namespace"), ref["name"])})
                continue
            if _phase(pv) == "Bound":
                policy = record["original"].get("persistentVolumeReclaimPolicy")
                if policy and policy != pv["spec"].get("persistentVolumeReclaimPolicy"):
                    policies.append((name, policy, record["id"]))
                continue
            if not any(item["name"] == "PersistentVolume %s" % name for item in kept):  # said above already
                kept.append({"name": "PersistentVolume %s" % name,
                             "reason": "PV %s is %s and no finished swap of the session explains it; delete or bind "
                                       "it yourself, then re-run." % (name, _phase(pv))})
        for name in sorted(pvs):  # a PV a claim (other than the ones freed here) holds or is about to take stays
            pv = self.kube.get(k.PV, name)
            if pv is None or not self._is_recorded_pv(pv, recorded_uids):
                pvs.discard(name)  # gone already (freed before, or reclaimed with its claim)
                continue
            live_uids[name] = pv["metadata"].get("uid")
            ref = pv["spec"].get("claimRef") or {}
            if ref.get("uid") in claim_uids:
                continue
            holder = self.kube.get(k.PVC, ref["name"], ref.get("namespace")) if ref.get("name") else None
            if _phase(pv) == "Bound" or (holder is not None and (
                    not ref.get("uid") or holder["metadata"].get("uid") == ref.get("uid"))):
                del live_uids[name]
                kept.append({"name": "PersistentVolume %s" % name,
                             "reason": "PV %s is %s and claimed by PVC %s/%s; it is not freed."
                                       % (name, _phase(pv), ref.get("namespace"), ref.get("name"))})
        return {"claims": claims_, "pvs": live_uids, "policies": policies, "records": records, "kept": kept}

    def _is_recorded_pv(self, pv, recorded_uids):
        """False (with a warning) for a PV that has the name of one the session recorded but is another object."""
        name, uid = pv["metadata"]["name"], pv["metadata"].get("uid")
        recorded = recorded_uids.get(name)
        if not recorded or recorded == uid:
            return True
        self.warnings.append("PersistentVolume %s is not the volume session %s recorded (uid %s, now %s): that one "
                             "was deleted since, and this one is left alone." % (name, self.session_name, recorded, uid))
        return False

    def _wait_pvs_gone(self, names):
        def predicate(objs):
            pending = sorted(o["metadata"]["name"] for o in objs if o["metadata"]["name"] in names)
            return WaitState(not pending, pending, progress="%d PersistentVolume(s) still deleting" % len(pending))

        wait_for(self.kube, k.PV, predicate, timeout=self._remaining(), on_progress=self.on_progress,
                 what="PersistentVolume(s) %s to be deleted" % ", ".join(sorted(names)))


# ----------------------------------------------------------------------------- pod templates
KIND_OF = {"Deployment": k.DEPLOYMENT, "DaemonSet": k.DAEMON_SET, "ReplicaSet": k.REPLICA_SET,
           "StatefulSet": k.STATEFUL_SET, "Job": k.JOB, "CronJob": k.CRON_JOB,
           "ReplicationController": k.REPLICATION_CONTROLLER, "ScaledJob": k.KEDA_SCALED_JOB}
# ScaledJob (KEDA's): only where KEDA is served. Its new spec makes KEDA replace, once it is resumed, the Jobs of the
# old spec (the rollout strategy "default"), and those were stopped for the restore anyway.
TEMPLATE_KINDS = ("Deployment", "DaemonSet", "ReplicaSet", "StatefulSet", "Job", "CronJob", "ScaledJob")
TEMPLATE_KINDS_TEXT = "Deployment, DaemonSet, ReplicaSet, StatefulSet, CronJob or KEDA ScaledJob"


def pod_spec(obj):
    return pod_template(obj).get("spec") or {}


def template_volumes(obj):
    return copy.deepcopy(pod_spec(obj).get("volumes") or [])


def swap_claims(volumes, mapping):
    out = copy.deepcopy(volumes)
    for volume in out:
        claim = volume.get("persistentVolumeClaim") or {}
        if claim.get("claimName") in mapping:
            claim["claimName"] = mapping[claim["claimName"]]
    return out


def template_patch(kind, volumes):
    inner = {"template": {"spec": {"volumes": volumes}}}
    if kind == "CronJob":
        return {"spec": {"jobTemplate": {"spec": inner}}}
    if kind == "ScaledJob":
        return {"spec": {"jobTargetRef": inner}}
    return {"spec": inner}


def _controlled_by(obj, kinds):
    return any(ref.get("controller") and ref.get("kind") in kinds
               for ref in obj["metadata"].get("ownerReferences") or [])


def template_workloads(kube, namespace):
    """{kind name: the namespace's objects of that kind} for every kind a template swap may patch (one LIST each, of
    the kinds the cluster serves)."""
    return dict((kind_name, kube.list(KIND_OF[kind_name], namespace=namespace)[0] if served(kube, KIND_OF[kind_name])
                 else []) for kind_name in TEMPLATE_KINDS)


def template_users(kube, namespace, claim, listed=None):
    """Workloads whose pod template mounts ``claim``; refuses StatefulSet claim templates and Jobs. ``listed``: what
    template_workloads returned (the preflight checks every claim from one LIST per kind)."""
    users = []
    if listed is None:
        listed = template_workloads(kube, namespace)
    for kind_name in TEMPLATE_KINDS:
        items = listed[kind_name]
        for obj in items:
            obj.setdefault("kind", kind_name)
            name = obj["metadata"]["name"]
            if kind_name == "StatefulSet" and any(p.match(claim) for p in claim_template_patterns(obj)):
                raise PreflightError(
                    "PVC %s/%s comes from the volumeClaimTemplates of StatefulSet %s, which cannot be "
                    "patched to another claim name. Use swap_mode=rebind (it keeps the PVC name)."
                    % (namespace, claim, name))
            if kind_name == "ReplicaSet" and _controlled_by(obj, ("Deployment",)):
                continue  # its Deployment is patched
            claims = [((v.get("persistentVolumeClaim") or {}).get("claimName")) for v in template_volumes(obj)]
            if claim not in claims or (kind_name == "Job" and job_finished(obj)):
                continue  # a finished Job starts no pod any more
            if kind_name == "Job":
                starter = controller_ref(obj) or {}
                if starter.get("kind") in JOB_STARTERS:  # that one is patched; the Job would resume on the old claim
                    raise PreflightError(
                        "Job %s/%s, started by %s %s, mounts PVC %s and has not finished. A Job's pod template is "
                        "immutable, so after a template swap it would go on writing to the old claim while %s %s "
                        "starts the next ones on the new one. Let it finish, or delete it, then re-run; or use "
                        "swap_mode=rebind (it keeps the claim name)." % (namespace, name, starter["kind"],
                                                                         starter["name"], claim, starter["kind"],
                                                                         starter["name"]))
                raise PreflightError(
                    "Job %s/%s mounts PVC %s and has not finished, and a Job's pod template is immutable. Use "
                    "swap_mode=rebind, or delete and recreate the Job with the new claim name." % (namespace, name, claim))
            users.append(obj)
    return users


def template_swap_problems(kube, namespace, claim_names, warnings=None):
    """Why a template swap of ``claim_names`` would be refused, or would patch nothing (the app would go on with the
    old data): one message per claim. The preflight says it before the restore and the stop, not at the swap.
    ``warnings`` gets one message per GitOps-managed workload the swap would patch (gitops_undo_warning)."""
    listed = template_workloads(kube, namespace)
    problems = []
    for claim in claim_names:
        try:
            users = template_users(kube, namespace, claim, listed)
        except PreflightError as exc:
            problems.append(exc.msg)
            continue
        if not users:
            problems.append(
                "no %s in namespace %s mounts PVC %s, so swap_mode=template would patch nothing and the app would "
                "keep the old data. Use swap_mode=rebind (it keeps the claim name)."
                % (TEMPLATE_KINDS_TEXT, namespace, claim))
        for obj in users:
            warning = gitops_undo_warning(obj, namespace, claim)
            if warning and warnings is not None and warning not in warnings:
                warnings.append(warning)
    return problems


def gitops_undo_warning(obj, namespace, claim):
    """A template swap patches the live object only: the GitOps tool that manages it (Argo CD self-heal, Flux's
    server-side apply) puts the manifest's claim back at its next sync, once its pause is lifted."""
    markers = gitops_markers(obj)
    if not markers:
        return None
    return ("swap_mode=template patches %s %s/%s onto the new claim of PVC %s, but %s manages it: its next sync "
            "(after the pause of pause_gitops is lifted, or at once without it) can put the manifest's claim %s back, "
            "and the app would go on with the old data. Point the manifest at the plan's new claim before syncs "
            "resume, or use swap_mode=rebind (it keeps the claim name)."
            % (obj.get("kind"), namespace, obj["metadata"]["name"], claim, " and ".join(markers), claim))


# ----------------------------------------------------------------------------- entry point
def refuse_other_mode(session_name, mode, begun):
    """A swap that began in one mode is finished in that mode: the other one would delete the claim a patched
    workload mounts (rebind after template) or patch workloads onto a claim the rebind deleted."""
    other = sorted(key for key, began in begun.items() if began != mode)
    if other:
        raise PreflightError(
            "The swap of %s began with mode=%s in restore session %r; this run asks for mode=%s. Finish it with "
            "mode=%s (playbook variable swap_mode), or roll it back (playbooks/rollback.yml) first."
            % (", ".join(other), begun[other[0]], session_name, mode, begun[other[0]]), volumes=other)


def patch_claims(kube, params, check_mode=False, on_progress=None):
    if params.get("state") == "prepared":
        return prepare_claims(kube, params, check_mode=check_mode)
    if params.get("state") == "freed":
        patcher = ClaimPatcher(kube, params["velero_namespace"], params["session"], check_mode=check_mode,
                               timeout=params.get("wait_timeout", 600), on_progress=on_progress)
        freed = patcher.free()
        before = {"claims": freed["deleted_claims"], "pvs": freed["deleted_pvs"],
                  "reclaim_policies": dict((p["pv"], RETAIN) for p in freed["policies_restored"])}
        after = {"claims": [], "pvs": [], "reclaim_policies": dict((p["pv"], p["policy"])
                                                                   for p in freed["policies_restored"])}
        return dict(freed, volumes=[], warnings=patcher.warnings, diff=dict(before=before, after=after))
    volumes = normalize_volumes(params.get("volumes"))
    if not volumes:
        raise PreflightError("volumes is empty: give plan volume records or {namespace, pvc, new_pvc} items.")
    patcher = ClaimPatcher(kube, params["velero_namespace"], params["session"], check_mode=check_mode,
                           timeout=params.get("wait_timeout", 600), on_progress=on_progress,
                           wait=params.get("wait", True))
    mode, state = params.get("mode") or "rebind", params.get("state") or "swapped"
    begun = patcher.begun_modes(volumes)
    if state == "swapped":
        refuse_other_mode(params["session"], mode, begun)
    else:
        patcher.refuse_after_cleanup()
    results, before, after = [], {}, {}
    for vol in volumes:
        try:
            if state == "swapped":
                result = patcher.rebind(vol) if mode == "rebind" else patcher.template(vol)
            else:
                # Each volume is swapped back the way its swap began (the journal), whatever mode was asked.
                vol_mode = begun.get(vol["key"]) or mode
                result = patcher.revert_rebind(vol) if vol_mode == "rebind" else patcher.revert_template(vol)
        except DataRestoreError as exc:
            # The volumes before this one were changed: the failure says so (and which).
            done = [r["key"] for r in results if r.get("changed")]
            exc.details.update(changed=bool(done) or bool(exc.details.get("changed")), volumes_done=done)
            raise
        diff = result.pop("diff", None)
        if diff:
            before[vol["key"]], after[vol["key"]] = diff
        results.append(result)
    return dict(changed=any(r["changed"] for r in results), volumes=results, warnings=patcher.warnings,
                diff=dict(before=before, after=after))
