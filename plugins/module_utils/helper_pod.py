# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore helper pod: mounts target PVCs and carries Velero's ``restore-wait`` init container.

Velero's node-agent only restores into a pod that is scheduled on its node and runs an init
container named exactly ``restore-wait`` (velero-contract.md §2 "Acceptance", §7.3). Velero
injects that container in ``pkg/restore/actions/pod_volume_restore_action.go`` ``Execute``; this
file builds the same container from the same inputs (plugin ConfigMap, ``velero`` Deployment
image) so a data-only restore behaves like Velero's own.

The helper pod holds the volumes mounted while the PVRs run: the node-agent's hosting pod reads
the volume through ``<kubelet>/pods/<helper uid>/volumes/...`` (contract §2 "Expose"), so the
helper pod must stay non-terminal until every PVR is final. Hence ``restartPolicy: Always``: a
``Never`` pod whose container exits (or is OOM-killed, or whose restore-wait exits) turns
terminal, the kubelet unmounts its volumes and a running restore would write into a torn-down
path. With ``Always`` the kubelet restarts a dead container instead, the pod stays Running and
its volumes stay mounted until we delete it.

No ownerReference on the helper pod: the session ConfigMap lives in the Velero namespace and a
cross-namespace owner is treated as absent by the garbage collector, which would delete the pod.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json

from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils import names
from ansible_collections.velero.data_restore.plugins.module_utils import pods
from ansible_collections.velero.data_restore.plugins.module_utils.errors import (
    DataRestoreError,
    ForbiddenError,
    PreflightError,
    WaitTimeout,
)
from ansible_collections.velero.data_restore.plugins.module_utils.waiting import WaitState, wait_for

# --- Velero's constants (pkg/restore/actions/pod_volume_restore_action.go, pkg/restorehelper) ---
WAIT_CONTAINER = "restore-wait"
WAIT_CONTAINER_LEGACY = "restic-wait"
DEFAULT_COMMAND = "/velero-restore-helper"
DEFAULT_CPU = "100m"
DEFAULT_MEM = "128Mi"
RESTORE_HELPER_UID = 1000
RESTORES_DIR = "/restores/"
# common.PluginConfigLabelSelector(PluginKindRestoreItemAction, "velero.io/pod-volume-restore")
PLUGIN_CONFIG_SELECTOR = "velero.io/plugin-config,velero.io/pod-volume-restore=RestoreItemAction"
VELERO_DEPLOYMENT = "velero"
# /velero-helper pause (cmd/velero-helper): sleeps forever; the image's USER is cnb:cnb.
PAUSE_COMMAND = ["/velero-helper", "pause"]
MAIN_CONTAINER = "pause"

# --- ours ---
ROLE = "helper"
LABEL_GROUP = names.PREFIX + "group"
ANNOTATION_VOLUMES = names.PREFIX + "volumes"
ANNOTATION_SPEC_HASH = names.PREFIX + "spec-hash"
HOSTNAME_KEY = "kubernetes.io/hostname"
SECCTX_FIELDS = ("allowPrivilegeEscalation", "appArmorProfile", "capabilities", "privileged", "procMount",
                 "readOnlyRootFilesystem", "runAsGroup", "runAsNonRoot", "runAsUser", "seLinuxOptions",
                 "seccompProfile", "windowsOptions")
# Waiting reasons of restore-wait that never heal by themselves.
FATAL_WAITING = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
                 "CreateContainerError", "RunContainerError")


# ----------------------------------------------------------------------------- Velero's inputs

def plugin_config(kube, velero_namespace):
    """Velero's GetPluginConfig: the one ConfigMap labelled for the pod-volume-restore action."""
    items = kube.list(k.CONFIG_MAP, namespace=velero_namespace, label_selector=PLUGIN_CONFIG_SELECTOR)[0]
    if len(items) > 1:
        found = sorted(i["metadata"]["name"] for i in items)
        raise PreflightError(
            "Found more than one ConfigMap in namespace %s matching label selector %r: %s. Velero refuses "
            "this too (GetPluginConfig); keep one of them." % (velero_namespace, PLUGIN_CONFIG_SELECTOR,
                                                               ", ".join(found)), config_maps=found)
    return items[0] if items else None


def velero_server_image(kube, velero_namespace):
    """GetVeleroServerImage: container[0] image of Deployment ``velero``."""
    dep = kube.get(k.DEPLOYMENT, VELERO_DEPLOYMENT, velero_namespace)
    if dep is None:
        raise PreflightError(
            "Deployment %s/%s not found: Velero's server image is the default image of the restore-wait "
            "container. Check velero_namespace (openshift-adp on OADP) or pass the option image."
            % (velero_namespace, VELERO_DEPLOYMENT))
    containers = ((dep.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
    if not containers or not containers[0].get("image"):
        raise PreflightError("Deployment %s/%s has no container image; pass the option image."
                             % (velero_namespace, VELERO_DEPLOYMENT))
    return containers[0]["image"]


def image_tag(image):
    """The tag of an image reference, or None when it has none (a digest-only or untagged reference)."""
    ref = image.split("@", 1)[0]
    last = ref.split("/")[-1]
    return last.split(":", 1)[1] if ":" in last else None


def resolve_image(config, server_image):
    """Velero's getImage: ConfigMap ``image`` else the server image.

    No registry part ("/"-less) → ignored; no tag in the last path part → the Velero version tag
    (here: the server image's tag, which is the running version) is appended. Velero appends its build version
    (v1.18.1 internal/velero/images.go ImageTag), which a server image pinned by digest does not show: that is
    refused rather than guessed. Returns (image, note).
    """
    image = ((config or {}).get("data") or {}).get("image") or ""
    if not image:
        return server_image, None
    parts = image.split("/")
    if len(parts) == 1:
        return server_image, ("plugin ConfigMap image %r has no registry part; Velero ignores it and uses %s"
                              % (image, server_image))
    if ":" not in parts[-1]:
        if not image_tag(server_image):
            raise PreflightError(
                "plugin ConfigMap image %r has no tag, and Velero appends its own version to it (for example "
                "v1.18.1), which the server image %s does not show (it has no tag). Pass the option image "
                "with the restore-helper image to use, or give the ConfigMap image a tag." % (image, server_image))
        tagged = "%s:%s" % (image, image_tag(server_image))
        return tagged, "plugin ConfigMap image %r has no tag; Velero appends its version tag: %s" % (image, tagged)
    return image, None


def resolve_command(config):
    """getCommand: ConfigMap ``command`` (one element) else /velero-restore-helper."""
    command = ((config or {}).get("data") or {}).get("command") or ""
    return [command or DEFAULT_COMMAND]


def resolve_resources(config):
    """ParseCPUAndMemoryResources with Velero's defaults (100m/128Mi requests = limits).

    "0" means unbounded (left out); an unparsable value or request > limit → Velero logs and uses
    the defaults. Returns (resources, note).
    """
    data = (config or {}).get("data") or {}
    values = dict(cpuRequest=data.get("cpuRequest") or DEFAULT_CPU, memRequest=data.get("memRequest") or DEFAULT_MEM,
                  cpuLimit=data.get("cpuLimit") or DEFAULT_CPU, memLimit=data.get("memLimit") or DEFAULT_MEM)
    parsed = dict((key, k.parse_quantity(value)) for key, value in values.items())
    problem = None
    bad = [key for key, value in parsed.items() if value is None]
    if bad:
        problem = "cannot parse %s" % ", ".join("%s=%r" % (key, values[key]) for key in sorted(bad))
    else:
        for res, req, lim in (("CPU", "cpuRequest", "cpuLimit"), ("memory", "memRequest", "memLimit")):
            if parsed[lim] != 0 and parsed[req] > parsed[lim]:
                problem = "%s request %r is greater than limit %r" % (res, values[req], values[lim])
    if problem:
        values = dict(cpuRequest=DEFAULT_CPU, memRequest=DEFAULT_MEM, cpuLimit=DEFAULT_CPU, memLimit=DEFAULT_MEM)
        parsed = dict((key, k.parse_quantity(value)) for key, value in values.items())
    resources = {"requests": {}, "limits": {}}
    for key, section, res in (("cpuRequest", "requests", "cpu"), ("memRequest", "requests", "memory"),
                              ("cpuLimit", "limits", "cpu"), ("memLimit", "limits", "memory")):
        if parsed[key] != 0:
            resources[section][res] = values[key]
    note = ("plugin ConfigMap resources ignored (%s); Velero uses its defaults %s/%s" % (problem, DEFAULT_CPU, DEFAULT_MEM)
            if problem else None)
    return resources, note


def default_security_context():
    """defaultSecurityCtx: restricted per Pod Security Standards."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
        "runAsUser": RESTORE_HELPER_UID,
        "runAsNonRoot": True,
    }


def _parse_bool(value):
    """Go strconv.ParseBool."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(value)


def resolve_security_context(config):
    """ParseSecurityContext from secCtxRunAsUser/-RunAsGroup/-AllowPrivilegeEscalation and secCtx (YAML).

    Without any of these keys (or when they do not parse) Velero copies the first app container's
    securityContext, which for a helper pod is ours, i.e. the restricted default. Returns (ctx, note).
    """
    data = (config or {}).get("data") or {}
    user, group = data.get("secCtxRunAsUser") or "", data.get("secCtxRunAsGroup") or ""
    escalation, yaml_text = data.get("secCtxAllowPrivilegeEscalation") or "", data.get("secCtx") or ""
    if not (user or group or escalation or yaml_text):
        return default_security_context(), None
    ctx = {}
    try:
        if user:
            try:
                ctx["runAsUser"] = int(user)
            except ValueError:
                raise ValueError('Security context runAsUser "%s" is not a number' % user)
        if group:
            try:
                ctx["runAsGroup"] = int(group)
            except ValueError:
                raise ValueError('Security context runAsGroup "%s" is not a number' % group)
        if escalation:
            try:
                ctx["allowPrivilegeEscalation"] = _parse_bool(escalation)
            except ValueError:
                raise ValueError('Security context allowPrivilegeEscalation "%s" is not a boolean' % escalation)
        if yaml_text:
            ctx.update(_parse_secctx_yaml(yaml_text))
    except ValueError as exc:
        return default_security_context(), ("plugin ConfigMap securityContext ignored (%s); Velero uses "
                                            "its restricted default" % exc)
    return ctx, None


def _parse_secctx_yaml(text):
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError('Security context secCtx error: "%s"' % exc)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError('Security context secCtx error: "not a mapping"')
    unknown = sorted(set(value) - set(SECCTX_FIELDS))
    if unknown:  # yaml.UnmarshalStrict
        raise ValueError('Security context secCtx error: "unknown field(s) %s"' % ", ".join(unknown))
    for key in ("runAsUser", "runAsGroup"):
        if key in value and not isinstance(value[key], int):
            raise ValueError('Security context secCtx error: "%s must be an integer"' % key)
    return value


class HelperSettings(object):
    """Everything resolved once from the cluster for all helper pods of a run."""

    def __init__(self, image, command, resources, security_context, notes, pause_image=None):
        self.image = image
        # /velero-helper is in Velero's server image; a ConfigMap image may be a restore-helper-only one.
        self.pause_image = pause_image or image
        self.command = command
        self.resources = resources
        self.security_context = security_context
        self.notes = [n for n in notes if n]


def resolve_settings(kube, velero_namespace, image=None):
    """Image, command, resources and securityContext as Velero resolves them; ``image`` overrides."""
    config = plugin_config(kube, velero_namespace)
    notes = []
    if image:
        resolved = pause_image = image
    else:
        pause_image = velero_server_image(kube, velero_namespace)
        resolved, note = resolve_image(config, pause_image)
        notes.append(note)
    resources, note = resolve_resources(config)
    notes.append(note)
    ctx, note = resolve_security_context(config)
    notes.append(note)
    return HelperSettings(resolved, resolve_command(config), resources, ctx, notes, pause_image=pause_image)


# ----------------------------------------------------------------------------- spec

def pod_volume_name(pvc):
    """Stable DNS-1123 pod volume name for a PVC (PVC names may be longer or contain dots)."""
    if names.is_dns1123_label(pvc):
        return pvc
    return names.stable_name(pvc, names.short_hash(pvc))


def restore_wait_container(settings, session_uid, volume_names):
    """The init container exactly as Velero's PodVolumeRestoreAction builds it."""
    return {
        "name": WAIT_CONTAINER,
        "image": settings.image,
        "command": list(settings.command),
        "args": [session_uid],
        "env": [
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "volumeMounts": [{"name": name, "mountPath": RESTORES_DIR + name} for name in volume_names],
        "resources": copy.deepcopy(settings.resources),
        "securityContext": copy.deepcopy(settings.security_context),
    }


def pause_container(settings):
    """Holds the pod Running (and the volumes mounted) after restore-wait; mounts nothing itself.

    It runs with restore-wait's securityContext: the Velero image's USER is the non-numeric
    ``cnb``, so runAsNonRoot needs a numeric runAsUser (Velero's default 1000) and whatever the
    plugin ConfigMap sets for restore-wait on OpenShift (SCC ranges) applies here as well.
    """
    return {
        "name": MAIN_CONTAINER,
        "image": settings.pause_image,
        "command": list(PAUSE_COMMAND),
        "resources": copy.deepcopy(settings.resources),
        "securityContext": copy.deepcopy(settings.security_context),
    }


def helper_pod_name(session, group):
    return names.stable_name("restore", session, group)


def build_pod(session, session_uid, namespace, group, pvcs, settings, node_selector=None, affinity=None,
              tolerations=None, node_name=None, labels=None):
    """The helper pod body for ``pvcs`` (list of PVC names) in ``namespace``."""
    volumes = dict((pvc, pod_volume_name(pvc)) for pvc in pvcs)
    ordered = sorted(pvcs)
    spec = {
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 5,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "initContainers": [restore_wait_container(settings, session_uid, [volumes[p] for p in ordered])],
        "containers": [pause_container(settings)],
        "volumes": [{"name": volumes[p], "persistentVolumeClaim": {"claimName": p}} for p in ordered],
    }
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if affinity:
        spec["affinity"] = copy.deepcopy(affinity)
    if tolerations:
        spec["tolerations"] = copy.deepcopy(tolerations)
    if node_name:
        spec["nodeName"] = node_name
    pod_labels = dict(labels or {})
    pod_labels.update(names.session_labels(session, ROLE))
    pod_labels[LABEL_GROUP] = names.stable_name(group)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": helper_pod_name(session, group),
            "namespace": namespace,
            "labels": pod_labels,
            "annotations": {ANNOTATION_VOLUMES: json.dumps(volumes, sort_keys=True),
                            ANNOTATION_SPEC_HASH: spec_hash(spec)},
        },
        "spec": spec,
    }


def spec_hash(spec):
    return names.short_hash(json.dumps(spec, sort_keys=True), length=16)


# ----------------------------------------------------------------------------- grouping

def pv_node_constraint(pv):
    """The PV's required node affinity (canonical JSON), "" when it can run anywhere."""
    required = (((pv or {}).get("spec") or {}).get("nodeAffinity") or {}).get("required")
    if not required:
        return ""
    return json.dumps(required, sort_keys=True)


def pv_hostnames(pv):
    """kubernetes.io/hostname values a PV is pinned to ([] when not pinned by hostname)."""
    required = (((pv or {}).get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}
    hosts = []
    for term in required.get("nodeSelectorTerms") or []:
        for expr in term.get("matchExpressions") or []:
            if expr.get("key") == HOSTNAME_KEY and expr.get("operator") == "In":
                hosts.extend(expr.get("values") or [])
    return sorted(set(hosts))


def _group_id(constraint, hosts, pinned):
    if pinned:
        return "node-%s" % pinned
    if not constraint:
        return "shared"
    if len(hosts) == 1:
        return "node-%s" % hosts[0]
    return "g%s" % names.short_hash(constraint)


def plan_groups(kube, session, namespace, pvcs, pin_to_consumer_node=False, warnings=None, origins=None):
    """Group PVCs that can be mounted by one pod: same PV node constraint (and consumer node).

    Returns a sorted list of dicts {id, pvcs, pin_node, tolerations}. Fails for missing PVCs
    and Block-mode PVCs (a PodVolumeRestore restores Filesystem volumes only, contract §2). ``warnings`` (a list)
    gets a line for each claim a running pod still mounts (only looked for with ``pin_to_consumer_node``).
    ``origins`` ({new claim: original claim}, replace mode): a new claim not bound yet is grouped by the topology of
    its original's PV, which the group's pod then requires (``node_affinity``; origin_node_affinities).
    """
    claims = {}
    missing = []
    for pvc, obj in k.get_many(kube, k.PVC, pvcs, namespace).items():
        if obj is None:
            missing.append(pvc)
        else:
            claims[pvc] = obj
    if missing:
        raise PreflightError(
            "PersistentVolumeClaim(s) %s not found in namespace %s: the helper pod would stay Pending. "
            "Create them first (replace mode creates the new PVCs) or fix the names."
            % (", ".join(sorted(missing)), namespace), missing_pvcs=sorted(missing))
    block = sorted(p for p, c in claims.items() if (c.get("spec") or {}).get("volumeMode") == "Block")
    if block:
        raise PreflightError(
            "PersistentVolumeClaim(s) %s in namespace %s are Block mode; a PodVolumeRestore only restores "
            "Filesystem volumes (velero-contract.md §2). Restore them with velero.data_restore.data_download."
            % (", ".join(block), namespace), block_pvcs=block)
    existing_pods = []
    if pin_to_consumer_node:
        existing_pods = kube.list(k.POD, namespace=namespace)[0]
    groups = {}
    volumes = k.get_many(kube, k.PV, [(c.get("spec") or {}).get("volumeName") for c in claims.values()])
    unbound_origins = dict((new, old) for new, old in (origins or {}).items()
                           if new in claims and not (claims[new].get("spec") or {}).get("volumeName"))
    inherited = origin_node_affinities(kube, namespace, unbound_origins)
    for pvc in sorted(claims):
        claim = claims[pvc]
        volume_name = (claim.get("spec") or {}).get("volumeName")
        pv = volumes.get(volume_name) if volume_name else None
        if pv is None and pvc in inherited:
            pv = {"spec": {"nodeAffinity": {"required": inherited[pvc]}}}  # the original volume's topology
        constraint, hosts = pv_node_constraint(pv), pv_hostnames(pv)
        pinned, tolerations = None, []
        if pin_to_consumer_node:
            users = pods.pods_using(existing_pods, [pvc], exclude_session=session)
            pinned, tolerations = _consumer_node(claim, users)
            if users and warnings is not None:
                # Kopia overwrites files in place (contract §2): an application still running sees, and may change,
                # a volume half old and half restored.
                warnings.append("PVC %s/%s is still mounted by running pod(s) %s: the backup's data is written under "
                                "a live application. Stop it first (quiesce=scale) for a consistent restore."
                                % (namespace, pvc, ", ".join(p["metadata"]["name"] for p in users)))
        gid = _group_id(constraint, hosts, pinned)
        group = groups.setdefault(gid, {"id": gid, "pvcs": [], "pin_node": pinned, "tolerations": [],
                                        "constraint": constraint, "node_affinity": None, "drivers": {}})
        if pvc in inherited and not volume_name:
            group["node_affinity"] = inherited[pvc]
        group["pvcs"].append(pvc)
        group["drivers"][pvc] = csi_driver(pv) if volume_name else None
        for tol in tolerations:
            if tol not in group["tolerations"]:
                group["tolerations"].append(tol)
    _unbound_drivers(kube, claims, groups)
    return [groups[g] for g in sorted(groups)]


def csi_driver(pv):
    """The CSI driver of a PV ("" for a volume no CSI driver serves)."""
    return (((pv or {}).get("spec") or {}).get("csi") or {}).get("driver") or ""


def _unbound_drivers(kube, claims, groups):
    """A claim not bound yet (replace mode) gets the driver of its StorageClass's provisioner: a GET per class."""
    from ansible_collections.velero.data_restore.plugins.module_utils.claims import claim_class

    unbound = [(group, pvc) for group in groups.values() for pvc, driver in group["drivers"].items() if driver is None]
    provisioners = {}
    for group, pvc in unbound:
        name = claim_class(claims[pvc]) or ""
        if name and name not in provisioners:
            provisioners[name] = (kube.get(k.STORAGE_CLASS, name) or {}).get("provisioner") or ""
        group["drivers"][pvc] = provisioners.get(name, "")


def attach_limits(kube, drivers, warnings):
    """{CSI driver: the smallest volume attach limit of any node that runs it} from the CSINode objects, the limit
    kube-scheduler's NodeVolumeLimits plugin enforces. A driver without a count on any node has no limit (the
    scheduler's reading too). Without the right to list CSINodes: {} and a warning."""
    try:
        nodes = kube.list(k.CSI_NODE)[0]
    except ForbiddenError:
        warnings.append(
            "Could not list CSINodes (RBAC: list csinodes.storage.k8s.io, optional object "
            "velero-data-restore-attach-limits of docs/rbac.yml), so the helper pods are not split to the nodes' CSI "
            "volume attach limits; a pod that mounts more volumes than a node can attach stays Pending. Grant it, or "
            "set max_volumes_per_pod.")
        return {}
    limits = {}
    for node in nodes:
        for driver in (node.get("spec") or {}).get("drivers") or []:
            count = (driver.get("allocatable") or {}).get("count")
            if driver.get("name") in drivers and isinstance(count, int) and count > 0:
                limits[driver["name"]] = min(limits.get(driver["name"], count), count)
    return limits


def chunk_id(group_id, number):
    """The id of chunk ``number`` (from 1) of a group split_groups splits; _existing_split reads the split back."""
    return "%s-%d" % (group_id, number)


def split_groups(kube, groups, max_volumes=0, warnings=None, pinned=None):
    """Split each group into pods of at most ``max_volumes`` claims, or when 0, of at most the CSI attach limit of its
    volumes' drivers (attach_limits; read only when a group has more than one CSI volume). A helper pod that mounts
    more volumes than any node can attach would stay Pending forever ("exceed max volume count"). Chunks keep the
    sorted claim order, so a re-run splits the same way; a group that fits keeps its id, chunks are <id>-1, <id>-2.
    ``pinned`` ({group id: claims per pod, 0 for not split}): the split of the session's existing helper pods, kept
    whatever the limits say now (pinned_splits)."""
    pinned = pinned or {}
    limits = {}
    if not max_volumes:
        drivers = set(d for g in groups if len(g["pvcs"]) > 1 and g["id"] not in pinned
                      for d in g["drivers"].values() if d)
        limits = attach_limits(kube, drivers, warnings if warnings is not None else []) if drivers else {}
    result = []
    for group in groups:
        if group["id"] in pinned:
            cap = pinned[group["id"]]
        else:
            cap = max_volumes or min([limits[d] for d in set(group["drivers"].values()) if d in limits] or [0])
        pvcs = sorted(group["pvcs"])
        if not cap or len(pvcs) <= cap:
            result.append(group)
            continue
        for number, start in enumerate(range(0, len(pvcs), cap)):
            chunk = dict(group, id=chunk_id(group["id"], number + 1), pvcs=pvcs[start:start + cap],
                         drivers=dict((p, group["drivers"][p]) for p in pvcs[start:start + cap]))
            result.append(chunk)
    return result


def pinned_splits(session, groups, existing, max_volumes=0, warnings=None):
    """{group id: claims per pod} of the groups whose helper pods exist already (an earlier run of the session):
    0 when the group's pod is not split, else the claims per pod of its chunks. A re-run keeps that split even
    when the attach limit or max_volumes changed, because the pods may be serving their restores."""
    pinned = {}
    for group in groups:
        cap = _existing_split(session, group, existing)
        if cap is None:
            continue
        pinned[group["id"]] = cap
        claims = len(group["pvcs"])
        asked = max_volumes if max_volumes and claims > max_volumes else 0
        if max_volumes and cap != asked and warnings is not None:
            warnings.append("The helper pods of session %s for claims %s exist already with %s; the split is kept "
                            "(max_volumes_per_pod=%d applies to new sessions)."
                            % (session, ", ".join(sorted(group["pvcs"])),
                               "all of them in one pod" if not cap else "%d claims per pod" % cap, max_volumes))
    return pinned


def _existing_split(session, group, existing):
    """The split of ``group`` that ``existing`` helper pods show: 0 for one pod, else the claims per pod; None
    when none exists. Any chunk tells it (split_groups cuts the sorted claims into chunks <id>-1, <id>-2 ... of
    equal size): the first by its size, chunk n by where its first claim sits."""
    if existing.get(helper_pod_name(session, group["id"])) is not None:
        return 0
    claims = sorted(group["pvcs"])
    for number in range(1, len(claims) + 1):
        chunk = existing.get(helper_pod_name(session, chunk_id(group["id"], number)))
        mounted = sorted(c for c in pods.claim_names(chunk) if c in claims) if chunk is not None else []
        if not mounted:
            continue
        if number == 1:
            return len(mounted)
        cap, rest = divmod(claims.index(mounted[0]), number - 1)
        if cap and not rest:
            return cap
    return None


def refuse_rwop_in_use(claim, users):
    """A ReadWriteOncePod claim that a running pod mounts: no helper pod can mount it (preflight and here)."""
    if users and "ReadWriteOncePod" in ((claim.get("spec") or {}).get("accessModes") or []):
        raise PreflightError(
            "PersistentVolumeClaim %s/%s is ReadWriteOncePod and still mounted by pod(s) %s: no second pod can "
            "mount it. Quiesce the workload first (quiesce=scale, role quiesce / velero.data_restore.workload_scale)."
            % (claim["metadata"]["namespace"], claim["metadata"]["name"],
               ", ".join(p["metadata"]["name"] for p in users)))


def _consumer_node(claim, users):
    """(node, tolerations) to pin a ReadWriteOnce claim to its consumer; (None, []) otherwise."""
    modes = (claim.get("spec") or {}).get("accessModes") or []
    name = "%s/%s" % (claim["metadata"]["namespace"], claim["metadata"]["name"])
    if not users:
        return None, []
    refuse_rwop_in_use(claim, users)
    if "ReadWriteOnce" not in modes:
        return None, []
    nodes = sorted(set((p.get("spec") or {}).get("nodeName") for p in users if (p.get("spec") or {}).get("nodeName")))
    if len(nodes) > 1:
        raise PreflightError("PersistentVolumeClaim %s is ReadWriteOnce but mounted on several nodes (%s); "
                             "cannot pick one to pin the helper pod to." % (name, ", ".join(nodes)))
    if not nodes:
        return None, []
    tolerations = []
    for pod in users:
        for tol in (pod.get("spec") or {}).get("tolerations") or []:
            if tol not in tolerations:
                tolerations.append(tol)
    return nodes[0], tolerations


def require_node_affinity(affinity, required):
    """``affinity`` with the node selector ``required`` (a PV's spec.nodeAffinity.required) ANDed into its required
    node affinity: selector terms are ORed and a term's expressions ANDed, so the result is every pair of terms."""
    result = copy.deepcopy(affinity) if affinity else {}
    node_aff = result.setdefault("nodeAffinity", {})
    current = (node_aff.get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or [{}]
    terms = []
    for mine in current:
        for theirs in required.get("nodeSelectorTerms") or [{}]:
            term = {}
            for field in ("matchExpressions", "matchFields"):
                merged = list(mine.get(field) or []) + list(theirs.get(field) or [])
                if merged:
                    term[field] = copy.deepcopy(merged)
            terms.append(term)
    node_aff["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": terms}
    return result


def origin_node_affinities(kube, namespace, origins):
    """{new claim: the required node affinity of the PV under its original claim} for the new claims of a replace
    (``origins``: {new claim: original claim}). A new claim of a WaitForFirstConsumer class is provisioned where
    its first consumer runs; the helper or placeholder pod carries the original volume's topology, so the restored
    volume lands in the same zone (or on the same node) and the workload can still schedule after the swap."""
    if not origins:
        return {}
    originals = k.get_many(kube, k.PVC, sorted(set(origins.values())), namespace)
    volume_names = dict((name, (claim.get("spec") or {}).get("volumeName")) for name, claim in originals.items()
                        if claim is not None)
    pvs = k.get_many(kube, k.PV, sorted(set(v for v in volume_names.values() if v)))
    result = {}
    for new_claim, original in origins.items():
        pv = pvs.get(volume_names.get(original) or "")
        required = (((pv or {}).get("spec") or {}).get("nodeAffinity") or {}).get("required")
        if required:
            result[new_claim] = required
    return result


def pin_affinity(affinity, node):
    """Add a required matchFields metadata.name=<node> to every node selector term (AND)."""
    result = copy.deepcopy(affinity) if affinity else {}
    node_aff = result.setdefault("nodeAffinity", {})
    required = node_aff.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    terms = required.get("nodeSelectorTerms") or [{}]
    field = {"key": "metadata.name", "operator": "In", "values": [node]}
    for term in terms:
        term.setdefault("matchFields", []).append(field)
    required["nodeSelectorTerms"] = terms
    return result


# ----------------------------------------------------------------------------- state

def find_pods(kube, session, namespace=None):
    """The session's helper pods (all namespaces when namespace is None)."""
    return list_pods(kube, session, namespace)[0]


def list_pods(kube, session, namespace=None):
    """(the session's helper pods, the resourceVersion of that LIST): a wait on them can start from it."""
    return kube.list(k.POD, namespace=namespace, label_selector=names.session_selector(session, ROLE))


def describe_pod(pod):
    """The entry modules return (and pod_volume_restore consumes)."""
    meta = pod["metadata"]
    try:
        volumes = json.loads((meta.get("annotations") or {}).get(ANNOTATION_VOLUMES) or "{}")
    except ValueError:
        volumes = {}
    return {
        "name": meta["name"],
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "node": (pod.get("spec") or {}).get("nodeName"),
        "group": (meta.get("labels") or {}).get(LABEL_GROUP),
        "phase": (pod.get("status") or {}).get("phase"),
        "restore_wait": restore_wait_state(pod),
        "volumes": volumes,
    }


def restore_wait_status(pod):
    for status in (pod.get("status") or {}).get("initContainerStatuses") or []:
        if status.get("name") == WAIT_CONTAINER:
            return status
    return None


def restore_wait_state(pod):
    """"running", "completed", "waiting:<reason>", "terminated:<code>" or "pending"."""
    status = restore_wait_status(pod)
    if status is None:
        return "pending"
    state = status.get("state") or {}
    if state.get("running") is not None:
        return "running"
    if state.get("terminated") is not None:
        code = state["terminated"].get("exitCode")
        return "completed" if code == 0 else "terminated:%s" % code
    if state.get("waiting") is not None:
        return "waiting:%s" % (state["waiting"].get("reason") or "")
    return "pending"


# Velero's own test for a node-agent on a node (pkg/nodeagent/node_agent.go isRunningInNode): a pod labelled
# role=node-agent (the Linux and the Windows DaemonSets both) that is Running and not being deleted.
NODE_AGENT_SELECTOR = "role=node-agent"


def _running_node_agent_nodes(kube, velero_namespace, node=None):
    return running_node_agent_nodes(kube.list(k.POD, namespace=velero_namespace, label_selector=NODE_AGENT_SELECTOR,
                                              field_selector="spec.nodeName=%s" % node if node else None)[0])


def running_node_agent_nodes(agent_pods):
    """The nodes (sorted) of the node-agent pods that count: Running and not being deleted."""
    return sorted(set(pod["spec"]["nodeName"] for pod in agent_pods
                      if (pod.get("spec") or {}).get("nodeName") and not pod["metadata"].get("deletionTimestamp")
                      and (pod.get("status") or {}).get("phase") == "Running"))


def node_agent_ready(kube, velero_namespace, node):
    """Whether a node-agent runs on ``node`` as Velero counts them (the only one that can serve its PVRs)."""
    return node in _running_node_agent_nodes(kube, velero_namespace, node)


def _scheduling_message(pod):
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return cond.get("message") or cond.get("reason")
    return None


def ensure(kube, velero_namespace, session_name, session_uid, namespace, pvcs, settings, node_selector=None,
           affinity=None, tolerations=None, node_name=None, pin_to_consumer_node=False, labels=None,
           check_mode=False, warnings=None, origins=None, max_volumes=0):
    """Create the helper pods (one per group, split_groups); returns (entries, changed, diffs, listed).

    ``session_uid`` is None in check mode when the session does not exist yet. ``listed`` is (the session's helper
    pods in the namespace, created ones included, the resourceVersion of the LIST that found them): wait_running
    starts from it instead of listing them again.
    """
    session_uid = session_uid or "<session uid>"
    groups = plan_groups(kube, session_name, namespace, pvcs, pin_to_consumer_node=pin_to_consumer_node,
                         warnings=warnings, origins=origins)
    if node_name and len(groups) > 1:
        raise PreflightError(
            "node_name %s pins every helper pod to one node, but the PVCs %s need %d different node "
            "constraints (their PVs' node affinity). Restore them in separate runs or drop node_name."
            % (node_name, ", ".join(sorted(pvcs)), len(groups)))
    items, version = list_pods(kube, session_name, namespace)
    existing = dict((p["metadata"]["name"], p) for p in items)
    groups = split_groups(kube, groups, max_volumes=max_volumes, warnings=warnings,
                          pinned=pinned_splits(session_name, groups, existing, max_volumes, warnings))
    entries, changed, diffs, to_create = [], False, [], []
    for group in groups:
        group_affinity = pin_affinity(affinity, group["pin_node"]) if group["pin_node"] else affinity
        if group.get("node_affinity"):
            group_affinity = require_node_affinity(group_affinity, group["node_affinity"])
        group_tolerations = list(tolerations or []) + [t for t in group["tolerations"] if t not in (tolerations or [])]
        body = build_pod(session_name, session_uid, namespace, group["id"], group["pvcs"], settings,
                         node_selector=node_selector, affinity=group_affinity, tolerations=group_tolerations,
                         node_name=node_name, labels=labels)
        current = existing.get(body["metadata"]["name"])
        if current is not None:
            check_reusable(current, body)
            entries.append(describe_pod(current))
            continue
        changed = True
        diffs.append({"before": {}, "after": body})
        if check_mode:
            entry = describe_pod(body)
            entry["uid"] = None
            entries.append(entry)
            continue
        entries.append(None)
        to_create.append((len(entries) - 1, body))
    if to_create:
        # A pod of that name made meanwhile (another run of the session): reused when it is ours, else say whose.
        made = kube.create_many(k.POD, [body for _index, body in to_create], namespace, same=_reusable)
        for (index, _body), pod in zip(to_create, made):
            entries[index] = describe_pod(pod)
        items = items + list(made)
    return entries, changed, diffs, (items, version)


def _reusable(current, body):
    check_reusable(current, body)
    return True


def check_reusable(current, body):
    """An existing helper pod is reused only when it is what we would create now."""
    meta = current["metadata"]
    name = "%s/%s" % (meta.get("namespace"), meta["name"])
    if (meta.get("labels") or {}).get(names.LABEL_SESSION) != body["metadata"]["labels"][names.LABEL_SESSION]:
        raise PreflightError("Pod %s exists but does not belong to session %s; delete or rename it."
                             % (name, body["metadata"]["labels"][names.LABEL_SESSION]))
    old = (meta.get("annotations") or {}).get(ANNOTATION_SPEC_HASH)
    new = body["metadata"]["annotations"][ANNOTATION_SPEC_HASH]
    if old != new:
        raise PreflightError(
            "Helper pod %s already exists with a different spec (other PVCs, image, node pinning or session "
            "UID than asked now). It is not replaced while it may be serving a restore: run "
            "velero.data_restore.restore_helper_pod with state=absent first, then re-run." % name,
            pod=name, volumes=(meta.get("annotations") or {}).get(ANNOTATION_VOLUMES))
    if meta.get("deletionTimestamp"):
        raise DataRestoreError("Helper pod %s is being deleted; wait until it is gone and re-run." % name)
    phase = (current.get("status") or {}).get("phase")
    if phase in pods.TERMINAL_PHASES:
        raise DataRestoreError(
            "Helper pod %s is %s (%s); it no longer holds the volumes. Delete it with state=absent and "
            "re-run." % (name, phase, (current.get("status") or {}).get("reason") or "no reason given"))


def wait_running(kube, velero_namespace, namespace, session, pod_names, timeout, check_node_agent=True,
                 on_progress=None, initial=None):
    """Watch the session's helper pods in ``namespace`` until each restore-wait runs (or completed).

    Once a pod is scheduled, the node-agent on its node must be Ready, else fail at once rather
    than wait for Velero's 30-minute prepare timeout. Returns the final pods. ``initial``: see wait_for.
    """
    checked = {}
    wanted = set(pod_names)

    def predicate(objects):
        by_name = dict((o["metadata"]["name"], o) for o in objects)
        pending = []
        for name in sorted(wanted):
            pod = by_name.get(name)
            if pod is None:
                pending.append("%s (gone)" % name)
                continue
            node = (pod.get("spec") or {}).get("nodeName")
            if node and check_node_agent and node not in checked:
                checked[node] = node_agent_ready(kube, velero_namespace, node)
            if node and check_node_agent and not checked[node]:
                raise DataRestoreError(
                    "Helper pod %s/%s is scheduled on node %s, but no Running Velero node-agent pod (label %s in "
                    "namespace %s) runs there, so no PodVolumeRestore could ever be served (Velero would fail "
                    "after its 30-minute prepare timeout). Make the node-agent DaemonSet run on that node "
                    "(tolerations/nodeSelector), or steer the helper pod with node_selector/affinity/tolerations."
                    % (namespace, name, node, NODE_AGENT_SELECTOR, velero_namespace), pod=name, node=node)
            state = restore_wait_state(pod)
            if state in ("running", "completed"):
                continue
            if (pod.get("status") or {}).get("phase") in pods.TERMINAL_PHASES:
                raise DataRestoreError("Helper pod %s/%s is %s: %s" % (
                    namespace, name, pod["status"]["phase"], pod["status"].get("message") or "no message"), pod=name)
            reason = state.split(":", 1)[1] if state.startswith("waiting:") else ""
            if reason in FATAL_WAITING:
                status = restore_wait_status(pod) or {}
                raise DataRestoreError(
                    "restore-wait of helper pod %s/%s cannot start: %s %s (image %s). For air-gapped "
                    "registries pass the option image (or set image in Velero's plugin ConfigMap)."
                    % (namespace, name, reason, ((status.get("state") or {}).get("waiting") or {}).get("message") or "",
                       status.get("image") or "?"), pod=name)
            why = _scheduling_message(pod) if not node else state
            if why and "max volume count" in why:
                # The CSINode count is the node's total: volumes other pods attached there count too.
                why += ("; the node cannot attach this pod's %d volumes next to those attached already: re-run "
                        "with a smaller max_volumes_per_pod after state=absent" % len(pods.claim_names(pod)))
            pending.append("%s (%s)" % (name, why or "pending"))
        return WaitState(not pending, pending=pending, progress=tuple(pending))

    try:
        return wait_for(kube, k.POD, predicate, namespace=namespace,
                        label_selector=names.session_selector(session, ROLE), timeout=timeout,
                        on_progress=on_progress, what="restore-wait to run in helper pods", initial=initial)
    except WaitTimeout as exc:
        raise WaitTimeout(
            "%s. A pod that stays unscheduled or ContainerCreating usually means a ReadWriteOnce volume is still "
            "attached to another node (quiesce the workload; with quiesce=none the playbooks pin the helper pods to the "
            "node that uses the volume, option pin_to_consumer_node of restore_helper_pod) or the node lacks "
            "resources." % exc.msg, pending=exc.pending)


def delete_all(kube, session, namespace=None, timeout=120, wait=True, check_mode=False):
    """Delete the session's helper pods and wait until they are gone. Returns deleted names."""
    pods, version = list_pods(kube, session, namespace)
    deleted = ["%s/%s" % (p["metadata"]["namespace"], p["metadata"]["name"]) for p in pods]
    if check_mode or not pods:
        return deleted
    for pod in pods:
        kube.delete(k.POD, pod["metadata"]["name"], pod["metadata"]["namespace"])
    if wait:
        for ns in sorted(set(p["metadata"]["namespace"] for p in pods)):
            # One namespace: the watch starts from the LIST above and sees the deletions (no second LIST).
            initial = (pods, version) if namespace else None
            wait_for(kube, k.POD, lambda objs: WaitState(not objs, pending=[o["metadata"]["name"] for o in objs]),
                     namespace=ns, label_selector=names.session_selector(session, ROLE), timeout=timeout,
                     what="helper pods of session %s to be deleted" % session, initial=initial)
    return deleted


def pvcs_of_records(records):
    """{namespace: [pvc]} of plan volume records restored through a PodVolumeRestore."""
    result = {}
    for rec in records or []:
        if (rec.get("restore_via") or "pod_volume_restore") != "pod_volume_restore":
            continue
        ns, pvc = receiving_claim(rec)
        if pvc not in result.setdefault(ns, []):
            result[ns].append(pvc)
    return result


def receiving_claim(rec):
    """(namespace, pvc) that receives the data: new_pvc.name in replace mode, else target_pvc."""
    ns = rec.get("target_namespace")
    new_pvc = rec.get("new_pvc") or {}
    pvc = new_pvc.get("name") or rec.get("target_pvc")
    if not ns or not pvc:
        raise PreflightError("Volume record %r lacks target_namespace/target_pvc (or new_pvc.name)."
                             % (rec.get("key") or rec))
    return ns, pvc


def run(kube, params, check_mode=False):
    """What module restore_helper_pod does; returns its result dict."""
    from ansible_collections.velero.data_restore.plugins.module_utils import session as sessions

    velero_ns, session_name = params["velero_namespace"], params["session"]
    sessions.check_name(session_name)
    if params["state"] == "absent":
        namespaces = [params["namespace"]] if params.get("namespace") else [None]
        deleted = []
        for ns in namespaces:
            deleted.extend(delete_all(kube, session_name, ns, timeout=params["wait_timeout"],
                                      wait=params["wait"], check_mode=check_mode))
        return dict(changed=bool(deleted), pods=[], deleted=deleted,
                    diff=dict(before={"pods": deleted}, after={"pods": []}))
    wanted = {}
    if params.get("pvcs"):
        if not params.get("namespace"):
            raise PreflightError("Option namespace is required with pvcs (the namespace of the PVCs).")
        wanted[params["namespace"]] = list(params["pvcs"])
    origins = {}
    for rec in params.get("volumes") or []:
        new_name = (rec.get("new_pvc") or {}).get("name")
        if new_name and rec.get("target_pvc") and rec.get("target_namespace"):
            origins.setdefault(rec["target_namespace"], {})[new_name] = rec["target_pvc"]
    for ns, pvcs in pvcs_of_records(params.get("volumes")).items():
        if params.get("namespace") and ns != params["namespace"]:
            continue
        for pvc in pvcs:
            if pvc not in wanted.setdefault(ns, []):
                wanted[ns].append(pvc)
    if (params.get("max_volumes_per_pod") or 0) < 0:
        raise PreflightError("max_volumes_per_pod must be 0 (split to the nodes' CSI attach limits) or a positive "
                             "number of claims per helper pod, not %s." % params["max_volumes_per_pod"])
    if not wanted:
        raise PreflightError("Nothing to mount: give pvcs (with namespace) or volumes records restored through "
                             "a PodVolumeRestore (restore_via pod_volume_restore).")
    sess = sessions.load(kube, velero_ns, session_name)
    if sess is None and not check_mode:
        sessions.require(kube, velero_ns, session_name)
    settings = resolve_settings(kube, velero_ns, image=params.get("image"))
    entries, changed, diffs, warnings = [], False, [], []
    for ns in sorted(wanted):
        found, ns_changed, ns_diffs, listed = ensure(
            kube, velero_ns, session_name, sess.uid if sess else None, ns, wanted[ns], settings, node_selector=params.get("node_selector"),
            affinity=params.get("affinity"), tolerations=params.get("tolerations"),
            node_name=params.get("node_name"), pin_to_consumer_node=params.get("pin_to_consumer_node"),
            labels=params.get("labels"), check_mode=check_mode, warnings=warnings, origins=origins.get(ns),
            max_volumes=params.get("max_volumes_per_pod") or 0)
        changed = changed or ns_changed
        diffs.extend(ns_diffs)
        if params["wait"] and not check_mode:
            try:
                pods = wait_running(kube, velero_ns, ns, session_name, [e["name"] for e in found],
                                    timeout=params["wait_timeout"],
                                    check_node_agent=params.get("check_node_agent", True), initial=listed)
            except DataRestoreError as exc:
                exc.details["changed"] = changed or bool(exc.details.get("changed"))  # pods were created
                raise
            by_name = dict((p["metadata"]["name"], p) for p in pods)
            found = [describe_pod(by_name[e["name"]]) if e["name"] in by_name else e for e in found]
        entries.extend(found)
    return dict(changed=changed, pods=entries, image=settings.image, notes=settings.notes, warnings=warnings,
                diff=dict(before={}, after={"pods": [d["after"] for d in diffs]}) if diffs else dict(before={}, after={}))
