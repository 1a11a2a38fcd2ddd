# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""DataDownloads of a session: restore a data-mover snapshot into a NEW PVC (replace mode).

Velero's node-agent restores into a temporary PVC and then hands the restored PV over to the
target PVC (velero-contract.md §3). The target PVC must exist, be unbound and carry a unique
``velero.io/dynamic-pv-restore`` selector set at creation (selectors are immutable; the CSI
provisioner refuses claims with a selector, so nothing else binds it first, §3, §7.8). With a
WaitForFirstConsumer class a pod must consume it so the scheduler writes
``volume.kubernetes.io/selected-node`` (else the DD fails after 30 minutes): a placeholder pod does
that. If Velero's rebind step fails the DD stays InProgress forever (§3.8, §7.10), so every wait
here has its own timeout and says where to look.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.velero.data_restore.plugins.module_utils import claims
from ansible_collections.velero.data_restore.plugins.module_utils import helper_pod
from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils import names
from ansible_collections.velero.data_restore.plugins.module_utils import pod_volume_restore as pvrs
from ansible_collections.velero.data_restore.plugins.module_utils import session as sessions
from ansible_collections.velero.data_restore.plugins.module_utils import velero_api as va
from ansible_collections.velero.data_restore.plugins.module_utils import workloads
from ansible_collections.velero.data_restore.plugins.module_utils.errors import (
    DataRestoreError,
    ForbiddenError,
    PreflightError,
    WaitTimeout,
)
from ansible_collections.velero.data_restore.plugins.module_utils.waiting import WaitState, wait_for

ROLE = "dd"
CLAIM_ROLE = claims.CLAIM_ROLE
CONSUMER_ROLE = "consumer"
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
NODE_OS = ("", "linux", "windows")
NODE_OS_WINDOWS = "windows"
NODE_OS_LABEL = "kubernetes.io/os"
HOSTNAME_LABEL = "kubernetes.io/hostname"
# The only node-agent tolerations Velero (v1.18.1) gives its restore pod: the first one of each key of
# util.ThirdPartyTolerations (pkg/util/third_party.go), read from the node-agent DaemonSet of the DataDownload's OS
# (data_download_controller.go setupExposeParam, nodeagent.GetToleration).
RESTORE_POD_TOLERATION_KEYS = ("kubernetes.azure.com/scalesetpriority", "CriticalAddonsOnly")
NODE_AGENT_DAEMONSET = "node-agent"
NODE_AGENT_DAEMONSET_WINDOWS = "node-agent-windows"
BLOCKING_TAINT_EFFECTS = ("NoSchedule", "NoExecute")
WINDOWS_TOLERATIONS = [{"key": "os", "operator": "Equal", "effect": effect, "value": NODE_OS_WINDOWS}
                       for effect in BLOCKING_TAINT_EFFECTS]
PLACEHOLDER_MODES = ("auto", "always", "never")
MOUNT_PATH = "/restore-target"
DEVICE_PATH = "/dev/restore-target"
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|\u00b5s|ms|s|m|h))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|\u00b5s|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, u"\u00b5s": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def dd_name(session, namespace, pvc):
    return names.stable_name(session, namespace, pvc, distinct=True)


def consumer_name(session, namespace, pvc):
    return names.stable_name("consumer", session, namespace, pvc, distinct=True)


def selector_value(session, namespace, pvc):
    """Unique, stable ``velero.io/dynamic-pv-restore`` value (Velero: GetValidName("<ns>.<pvc>.<5 random>"))."""
    return va.get_valid_name("%s.%s.%s" % (namespace, pvc, names.short_hash(session, namespace, pvc, length=5)))


def go_duration_seconds(value):
    """Seconds of a Go duration string; None when it does not parse."""
    value = str(value or "")
    if value == "0":
        return 0.0
    if not _DURATION.match(value):
        return None
    return sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(value))


def check_record(rec):
    key = rec.get("key") or "%s/%s" % (rec.get("target_namespace"), rec.get("target_pvc"))
    new_pvc = rec.get("new_pvc") or {}
    if not new_pvc.get("name"):
        raise PreflightError(
            "Volume %s has no new_pvc: a DataDownload restores into a new, unbound PVC (replace mode, "
            "velero-contract.md §7.8). Plan it in replace mode, or restore a Filesystem data-mover snapshot in place "
            "with velero.data_restore.pod_volume_restore." % key, volume=key)
    missing = [f for f in ("snapshot_id", "source_namespace", "backup_storage_location", "target_namespace")
               if not rec.get(f)]
    if missing:
        raise PreflightError("Volume %s: the plan record lacks %s; build it with velero.data_restore.restore_plan."
                             % (key, ", ".join(missing)), volume=key)
    if (rec.get("method") or "data_mover") != "data_mover":
        raise PreflightError("Volume %s was backed up by %s; only data-mover (DataUpload) snapshots are restored "
                             "with a DataDownload. Use velero.data_restore.pod_volume_restore." % (key, rec.get("method")),
                             volume=key)
    mover = rec.get("data_mover") or ""
    if mover not in va.BUILTIN_DATA_MOVERS:
        raise PreflightError(
            "Volume %s was moved by data mover %r; Velero's node-agent ignores DataDownloads whose datamover is not "
            "\"\" or velero (velero-contract.md §3.1, §7.12)." % (key, mover), volume=key)
    node_os = rec.get("node_os") or ""
    if node_os not in NODE_OS:
        raise PreflightError(
            "Volume %s has nodeOS %r; use \"\", linux or windows: %s (velero-contract.md §1.6, §7.11)."
            % (key, node_os, "auto never matches a node (HasNodeWithOS), the DataDownload would fail"
               if node_os == "auto" else "Velero knows no other value"), volume=key)
    timeout = rec.get("operation_timeout") or va.DEFAULT_CSI_SNAPSHOT_TIMEOUT
    seconds = go_duration_seconds(timeout)
    if not seconds:
        raise PreflightError(
            "Volume %s has operationTimeout %r; it must be a non-zero Go duration such as 10m0s, since the node-agent "
            "uses it to wait for the restore PVC to bind (velero-contract.md §1.6, §7.7)." % (key, timeout), volume=key)
    return key


def build_dd(rec, sess, velero_namespace, data_mover_config=None):
    """The DataDownload body (never a status). targetVolume.pv is "" (required key, contract §7.7)."""
    ns, pvc = rec["target_namespace"], rec["new_pvc"]["name"]
    spec = {
        "targetVolume": {"pvc": pvc, "namespace": ns, "pv": ""},
        "backupStorageLocation": rec["backup_storage_location"],
        "datamover": rec.get("data_mover") or "",
        "snapshotID": rec["snapshot_id"],
        "sourceNamespace": rec["source_namespace"],
        "operationTimeout": rec.get("operation_timeout") or va.DEFAULT_CSI_SNAPSHOT_TIMEOUT,
    }
    if rec.get("node_os"):
        # Left out when unknown, as Velero does (omitempty): the CRD's enum (auto, linux, windows) refuses "", which
        # the node-agent would read as linux anyway (contract §1.6).
        spec["nodeOS"] = rec["node_os"]
    if rec.get("snapshot_size"):  # pruned by a CRD older than v1.18: harmless (cache volume sizing only)
        spec["snapshotSize"] = int(rec["snapshot_size"])
    if data_mover_config:
        spec["dataMoverConfig"] = va.data_path_settings(data_mover_config)
    return {
        "apiVersion": k.DATA_DOWNLOAD.api_version,
        "kind": k.DATA_DOWNLOAD.kind,
        "metadata": {
            "name": dd_name(sess.name, ns, pvc),
            "namespace": velero_namespace,
            "labels": names.session_labels(sess.name, ROLE),
            "annotations": {pvrs.ANNOTATION_VOLUME_KEY: pvrs.volume_key(rec)},
            "ownerReferences": [sess.owner_reference()],
        },
        "spec": spec,
    }


def placeholder_body(session, namespace, pvc, volume_mode, settings, node_selector=None, tolerations=None,
                     node_affinity=None, node_os="", node_agent_nodes=None):
    """A pod that consumes the PVC so a WaitForFirstConsumer class gets volume.kubernetes.io/selected-node.
    ``node_affinity``: the original volume's topology (helper_pod.origin_node_affinities), so the new volume is
    provisioned where the workload can use it. ``node_os``: the DataDownload's; the placeholder keeps to the nodes
    Velero's restore pod may use (generic_restore.go createRestorePod: kubernetes.io/os In [windows] for windows,
    else NotIn [windows]), since that pod must run on the selected node. ``node_agent_nodes``: the nodes a Ready
    node-agent runs on; the placeholder keeps to them, since only the node-agent of the selected node prepares the
    DataDownload (without one it waits for Velero's 30-minute prepare timeout); the caller leaves out the nodes
    Velero's restore pod cannot run on (placeholder_nodes) and gives only tolerations that pod has too, unless the
    nodes were checked (_placeholder_scheduling)."""
    container = {
        "name": "consumer",
        "image": settings.pause_image,
        "command": list(helper_pod.PAUSE_COMMAND),
        "resources": dict(settings.resources),
        "securityContext": dict(settings.security_context),
    }
    if volume_mode == "Block":
        container["volumeDevices"] = [{"name": "target", "devicePath": DEVICE_PATH}]
    else:
        container["volumeMounts"] = [{"name": "target", "mountPath": MOUNT_PATH}]
    spec = {
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 5,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "containers": [container],
        "volumes": [{"name": "target", "persistentVolumeClaim": {"claimName": pvc}}],
    }
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if tolerations:
        spec["tolerations"] = list(tolerations)
    if node_affinity:
        spec["affinity"] = helper_pod.require_node_affinity(None, node_affinity)
    if node_agent_nodes:
        # One term per node: the API server takes a single value for In on a node field selector (metadata.name).
        spec["affinity"] = helper_pod.require_node_affinity(spec.get("affinity"), {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]} for node in node_agent_nodes]})
    windows = node_os == NODE_OS_WINDOWS
    spec["affinity"] = helper_pod.require_node_affinity(spec.get("affinity"), {"nodeSelectorTerms": [{
        "matchExpressions": [{"key": NODE_OS_LABEL, "operator": "In" if windows else "NotIn",
                              "values": [NODE_OS_WINDOWS]}]}]})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": consumer_name(session, namespace, pvc), "namespace": namespace,
                     "labels": names.session_labels(session, CONSUMER_ROLE)},
        "spec": spec,
    }


def node_agent_pods(kube, velero_namespace):
    """The node-agent pods (one LIST), or None when they cannot be listed."""
    try:
        return kube.list(k.POD, namespace=velero_namespace, label_selector=helper_pod.NODE_AGENT_SELECTOR)[0]
    except ForbiddenError:
        return None


def _daemonset_of(pod):
    owner = workloads.controller_ref(pod)
    if owner and owner.get("kind") == "DaemonSet":
        return owner.get("name")
    return (pod["metadata"].get("labels") or {}).get("name")  # Velero's install labels its pods name=<DaemonSet>


def restore_pod_tolerations(agent_pods, node_os):
    """The tolerations of Velero's restore pod for a DataDownload of ``node_os`` (RESTORE_POD_TOLERATION_KEYS; for
    windows also os=windows, generic_restore.go createRestorePod). Read from the node-agent pods, which carry their
    DaemonSet's tolerations (and node.kubernetes.io/* ones the DaemonSet controller adds): no DaemonSet read."""
    windows = node_os == NODE_OS_WINDOWS
    daemonset = NODE_AGENT_DAEMONSET_WINDOWS if windows else NODE_AGENT_DAEMONSET
    first = {}
    for pod in agent_pods or []:
        if _daemonset_of(pod) == daemonset:
            for toleration in (pod.get("spec") or {}).get("tolerations") or []:
                first.setdefault(toleration.get("key"), toleration)
    found = [first[key] for key in RESTORE_POD_TOLERATION_KEYS if key in first]
    return found + (list(WINDOWS_TOLERATIONS) if windows else [])


def tolerates(toleration, taint):
    """Kubernetes' Toleration.ToleratesTaint."""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("key") and toleration["key"] != taint.get("key"):
        return False
    if toleration.get("operator") == "Exists":
        return True
    return toleration.get("operator") in (None, "", "Equal") and \
        (toleration.get("value") or "") == (taint.get("value") or "")


def _taint_text(taint):
    value = "=%s" % taint["value"] if taint.get("value") else ""
    return "%s%s:%s" % (taint.get("key"), value, taint.get("effect"))


def unusable_reason(node, node_os, tolerations):
    """Why Velero's restore pod cannot run on ``node`` (None when it can): it is pinned with nodeSelector
    kubernetes.io/hostname=<node name> (generic_restore.go createRestorePod), keeps to its OS and has only
    ``tolerations``, and Velero waits for a Pending pod until its prepare timeout (pkg/util/kube/pod.go)."""
    name, labels = node["metadata"]["name"], node["metadata"].get("labels") or {}
    if labels.get(HOSTNAME_LABEL) != name:
        return "its %s label (%s) is not its name" % (HOSTNAME_LABEL, labels.get(HOSTNAME_LABEL) or "none")
    if (labels.get(NODE_OS_LABEL) == NODE_OS_WINDOWS) != (node_os == NODE_OS_WINDOWS):
        return "its %s label is %s" % (NODE_OS_LABEL, labels.get(NODE_OS_LABEL) or "none")
    untolerated = [_taint_text(taint) for taint in (node.get("spec") or {}).get("taints") or []
                   if taint.get("effect") in BLOCKING_TAINT_EFFECTS and not any(tolerates(t, taint) for t in tolerations)]
    return "untolerated taint(s) %s" % ", ".join(untolerated) if untolerated else None


def read_nodes(kube):
    """{name: Node}, or None when the nodes cannot be listed (then the placeholder's nodes are not checked)."""
    try:
        return dict((node["metadata"]["name"], node) for node in kube.list(k.NODE)[0])
    except ForbiddenError:
        return None


def placeholder_nodes(agent_nodes, nodes, node_os, tolerations, volumes):
    """The nodes a placeholder for ``volumes`` (keys) may use: of ``agent_nodes`` (all ``nodes`` when not known),
    those Velero's restore pod can run on; a node without a Node object read is kept (cannot tell). Refuses when no
    node is left: the DataDownload would sit Accepted and fail after Velero's prepare timeout."""
    candidates = agent_nodes or sorted(nodes or {})
    if not nodes or not candidates:
        return agent_nodes
    refused = dict((name, unusable_reason(nodes[name], node_os, tolerations)) for name in candidates if name in nodes)
    usable = [name for name in candidates if not refused.get(name)]
    if usable:
        return usable
    raise PreflightError(
        "No node can take the placeholder pod of %s: Velero pins its restore pod to the node the placeholder picks "
        "(nodeSelector %s=<node name>), and that pod cannot run on %s. It tolerates only the node-agent DaemonSet's "
        "tolerations of the keys %s%s: remove the taint from a node-agent node, or, for a taint of one of those keys, "
        "give the node-agent DaemonSet the toleration. Refused before any change: a placeholder there would leave the "
        "DataDownload Accepted until the node-agent's prepare timeout (30 minutes by default) fails it."
        % (", ".join(volumes), HOSTNAME_LABEL, "; ".join("%s (%s)" % item for item in sorted(refused.items())),
           " and ".join(RESTORE_POD_TOLERATION_KEYS), " (and os=windows)" if node_os == NODE_OS_WINDOWS else ""))


def needs_placeholder(kube, claim, mode, classes=None):
    """Whether the claim's StorageClass binds on first consumer (``mode`` auto/always/never). ``classes``: a dict
    that keeps the StorageClasses read in this run (each one read once, however many claims use it)."""
    if mode != "auto":
        return mode == "always"
    class_name = (claim.get("spec") or {}).get("storageClassName")
    if not class_name:
        return False
    classes = {} if classes is None else classes
    try:
        if class_name not in classes:
            classes[class_name] = kube.get(k.STORAGE_CLASS, class_name)
        sc = classes[class_name]
    except ForbiddenError:
        return True  # cannot tell: a consumer is harmless for Immediate classes
    if sc is None:
        raise PreflightError(
            "StorageClass %s of PVC %s/%s does not exist; a DataDownload needs a dynamically provisioning class "
            "(velero-contract.md §7.8)." % (class_name, claim["metadata"]["namespace"], claim["metadata"]["name"]))
    return sc.get("volumeBindingMode") == "WaitForFirstConsumer"


def claim_selector(claim):
    return (((claim.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}).get(va.LABEL_DYNAMIC_PV_RESTORE)


def check_existing_claim(claim, dd, resumed=False):
    """An existing target PVC is adopted when unbound with a dynamic-pv-restore selector (or already restored).
    ``resumed``: ``dd`` is as an earlier run last saw it (option resume), maybe phases ago; the wait that follows
    brings its phase, and a failure to rebind is reported there."""
    meta = claim["metadata"]
    name = "%s/%s" % (meta["namespace"], meta["name"])
    bound_to = (claim.get("spec") or {}).get("volumeName")
    if bound_to:
        if dd is not None and (resumed or va.phase_of(dd) in (va.PHASE_COMPLETED, va.PHASE_IN_PROGRESS,
                                                              va.PHASE_PREPARED, va.PHASE_ACCEPTED)):
            return  # rebound by the node-agent (or in the middle of it)
        raise PreflightError(
            "PVC %s is already bound to PV %s; a DataDownload needs an UNBOUND target PVC (Velero fails it with "
            "\"has already been bound, abort\", velero-contract.md §3.5, §7.8). Choose another new_pvc name or "
            "delete that PVC." % (name, bound_to), pvc=name)
    if not claim_selector(claim):
        raise PreflightError(
            "PVC %s exists, unbound, without a %s selector: a provisioner may bind it before Velero hands over the "
            "restored PV, and selectors cannot be added later (immutable). Delete it and let this module create it "
            "(velero-contract.md §3, §7.8)." % (name, va.LABEL_DYNAMIC_PV_RESTORE), pvc=name)


def _records(params):
    return [r for r in params.get("volumes") or [] if r.get("restore_via") == "data_download"]


def run(kube, params, check_mode=False):
    """What module data_download does; returns its result dict."""
    velero_ns, session_name = params["velero_namespace"], params["session"]
    sessions.check_name(session_name)
    if params["state"] == "absent":
        return cancel(kube, velero_ns, session_name, _records(params), params, check_mode)
    records = _records(params)
    if not records:
        raise PreflightError("No volume records with restore_via data_download in volumes.")
    for rec in records:
        check_record(rec)
    problems = va.data_path_setting_problems(params.get("data_mover_config"), "data_mover_config")
    if problems:
        raise PreflightError(" ".join(problems))
    resumed = pvrs.resume_state(params.get("resume"), session_name, kind=k.DATA_DOWNLOAD, role=ROLE)
    if params.get("retry_failed"):
        resumed = None  # listed anew: a DataDownload may have failed since the run that handed the resume on
    sess = sessions.load(kube, velero_ns, session_name)
    if sess is None and not check_mode:
        sessions.require(kube, velero_ns, session_name)
    existing, items, list_version = {}, [], None
    if sess is not None:
        # A later wait slice starts from where the one before it stopped (resume) instead of listing again.
        items, list_version = resumed or kube.list(k.DATA_DOWNLOAD, namespace=velero_ns,
                                                   label_selector=names.session_selector(session_name, ROLE))
        existing = dict((o["metadata"]["name"], o) for o in items)
    # The target claims, a GET each for a few or one LIST per namespace; the placeholder pods, one LIST per namespace
    # when one is needed; each StorageClass once.
    for rec in records:  # before any change
        claims.refuse_new_claim_mid_swap(sess, rec["target_namespace"], rec.get("target_pvc"), rec["new_pvc"]["name"])
        dd = existing.get(dd_name(session_name, rec["target_namespace"], rec["new_pvc"]["name"]))
        if dd is not None and not dd["metadata"].get("deletionTimestamp"):
            pvrs.refuse_other_snapshot(dd, rec, pvrs.volume_key(rec), session_name)
    claims_now = _claims_of(kube, records)
    _refuse_before_any_change(session_name, records, existing, claims_now, params, resumed is not None)
    classes, created, recreated = {}, [], False
    placeholders = _new_placeholders(kube, session_name, records, existing, claims_now, params, classes)
    scheduling = _placeholder_scheduling(kube, velero_ns, placeholders, params.get("tolerations")) \
        if placeholders else {}
    settings = None
    changed, diffs, expected, volumes_info = False, [], {}, {}
    actions = []
    for rec in records:
        key, ns, pvc = pvrs.volume_key(rec), rec["target_namespace"], rec["new_pvc"]["name"]
        name = dd_name(session_name, ns, pvc)
        expected[name] = key
        dd = existing.get(name)
        claim = claims_now.get((ns, pvc))
        selector = selector_value(session_name, ns, pvc)
        # A failed one is created again with retry_failed (without it, a resumed slice waits and reports it with the
        # others); one being deleted, unless it completed, once it is gone.
        if _create_again(dd, params):
            if not check_mode:
                pvrs.cancel_objects(kube, velero_ns, session_name, [dd], timeout=params["wait_timeout"],
                                    kind=k.DATA_DOWNLOAD, role=ROLE, pod_label=va.LABEL_DATA_DOWNLOAD_POD)
            dd, recreated = None, True
        if claim is None:
            body = claims.new_claim_body(rec, session_name, selector=selector)
            changed = True
            diffs.append(body)
            actions.append((key, "create claim"))
            if not check_mode:
                _record(kube, velero_ns, session_name, key, {"restore_via": "data_download", "new_pvc": pvc,
                                                             "selector": selector, "data_download": name})
                claim = k.create_or_take(kube, k.PVC, body, ns, label=names.LABEL_SESSION)
        else:
            check_existing_claim(claim, dd, resumed is not None)
            selector = claim_selector(claim) or selector
        volumes_info[name] = {"pvc": pvc, "namespace": ns, "selector": selector,
                              "volume_mode": (claim or {}).get("spec", {}).get("volumeMode")
                              or rec["new_pvc"].get("volume_mode") or rec.get("volume_mode") or "Filesystem"}
        if dd is None:
            if sess is None:
                changed = True
                actions.append((key, "create datadownload"))
                continue
            body = build_dd(rec, sess, velero_ns, params.get("data_mover_config"))
            changed = True
            diffs.append(body)
            actions.append((key, "create datadownload"))
            if not check_mode:
                _record(kube, velero_ns, session_name, key, {"data_download": name, "phase": va.PHASE_NEW})
                dd = k.create_or_take(kube, k.DATA_DOWNLOAD, body, velero_ns, label=names.LABEL_SESSION)
                created.append(dd)
        if va.phase_of(dd or {}) in va.DATA_PATH_FINAL_PHASES:
            continue
        if (ns, pvc) in placeholders:
            if settings is None:
                settings = helper_pod.resolve_settings(kube, velero_ns, image=params.get("image"))
            inherited = helper_pod.origin_node_affinities(kube, ns, {pvc: rec["target_pvc"]}) if rec.get(
                "target_pvc") else {}
            usable_nodes, tolerations = scheduling[rec.get("node_os") or ""]
            body = placeholder_body(session_name, ns, pvc, volumes_info[name]["volume_mode"], settings,
                                    params.get("node_selector"), tolerations, node_affinity=inherited.get(pvc),
                                    node_os=rec.get("node_os") or "", node_agent_nodes=usable_nodes)
            changed = True
            diffs.append(body)
            actions.append((key, "create placeholder pod"))
            if not check_mode:
                k.create_or_take(kube, k.POD, body, ns, label=names.LABEL_SESSION)
    result = dict(changed=changed, diff=dict(before={}, after={"objects": diffs}),
                  actions=[{"key": key, "action": action} for key, action in actions])
    if check_mode:
        planned = [dict(pvrs.summarize(existing.get(n) or {"metadata": {"name": n}}, expected[n]),
                        **volumes_info.get(n, {})) for n in sorted(expected)]
        # done as the real run would say it: nothing to create, every DataDownload final, its claim Bound.
        done = bool(planned) and not changed and all(
            v.get("phase") in va.DATA_PATH_FINAL_PHASES and (v.get("phase") != "Completed" or (
                (claims_now.get((v["namespace"], v["pvc"])) or {}).get("status") or {}).get("phase") == "Bound")
            for v in planned)
        if not changed and params["wait"] and planned and all(v.get("phase") == "Completed" for v in planned):
            # the real run deletes the placeholder pods of completed DataDownloads
            changed = bool(_placeholders(kube, session_name, [volumes_info[n] for n in sorted(expected)]))
        result.update(done=done, volumes=planned, changed=changed)
        return result
    if not params["wait"]:
        # A wait started later continues from here (resume): from the LIST above and the creates, or, when something
        # was deleted and created again, from a LIST made now.
        if recreated or list_version is None:
            now_items, now_version = kube.list(k.DATA_DOWNLOAD, namespace=velero_ns,
                                               label_selector=names.session_selector(session_name, ROLE))
        else:
            now_items, now_version = items + created, list_version
        by_name = dict((o["metadata"]["name"], o) for o in now_items)
        volumes = [dict(pvrs.summarize(by_name.get(n) or {"metadata": {"name": n}}, expected[n]),
                        **volumes_info.get(n, {})) for n in sorted(expected)]
        result.update(done=False, volumes=volumes, progress=pvrs.progress_line(volumes),
                      resume=pvrs.resume_value(now_items, now_version))
        return result
    # Only a wait that starts before anything was recreated can start from the LIST above.
    initial = None if recreated or list_version is None else (items + created, list_version)
    return _wait(kube, velero_ns, session_name, expected, volumes_info, params, result, initial=initial)


def _create_again(dd, params):
    """Whether the run deletes ``dd`` (waits for it to go) and creates it anew: a failed one with retry_failed, and one
    deleted (a cancel, state=absent wait=false) but not gone yet - unless it completed, then it restored its claim
    already and is reused."""
    if dd is None:
        return False
    if dd["metadata"].get("deletionTimestamp") and va.phase_of(dd) != va.PHASE_COMPLETED:
        return True
    return va.phase_of(dd) in pvrs.FAILED_PHASES and bool(params.get("retry_failed"))


def _refuse_before_any_change(session_name, records, existing, claims_now, params, resumed):
    """Every refusal of the run, before its first change: DataDownloads that failed (without retry_failed, when this
    run starts: a resumed slice waits for the others and reports them together), a DataDownload to create again whose
    claim got bound, an existing target claim that cannot be used."""
    failed = []
    for rec in records:
        key, ns, pvc = pvrs.volume_key(rec), rec["target_namespace"], rec["new_pvc"]["name"]
        name = dd_name(session_name, ns, pvc)
        dd, claim = existing.get(name), claims_now.get((ns, pvc))
        if _create_again(dd, params):
            if claim is not None and (claim.get("spec") or {}).get("volumeName"):
                raise PreflightError("Cannot create DataDownload %s again: its target PVC %s/%s is bound to %s now. "
                                     "Check what that volume holds, then delete the PVC yourself (data_download "
                                     "state=absent keeps a bound claim, it may hold data) and re-run."
                                     % (name, ns, pvc, claim["spec"]["volumeName"]))
            continue
        if va.phase_of(dd or {}) in pvrs.FAILED_PHASES and not resumed:
            failed.append(pvrs.summarize(dd, key))
            continue
        if claim is not None:
            check_existing_claim(claim, dd, resumed)
    if failed:
        raise DataRestoreError("%s. Fix the cause, then re-run with retry_failed=true to create them again."
                               % pvrs.failure_message("DataDownload", failed), volumes=failed, changed=False)


def _new_placeholders(kube, session_name, records, existing, claims_now, params, classes):
    """{(namespace, new claim): record} of the volumes that get a placeholder pod in this run: DataDownload not final
    (or created again), claim (or the one to create) unbound and of a WaitForFirstConsumer class (option
    placeholder), no placeholder pod yet. Decided before any change, so that its nodes are checked first."""
    wanted, pods = {}, {}
    for rec in records:
        ns, pvc = rec["target_namespace"], rec["new_pvc"]["name"]
        dd = existing.get(dd_name(session_name, ns, pvc))
        if va.phase_of(dd or {}) in va.DATA_PATH_FINAL_PHASES and not _create_again(dd, params):
            continue
        claim = claims_now.get((ns, pvc)) or claims.new_claim_body(rec, session_name)
        if (claim.get("spec") or {}).get("volumeName") or \
                not needs_placeholder(kube, claim, params.get("placeholder") or "auto", classes):
            continue
        if ns not in pods:
            pods[ns] = set(p["metadata"]["name"] for p in kube.list(
                k.POD, namespace=ns, label_selector=names.session_selector(session_name, CONSUMER_ROLE))[0])
        if consumer_name(session_name, ns, pvc) not in pods[ns]:
            wanted[(ns, pvc)] = rec
    return wanted


def _placeholder_scheduling(kube, velero_ns, placeholders, user_tolerations):
    """{node OS: (the nodes its placeholders may use, their tolerations)}: one LIST of node-agent pods, one of nodes.
    A placeholder tolerates what Velero's restore pod does, and what the user gives only when the nodes were
    checked: otherwise those tolerations could take it to a node the restore pod cannot use."""
    agent_pods, nodes = node_agent_pods(kube, velero_ns), read_nodes(kube)
    volumes_by_os = {}
    for rec in placeholders.values():
        volumes_by_os.setdefault(rec.get("node_os") or "", []).append(pvrs.volume_key(rec))
    scheduling = {}
    for node_os, volumes in volumes_by_os.items():
        restore = restore_pod_tolerations(agent_pods, node_os)
        agent_nodes = None if agent_pods is None else helper_pod.running_node_agent_nodes(agent_pods)
        usable = placeholder_nodes(agent_nodes, nodes, node_os, restore, sorted(volumes))
        mine = list(user_tolerations or []) if nodes is not None else []
        scheduling[node_os] = (usable, mine + [t for t in restore if t not in mine])
    return scheduling


def _claims_of(kube, records):
    """{(namespace, name): the target PVC or None} of the records."""
    by_namespace = {}
    for rec in records:
        by_namespace.setdefault(rec["target_namespace"], []).append(rec["new_pvc"]["name"])
    found = {}
    for ns, claim_names in by_namespace.items():
        for name, claim in k.get_many(kube, k.PVC, claim_names, ns).items():
            found[(ns, name)] = claim
    return found


def _record(kube, velero_ns, session_name, key, fields):
    sessions.set_volume(kube, velero_ns, session_name, key, fields)


def _stuck_hint(entry):
    if entry["phase"] == va.PHASE_IN_PROGRESS and entry["total_bytes"] and entry["bytes_done"] >= entry["total_bytes"]:
        # RebindVolume deletes the restored PV on failure only when it had switched its reclaim policy to Retain
        # (generic_restore.go, retained != nil).
        return ("all data was written but the node-agent's rebind step did not finish: Velero leaves a DataDownload "
                "InProgress forever when RebindVolume fails; the restored PV is deleted if its StorageClass's "
                "reclaimPolicy is Delete, and kept, bound to no claim, if it is Retain (velero-contract.md §3.8, "
                "§7.10)")
    if entry["phase"] == va.PHASE_ACCEPTED:
        return "accepted but not prepared: the restore pod/PVC in the Velero namespace did not come up"
    if entry["phase"] == va.PHASE_NEW:
        return ("not accepted by any node-agent: check that the target PVC exists unbound, datamover is \"\"/velero "
                "and, for WaitForFirstConsumer classes, that the PVC got volume.kubernetes.io/selected-node")
    return None


def _wait(kube, velero_ns, session_name, expected, volumes_info, params, result, initial=None):
    """DataDownloads final, then the target PVCs Bound to the restored PVs; one overall deadline. ``initial``: the
    LIST of the session's DataDownloads this run made (see wait_for)."""
    import time

    deadline = time.monotonic() + params["wait_timeout"]
    try:
        final, version = pvrs.wait_final(kube, velero_ns, session_name, expected, params["wait_timeout"],
                                         kind=k.DATA_DOWNLOAD, role=ROLE, fail_fast=params.get("fail_fast"),
                                         initial=initial, with_version=True)
    except WaitTimeout as exc:
        objects = dict((o["metadata"]["name"], o) for o in exc.objects)
        volumes = [dict(pvrs.summarize(objects.get(n) or {"metadata": {"name": n}}, expected[n]), **volumes_info[n])
                   for n in sorted(expected)]
        result["resume"] = pvrs.resume_value(exc.objects, exc.version)
        return _timed_out(volumes, exc.pending, velero_ns, params, result)
    volumes = [dict(pvrs.summarize(final[n], expected[n]), **volumes_info[n]) for n in sorted(expected)]
    failed = [v for v in volumes if v["phase"] in pvrs.FAILED_PHASES]
    pvrs.record_final(kube, velero_ns, session_name, volumes)
    if failed:
        raise DataRestoreError(
            "%s. The node-agent's message says why; its logs (kubectl -n %s logs ds/node-agent) have details. Re-run "
            "with retry_failed=true after fixing the cause." % (pvrs.failure_message("DataDownload", failed), velero_ns),
            volumes=volumes, changed=result["changed"])
    # Completed: the node-agent rebound the target PVC; wait until it is Bound.
    for ns in sorted(set(v["namespace"] for v in volumes)):
        predicate = _bound_predicate(ns, dict((v["pvc"], v) for v in volumes if v["namespace"] == ns))
        remaining = max(1, int(deadline - time.monotonic()))
        try:
            # No label selector: an adopted claim (made by the caller) does not carry our labels.
            wait_for(kube, k.PVC, predicate, namespace=ns, timeout=remaining, what="restored PVCs to be Bound")
        except WaitTimeout as exc:
            hint = ("DataDownloads completed but PVC(s) %s are not Bound to the restored PV yet after %ss. Check the "
                    "PV's claimRef and the node-agent logs (kubectl -n %s logs ds/node-agent)."
                    % (", ".join(exc.pending), params["wait_timeout"], velero_ns))
            if params.get("fail_on_timeout", True):
                raise WaitTimeout(hint, pending=exc.pending, volumes=volumes)
            # Like a DataDownload still running: the caller waits another slice, which starts from these final
            # DataDownloads (resume) and only waits for the PVCs.
            progress = "%s; PVC(s) not Bound yet: %s" % (pvrs.progress_line(volumes), ", ".join(exc.pending))
            result.update(done=False, volumes=volumes, pending=list(exc.pending), hints=[hint], progress=progress,
                          resume=pvrs.resume_value(list(final.values()), version))
            return result
    removed = _delete_placeholders(kube, session_name, volumes)
    result.update(done=True, volumes=volumes, progress=pvrs.progress_line(volumes), placeholders_deleted=removed,
                  changed=bool(result.get("changed") or removed))
    return result


def _bound_predicate(ns, wanted):
    """Every wanted PVC ({name: volume entry}) Bound to a PV; fills pv/pvc_phase into the entries."""
    def predicate(objects):
        by_name = dict((o["metadata"]["name"], o) for o in objects)
        pending = []
        for pvc, vol in sorted(wanted.items()):
            claim = by_name.get(pvc) or {}
            vol["pv"] = (claim.get("spec") or {}).get("volumeName")
            vol["pvc_phase"] = (claim.get("status") or {}).get("phase")
            if not (vol["pv"] and vol["pvc_phase"] == "Bound"):
                pending.append("%s/%s (%s)" % (ns, pvc, vol["pvc_phase"] or "missing"))
        return WaitState(not pending, pending=pending)
    return predicate


def _timed_out(volumes, pending, velero_ns, params, result):
    hints = ["%s: %s" % (v["key"], _stuck_hint(v)) for v in volumes if _stuck_hint(v)]
    if params.get("fail_on_timeout", True):
        raise WaitTimeout(
            "Timed out after %ss waiting for DataDownloads; still pending: %s. %sLook at the node-agent logs on the "
            "DataDownload's node (kubectl -n %s logs ds/node-agent, or the pod on status.node / acceptedByNode)."
            % (params["wait_timeout"], ", ".join(pending), ("; ".join(hints) + ". ") if hints else "", velero_ns),
            pending=pending, volumes=volumes)
    result.update(done=False, volumes=volumes, pending=pending, hints=hints, progress=pvrs.progress_line(volumes))
    return result


def _placeholders(kube, session_name, volumes):
    """(namespace, pod name) of the session's placeholder pods for ``volumes`` (entries with namespace and pvc)."""
    found = []
    for ns in sorted(set(v["namespace"] for v in volumes)):
        wanted = set(consumer_name(session_name, ns, v["pvc"]) for v in volumes if v["namespace"] == ns)
        items = kube.list(k.POD, namespace=ns, label_selector=names.session_selector(session_name, CONSUMER_ROLE))[0]
        found.extend((ns, pod["metadata"]["name"]) for pod in items if pod["metadata"]["name"] in wanted)
    return found


def _delete_placeholders(kube, session_name, volumes):
    removed = []
    for ns, name in _placeholders(kube, session_name, volumes):
        kube.delete(k.POD, name, ns)
        removed.append("%s/%s" % (ns, name))
    return removed


def cancel(kube, velero_ns, session_name, records, params, check_mode):
    """Cancel + delete the DataDownloads, delete placeholders, and delete our target PVCs while still unbound."""
    result = pvrs.cancel(kube, velero_ns, session_name, records=None, wait=params["wait"],
                         timeout=params["wait_timeout"], check_mode=check_mode, kind=k.DATA_DOWNLOAD, role=ROLE) \
        if not records else _cancel_some(kube, velero_ns, session_name, records, params, check_mode)
    namespaces = sorted(set(r["target_namespace"] for r in records)) if records else [params.get("namespace")]
    wanted = set((r["target_namespace"], r["new_pvc"]["name"]) for r in records if r.get("new_pvc")) if records else None
    pods_deleted, claims_deleted, claims_kept = [], [], []
    for ns in namespaces:
        pods = kube.list(k.POD, namespace=ns, label_selector=names.session_selector(session_name, CONSUMER_ROLE))[0]
        for pod in pods:
            pods_deleted.append("%s/%s" % (pod["metadata"]["namespace"], pod["metadata"]["name"]))
            if not check_mode:
                kube.delete(k.POD, pod["metadata"]["name"], pod["metadata"]["namespace"])
        claims = kube.list(k.PVC, namespace=ns, label_selector=names.session_selector(session_name, CLAIM_ROLE))[0]
        for claim in claims:
            ident = (claim["metadata"]["namespace"], claim["metadata"]["name"])
            if wanted is not None and ident not in wanted:
                continue
            if ident[0] == velero_ns or any(o.get("kind") == k.DATA_DOWNLOAD.kind
                                            for o in claim["metadata"].get("ownerReferences") or []):
                # Velero's own restore claim copies the target claim's labels (exposer createRestorePVC): not ours.
                continue
            if (claim.get("spec") or {}).get("volumeName"):
                claims_kept.append("%s/%s" % ident)
                continue
            claims_deleted.append("%s/%s" % ident)
            if not check_mode:
                kube.delete(k.PVC, ident[1], ident[0])
    result.update(changed=result["changed"] or bool(pods_deleted or claims_deleted), placeholders_deleted=pods_deleted,
                  claims_deleted=claims_deleted, claims_kept=claims_kept)
    return result


def _cancel_some(kube, velero_ns, session_name, records, params, check_mode):
    return pvrs.cancel(kube, velero_ns, session_name,
                       records=[dict(r, new_pvc=None, target_pvc=r["new_pvc"]["name"]) for r in records if r.get("new_pvc")],
                       wait=params["wait"], timeout=params["wait_timeout"], check_mode=check_mode,
                       kind=k.DATA_DOWNLOAD, role=ROLE)
