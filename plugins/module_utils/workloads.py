# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Workloads that mount PVCs: find them, stop them, start them again (DESIGN.md §4.2).

PVC → non-terminal pods mounting it → ownerReferences chain (controller=true) → top controller.
One small set of functions per kind says what "stopped" means for it, what its original value
was and when it is ready again. Rules:

* record before mutate: the original goes into the session (undo record ``scale``) and into the
  annotation ``data-restore.ansible/original`` in the same patch that stops the workload;
* start restores the original only where the current value is still the stopped value;
* a StatefulSet with ``persistentVolumeClaimRetentionPolicy.whenScaled: Delete`` is refused
  before any change (scaling it to 0 deletes its PVCs);
* optional GitOps pauses (Argo CD, Flux, KEDA), only where their APIs are served.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import re
import time

from ansible_collections.velero.data_restore.plugins.module_utils import helper_pod
from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils import names
from ansible_collections.velero.data_restore.plugins.module_utils import session as sessions
from ansible_collections.velero.data_restore.plugins.module_utils import velero_api as va
from ansible_collections.velero.data_restore.plugins.module_utils.errors import (
    DataRestoreError,
    ForbiddenError,
    PreflightError,
)
from ansible_collections.velero.data_restore.plugins.module_utils.pods import (
    claim_names,
    is_own_pod,
    is_terminal,
    pod_session,
    pods_using,
)
from ansible_collections.velero.data_restore.plugins.module_utils.waiting import WaitState, wait_for

ANNOTATION_ORIGINAL = names.ANNOTATION_ORIGINAL
QUIESCE_NODE_SELECTOR = names.PREFIX + "quiesced"
ACTION_SCALE = sessions.ACTION_SCALE
ACTION_ARGOCD = "pause_argocd"
ACTION_FLUX = "suspend_flux"
ACTION_KEDA = "pause_keda"
GITOPS_ACTIONS = (ACTION_ARGOCD, ACTION_FLUX, ACTION_KEDA)

ARGO_SKIP = "argocd.argoproj.io/skip-reconcile"
ARGO_INSTANCE_LABEL = "app.kubernetes.io/instance"
ARGO_TRACKING = "argocd.argoproj.io/tracking-id"
FLUX_KS_NAME = "kustomize.toolkit.fluxcd.io/name"
FLUX_KS_NAMESPACE = "kustomize.toolkit.fluxcd.io/namespace"
FLUX_HR_NAME = "helm.toolkit.fluxcd.io/name"
FLUX_HR_NAMESPACE = "helm.toolkit.fluxcd.io/namespace"
KEDA_PAUSED = "autoscaling.keda.sh/paused-replicas"
# KEDA >= 2.13: pause at the current replica count. KEDA takes any value but a false one as paused (Go's
# strconv.ParseBool false values; "false" is how its docs say to unpause).
KEDA_PAUSED_AT_CURRENT = "autoscaling.keda.sh/paused"


# ----------------------------------------------------------------------------- pods
def pod_label(pod):
    meta = pod["metadata"]
    return "%s/%s (uid %s)" % (meta.get("namespace"), meta["name"], meta.get("uid"))


# ----------------------------------------------------------------------------- kinds
def _spec(obj):
    return obj.get("spec") or {}


def _status(obj):
    return obj.get("status") or {}


def _observed(obj):
    return (_status(obj).get("observedGeneration") or 0) >= ((obj.get("metadata") or {}).get("generation") or 0)


# replicas kinds: Deployment, StatefulSet, ReplicaSet, ReplicationController, DeploymentConfig
def replicas_current(obj):
    replicas = _spec(obj).get("replicas")
    return {"replicas": 1 if replicas is None else replicas}


def replicas_stop(obj):
    return {"spec": {"replicas": 0}}


def replicas_start(obj, original):
    return {"spec": {"replicas": original.get("replicas", 1)}}


def replicas_is_stopped(obj):
    return replicas_current(obj)["replicas"] == 0


def replicas_is_ready(obj):
    want = replicas_current(obj)["replicas"]
    return _observed(obj) and (_status(obj).get("readyReplicas") or 0) >= want


# Job: parallelism
def job_current(obj):
    value = _spec(obj).get("parallelism")
    return {"parallelism": 1 if value is None else value}


def job_stop(obj):
    return {"spec": {"parallelism": 0}}


def job_start(obj, original):
    return {"spec": {"parallelism": original.get("parallelism", 1)}}


def job_is_stopped(obj):
    return job_current(obj)["parallelism"] == 0


def job_finished(obj):
    """Complete or Failed: the Job starts no pod any more."""
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in _status(obj).get("conditions") or [])


def job_is_ready(obj):
    return job_finished(obj) or (_status(obj).get("active") or 0) > 0 or job_current(obj)["parallelism"] == 0


# CronJob: suspend
def cronjob_current(obj):
    return {"suspend": bool(_spec(obj).get("suspend"))}


def cronjob_stop(obj):
    return {"spec": {"suspend": True}}


def cronjob_start(obj, original):
    return {"spec": {"suspend": bool(original.get("suspend"))}}


def cronjob_is_stopped(obj):
    return cronjob_current(obj)["suspend"]


def cronjob_is_ready(obj):
    return True


# KEDA ScaledJob: autoscaling.keda.sh/paused (KEDA >= 2.11 stops the ScaledJob's scale loop, so no new Job starts;
# the Jobs it started already are stopped as Jobs). KEDA's scaledjob_controller.go checkIfPaused: set and
# strconv.ParseBool true, or not a bool at all, pauses.
def scaledjob_current(obj):
    return {"paused": ((obj.get("metadata") or {}).get("annotations") or {}).get(KEDA_PAUSED_AT_CURRENT)}


def scaledjob_stop(obj):
    return {"metadata": {"annotations": {KEDA_PAUSED_AT_CURRENT: "true"}}}


def scaledjob_start(obj, original):
    return {"metadata": {"annotations": {KEDA_PAUSED_AT_CURRENT: original.get("paused")}}}


def keda_paused(obj):
    """KEDA's reading of ``autoscaling.keda.sh/paused`` (ScaledJob and ScaledObject alike): set and strconv.ParseBool
    true, or not a bool at all."""
    paused = ((obj.get("metadata") or {}).get("annotations") or {}).get(KEDA_PAUSED_AT_CURRENT)
    return paused is not None and str(paused) not in va.GO_FALSE


def scaledjob_is_stopped(obj):
    return keda_paused(obj)


def scaledjob_is_ready(obj):
    return True


# DaemonSet: an unmatchable nodeSelector entry
def daemonset_current(obj):
    selector = ((_spec(obj).get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    return {"nodeSelector": dict(selector)}


def daemonset_stop(obj):
    return {"spec": {"template": {"spec": {"nodeSelector": {QUIESCE_NODE_SELECTOR: "true"}}}}}


def daemonset_start(obj, original):
    # Remove only our key: other keys are the original ones (or someone else's since).
    return {"spec": {"template": {"spec": {"nodeSelector": {QUIESCE_NODE_SELECTOR: None}}}}}


def daemonset_is_stopped(obj):
    return daemonset_current(obj)["nodeSelector"].get(QUIESCE_NODE_SELECTOR) == "true"


def daemonset_is_ready(obj):
    status = _status(obj)
    desired = status.get("desiredNumberScheduled") or 0
    return (_observed(obj) and (status.get("numberReady") or 0) >= desired
            and (status.get("updatedNumberScheduled") or 0) >= desired
            and not daemonset_is_stopped(obj))


class WorkloadKind(object):
    def __init__(self, kind, current, stop, start, is_stopped, is_ready):
        self.kind = kind
        self.current = current
        self.stop = stop
        self.start = start
        self.is_stopped = is_stopped
        self.is_ready = is_ready


def _replicas_kind(kind):
    return WorkloadKind(kind, replicas_current, replicas_stop, replicas_start, replicas_is_stopped,
                        replicas_is_ready)


KINDS = dict((w.kind.kind, w) for w in (
    _replicas_kind(k.DEPLOYMENT),
    _replicas_kind(k.STATEFUL_SET),
    _replicas_kind(k.REPLICA_SET),
    _replicas_kind(k.REPLICATION_CONTROLLER),
    _replicas_kind(k.DEPLOYMENT_CONFIG),
    WorkloadKind(k.JOB, job_current, job_stop, job_start, job_is_stopped, job_is_ready),
    WorkloadKind(k.CRON_JOB, cronjob_current, cronjob_stop, cronjob_start, cronjob_is_stopped,
                 cronjob_is_ready),
    WorkloadKind(k.DAEMON_SET, daemonset_current, daemonset_stop, daemonset_start, daemonset_is_stopped,
                 daemonset_is_ready),
    WorkloadKind(k.KEDA_SCALED_JOB, scaledjob_current, scaledjob_stop, scaledjob_start, scaledjob_is_stopped,
                 scaledjob_is_ready),
))

# Kinds of APIs a cluster may not serve: looked up only where served (one discovery GET per module run).
OPTIONAL_KINDS = (k.DEPLOYMENT_CONFIG, k.KEDA_SCALED_JOB)

# Kinds that start Jobs (the pods of those Jobs lead to them): stopping them does not stop a Job already started, so
# those Jobs are stopped too.
JOB_STARTERS = ("CronJob", "ScaledJob")

# The kinds a KEDA ScaledObject can scale (those with a /scale subresource).
KEDA_SCALABLE_KINDS = ("Deployment", "StatefulSet", "ReplicaSet", "ReplicationController", "DeploymentConfig")


def workload_kind(name):
    if name not in KINDS:
        raise PreflightError(
            "Workload kind %r is not supported; use one of %s." % (name, ", ".join(sorted(KINDS))))
    return KINDS[name]


def ref_of(obj):
    meta = obj["metadata"]
    return {"kind": obj["kind"], "namespace": meta.get("namespace"), "name": meta["name"],
            "uid": meta.get("uid")}


def ref_of_result(out):
    """The object reference inside a per-workload result."""
    return dict((key, out.get(key)) for key in ("kind", "namespace", "name", "uid"))


def ref_label(ref):
    return "%s %s/%s" % (ref["kind"], ref.get("namespace"), ref["name"])


# ----------------------------------------------------------------------------- owner chain
def served(kube, kind):
    """Whether the cluster serves ``kind`` (asked only for OPTIONAL_KINDS; Kube.has_api remembers the answer)."""
    return kind not in OPTIONAL_KINDS or kube.has_api(kind)


def controller_ref(obj):
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


class OwnerResolver(object):
    """Walks ownerReferences (controller=true) up to the top controller, by UID."""

    # Owner kinds a pod's controller may have, and theirs: listed at once when many pods are resolved.
    PARENT_KINDS = {"ReplicaSet": ("Deployment",), "ReplicationController": ("DeploymentConfig",), "Job": JOB_STARTERS}

    def __init__(self, kube):
        self.kube = kube
        self._cache = {}
        self._listed = set()

    def prefetch(self, pods):
        """One LIST per owner kind of these pods (and of their owners) instead of a GET per owner, when there
        are more pods than kube.GET_MANY_LIMIT (a namespace with 40 workloads: 6 LISTs instead of 100 GETs)."""
        if len(pods) <= k.GET_MANY_LIMIT:
            return
        kinds = set()
        for pod in pods:
            ref = controller_ref(pod) or {}
            if ref.get("kind") in KINDS:
                kinds.add(ref["kind"])
                kinds.update(self.PARENT_KINDS.get(ref["kind"], ()))
        for name in sorted(kinds):
            kind = KINDS[name].kind
            if not served(self.kube, kind):
                continue
            for namespace in sorted(set(p["metadata"].get("namespace") for p in pods)):
                if (kind.kind, namespace) not in self._listed:
                    self.seed(kind, namespace, self.kube.list(kind, namespace=namespace)[0])

    def seed(self, kind, namespace, items):
        """All objects of ``kind`` in ``namespace``, just listed: owners of that kind are looked up there."""
        for obj in items:
            obj.setdefault("kind", kind.kind)
            self._cache[(kind.kind, namespace, obj["metadata"]["name"])] = obj
        self._listed.add((kind.kind, namespace))

    def _get(self, kind, name, namespace):
        key = (kind.kind, namespace, name)
        if key not in self._cache:
            if (kind.kind, namespace) in self._listed:
                return None
            self._cache[key] = self.kube.get(kind, name, namespace)
        return self._cache[key]

    def chain(self, obj):
        """(owners from the nearest to the top, foreign controller ref or None)."""
        owners = []
        namespace = obj["metadata"].get("namespace")
        ref = controller_ref(obj)
        while ref:
            if ref.get("kind") not in KINDS:
                return owners, ref
            kind = KINDS[ref["kind"]].kind
            if kind in OPTIONAL_KINDS and (k.api_group(kind) != (ref.get("apiVersion") or "").split("/")[0]
                                           or not served(self.kube, kind)):
                return owners, ref
            owner = self._get(kind, ref["name"], namespace)
            if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
                return owners, None  # owner gone (orphaned object being collected)
            owners.append(owner)
            ref = controller_ref(owner)
        return owners, None

    def uids(self, obj):
        return set(o["metadata"]["uid"] for o in self.chain(obj)[0])


def workloads_of_pod(resolver, pod):
    """The objects to stop for a pod, plus a warning (or None).

    The top controller, and a Job below a CronJob as well (suspending a CronJob does not stop the
    Job it already started).
    """
    owners, foreign = resolver.chain(pod)
    if not owners:
        if foreign is not None:
            raise PreflightError(
                "Pod %s mounts the PVC and is controlled by %s %s, which workload_scale cannot stop. "
                "Stop that controller yourself (then re-run), or name the workloads explicitly."
                % (pod_label(pod), foreign.get("kind"), foreign.get("name")), pod=pod["metadata"]["name"])
        raise PreflightError(
            "Pod %s mounts the PVC but has no controller: workload_scale cannot stop it without deleting "
            "it for good. Delete it yourself (and recreate it after the restore), then re-run."
            % pod_label(pod), pod=pod["metadata"]["name"])
    if foreign is not None:
        # An operator's resource, an Argo Rollout...: it would scale the workload back up (or make new Jobs) while its
        # volumes are restored.
        raise PreflightError(
            "%s, whose pods mount the PVC, is controlled by %s %s: that controller would start it again while its "
            "volumes are restored, and workload_scale cannot stop it. Stop the application through %s %s yourself "
            "(its own pause or scale-to-zero setting), then run with quiesce=none and start it again after the "
            "restore." % (ref_label(ref_of(owners[-1])), foreign.get("kind"), foreign.get("name"),
                          foreign.get("kind"), foreign.get("name")),
            pod=pod["metadata"]["name"])
    found = [owners[-1]]
    if owners[-1]["kind"] in JOB_STARTERS:
        found.extend(o for o in owners if o["kind"] == "Job")
    return found, None


def pod_template(obj):
    """The pod template of a workload (a CronJob's: its job template's; a KEDA ScaledJob's: its jobTargetRef's)."""
    spec = _spec(obj)
    if obj.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    elif obj.get("kind") == "ScaledJob":
        spec = spec.get("jobTargetRef") or {}
    return spec.get("template") or {}


def claim_template_patterns(sts):
    """Matchers of the claims a StatefulSet's volumeClaimTemplates make: ``<template>-<sts>-<ordinal>``."""
    name = sts["metadata"]["name"]
    return [re.compile(r"^%s-%s-\d+$" % (re.escape(t["metadata"]["name"]), re.escape(name)))
            for t in _spec(sts).get("volumeClaimTemplates") or []]


def statefulsets_for_claims(kube, namespace, pvcs, items=None):
    """StatefulSets whose volumeClaimTemplates name the claims; ``items``: the namespace's StatefulSets when the
    caller just listed them."""
    if items is None:
        items = kube.list(k.STATEFUL_SET, namespace=namespace)[0]
    return [sts for sts in items if any(p.match(c) for p in claim_template_patterns(sts) for c in pvcs)]


def idle_job_starters_for_claims(kube, namespace, pvcs, warnings):
    """CronJobs not suspended, and KEDA ScaledJobs not paused (where KEDA is served), whose job template mounts one
    of the claims. With no Job running, no pod leads to them, yet one could start a Job while the data is written
    (or hold the claim during a swap): they are stopped too. One LIST per kind. A forbidden LIST of ScaledJobs goes
    to ``warnings`` (its rule is optional in docs/rbac.yml, and was added after the one of ScaledObjects)."""
    found = []
    for name in JOB_STARTERS:
        wk = KINDS[name]
        if not served(kube, wk.kind):
            continue
        try:
            items = kube.list(wk.kind, namespace=namespace)[0]
        except ForbiddenError:
            if wk.kind not in OPTIONAL_KINDS:
                raise
            warnings.append("cannot list the KEDA ScaledJobs of namespace %s (no permission: list scaledjobs.keda.sh, "
                            "optional ClusterRole velero-data-restore-gitops of docs/rbac.yml); not checked: whether "
                            "one whose job template mounts the claims could start a Job during the restore."
                            % namespace)
            continue
        for obj in items:
            obj.setdefault("kind", name)
            if not wk.is_stopped(obj) and set(claim_names(pod_template(obj))) & set(pvcs):
                found.append(obj)
    return found


def check_other_session_pod(pod, session, pvcs):
    """A helper/placeholder pod of ANOTHER restore session mounting the PVCs: two sessions on one claim."""
    other = pod_session(pod)
    if other is None or other == session:
        return
    claims = sorted(set(claim_names(pod)) & set(pvcs))
    raise PreflightError(
        "Pod %s mounts PVC(s) %s and belongs to restore session %r (label %s=%s), not to session %r: two sessions "
        "must not restore the same claim. Finish or roll back session %r (or delete it with "
        "velero.data_restore.restore_session state=absent, which removes its pods), then re-run."
        % (pod_label(pod), ", ".join(claims), other, names.LABEL_SESSION, other, session, other),
        pod=pod["metadata"]["name"], other_session=other)


def discover(kube, namespace, pvcs, strict=True, session=None, pods=None, idle_job_starters=True, refusals=None):
    """Workloads whose pods mount ``pvcs`` in ``namespace``: (objects, warnings).

    The helper/placeholder pods of ``session`` (this collection's managed-by + session labels) are not
    workloads and are skipped; those of another session are refused (a conflict).
    ``strict=False`` skips pods whose workload cannot be stopped instead of refusing them; ``refusals`` (a list), when
    given, gets their messages (the preflight reports every one, workload_scale refuses at the first).
    ``pods``: the namespace's pods when the caller just listed them. ``idle_job_starters``: also the CronJobs and KEDA
    ScaledJobs that mount the claims without a Job running (a LIST each; preflight leaves them out, they can always be
    stopped).
    """
    resolver = OwnerResolver(kube)
    if pods is None:
        pods = kube.list(k.POD, namespace=namespace)[0]
    # The claim-template check below lists the StatefulSets anyway: the pods' owner chains find theirs there.
    statefulsets = kube.list(k.STATEFUL_SET, namespace=namespace)[0]
    resolver.seed(k.STATEFUL_SET, namespace, statefulsets)
    found, warnings = {}, []
    using = pods_using(pods, pvcs)
    resolver.prefetch([p for p in using if not is_own_pod(p, session)])
    for pod in using:
        if is_own_pod(pod, session):
            continue
        try:
            check_other_session_pod(pod, session, pvcs)
            objs, warning = workloads_of_pod(resolver, pod)
        except PreflightError as exc:
            if strict:
                raise
            if refusals is not None and exc.msg not in refusals:
                refusals.append(exc.msg)
            continue
        for obj in objs:
            found.setdefault(obj["metadata"]["uid"], obj)
        if warning and warning not in warnings:
            warnings.append(warning)
    idle = idle_job_starters_for_claims(kube, namespace, pvcs, warnings) if idle_job_starters else []
    for obj in statefulsets_for_claims(kube, namespace, pvcs, statefulsets) + idle:
        found.setdefault(obj["metadata"]["uid"], obj)
    return sorted(found.values(), key=lambda o: (o["kind"], o["metadata"]["name"])), warnings


def get_named(kube, workloads, default_namespace=None):
    out = []
    for item in workloads:
        wk = workload_kind(item.get("kind"))
        namespace = item.get("namespace") or default_namespace
        if not namespace or not item.get("name"):
            raise PreflightError("Every workload needs kind, name and namespace; got %r." % (item,))
        if not served(kube, wk.kind):
            raise PreflightError("%s %s/%s: this cluster does not serve %s %ss."
                                 % (wk.kind.kind, namespace, item["name"], wk.kind.api_version, wk.kind.kind))
        obj = kube.get(wk.kind, item["name"], namespace)
        if obj is None:
            raise PreflightError("%s not found. Check the name and namespace in workloads."
                                 % k.describe(wk.kind, item["name"], namespace))
        obj.setdefault("kind", wk.kind.kind)
        out.append(obj)
    return out


def check_stoppable(obj):
    """Refusals that must happen before any change."""
    if obj["kind"] == "StatefulSet":
        policy = (_spec(obj).get("persistentVolumeClaimRetentionPolicy") or {}).get("whenScaled")
        if policy == "Delete":
            raise PreflightError(
                "StatefulSet %s/%s has persistentVolumeClaimRetentionPolicy.whenScaled=Delete: scaling it "
                "to 0 would delete its PVCs (and their data). Set whenScaled to Retain first (kubectl patch "
                "statefulset %s -n %s --type merge -p '{\"spec\":{\"persistentVolumeClaimRetentionPolicy\":"
                "{\"whenScaled\":\"Retain\"}}}'), or stop its pods another way."
                % (obj["metadata"]["namespace"], obj["metadata"]["name"], obj["metadata"]["name"],
                   obj["metadata"]["namespace"]),
                workload=ref_of(obj))


def stop_refusals(kube, namespace, pvcs, listed_pods=None, pause_gitops=False, warnings=None, session=None):
    """Preflight: why the pods mounting ``pvcs`` could not be stopped (a pod without a controller, or with one
    workload_scale cannot stop, a pod of another restore session; the rules of ``check_stoppable``), or would not
    stay stopped (``keda_refusals``, unless ``pause_gitops``).

    Read only. restore_plan calls it so that a refusal comes before the session exists (and, for a replace, before
    the hours of its restore); workload_scale applies the same rules to its targets before its first change.
    ``listed_pods``: the namespace's pods when the caller just listed them. ``warnings`` (a list) gets what could
    not be checked. ``session``: its own helper pods are not workloads.
    """
    problems = []
    found = discover(kube, namespace, pvcs, strict=False, session=session, pods=listed_pods, idle_job_starters=False,
                     refusals=problems)[0]
    for obj in found:
        try:
            check_stoppable(obj)
        except PreflightError as exc:
            problems.append(exc.msg)
    if not pause_gitops:
        problems.extend(keda_refusals(kube, found, warnings if warnings is not None else [], namespace, pvcs))
    return problems


# ----------------------------------------------------------------------------- annotation
def read_annotation(obj):
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_ORIGINAL)
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) and isinstance(data.get("original"), dict) else None


def annotation_value(original, pvcs, session_name):
    return json.dumps({"original": original, "pvcs": sorted(pvcs or []), "session": session_name},
                      sort_keys=True)


# ----------------------------------------------------------------------------- GitOps
def _argo_apps(applications, obj):
    """The Argo CD Applications that manage ``obj``: those its tracking label or annotation names, else those listing
    it in status.resources (an application.instanceLabelKey set in argocd-cm puts the name under another label, which
    Helm's app.kubernetes.io/instance may then hold). ``applications()`` lists them (once per call of the caller)."""
    meta = obj["metadata"]
    wanted = set()
    tracking = (meta.get("annotations") or {}).get(ARGO_TRACKING)
    for app in ((meta.get("labels") or {}).get(ARGO_INSTANCE_LABEL), tracking.split(":", 1)[0] if tracking else None):
        if app and "_" in app:  # apps in any namespace: <namespace>_<name>, in the label as in the annotation
            wanted.add(tuple(app.split("_", 1)))
        elif app:
            wanted.add((None, app))
    apps = applications()
    named = [a for a in apps if (a["metadata"].get("namespace"), a["metadata"]["name"]) in wanted
             or (None, a["metadata"]["name"]) in wanted]
    return _argo_managing(named, obj) if named else [a for a in apps if _argo_lists(a, obj)]


def _argo_lists(app, obj):
    """Whether the Application lists ``obj`` among the resources it manages (status.resources)."""
    meta = obj["metadata"]
    mine = (obj.get("kind"), meta.get("namespace"), meta["name"])
    return any((r.get("kind"), r.get("namespace"), r.get("name")) == mine
               for r in (app.get("status") or {}).get("resources") or [] if isinstance(r, dict))


def _argo_managing(apps, obj):
    """Of the Applications a bare name matches (one per Argo CD instance may carry it), the ones that manage ``obj``:
    those listing it in status.resources, else those deploying to its namespace; all of them when neither tells
    (pausing one too many is undone at start, missing the right one lets it scale the workload back up)."""
    if len(apps) < 2:
        return apps
    listed = [a for a in apps if _argo_lists(a, obj)]
    if listed:
        return listed
    namespace = obj["metadata"].get("namespace")
    same_namespace = [a for a in apps if (_spec(a).get("destination") or {}).get("namespace") == namespace]
    return same_namespace or apps


def _flux_objects(kube, obj):
    labels = obj["metadata"].get("labels") or {}
    out = []
    for kind, name_label, ns_label in ((k.FLUX_KUSTOMIZATION, FLUX_KS_NAME, FLUX_KS_NAMESPACE),
                                       (k.FLUX_HELM_RELEASE, FLUX_HR_NAME, FLUX_HR_NAMESPACE)):
        if labels.get(name_label) and kube.has_api(kind):
            found = kube.get(kind, labels[name_label], labels.get(ns_label) or obj["metadata"]["namespace"])
            if found is not None:
                found.setdefault("kind", kind.kind)
                out.append(found)
    return out


def _keda_objects(kube, obj):
    return _keda_scaling(keda_scaled_objects(kube, obj["metadata"]["namespace"]), obj)


def _keda_scaling(scaled_objects, obj):
    """The ScaledObjects whose scaleTargetRef is ``obj`` (kind Deployment when left out)."""
    out = []
    for item in scaled_objects:
        target = _spec(item).get("scaleTargetRef") or {}
        if target.get("name") == obj["metadata"]["name"] and (target.get("kind") or "Deployment") == obj["kind"]:
            out.append(item)
    return out


def keda_keeps_stopped(scaled_object):
    """True when KEDA leaves a stopped target at 0 replicas: paused at 0 (``paused-replicas`` a whole number equal to
    0, as Go's ParseInt reads it; another count scales it to that count), or paused at the current count
    (``paused`` set to anything but a false value)."""
    annotations = scaled_object["metadata"].get("annotations") or {}
    if KEDA_PAUSED in annotations:
        return va.go_int(annotations[KEDA_PAUSED]) == 0
    return keda_paused(scaled_object)


def keda_refusals(kube, workloads, warnings, namespace=None, pvcs=None):
    """With pause_gitops=false: why KEDA would start ``workloads`` again while they are stopped (it scales a target
    back to minReplicaCount, and from zero when a trigger is active), one message per workload - also for the
    workloads of ``namespace`` that sit idle at zero replicas with a pod template mounting one of ``pvcs``
    (keda_idle_targets). Read only: the group's discovery GET (404 without KEDA), then one LIST of ScaledObjects
    per namespace. A forbidden LIST is added to ``warnings`` (the rule is optional in docs/rbac.yml)."""
    scalable = [obj for obj in workloads if obj.get("kind") in KEDA_SCALABLE_KINDS]
    idle_wanted = bool(namespace and pvcs)
    if not (scalable or idle_wanted) or not kube.has_api(k.KEDA_SCALED_OBJECT):
        return []
    listed = {}
    for ns in sorted(set(obj["metadata"]["namespace"] for obj in scalable) | ({namespace} if idle_wanted else set())):
        listed[ns] = keda_scaled_objects(kube, ns, warnings)
    if idle_wanted:
        scalable += keda_idle_targets(kube, namespace, pvcs, workloads, listed[namespace])
    problems = []
    for obj in scalable:
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        for scaler in _keda_scaling(listed[ns], obj):
            if keda_keeps_stopped(scaler):
                continue
            so = scaler["metadata"]["name"]
            problems.append(
                "%s %s/%s is scaled by KEDA ScaledObject %s/%s, which would start it again while its volumes are "
                "restored (minReplicaCount, or an active trigger%s). Set pause_gitops=true (the ScaledObject is "
                "paused with %s: \"0\" and put back at the end), or pause it yourself: kubectl annotate scaledobject %s "
                "-n %s %s=0" % (obj["kind"], ns, name, ns, so,
                                " - it is idle at zero replicas now" if replicas_is_stopped(obj) else "",
                                KEDA_PAUSED, so, ns, KEDA_PAUSED))
    return problems


def keda_scaled_objects(kube, namespace, warnings=None):
    """The ScaledObjects of ``namespace``. A forbidden LIST: with ``warnings`` (a list) a warning and [], else the
    ForbiddenError."""
    try:
        return kube.list(k.KEDA_SCALED_OBJECT, namespace=namespace)[0]
    except ForbiddenError:
        if warnings is None:
            raise
        warnings.append("cannot list the KEDA ScaledObjects of namespace %s (no permission); not checked: whether "
                        "KEDA would start the stopped workloads again." % namespace)
        return []


def keda_idle_targets(kube, namespace, pvcs, found, scaled_objects):
    """The workloads ``scaled_objects`` scale whose pods would mount one of ``pvcs`` but that ``found`` (found through
    their pods) lacks: idle at zero replicas, they have no pod to be found by, and KEDA starts them when a trigger
    fires. One GET per such ScaledObject target."""
    known = set((o.get("kind"), o["metadata"]["name"]) for o in found)
    out = []
    for scaler in scaled_objects:
        target = _spec(scaler).get("scaleTargetRef") or {}
        kind, name = target.get("kind") or "Deployment", target.get("name")
        if not name or kind not in KEDA_SCALABLE_KINDS or (kind, name) in known:
            continue
        if not served(kube, KINDS[kind].kind):
            continue
        obj = kube.get(KINDS[kind].kind, name, namespace)
        if obj is None:
            continue
        obj.setdefault("kind", kind)
        mounts = template_claims(obj)
        if any(mounts(claim) for claim in pvcs):
            out.append(obj)
            known.add((kind, name))
    return out


def gitops_markers(obj):
    """Names of the GitOps tools whose marks ``obj`` carries (no request): Argo CD's tracking annotation, Flux's
    labels. Argo CD's default label tracking (app.kubernetes.io/instance) is left out: Helm sets it too."""
    meta = obj["metadata"]
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    found = []
    if annotations.get(ARGO_TRACKING):
        found.append("Argo CD (%s)" % ARGO_TRACKING)
    if labels.get(FLUX_KS_NAME) or labels.get(FLUX_HR_NAME):
        found.append("Flux (%s)" % (FLUX_KS_NAME if labels.get(FLUX_KS_NAME) else FLUX_HR_NAME))
    return found


def gitops_pauses(kube, workloads):
    """[{action, kind, obj, workload (the first workload it was found for), workloads (all of them)}] for the served
    GitOps APIs, one per object."""
    plans, seen = [], {}
    argo, keda = kube.has_api(k.ARGO_APPLICATION), kube.has_api(k.KEDA_SCALED_OBJECT)
    listed = {}

    def applications():
        if "argo" not in listed:
            listed["argo"] = kube.list(k.ARGO_APPLICATION)[0]
        return listed["argo"]

    for obj in workloads:
        found = []
        if argo:
            found += [(ACTION_ARGOCD, k.ARGO_APPLICATION, a) for a in _argo_apps(applications, obj)]
        found += [(ACTION_FLUX, k.KINDS_BY_NAME[f["kind"]], f) for f in _flux_objects(kube, obj)]
        if keda:
            found += [(ACTION_KEDA, k.KEDA_SCALED_OBJECT, s) for s in _keda_objects(kube, obj)]
        label = ref_label(ref_of(obj))
        for action, kind, item in found:
            item.setdefault("kind", kind.kind)
            key = item["metadata"]["uid"]
            if key in seen:
                seen[key]["workloads"].append(label)
                continue
            seen[key] = dict(action=action, kind=kind, obj=item, workload=label, workloads=[label])
            plans.append(seen[key])
    return plans


def unpaused_gitops_warnings(workloads, plans):
    """With pause_gitops: the workloads that carry a GitOps tool's marks although nothing of that tool was found to
    pause (Argo CD or Flux running in another cluster, their API not served or not readable here, the Application or
    Kustomization not found), and the Argo CD Applications an ApplicationSet generates (its controller rewrites their
    annotations, dropping skip-reconcile unless the ApplicationSet preserves it). Self-heal may then scale them up
    while the restore runs."""
    out = []
    tools = {"Argo CD": ACTION_ARGOCD, "Flux": ACTION_FLUX}
    for obj in workloads:
        label = ref_label(ref_of(obj))
        actions = set(p["action"] for p in plans if label in p["workloads"])
        for marker in gitops_markers(obj):
            tool = marker.split(" (")[0]
            if tools[tool] not in actions:
                out.append("%s is managed by %s, but no %s object that manages it was found in this cluster to pause "
                           "(it may run in another cluster, or its API is not served or not readable here): pause its "
                           "sync yourself while the restore runs, or it may scale the workload up again."
                           % (label, marker, tool))
    for plan in plans:
        owners = [o for o in plan["obj"]["metadata"].get("ownerReferences") or [] if o.get("kind") == "ApplicationSet"]
        if plan["action"] == ACTION_ARGOCD and owners:
            meta = plan["obj"]["metadata"]
            out.append("Argo CD Application %s/%s is generated by ApplicationSet %s, whose controller may remove the %s "
                       "annotation that pauses it unless the ApplicationSet preserves it (spec.preservedFields."
                       "annotations): check that the Application stays paused, or pause the ApplicationSet's sync."
                       % (meta.get("namespace"), meta["name"], owners[0].get("name"), ARGO_SKIP))
    return out


def gitops_current(action, obj):
    annotations = obj["metadata"].get("annotations") or {}
    if action == ACTION_ARGOCD:
        return {"annotation": annotations.get(ARGO_SKIP)}
    if action == ACTION_KEDA:
        return {"annotation": annotations.get(KEDA_PAUSED)}
    return {"suspend": bool(_spec(obj).get("suspend"))}


def gitops_pause_patch(action):
    if action == ACTION_ARGOCD:
        return {"metadata": {"annotations": {ARGO_SKIP: "true"}}}
    if action == ACTION_KEDA:
        return {"metadata": {"annotations": {KEDA_PAUSED: "0"}}}
    return {"spec": {"suspend": True}}


def gitops_is_paused(action, obj):
    current = gitops_current(action, obj)
    if action == ACTION_ARGOCD:
        return current["annotation"] == "true"
    if action == ACTION_KEDA:
        return keda_keeps_stopped(obj)  # the same rule as the refusal without pause_gitops
    return current["suspend"]


def gitops_resume_patch(action, original):
    if action == ACTION_ARGOCD:
        return {"metadata": {"annotations": {ARGO_SKIP: original.get("annotation")}}}
    if action == ACTION_KEDA:
        return {"metadata": {"annotations": {KEDA_PAUSED: original.get("annotation")}}}
    return {"spec": {"suspend": bool(original.get("suspend"))}}


# ----------------------------------------------------------------------------- stop
class Scaler(object):
    """One workload_scale run. ``params`` are the module's options (plain dict)."""

    def __init__(self, kube, velero_namespace, session_name=None, check_mode=False, warn=None):
        self.kube = kube
        self.velero_namespace = velero_namespace
        self.session_name = session_name
        self.check_mode = check_mode
        self.warnings = []
        self._warn = warn
        self.session = None
        self._reverted = {}
        self._patches = []
        self._pods = {}  # namespace -> its pods as listed to find the targets (before any change)
        self._pods_version = {}  # namespace -> the resourceVersion of that LIST (the stop's wait watches from it)
        self._applied = {}  # journal marks of the stopped workloads, written once after the wait (mark_applied)
        self._renew = set()  # ids of stale scale records the stop records again (_stale)
        if session_name:
            # In check mode a session that a previous task would have created may be missing.
            self.session = sessions.load(kube, velero_namespace, session_name)
            if self.session is None and not check_mode:
                sessions.require(kube, velero_namespace, session_name)

    def warn(self, msg):
        if msg not in self.warnings:
            self.warnings.append(msg)
            if self._warn:
                self._warn(msg)

    def _record(self, record_id):
        if self.session is None:
            return None
        self.session = sessions.require(self.kube, self.velero_namespace, self.session_name)
        return self.session.undo_record(record_id)

    # -- targets ---------------------------------------------------------------
    def targets_for_stop(self, workloads=None, namespace=None, pvcs=None):
        found = []
        if workloads:
            found.extend(get_named(self.kube, workloads, namespace))
        if pvcs:
            if not namespace:
                raise PreflightError("pvcs needs namespace: the namespace of the PVCs.")
            self._pods[namespace], self._pods_version[namespace] = self.kube.list(k.POD, namespace=namespace)
            discovered, warnings = discover(self.kube, namespace, pvcs, session=self.session_name,
                                            pods=self._pods[namespace])
            found.extend(discovered)
            found.extend(self._recorded(namespace, pvcs, active_only=True))
            for warning in warnings:
                self.warn(warning)
        unique = {}
        for obj in found:
            unique.setdefault(obj["metadata"]["uid"], obj)
        return list(unique.values())

    def stop(self, targets, namespace=None, pvcs=None, pause_gitops=False):
        if not self.session_name:
            raise PreflightError("state=stopped needs session: the original values are journaled there "
                                 "before anything is changed.")
        for obj in targets:  # every refusal before the first change
            check_stoppable(obj)
        if not pause_gitops:
            unchecked = []
            problems = keda_refusals(self.kube, targets, unchecked, namespace, pvcs)
            for warning in unchecked:
                self.warn(warning)
            if problems:
                raise PreflightError(" ".join(problems), workloads=[dict(ref_of(obj), action="refused") for obj in targets])
        elif namespace and pvcs and self.kube.has_api(k.KEDA_SCALED_OBJECT):
            # Idle at zero, they have no pods to be found by: stopping leaves them at zero, and their ScaledObjects
            # are paused with the others below (so no trigger starts them during the restore).
            targets = list(targets) + keda_idle_targets(self.kube, namespace, pvcs, targets,
                                                        keda_scaled_objects(self.kube, namespace))
        if not targets and pvcs:
            self.warn("No workload mounts PVC(s) %s in namespace %s." % (", ".join(pvcs), namespace))
        results, gitops = [], []
        if not pause_gitops:
            for obj in targets:
                markers = gitops_markers(obj)
                if markers:
                    self.warn("%s %s/%s is managed by %s: with pause_gitops=false it may be scaled up again (self-heal, "
                              "sync) while the restore runs. Set pause_gitops=true, or pause it yourself."
                              % (obj.get("kind"), obj["metadata"].get("namespace"), obj["metadata"]["name"],
                                 " and ".join(markers)))
        if pause_gitops:
            plans = gitops_pauses(self.kube, targets)
            for warning in unpaused_gitops_warnings(targets, plans):
                self.warn(warning)
            for plan in plans:
                try:
                    gitops.append(self._pause_gitops(plan))
                except DataRestoreError as exc:
                    paused = ["%s %s/%s" % (g["kind"], g["namespace"], g["name"]) for g in gitops
                              if g["result"] == "paused"]
                    if paused:  # say what this failed stop leaves paused, and how to lift it
                        exc.msg = ("%s No workload was stopped; session %s paused %s before (state=started with "
                                   "the same session lifts them)." % (exc.msg, self.session_name, ", ".join(paused)))
                        exc.args = (exc.msg,)
                    raise
        planned = [self._plan_stop(obj) for obj in targets]
        results = [out for out, _patch in planned]
        to_stop = [(out, patch) for out, patch in planned if patch is not None]
        if self.check_mode or not to_stop:
            return results, gitops
        # Record before mutate: every original in the journal first (one write, with the claims it is stopped
        # for), then the objects (annotation + stop in one patch each); mark_applied marks them applied later.
        sessions.record_undo_many(self.kube, self.velero_namespace, self.session_name,
                                  [(ACTION_SCALE, ref_of_result(out), out["original"], {"pvcs": sorted(pvcs or [])})
                                   for out, _patch in to_stop],
                                  renew_reverted=True, renew=self._renew)

        def stop_one(out, stop_patch):
            patch = _merge(stop_patch, {"metadata": {"annotations": {
                ANNOTATION_ORIGINAL: annotation_value(out["original"], pvcs, self.session_name)}}})
            out["current"] = KINDS[out["kind"]].current(
                self.kube.patch(KINDS[out["kind"]].kind, out["name"], patch, out["namespace"]))
            return sessions.undo_id(ACTION_SCALE, ref_of_result(out))

        done = k.run_parallel([lambda item=item: stop_one(*item) for item in to_stop],
                              getattr(self.kube, "parallel_workers", 1))
        self._applied = dict((rid, ("applied", {"pvcs": sorted(pvcs or [])})) for rid in done)
        return results, gitops

    def mark_applied(self, state=None):
        """One journal write: the stopped workloads' records applied and, when given, the session state. A
        record stays "recorded" (still counted as in effect, with its claims) until this runs."""
        changes, self._applied = self._applied, {}
        sessions.set_undo_status_many(self.kube, self.velero_namespace, self.session_name, changes,
                                      check_mode=self.check_mode, state=state)

    def _pause_gitops(self, plan):
        action, kind, obj = plan["action"], plan["kind"], plan["obj"]
        ref = ref_of(obj)
        rid = sessions.undo_id(action, ref)
        out = dict(ref, action=action, workload=plan["workload"])
        if gitops_is_paused(action, obj):
            record = self._record(rid)
            if record is not None and not self.check_mode and (
                    record["status"] == "recorded" or (record["status"] == "applied" and record.get("releasing"))):
                # Paused by a run of this session that was killed before it could mark the pause applied, or a start
                # of this session began to lift it and was killed: the pause serves this stop again.
                sessions.set_undo_status(self.kube, self.velero_namespace, self.session_name, rid, "applied",
                                         workloads=[plan["workload"]], releasing=False)
            out["result"] = "already_paused"
            if record is None or record["status"] == "reverted":
                self._share_pause(plan, rid, out)
            return out
        original = gitops_current(action, obj)
        out["original"] = original
        out["result"] = "paused"
        if self.check_mode:
            return out
        # A pause of an earlier cycle of this session that was lifted is recorded again: the value now is the user's.
        sessions.record_undo_many(self.kube, self.velero_namespace, self.session_name, [(action, ref, original)],
                                  renew_reverted=True)
        self.kube.patch(kind, ref["name"], gitops_pause_patch(action), ref["namespace"])
        sessions.set_undo_status(self.kube, self.velero_namespace, self.session_name, rid, "applied",
                                 workloads=[plan["workload"]])
        return out

    def _share_pause(self, plan, rid, out):
        """A pause made by another restore session (one Flux Kustomization or Argo CD Application for several
        namespaces, restored in one session each): recorded here too, with that session's original, so that neither
        lifts it while the other still needs it (``_resume_gitops``), and the last one puts the original back. A
        pause no session holds is the user's: not recorded, left as it is."""
        # A holder that is lifting the pause right now counts: this session records the pause first, then looks
        # whether it is still in place, and pauses again if the holder lifted it meanwhile.
        holders = sessions.other_holders(self.kube, self.velero_namespace, self.session_name, rid,
                                         include_releasing=True)
        if not holders:
            return
        out.update(result="shared", shared_with=sorted(holders), original=holders[sorted(holders)[0]]["original"])
        if self.check_mode:
            return
        action, kind, ref = plan["action"], plan["kind"], ref_of(plan["obj"])
        sessions.record_undo_many(self.kube, self.velero_namespace, self.session_name,
                                  [(action, ref, out["original"])], renew_reverted=True)
        again = self.kube.get(kind, ref["name"], ref["namespace"])
        if again is not None and not gitops_is_paused(action, again):
            self.kube.patch(kind, ref["name"], gitops_pause_patch(action), ref["namespace"])
            out["result"] = "paused"
        sessions.set_undo_status(self.kube, self.velero_namespace, self.session_name, rid, "applied",
                                 workloads=[plan["workload"]], shared_with=sorted(holders), releasing=False)

    def _plan_stop(self, obj):
        """(result, stop patch or None when there is nothing to change)."""
        wk = KINDS[obj["kind"]]
        ref = ref_of(obj)
        record = self._record(sessions.undo_id(ACTION_SCALE, ref))
        current = wk.current(obj)
        out = dict(ref, current=current, before=current, original=None, action="stopped")
        stale = record is not None and record["status"] != "reverted" and self._stale(record, obj)
        if stale:
            self._renew.add(sessions.undo_id(ACTION_SCALE, ref))
            if record["target"].get("uid") == obj["metadata"].get("uid") and read_annotation(obj) is not None:
                self.warn("%s runs again (%s) since this session stopped it (recorded original %s): someone started "
                          "it; that is taken as its original now, and the start puts it back to that."
                          % (ref_label(ref), json.dumps(current, sort_keys=True),
                             json.dumps(record["original"], sort_keys=True)))
        if record is not None and record["status"] != "reverted" and not stale:
            out["original"] = record["original"]
            if wk.is_stopped(obj):
                out["action"] = "already_stopped"
                return out, None
        elif wk.is_stopped(obj):
            note = read_annotation(obj)
            if note is None:
                out.update(original=current, action="already_stopped")
                self.warn("%s was already stopped before this run (no recorded original); start leaves it "
                          "stopped." % ref_label(ref))
                return out, None
            out["original"] = note["original"]
        else:
            out["original"] = current
        if obj["kind"] == "StatefulSet" and (_spec(obj).get("updateStrategy") or {}).get("type") == "OnDelete" and \
                _status(obj).get("updateRevision") not in (None, _status(obj).get("currentRevision")):
            # Kubernetes recreates its pods from updateRevision: the stop and start roll the staged change out.
            self.warn("%s (updateStrategy OnDelete) has a staged revision %s that its pods do not run yet (%s): the "
                      "start recreates them from %s, so the restored data starts under the new pod template."
                      % (ref_label(ref), _status(obj)["updateRevision"], _status(obj).get("currentRevision"),
                         _status(obj)["updateRevision"]))
        stop_patch = wk.stop(obj)
        out["after"] = wk.current(_apply(obj, stop_patch))
        return out, stop_patch

    @staticmethod
    def _stale(record, obj):
        """A record in effect that no longer describes ``obj``: the object was deleted and recreated (another
        uid), or it runs again - a start undid the stop and was killed before its journal write (the annotation is
        gone), or someone scaled it by hand while it was left stopped (kubectl scale keeps the annotation). Its
        original is then not the object's: the stop records the current values again."""
        if record["target"].get("uid") != obj["metadata"].get("uid"):
            return True
        return not KINDS[obj["kind"]].is_stopped(obj)

    def _recorded(self, namespace, pvcs, active_only=False):
        """Workloads this session stopped for ``pvcs`` (their pods are gone, so discovery cannot see them)."""
        return self._recorded_and_gone(namespace, pvcs, active_only)[0]

    def _recorded_and_gone(self, namespace, pvcs, active_only=False):
        """(``_recorded``, the records in effect whose workload was deleted, or recreated with another uid)."""
        if self.session is None:
            return [], []
        records = []
        for record in self.session.doc.get("undo") or []:
            target = record["target"]
            if (record["action"] != ACTION_SCALE or target.get("namespace") != namespace
                    or not set(pvcs) & set(record.get("pvcs") or [])
                    or (active_only and record["status"] == "reverted")):
                continue
            records.append(record)
        out, gone = [], []
        for kind_name in sorted(set(r["target"]["kind"] for r in records)):
            wanted = [r for r in records if r["target"]["kind"] == kind_name]
            found = k.get_many(self.kube, KINDS[kind_name].kind, [r["target"]["name"] for r in wanted], namespace)
            for record in wanted:
                target = record["target"]
                obj = found.get(target["name"])
                if obj is not None and obj["metadata"].get("uid") == target.get("uid"):
                    obj.setdefault("kind", kind_name)
                    out.append(obj)
                elif record["status"] in sessions.IN_EFFECT:
                    gone.append(dict(record, replaced_by=obj["metadata"].get("uid") if obj is not None else None))
        return out, gone

    # -- start -----------------------------------------------------------------
    def targets_for_start(self, workloads=None, namespace=None, pvcs=None):
        """(object, original or None) pairs: named, from the session's records, or from annotations. The records of
        workloads deleted or recreated while stopped go to ``self._gone`` (start closes them)."""
        found = {}
        self._gone = []
        if workloads:
            for obj in get_named(self.kube, workloads, namespace):
                found[obj["metadata"]["uid"]] = obj
        if pvcs:
            if not namespace:
                raise PreflightError("pvcs needs namespace: the namespace of the PVCs.")
            wanted = set(pvcs)
            recorded, self._gone = self._recorded_and_gone(namespace, pvcs)
            for obj in recorded:
                found.setdefault(obj["metadata"]["uid"], obj)
            # The journal is complete (record before mutate): a workload this session stopped is in it. Scanning
            # the namespace is for starts without a session journal (annotations only).
            if self.session is None or not self.session.doc.get("undo"):
                for obj in self._annotated(namespace, wanted):
                    found.setdefault(obj["metadata"]["uid"], obj)
        return sorted(found.values(), key=lambda o: (o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]))

    def _annotated(self, namespace, wanted):
        """Workloads whose data-restore annotation names one of the claims, and StatefulSets whose claim
        templates made them."""
        out = []
        for wk in KINDS.values():
            if not served(self.kube, wk.kind):
                continue
            for obj in self.kube.list(wk.kind, namespace=namespace)[0]:
                note = read_annotation(obj)
                if note and wanted & set(note.get("pvcs") or []):
                    out.append(obj)
        return out + statefulsets_for_claims(self.kube, namespace, sorted(wanted))

    def start(self, workloads=None, namespace=None, pvcs=None):
        results = []
        self._reverted = {}  # journal marks of the started workloads, written once after their patches
        self._patches = []  # the patches, applied in parallel
        targets = self.targets_for_start(workloads, namespace, pvcs)
        if self.session_name and pvcs:
            refuse_start_during_other_restore(self.kube, namespace, self.session_name, targets)
        for obj in targets:
            results.append(self._start_one(obj))
        results.extend(self._close_gone(getattr(self, "_gone", [])))
        self._apply_start_patches()
        sessions.set_undo_status_many(self.kube, self.velero_namespace, self.session_name, self._reverted,
                                      check_mode=self.check_mode)
        gitops = self._resume_gitops(results)
        return results, gitops

    def _start_one(self, obj):
        wk = KINDS[obj["kind"]]
        ref = ref_of(obj)
        rid = sessions.undo_id(ACTION_SCALE, ref)
        record = self._record(rid)
        note = read_annotation(obj)
        current = wk.current(obj)
        out = dict(ref, current=current, before=current, original=None, action="started")
        if record is not None:
            original = record["original"]
        elif note is not None:
            original = note["original"]
        else:
            out["action"] = "no_record"
            self.warn("%s has no recorded original (session record or %s annotation); left as it is."
                      % (ref_label(ref), ANNOTATION_ORIGINAL))
            return out
        out["original"] = original
        done = record is not None and record["status"] == "reverted"
        if done and note is None:
            out["action"] = "already_started"
            return out
        patch = {"metadata": {"annotations": {ANNOTATION_ORIGINAL: None}}} if note is not None else {}
        if wk.is_stopped(obj) and not done:
            patch = _merge(patch, wk.start(obj, original))
            out["after"] = wk.current(_apply(obj, patch))
        elif not done and current == original:
            out["action"] = "already_started"  # interrupted after the patch, before the journal
        elif not done:
            out["action"] = "left_changed"
            self.warn("%s was changed by someone else while stopped (now %s, stopped value differs); left as "
                      "it is." % (ref_label(ref), json.dumps(current, sort_keys=True)))
        else:
            out["action"] = "already_started"
        if self.check_mode:
            return out
        if patch:
            self._patches.append((out, wk, patch))
        if record is not None and record["status"] != "reverted":
            self._reverted[rid] = ("reverted", {"outcome": out["action"]})
        return out

    def _close_gone(self, records):
        """A workload this session stopped that was deleted (a Job's TTL, an uninstall) or recreated with another uid
        (kubectl replace --force, a GitOps re-create) has nothing to start: its record is closed (outcome gone) so
        that the session no longer counts it as stopped, and the pauses kept for it are lifted."""
        out = []
        for record in records:
            target = record["target"]
            label = ref_label(target)
            again = record.get("replaced_by")
            self.warn("%s, which this session stopped, %s while it was stopped; nothing to start there%s."
                      % (label, "was recreated (uid %s)" % again if again else "was deleted",
                         " (the new one is left as it is)" if again else ""))
            out.append(dict(target, current=None, before=None, original=record["original"], action="gone"))
            if not self.check_mode:
                self._reverted[record["id"]] = ("reverted", {"outcome": "gone"})
        return out

    def _apply_start_patches(self):
        def apply(out, wk, patch):
            out["current"] = wk.current(self.kube.patch(wk.kind, out["name"], patch, out["namespace"]))

        k.run_parallel([lambda item=item: apply(*item) for item in self._patches],
                       getattr(self.kube, "parallel_workers", 1))
        self._patches = []

    def _resume_gitops(self, started):
        if self.session is None:
            return []
        resumable = ("started", "left_changed", "already_started", "gone")
        labels = set(ref_label(r) for r in started if r["action"] in resumable)
        undo = self.session.doc.get("undo") or []
        # A pause serves the workloads this session keeps stopped. One whose workloads were never stopped (the stop
        # failed or was killed between the pauses and the scale) protects nothing: any start of the session lifts it.
        still_stopped = set(ref_label(r["target"]) for r in undo
                            if r["action"] == ACTION_SCALE and r["status"] != "reverted") - labels
        out = []
        for record in undo:
            if record["action"] not in GITOPS_ACTIONS or record["status"] == "reverted":
                continue
            workloads = set(record.get("workloads") or [])
            if not labels & workloads and workloads & still_stopped:
                continue
            target = record["target"]
            kind = k.KINDS_BY_NAME[target["kind"]]
            item = dict(target, action=record["action"], original=record["original"], result="resumed")
            obj = self.kube.get(kind, target["name"], target["namespace"]) if self.kube.has_api(kind) else None
            if obj is None:
                item["result"] = "gone"
            elif not gitops_is_paused(record["action"], obj) and record["status"] == "recorded":
                item["result"] = "not_paused"  # journaled, but the pause itself never happened (refused or killed)
            elif not gitops_is_paused(record["action"], obj):
                item["result"] = "left_changed"
                self.warn("%s %s/%s is no longer paused by this session; left as it is."
                          % (target["kind"], target["namespace"], target["name"]))
            else:
                if not self.check_mode:
                    # Marked before the other sessions are read: two sessions that finish at once each see the other
                    # releasing and both lift it (to the same original), rather than both keeping it paused.
                    sessions.set_undo_status(self.kube, self.velero_namespace, self.session_name, record["id"],
                                             record["status"], releasing=True)
                holders = sessions.other_holders(self.kube, self.velero_namespace, self.session_name, record["id"])
                if holders:
                    item.update(result="kept_for_other_session", shared_with=sorted(holders))
                    self.warn("%s %s/%s stays paused: restore session(s) %s paused it too and still need it; the "
                              "last of them lifts it." % (target["kind"], target["namespace"], target["name"],
                                                          ", ".join(sorted(holders))))
                elif not self.check_mode:
                    self.kube.patch(kind, target["name"], gitops_resume_patch(record["action"], record["original"]),
                                    target["namespace"])
                    # A session that recorded its share after the read above may have seen the pause still in
                    # place (and not paused it itself): read again, and put the pause back for it.
                    late = sessions.other_holders(self.kube, self.velero_namespace, self.session_name, record["id"])
                    if late:
                        self.kube.patch(kind, target["name"], gitops_pause_patch(record["action"]), target["namespace"])
                        item.update(result="kept_for_other_session", shared_with=sorted(late))
                        self.warn("%s %s/%s stays paused: restore session(s) %s began to share the pause while this "
                                  "one lifted it; the last of them lifts it." % (
                                      target["kind"], target["namespace"], target["name"], ", ".join(sorted(late))))
            if not self.check_mode:
                sessions.set_undo_status(self.kube, self.velero_namespace, self.session_name, record["id"],
                                         "reverted", releasing=False, **({"outcome": item["result"]}
                                                                         if item["result"] == "kept_for_other_session"
                                                                         else {}))
            out.append(item)
        return out

    # -- waits -----------------------------------------------------------------
    def wait_stopped(self, targets, namespace=None, pvcs=None, timeout=600, on_progress=None):
        """Until no non-terminal pod mounts the PVCs or belongs to the workloads. Returns pods waited."""
        namespaces = set(t["namespace"] for t in targets)
        if pvcs and namespace:
            namespaces.add(namespace)
        uids = set(t["uid"] for t in targets)
        waited = set()
        deadline = time.monotonic() + timeout
        for ns in sorted(namespaces):
            wanted = set(pvcs or []) if ns == namespace else set()
            # From the LIST that found the targets, when there was one: its watch delivers what the stop changed.
            listed = (self._pods[ns], self._pods_version[ns]) if self._pods_version.get(ns) else None
            wait_for(self.kube, k.POD, self._pods_gone(ns, wanted, uids, waited), namespace=ns,
                     on_progress=on_progress, timeout=max(0, deadline - time.monotonic()),
                     what="pods in namespace %s to stop" % ns, initial=listed)
        return sorted(waited)

    def _pods_gone(self, ns, wanted, uids, waited):
        resolver = OwnerResolver(self.kube)

        def predicate(pods):
            pending = [pod_label(p) for p in _matching_pods(pods, wanted, uids, resolver, self.session_name)]
            waited.update(pending)
            return WaitState(not pending, pending, progress="%d pod(s) in %s still running" % (len(pending), ns))

        return predicate

    def pods_now(self, targets, namespace=None, pvcs=None):
        """Pods that mount the PVCs or belong to the workloads before the stop (what stopping waits for); the
        pods listed to find the targets are reused."""
        namespaces = set(t["namespace"] for t in targets)
        if pvcs and namespace:
            namespaces.add(namespace)
        uids = set(t["uid"] for t in targets)
        found = []
        for ns in sorted(namespaces):
            pods = self._pods[ns] if ns in self._pods else self.kube.list(k.POD, namespace=ns)[0]
            wanted = set(pvcs or []) if ns == namespace else set()
            found.extend(pod_label(p) for p in _matching_pods(pods, wanted, uids, OwnerResolver(self.kube),
                                                              self.session_name))
        return found

    def wait_ready(self, targets, timeout=600, on_progress=None):
        groups = {}
        for t in targets:
            groups.setdefault((t["kind"], t["namespace"]), set()).add(t["uid"])
        deadline = time.monotonic() + timeout
        for (kind_name, ns), uids in sorted(groups.items()):
            wk = KINDS[kind_name]

            def predicate(objs, wk=wk, uids=uids):
                pending = ["%s %s/%s" % (wk.kind.kind, o["metadata"]["namespace"], o["metadata"]["name"])
                           for o in objs if o["metadata"]["uid"] in uids and not wk.is_ready(o)]
                return WaitState(not pending, pending, progress="%d %s(s) not ready" % (len(pending), kind_name))

            wait_for(self.kube, wk.kind, predicate, namespace=ns, on_progress=on_progress,
                     timeout=max(0, deadline - time.monotonic()),
                     what="%ss in %s to be ready" % (kind_name, ns))


def _matching_pods(pods, wanted, uids, resolver, session=None):
    """Pods stopping waits for: mounting the PVCs or owned by the workloads, not this session's own pods."""
    return [p for p in pods if not is_terminal(p) and not is_own_pod(p, session)
            and ((wanted and wanted & set(claim_names(p))) or (uids & resolver.uids(p)))]


def _merge(a, b):
    out = copy.deepcopy(a)
    for key, value in b.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _apply(obj, patch):
    """A merge patch applied locally (for check mode and diffs)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(obj) if isinstance(obj, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _apply(result.get(key), value)
    return result


def scale(kube, params, check_mode=False, warn=None, on_progress=None):
    """The whole of workload_scale: returns the module result (without the module)."""
    state = params["state"]
    scaler = Scaler(kube, params["velero_namespace"], params.get("session"), check_mode=check_mode, warn=warn)
    pvcs = params.get("pvcs") or []
    namespace = params.get("namespace")
    if not params.get("workloads") and not pvcs:
        raise PreflightError("Name the workloads (workloads) or the PVCs whose workloads to %s (namespace + pvcs)."
                             % ("stop" if state == "stopped" else "start"))
    helpers_deleted = []
    if state == "stopped":
        if not scaler.session_name:
            raise PreflightError("state=stopped needs session: the original values are journaled there "
                                 "before anything is changed.")
        targets = scaler.targets_for_stop(params.get("workloads"), namespace, pvcs)
        pods_before = scaler.pods_now([ref_of(t) for t in targets], namespace, pvcs)
        results, gitops = scaler.stop(targets, namespace, pvcs, params.get("pause_gitops"))
    else:
        if params.get("delete_helper_pods"):
            helpers_deleted = release_claims(kube, params, check_mode)
        results, gitops = scaler.start(params.get("workloads"), namespace, pvcs)
    changed_actions = ("stopped", "started", "gone")  # gone: its journal record is closed
    changed = any(r["action"] in changed_actions for r in results) or any(
        g["result"] in ("paused", "resumed") for g in gitops) or bool(helpers_deleted)
    summary = [dict((key, r.get(key)) for key in ("kind", "namespace", "name", "uid", "original", "current", "action"))
               for r in results]
    pods_waited, pods_ready = [], []
    if state == "stopped" and not (params.get("wait", True) and not check_mode):
        scaler.mark_applied(params.get("session_state"))
    if params.get("wait", True) and not check_mode:
        if state == "stopped":
            try:
                waited = scaler.wait_stopped(results, namespace, pvcs, params.get("wait_timeout", 600), on_progress)
            except DataRestoreError as exc:
                scaler.mark_applied()  # the patches are in effect; the session state stays as it was
                exc.details.update(workloads=summary, changed=changed or bool(exc.details.get("changed")))
                raise
            pods_waited = sorted(set(pods_before) | set(waited))
            # The applied marks and session_state (run_module then has nothing left to write) in one request.
            scaler.mark_applied(params.get("session_state"))
        else:
            try:
                scaler.wait_ready([r for r in results if r["action"] in ("started", "already_started")],
                                  params.get("wait_timeout", 600), on_progress)
            except DataRestoreError as exc:
                # The starts are done and journaled: the failure says so, and the rescue does not start (and wait
                # for) them a second time.
                exc.details.update(workloads=summary, changed=changed or bool(exc.details.get("changed")))
                raise
            if pvcs and namespace:
                pods_ready = running_pods_of_claims(kube, namespace, pvcs, scaler.session_name)
    before, after = {}, {}
    for r in results:
        key = "%s/%s/%s" % (r["kind"], r["namespace"], r["name"])
        if "after" in r:
            before[key], after[key] = r["before"], r["after"]
    return dict(changed=changed, workloads=summary, gitops=gitops, pods_waited=pods_waited, pods=pods_ready,
                helper_pods_deleted=helpers_deleted, warnings=scaler.warnings, diff=dict(before=before, after=after))


def template_claims(obj):
    """The claims a workload's pods mount: its pod template's (a CronJob's job template's), and for a StatefulSet
    a matcher of the claims its volumeClaimTemplates make. Returns a predicate on a claim name."""
    named = set(claim_names(pod_template(obj)))
    patterns = claim_template_patterns(obj) if obj["kind"] == "StatefulSet" else []
    return lambda claim: claim in named or any(p.match(claim) for p in patterns)


def refuse_start_during_other_restore(kube, namespace, session, targets):
    """Before a start: a helper or placeholder pod of ANOTHER session that mounts a claim one of the workloads also
    mounts means that claim is being restored now (its workload was already stopped, so that session did not stop
    it and will not start it). Starting it would let the app write into it mid-restore: refused, before any change."""
    if not targets or not namespace:
        return
    others = [p for p in kube.list(k.POD, namespace=namespace,
                                   label_selector="%s=%s" % (names.LABEL_MANAGED_BY, names.MANAGED_BY))[0]
              if pod_session(p) not in (None, session) and not is_terminal(p)]
    for obj in targets:
        mounts = template_claims(obj)
        for pod in others:
            shared = sorted(c for c in claim_names(pod) if mounts(c))
            if shared:
                raise PreflightError(
                    "%s also mounts PVC(s) %s, which restore session %r is restoring now (its pod %s): starting it "
                    "would let the application write into a volume mid-restore, so nothing was started. Re-run the "
                    "start of session %s (re-run its playbook) once session %r is done."
                    % (ref_label(ref_of(obj)), ", ".join(shared), pod_session(pod), pod["metadata"]["name"],
                       session, pod_session(pod)), other_session=pod_session(pod))


def release_claims(kube, params, check_mode=False):
    """delete_helper_pods: the session's helper pods in the namespace deleted (and gone) before the start, so a
    ReadWriteOnce claim is free for the workload's pod. Returns their namespace/name."""
    if not params.get("session") or not params.get("namespace"):
        raise PreflightError("delete_helper_pods needs session and namespace (whose helper pods to delete).")
    return helper_pod.delete_all(kube, params["session"], params["namespace"], timeout=params.get("wait_timeout", 600),
                                 wait=params.get("wait", True), check_mode=check_mode)


def running_pods_of_claims(kube, namespace, pvcs, session=None):
    """The Running pods that mount the claims (not this collection's own pods), trimmed to what post-restore
    hooks need: name, namespace, uid, annotations, container names, claim volumes and phase."""
    wanted = set(pvcs)
    out = []
    for pod in kube.list(k.POD, namespace=namespace)[0]:
        if (pod.get("status") or {}).get("phase") != "Running" or is_own_pod(pod, session):
            continue
        if not wanted & set(claim_names(pod)):
            continue
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        out.append({
            "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid"),
                         "annotations": dict(meta.get("annotations") or {})},
            "spec": {"containers": [{"name": c.get("name")} for c in spec.get("containers") or []],
                     "volumes": [vol for vol in spec.get("volumes") or [] if "persistentVolumeClaim" in vol]},
            "status": {"phase": "Running"},
        })
    return sorted(out, key=lambda p: p["metadata"]["name"])
