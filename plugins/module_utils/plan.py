# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The validated restore plan: backup volumes x target claims (DESIGN.md §4.1, §5.1).

Every preflight rule of the collection lives here, once, except the rules of stopping workloads, which
workloads.py owns (``workloads.stop_refusals``) and this module calls. ``build`` only reads the cluster
(the one exception: reading a backup's volume info creates and deletes a transient
DownloadRequest, and only when the caller did not pass the volume records). All problems
found are reported together in one PreflightError, each naming the cause and the fix.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.velero.data_restore.plugins.module_utils import backups
from ansible_collections.velero.data_restore.plugins.module_utils import claims
from ansible_collections.velero.data_restore.plugins.module_utils import helper_pod
from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils import names
from ansible_collections.velero.data_restore.plugins.module_utils import pods
from ansible_collections.velero.data_restore.plugins.module_utils import session as sessions
from ansible_collections.velero.data_restore.plugins.module_utils import velero_api as v
from ansible_collections.velero.data_restore.plugins.module_utils import workloads
from ansible_collections.velero.data_restore.plugins.module_utils.errors import (
    DataRestoreError,
    ForbiddenError,
    MissingApiError,
    PreflightError,
)

MODES = ("in_place", "replace")
QUIESCE = ("scale", "none")
MI = 1024 * 1024
RESTORE_VIA_PVR = "pod_volume_restore"
RESTORE_VIA_DD = "data_download"
# Session states in which a session no longer holds its claims (a failed one still holds those whose swap is in
# effect: _session_claims).
FINISHED_SESSION_STATES = ("completed", "rolled_back", "failed")

NOTE_IN_PLACE_STALE_FILES = (
    "In-place restore: Kopia overwrites the files of the backup but never deletes files that were "
    "created after the backup, so they stay in the volume. Use mode=replace for an exact copy of the "
    "backup.")
NOTE_VELERO_MARKER = (
    "A PodVolumeRestore leaves Velero's .velero directory (its done file) in the root of the volume it restored when "
    "restore-wait runs as a non-root user, Velero's default too: the node-agent creates it as root and restore-wait "
    "cannot remove it (velero-restore-helper removeFolder). Delete it if the application minds.")
NOTE_REPLACE_RETAIN = (
    "Replace: the original volumes are set to Retain and kept for rollback until cleanup is asked for.")
NOTE_REPLACE_TEMPLATE_KEEPS_CLAIMS = (
    "Replace with swap_mode=template: the original claims stay as they are, bound to their volumes (reclaim policy "
    "unchanged), for rollback; cleanup.yml does not delete them. Delete an original claim yourself once you no "
    "longer need it (with reclaim policy Delete, that deletes its volume).")

_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def quantity_bytes(quantity):
    """Bytes of a Kubernetes quantity ("10Gi", "500M", "1e9"), rounded up; None if unset/invalid."""
    if quantity in (None, ""):
        return None
    if isinstance(quantity, int):
        return quantity
    value = k.parse_quantity(quantity)
    if value is None:
        return None
    whole = int(value)
    return whole + 1 if value > whole else whole


def mi_ceil(size):
    return -(-int(size) // MI)


class Problems(object):
    """Collects preflight problems so the user sees all of them at once."""

    def __init__(self):
        self.items = []

    def add(self, msg):
        if msg not in self.items:
            self.items.append(msg)

    def raise_if_any(self, context):
        if not self.items:
            return
        if len(self.items) == 1:
            msg = "Preflight failed (%s): %s" % (context, self.items[0])
        else:
            msg = "Preflight failed (%s) with %d problems: %s" % (
                context, len(self.items), " ".join("(%d) %s" % (i + 1, p) for i, p in enumerate(self.items)))
        raise PreflightError(msg, problems=list(self.items))


# -- options -------------------------------------------------------------------------------------
def _is_str(value):
    return isinstance(value, str) and bool(value.strip())


def _is_claim_name(value):
    return _is_str(value) and len(value) <= 253 and bool(_DNS1123_SUBDOMAIN.match(value))


def _check_mapping(p, option, mapping, shape, is_name, names_are):
    """Add to ``p`` why the dict option ``mapping`` (None: not given) is malformed; True when it is a usable dict."""
    if mapping is None:
        return False
    if not isinstance(mapping, dict) or not mapping:
        p.add("%s must be a non-empty dict %s (got %r)." % (option, shape, mapping))
        return False
    for src, dst in mapping.items():
        if not (is_name(src) and is_name(dst)):
            p.add("%s entry %r: %r is invalid: both must be %s." % (option, src, dst, names_are))
    return True


def validate_options(backup, mode, source_namespace, target_namespace, namespace_mapping, volumes,
                     volume_selector, storage_class_map, allow_partially_failed, session, claim_mapping=None):
    """Malformed options; raises PreflightError before any API call."""
    p = Problems()
    if mode not in MODES:
        p.add("mode=%r is not one of %s." % (mode, ", ".join(MODES)))
    if isinstance(backup, dict):
        if not _is_str(backup.get("name")):
            p.add("backup is a dict without a name: pass the record returned by "
                  "velero.data_restore.backup_info (backups[0]) or a backup name.")
    elif not _is_str(backup):
        p.add("backup must be a backup name or a record returned by velero.data_restore.backup_info "
              "(got %r)." % (backup,))
    for option, value in (("source_namespace", source_namespace), ("target_namespace", target_namespace)):
        if value is not None and not names.is_dns1123_label(value):
            p.add("%s=%r is not a valid namespace name (DNS-1123 label: lowercase letters, digits and "
                  "'-', at most 63 characters)." % (option, value))
    if target_namespace is not None and namespace_mapping is not None:
        p.add("target_namespace and namespace_mapping are mutually exclusive; use one.")
    _check_mapping(p, "namespace_mapping", namespace_mapping, "{source namespace: target namespace}",
                   lambda name: _is_str(name) and names.is_dns1123_label(name), "namespace names (DNS-1123 labels)")
    if _check_mapping(p, "claim_mapping", claim_mapping, "{claim name at backup time: target claim name}",
                      _is_claim_name, "claim names (DNS-1123 subdomains)"):
        by_target = {}
        for src, dst in sorted(claim_mapping.items(), key=lambda kv: str(kv[0])):
            by_target.setdefault(dst, []).append(src)
        for dst, sources in sorted(by_target.items(), key=lambda kv: str(kv[0])):
            if len(sources) > 1:
                p.add("claim_mapping maps %s to the same claim %s: one claim can receive one volume's data."
                      % (" and ".join(str(x) for x in sources), dst))
    if volumes is not None and volume_selector is not None:
        p.add("volumes and volume_selector are mutually exclusive; use one.")
    if volumes is not None:
        if not isinstance(volumes, (list, tuple)) or not volumes:
            p.add("volumes must be a non-empty list of claim names as they were at backup time "
                  "(got %r); leave it unset for every volume." % (volumes,))
        else:
            for item in volumes:
                if not _is_claim_name(item):
                    p.add("volumes entry %r is not a claim name." % (item,))
    if volume_selector is not None and not _is_str(volume_selector):
        p.add("volume_selector must be a non-empty label selector string such as app=shop "
              "(got %r)." % (volume_selector,))
    if storage_class_map is not None and mode == "in_place":
        p.add("storage_class_map applies to mode=replace only (in place keeps the existing claims); "
              "remove it or use mode=replace.")
    _check_mapping(p, "storage_class_map", storage_class_map, "{old class: new class}", _is_str, "class names")
    if not isinstance(allow_partially_failed, bool):
        p.add("allow_partially_failed must be true or false (got %r)." % (allow_partially_failed,))
    if session is not None:
        problem = names.validate_session_name(session) if isinstance(session, str) else "not a string"
        if problem:
            p.add("session: %s." % problem)
    p.raise_if_any("options")


# -- cluster checks ------------------------------------------------------------------------------
def check_phase(backup_obj, allow_partially_failed):
    name = backup_obj["metadata"]["name"]
    phase = v.phase_of(backup_obj) or v.BACKUP_NEW
    if phase == v.BACKUP_COMPLETED:
        return None
    if phase == v.BACKUP_PARTIALLY_FAILED:
        if allow_partially_failed:
            return ("backup %s is PartiallyFailed (allowed by allow_partially_failed): volumes whose "
                    "backup failed are refused one by one." % name)
        raise PreflightError(
            "Backup %s is PartiallyFailed: some items or volumes failed. Check 'velero backup describe %s "
            "--details'; pass allow_partially_failed=true to restore the volumes that did succeed, or "
            "pick another backup." % (name, name), phase=phase)
    if phase in (v.BACKUP_FAILED, v.BACKUP_FAILED_VALIDATION, v.BACKUP_DELETING):
        raise PreflightError(
            "Backup %s is %s: it cannot be restored. Pick another backup (backup_info with "
            "latest=true lists the newest Completed one)." % (name, phase), phase=phase)
    raise PreflightError(
        "Backup %s is still %s: volume snapshot ids are final only once it is Completed. Wait for it to "
        "complete (velero backup describe %s) or pick another backup." % (name, phase, name), phase=phase)


def check_storage_location(kube, velero_ns, backup_obj):
    """The backup's BackupStorageLocation, which must exist and be Available (PreflightError)."""
    name = backup_obj["metadata"]["name"]
    bsl_name = (backup_obj.get("spec") or {}).get("storageLocation")
    if not bsl_name:
        raise PreflightError("Backup %s has no spec.storageLocation; the node-agent needs the "
                             "BackupStorageLocation to read the repository." % name)
    bsl = kube.get(k.BACKUP_STORAGE_LOCATION, bsl_name, velero_ns)
    if bsl is None:
        raise PreflightError(
            "BackupStorageLocation %s/%s of backup %s does not exist: the node-agent reads the data from "
            "it. Create it (velero backup-location create %s ...) pointing at the bucket of the backup."
            % (velero_ns, bsl_name, name, bsl_name), storage_location=bsl_name)
    phase = v.phase_of(bsl)
    if phase != v.BSL_AVAILABLE:
        message = (bsl.get("status") or {}).get("message") or ""
        raise PreflightError(
            "BackupStorageLocation %s/%s is %s, not Available%s: the node-agent could not read the backup "
            "repository. Fix its credentials/bucket/endpoint and wait until 'velero backup-location get' "
            "shows Available." % (velero_ns, bsl_name, phase or "without a phase",
                                  " (%s)" % message if message else ""), storage_location=bsl_name)
    return bsl


def _session_claims(config_map):
    """(session, state, keys of the claims it holds). A finished session holds none, except a failed one whose
    swaps are still in effect (its rescue could not undo them): those claims are its until it is rolled back or
    finished, or another session would take its restored PV for the "old" one."""
    try:
        found = sessions.Session(config_map)
    except DataRestoreError:
        return None, None, set()
    doc = found.doc
    state = doc.get("state")
    if state == "failed":
        return doc.get("session"), state, set(key for key in found.swaps()["started"] if key)
    if state in FINISHED_SESSION_STATES:
        return doc.get("session"), state, set()
    plan = doc.get("plan") or {}
    keys = set(vol.get("key") for vol in plan.get("volumes") or [] if isinstance(vol, dict))
    return doc.get("session"), state, keys


def check_other_sessions(kube, velero_ns, session, keys, problems):
    """No OTHER unfinished session may hold one of the claims (keys)."""
    items = kube.list(k.CONFIG_MAP, namespace=velero_ns,
                      label_selector="%s=%s" % (names.LABEL_MANAGED_BY, names.MANAGED_BY))[0]
    for cm in items:
        other, state, held = _session_claims(cm)
        if other is None or other == session:
            continue
        for key in sorted(held & set(keys)):
            if state == "failed":
                problems.add(
                    "claim %s is swapped by restore session %r, which failed before it could finish or undo the swap "
                    "(ConfigMap %s/%s): roll that session back (playbooks/rollback.yml) or re-run it to finish, "
                    "or leave the claim out." % (key, other, velero_ns, cm["metadata"]["name"]))
                continue
            problems.add(
                "claim %s is already part of restore session %r (state %s, ConfigMap %s/%s): two sessions "
                "must not restore the same claim. Finish or roll back that session (or delete it with "
                "velero.data_restore.restore_session state=absent), or leave the claim out."
                % (key, other, state, velero_ns, cm["metadata"]["name"]))


def _volume_mode(pvc):
    return (pvc.get("spec") or {}).get("volumeMode") or "Filesystem"


def _with_snapshot_modes(kube, records, target_pvcs, warnings):
    """``records`` with the volume mode of each data-mover snapshot filled in where it can be known. Velero records
    none (neither the volume info nor the DataUpload has one), and its data path restores by the target claim's mode
    (v1.18.1 pkg/exposer/generic_restore.go, pkg/uploader/kopia/snapshot.go Restore): a Block snapshot restored into
    a Filesystem claim ends Completed with the raw device image as a file. The source PV, while it exists (same
    cluster, or retained), holds the mode: it is the target claim's own volume, or read by name (one request for a
    few, one LIST for many). ``target_pvcs``: {source claim: target claim or None}."""
    unknown = [r for r in records if r.get("method") == backups.METHOD_DATA_MOVER and not r.get("volume_mode")]
    if not unknown:
        return records
    modes = {}
    for rec in unknown:
        pvc = target_pvcs.get(rec["source_pvc"])
        if pvc and rec.get("source_pv") and (pvc.get("spec") or {}).get("volumeName") == rec["source_pv"]:
            modes[rec["source_pvc"]] = _volume_mode(pvc)
    lookup = [r["source_pv"] for r in unknown if r["source_pvc"] not in modes and r.get("source_pv")]
    volumes = {}
    if lookup:
        try:
            volumes = k.get_many(kube, k.PV, lookup)
        except ForbiddenError:
            pass  # said with the unknown ones below
    for rec in unknown:
        volume = volumes.get(rec.get("source_pv"))
        if rec["source_pvc"] not in modes and volume:
            modes[rec["source_pvc"]] = _volume_mode(volume)
    blind = sorted("%s/%s" % (r["source_namespace"], r["source_pvc"]) for r in unknown if r["source_pvc"] not in modes)
    if blind:
        warnings.append(
            "the volume mode of the data-mover snapshot of %s is not known (Velero does not record it, and the "
            "volume it was taken from is not in this cluster): it is restored in the target claim's mode. A Block "
            "snapshot restored into a Filesystem claim (or the other way round) completes without the data the "
            "application expects; check that the target claims have the volume mode they had at backup time."
            % ", ".join(blind))
    return [dict(r, volume_mode=modes[r["source_pvc"]]) if r["source_pvc"] in modes else r for r in records]


def _capacity(pvc):
    status = (pvc.get("status") or {}).get("capacity") or {}
    request = ((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}
    return quantity_bytes(status.get("storage") or request.get("storage"))


def _human(size):
    if size is None:
        return "unknown"
    for unit, factor in (("Ti", 1024 ** 4), ("Gi", 1024 ** 3), ("Mi", MI), ("Ki", 1024)):
        if size >= factor:
            return "%.1f%s" % (size / float(factor), unit)
    return "%dB" % size


# -- the plan ------------------------------------------------------------------------------------
def build(kube, velero_ns, backup, mode, **options):
    """Validate everything and return the plan dict; PreflightError on any problem, no mutation.

    A refusal carries the warnings met on the way (a volume info that could not be read explains a missing
    volume). Options: see _build.
    """
    warnings = []
    try:
        return _build(kube, velero_ns, backup, mode, warnings=warnings, **options)
    except PreflightError as exc:
        if warnings:
            exc.msg = "%s Warnings on the way: %s" % (exc.msg, " ".join(warnings))
            exc.args = (exc.msg,)
            exc.details.setdefault("warnings", list(warnings))
        raise


def _claims_of_the_same_workloads(kube, namespace, restored, unbacked, backup_name, warnings):
    """Warn about the claims in ``unbacked`` (not in the backup) that the pods of the restored claims' workloads
    mount (a StatefulSet scaled up since the backup, a claim added to the app): they keep their current data while
    the others go back to the backup's. Returns the namespace's pods (None when they cannot be listed)."""
    try:
        listed = kube.list(k.POD, namespace=namespace)[0]
    except ForbiddenError:
        return None

    def controller(pod):
        ref = workloads.controller_ref(pod)
        return ref.get("uid") if ref else ("pod", pod["metadata"]["name"])

    apps = set(controller(p) for p in pods.pods_using(listed, restored))
    mixed = sorted(set(claim for p in listed if controller(p) in apps for claim in pods.claim_names(p)
                       if claim in unbacked))
    if mixed:
        warnings.append("claim(s) %s of namespace %s are not in backup %s, and the workloads of the restored claims "
                        "mount them too: they keep their current data while the others go back to the backup's "
                        "(a StatefulSet scaled up, or a claim added, after the backup). Restore them from a backup "
                        "that holds them, or make sure the app copes." % (", ".join(mixed), namespace, backup_name))
    return listed


def _restorable_of(by_pvc, claim_names, source_namespace, allow_partially_failed, warnings):
    """The records of ``claim_names`` that a restore of all of them takes: a claim Velero skipped, or (with
    allow_partially_failed) one whose backup failed, is left out with a warning. Claims named in ``volumes`` are
    not filtered: asked for by name, an unrestorable one is refused."""
    chosen = []
    for name in claim_names:
        rec = by_pvc[name]
        if rec.get("method") == backups.METHOD_SKIPPED:
            warnings.append("claim %s/%s was skipped by Velero at backup time; left out." % (source_namespace, name))
        elif backups.empty_at_backup(rec):
            warnings.append("claim %s/%s was empty at backup time (no snapshot), and Velero skips such volumes on "
                            "restore; left out, it keeps its current data." % (source_namespace, name))
        elif allow_partially_failed and backups.backup_incomplete(rec):
            # the opt-in restores what did succeed (the refusal of a PartiallyFailed backup says so)
            warnings.append("the backup of claim %s/%s failed (PartiallyFailed backup); left out."
                            % (source_namespace, name))
        else:
            chosen.append(rec)
    return chosen


def _build(kube, velero_ns, backup, mode, source_namespace=None, target_namespace=None,
           namespace_mapping=None, volumes=None, volume_selector=None, storage_class_map=None,
           allow_partially_failed=False, session=None, volume_info_timeout=backups.VOLUME_INFO_TIMEOUT,
           fetch=None, quiesce="scale", swap_mode="rebind", pause_gitops=False, claim_mapping=None, warnings=None):
    """The plan of build(); ``warnings`` (a list) gets the warnings as they are met.

    ``quiesce="scale"``: the workloads mounting the target claims will be stopped by workload_scale (in
    place for the restore, replace for the swap), so its refusals (workloads.stop_refusals) are checked here.
    ``swap_mode`` (replace): how claim_patch will swap; rebind needs bound target claims, checked here.
    ``pause_gitops``: workload_scale will pause the GitOps tools and KEDA; without it, a workload that KEDA would
    start again while it is stopped is refused here (workloads.keda_refusals).
    ``claim_mapping``: ``{claim name at backup time: target claim name}``; other claims keep their names.
    """
    validate_options(backup, mode, source_namespace, target_namespace, namespace_mapping, volumes,
                     volume_selector, storage_class_map, allow_partially_failed, session, claim_mapping)
    if quiesce not in QUIESCE:
        raise PreflightError("Preflight failed (options): quiesce=%r is not one of %s." % (quiesce, ", ".join(QUIESCE)))
    try:
        v.require_velero(kube)
    except MissingApiError as exc:
        raise PreflightError(exc.msg, **exc.details)

    record = backup if isinstance(backup, dict) else None
    backup_name = record["name"] if record else backup.strip()
    backup_obj = backups.get(kube, velero_ns, backup_name)
    notes = []
    partial = check_phase(backup_obj, allow_partially_failed)
    if partial:
        warnings.append(partial)
    expired = backups.expiry_warning(backup_obj)
    if expired:
        warnings.append(expired)
    location = check_storage_location(kube, velero_ns, backup_obj)

    # Source namespace, from the spec first (no DownloadRequest for a backup without it).
    if source_namespace is None and namespace_mapping and len(namespace_mapping) == 1:
        source_namespace = list(namespace_mapping)[0]
    if source_namespace and not backups.includes_namespace(backup_obj, source_namespace):
        spec = backup_obj.get("spec") or {}
        raise PreflightError(
            "Backup %s does not include namespace %s (includedNamespaces: %s; excludedNamespaces: %s). "
            "Pick a backup of that namespace (backup_info namespace=%s) or set source_namespace to the "
            "namespace the data was backed up from." % (
                backup_name, source_namespace, ", ".join(spec.get("includedNamespaces") or []) or "all",
                ", ".join(spec.get("excludedNamespaces") or []) or "none", source_namespace))

    # Volume records: the caller's (same backup UID) or read now.
    summary = backups.summary(backup_obj)
    if record and record.get("volumes") is not None and record.get("uid") in (None, summary["uid"]):
        vol_records = record["volumes"]
        summary["volume_source"] = record.get("volume_source")
    else:
        vol_records, summary["volume_source"], warns = backups.volume_records(
            kube, velero_ns, backup_obj, timeout=volume_info_timeout, fetch=fetch, location=location)
        warnings.extend(warns)
    summary["volumes"] = None

    if summary.get("snapshot_move_data") and summary["volume_source"] == backups.SOURCE_CUSTOM_RESOURCES \
            and not volumes and not any(r.get("method") == backups.METHOD_DATA_MOVER for r in vol_records):
        raise PreflightError(
            "Backup %s moved its CSI snapshots' data (snapshotMoveData: true), but its volume info was not read and "
            "no DataUpload of it is in this cluster (DataUploads are not synced into other clusters): its "
            "data-mover volumes are unknown, and a plan would silently leave them out. Fix the volume-info read and "
            "re-run, or, when every claim of it was file-system backed up, name them in volumes." % backup_name)
    claim_volumes = [r for r in vol_records if r.get("source_pvc")]
    namespaces = sorted(set(r.get("source_namespace") for r in claim_volumes if r.get("source_namespace")))
    if source_namespace is None:
        if len(namespaces) == 1:
            source_namespace = namespaces[0]
        elif not namespaces:
            raise PreflightError(
                "Backup %s has no volume of a PersistentVolumeClaim (%d volume record(s) from %s): there is "
                "nothing to restore data-only. Check that the backup used file-system backup or the data "
                "mover, and pick another backup." % (backup_name, len(vol_records),
                                                     summary["volume_source"] or "no source"))
        else:
            raise PreflightError(
                "Backup %s has volumes in several namespaces (%s): set source_namespace to the one to "
                "restore (one plan per namespace)." % (backup_name, ", ".join(namespaces)))
    ns_volumes = [r for r in claim_volumes if r.get("source_namespace") == source_namespace]
    if not ns_volumes:
        raise PreflightError(
            "Backup %s has no claim volume in namespace %s (namespaces with volumes: %s). Set "
            "source_namespace to the namespace the claims were backed up from, or pick another backup."
            % (backup_name, source_namespace, ", ".join(namespaces) or "none"))

    # Target namespace.
    if namespace_mapping:
        if source_namespace not in namespace_mapping:
            raise PreflightError(
                "namespace_mapping has no entry for source namespace %s (it maps %s). Add %s: <target "
                "namespace>." % (source_namespace, ", ".join(sorted(namespace_mapping)), source_namespace))
        ignored = sorted(set(namespace_mapping) - set([source_namespace]))
        if ignored:
            warnings.append("namespace_mapping entries for %s are ignored: a plan covers one source "
                            "namespace (%s); make one plan per namespace." % (", ".join(ignored), source_namespace))
        target_ns = namespace_mapping[source_namespace]
    else:
        target_ns = target_namespace or source_namespace
    target_pvcs = dict((p["metadata"]["name"], p) for p in kube.list(k.PVC, namespace=target_ns)[0])
    # A namespace with claims exists; only an empty answer needs the Namespace read (missing vs. empty).
    if not target_pvcs:
        try:
            if kube.get(k.NAMESPACE, target_ns) is None:
                raise PreflightError(
                    "Target namespace %s does not exist. Create it and deploy the application's claims there "
                    "first, or fix target_namespace/namespace_mapping." % target_ns, namespace=target_ns)
        except ForbiddenError:
            warnings.append("cannot read Namespace %s (no permission); its existence was not checked." % target_ns)

    problems = Problems()

    # Volume selection.
    namespace_pods = None  # the target namespace's pods, when the selection had to list them
    by_pvc = {}
    for rec in ns_volumes:  # one record per claim; prefer a restorable one
        current = by_pvc.get(rec["source_pvc"])
        if current is None or (not current.get("restorable_by") and rec.get("restorable_by")):
            by_pvc[rec["source_pvc"]] = rec
    claim_mapping = claim_mapping or {}
    unknown = sorted(set(claim_mapping) - set(by_pvc))
    if unknown:
        problems.add("claim_mapping names claim(s) %s, which backup %s does not hold in %s (its claims there: %s). "
                     "Fix claim_mapping: its keys are claim names as they were at backup time." % (
                         ", ".join(unknown), backup_name, source_namespace, ", ".join(sorted(by_pvc))))

    def target_of(source_pvc):
        return claim_mapping.get(source_pvc, source_pvc)

    sources_of = {}  # target claim name: the backup's claims restored into it (more than one is refused below)
    for name in sorted(by_pvc):
        sources_of.setdefault(target_of(name), []).append(name)
    if volumes is not None:
        chosen = []
        for name in volumes:
            if name not in by_pvc:
                problems.add("claim %s/%s is not in backup %s (its claims in %s: %s). Fix volumes (names "
                             "as they were at backup time)." % (source_namespace, name, backup_name,
                                                                source_namespace, ", ".join(sorted(by_pvc))))
            elif by_pvc[name] not in chosen:
                chosen.append(by_pvc[name])
    elif volume_selector is not None:
        selected = kube.list(k.PVC, namespace=target_ns, label_selector=volume_selector)[0]
        selected_names = sorted(p["metadata"]["name"] for p in selected)
        chosen = _restorable_of(by_pvc, [src for n in selected_names for src in sources_of.get(n, [])],
                                source_namespace, allow_partially_failed, warnings)
        outside = [n for n in selected_names if n not in sources_of]
        if outside:
            warnings.append("claims %s match volume_selector but are not in backup %s; left out."
                            % (", ".join(outside), backup_name))
        if not chosen and not [n for n in selected_names if n in sources_of]:
            problems.add("volume_selector %r matches no claim in %s that is in backup %s (matched: %s; in the "
                         "backup: %s). Fix the selector or use volumes." % (
                             volume_selector, target_ns, backup_name, ", ".join(selected_names) or "none",
                             ", ".join(sorted(by_pvc))))
    else:
        chosen = _restorable_of(by_pvc, sorted(by_pvc), source_namespace, allow_partially_failed, warnings)
        unbacked = [name for name, pvc in target_pvcs.items() if name not in sources_of and (
            (pvc["metadata"].get("labels") or {}).get(names.LABEL_MANAGED_BY) != names.MANAGED_BY)]
        if unbacked:
            namespace_pods = _claims_of_the_same_workloads(
                kube, target_ns, [target_of(r["source_pvc"]) for r in chosen], unbacked, backup_name, warnings)
    unused = sorted(set(claim_mapping) & set(by_pvc) - set(r["source_pvc"] for r in chosen))
    if unused:
        warnings.append("claim_mapping entries for %s are ignored: those claims are not restored in this plan."
                        % ", ".join(unused))
    receivers = {}
    for rec in chosen:
        receivers.setdefault(target_of(rec["source_pvc"]), []).append(rec["source_pvc"])
    for target, sources in sorted(receivers.items()):
        if len(sources) > 1:
            problems.add("claims %s of backup %s would all be restored into claim %s/%s (claim_mapping). Map them "
                         "to different claims, or leave all but one out (volumes)."
                         % (" and ".join(sorted(sources)), backup_name, target_ns, target))
    problems.raise_if_any("backup %s, volumes" % backup_name)
    if not chosen:
        raise PreflightError("Nothing to restore from backup %s in namespace %s: every claim %s was skipped or "
                             "empty at backup time, or its backup failed (see the warnings)."
                             % (backup_name, source_namespace,
                                "that volume_selector matches" if volume_selector is not None else "there"))

    # Per-volume rules.
    chosen = _with_snapshot_modes(kube, chosen, dict((r["source_pvc"], target_pvcs.get(target_of(r["source_pvc"])))
                                                     for r in chosen), warnings)
    storage_classes = {}
    plan_volumes = []
    session_hash = names.short_hash(session or backup_name, length=6)
    for rec in chosen:
        target = target_of(rec["source_pvc"])
        vol = _plan_volume(kube, rec, mode, source_namespace, target_ns, target, target_pvcs.get(target),
                           storage_class_map or {}, session, session_hash, summary, problems,
                           storage_classes, warnings, swap_mode)
        if vol is not None:
            plan_volumes.append(vol)
    by_new_claim = {}
    for vol in plan_volumes:
        if vol.get("new_pvc"):
            by_new_claim.setdefault(vol["new_pvc"]["name"], []).append(vol["key"])
    for new_name, keys in sorted(by_new_claim.items()):
        if len(keys) > 1:
            problems.add("volumes %s would get the same new claim %s; rename one of the claims or restore them in "
                         "two sessions." % (", ".join(keys), new_name))
    if mode == "in_place" and quiesce == "none" and plan_volumes:
        # Nothing will stop the workloads: a ReadWriteOncePod claim a pod mounts cannot get a helper pod.
        existing_pods = kube.list(k.POD, namespace=target_ns)[0]
        for vol in plan_volumes:
            try:
                helper_pod.refuse_rwop_in_use(target_pvcs[vol["target_pvc"]], pods.pods_using(
                    existing_pods, [vol["target_pvc"]], exclude_session=session))
            except PreflightError as exc:
                problems.add(exc.msg)
    if storage_class_map:
        used = set(vol["storage_class"] for vol in plan_volumes)
        unused = sorted(set(storage_class_map) - used)
        if unused:
            warnings.append("storage_class_map entries for %s match no planned claim." % ", ".join(unused))
        if swap_mode == "rebind":
            warnings.extend(_migrated_managed_claims(plan_volumes, target_pvcs))
    target_claims = [vol["target_pvc"] for vol in plan_volumes]
    listed_pods = namespace_pods
    if mode == "replace" and swap_mode == "rebind" and plan_volumes:
        # Only a rebind deletes the claims (template mode leaves the old claim where it is).
        try:
            if listed_pods is None:
                listed_pods = kube.list(k.POD, namespace=target_ns)[0]
        except ForbiddenError:
            listed_pods = False
        if listed_pods is not False:
            finished = pods.finished_pods_holding(listed_pods, target_claims)
            if finished:
                # The swap deletes these claims after the restore, and would refuse then: say it before the hours.
                problems.add("the swap of replace mode (swap_mode=rebind) deletes claims that finished pods still "
                             "hold. " + claims.in_use_message(target_ns, sorted(set(target_claims) & set(
                                 c for p in finished for c in pods.claim_names(p))), finished))
    if mode == "replace" and swap_mode == "template" and plan_volumes:
        try:
            for problem in claims.template_swap_problems(kube, target_ns, target_claims, warnings=warnings):
                problems.add(problem)
        except ForbiddenError as exc:
            warnings.append("cannot list the workloads of namespace %s (%s); not checked: whether swap_mode=template "
                            "can patch them onto the new claims." % (target_ns, exc.msg))
    if quiesce == "scale" and plan_volumes and listed_pods is not False:
        try:
            for problem in workloads.stop_refusals(kube, target_ns, target_claims, listed_pods,
                                                   pause_gitops=pause_gitops, warnings=warnings, session=session):
                problems.add(problem)
        except ForbiddenError:
            listed_pods = False
    if listed_pods is False:
        warnings.append("cannot list the pods/StatefulSets of namespace %s (no permission); not checked: %s."
                        % (target_ns, " and ".join(
                            part for part, wanted in (
                                ("whether finished pods hold the claims the swap deletes", mode == "replace"
                                 and swap_mode == "rebind"),
                                ("whether their workloads can be stopped", quiesce == "scale")) if wanted)))
    check_other_sessions(kube, velero_ns, session, [vol["key"] for vol in plan_volumes], problems)
    expected = journal_estimate(plan_volumes, target_pvcs, mode, summary)
    if expected > sessions.JOURNAL_BUDGET:
        problems.add("the session journal of %d volumes would reach about %d KiB, and a ConfigMap holds at most "
                     "1 MiB (it records each claim it swaps in full, annotations included). Restore the volumes "
                     "in several sessions: split volumes (or volume_selector) into parts of about %d." % (
                         len(plan_volumes), expected // 1024,
                         max(1, len(plan_volumes) * sessions.JOURNAL_BUDGET // expected)))
    problems.raise_if_any("backup %s, mode %s, %s -> %s" % (backup_name, mode, source_namespace, target_ns))

    if mode == "in_place":
        notes.append(NOTE_IN_PLACE_STALE_FILES)
    else:
        notes.append(NOTE_REPLACE_TEMPLATE_KEEPS_CLAIMS if swap_mode == "template" else NOTE_REPLACE_RETAIN)
    if any(vol.get("restore_via") == "pod_volume_restore" for vol in plan_volumes):
        notes.append(NOTE_VELERO_MARKER)
    plan = {
        "backup": summary,
        "mode": mode,
        "session": session,
        "source_namespace": source_namespace,
        "target_namespace": target_ns,
        "volumes": plan_volumes,
        "warnings": warnings,
        "notes": notes,
    }
    plan["restore_timeout"] = restore_timeout(plan_volumes)
    plan["pause_gitops"] = bool(pause_gitops)  # the rollback pauses what the restore paused
    plan["volume_selector"] = volume_selector  # a re-run asking another selector is another restore (check_same_request)
    if mode == "replace":
        plan["swap_mode"] = swap_mode  # pinned: a re-run finishes a begun swap the same way (check_same_request)
    return plan


# The default time the playbooks give the data path (restore_timeout), from the backup's size (DESIGN §4.5): an hour
# for the node-agent to prepare, queue and finish, plus the bytes at the pace of a slow object store.
RESTORE_TIMEOUT_BASE = 3600
RESTORE_ASSUMED_BYTES_PER_SECOND = 20 * 1024 * 1024
# At most a day (1.6 TiB at that pace): a run that times out is rescued cleanly and a re-run with the same session
# continues the restore. (The roles' wait slices grow with the timeout, so any timeout nests about 100 includes.)
RESTORE_TIMEOUT_MAX = 24 * 3600


def restore_timeout(plan_volumes):
    """Seconds to wait for the restores of ``plan_volumes``, as if they ran one after another (capped)."""
    total = sum(quantity_bytes(vol.get("snapshot_size")) or 0 for vol in plan_volumes)
    return min(RESTORE_TIMEOUT_MAX, RESTORE_TIMEOUT_BASE + -(-total // RESTORE_ASSUMED_BYTES_PER_SECOND))


# Journal bytes beyond the plan: the session's own fields and history, and per volume its restore, swap and undo
# records without the claim copies (measured on swap + rollback runs, then rounded up).
JOURNAL_BASE = 16 * 1024
JOURNAL_PER_VOLUME = 2048


def journal_estimate(plan_volumes, target_pvcs, mode, summary):
    """Bytes the session journal is expected to reach (an upper bound, checked in preflight): the plan, plus per
    volume its records, plus in replace mode two copies of the claim (the rebind record and its undo snapshot)."""
    size = JOURNAL_BASE + len(sessions.dump({"plan": plan_volumes, "backup": summary}))
    for vol in plan_volumes:
        size += JOURNAL_PER_VOLUME
        pvc = target_pvcs.get(vol.get("target_pvc")) if mode == "replace" else None
        if pvc:
            meta = pvc.get("metadata") or {}
            size += 2 * len(sessions.dump({"labels": meta.get("labels"), "annotations": meta.get("annotations"),
                                           "ownerReferences": meta.get("ownerReferences"),
                                           "spec": pvc.get("spec")}))
    return size


def _storage_class(kube, name, cache, warnings):
    """The StorageClass object, None when absent, or False when it cannot be read."""
    if name not in cache:
        try:
            cache[name] = kube.get(k.STORAGE_CLASS, name)
        except ForbiddenError:
            warnings.append("cannot read StorageClass %s (no permission); it was not checked." % name)
            cache[name] = False
    return cache[name]


def _plan_volume(kube, rec, mode, source_ns, target_ns, target_name, pvc, class_map, session, session_hash, summary,
                 problems, storage_classes, warnings, swap_mode="rebind"):
    name = rec["source_pvc"]
    key = "%s/%s" % (target_ns, target_name)
    src = "%s/%s" % (source_ns, name)
    if mode not in (rec.get("restorable_by") or []):
        if rec.get("restorable_by"):  # restorable, just not in this mode
            problems.add("claim %s cannot be restored with mode=%s: %s Use mode=%s."
                         % (src, mode, rec.get("reason") or "", " or ".join(rec["restorable_by"])))
        else:
            reason = rec.get("reason") or "not restorable."
            problems.add("claim %s cannot be restored: %s%s" % (
                src, reason, "" if "Leave it out" in reason else " Leave it out with volumes or volume_selector."))
        return None
    if pvc is None:
        problems.add("target claim %s%s does not exist. Deploy the application (so its claims exist) before a "
                     "data-only restore, restore into the namespace where it exists (target_namespace), map %s to the "
                     "claim's name now (claim_mapping, for a renamed claim), or leave it out (volumes or "
                     "volume_selector)." % (key, "" if target_name == name else " (claim_mapping of %s)" % src,
                                            name))
        return None
    if (pvc.get("metadata") or {}).get("deletionTimestamp"):
        problems.add("target claim %s is being deleted. Wait until it is gone and recreated, then re-run." % key)
        return None
    method = rec["method"]
    target_mode = _volume_mode(pvc)
    volume_mode = rec.get("volume_mode") or target_mode
    size = rec.get("snapshot_size")
    if method == backups.METHOD_FS and target_mode == "Block":
        problems.add("target claim %s is Block mode but %s was a file-system backup: a PodVolumeRestore writes "
                     "files into a Filesystem volume only. Restore into a Filesystem claim." % (key, src))
        return None
    if method == backups.METHOD_DATA_MOVER and rec.get("volume_mode") and rec["volume_mode"] != target_mode:
        problems.add("target claim %s is %s mode but the snapshot of %s is %s mode; restore into a claim of the "
                     "same volume mode." % (key, target_mode, src, rec["volume_mode"]))
        return None
    if mode == "in_place":
        if method == backups.METHOD_DATA_MOVER and volume_mode == "Block":
            problems.add("claim %s is a Block-mode data-mover snapshot: it can only be restored by a "
                         "DataDownload into a new claim. Use mode=replace." % src)
            return None
        phase = (pvc.get("status") or {}).get("phase")
        if phase != "Bound":
            problems.add("target claim %s is %s, not Bound: an in-place restore writes into its volume. Start the "
                         "workload once so the claim binds (WaitForFirstConsumer), or use mode=replace with "
                         "swap_mode=template." % (key, phase or "without a phase"))
            return None
        capacity = _capacity(pvc)
        if size and capacity is not None and capacity < size:
            problems.add("target claim %s has %s but the snapshot of %s holds %s. Expand the claim (if its class "
                         "allows volume expansion) or use mode=replace, which sizes the new claim to the backup."
                         % (key, _human(capacity), src, _human(size)))
            return None
    elif swap_mode == "rebind" and (pvc.get("status") or {}).get("phase") != "Bound":
        problems.add("target claim %s is %s, not Bound: swap_mode=rebind moves the restored volume under the "
                     "existing claim and keeps the claim's own volume for rollback, which needs a bound claim. Use "
                     "swap_mode=template (the workloads are pointed at the new claims), or start the workload once "
                     "so the claim binds." % (key, (pvc.get("status") or {}).get("phase") or "without a phase"))
        return None
    storage_class = claims.claim_class(pvc) or rec.get("storage_class")
    restore_via = RESTORE_VIA_DD if method == backups.METHOD_DATA_MOVER and (
        volume_mode == "Block" or mode == "replace") else RESTORE_VIA_PVR
    new_pvc = None
    if mode == "replace":
        new_pvc = _new_pvc(kube, pvc, rec, key, session, session_hash, class_map, storage_class, restore_via,
                           problems, storage_classes, warnings)
        if new_pvc is None:
            return None
        attributes_class = (pvc.get("spec") or {}).get("volumeAttributesClassName")
        if attributes_class:
            # Velero's restore claim carries no attributes class (v1.18.1 generic_restore.go createRestorePVC), and
            # a claim binds only to a volume of its own attributes class (the PV binder's checkVolumeSatisfyClaim).
            warnings.append(
                "claim %s has VolumeAttributesClass %s; the restored volume is made without it, so after the swap "
                "the claim has none and the volume runs with its storage class's defaults. Set it again once the "
                "restore is done: kubectl patch pvc -n %s %s -p '{\"spec\":{\"volumeAttributesClassName\":\"%s\"}}'"
                % (key, attributes_class, target_ns, target_name, attributes_class))
    return {
        "key": key,
        "source_namespace": source_ns,
        "source_pvc": name,
        "source_pv": rec.get("source_pv"),
        "pod_name": rec.get("pod_name"),
        "pod_volume": rec.get("pod_volume"),
        "method": method,
        "snapshot_id": rec.get("snapshot_id"),
        "snapshot_size": size,
        "uploader_type": rec.get("uploader_type") or (v.UPLOADER_KOPIA if method == backups.METHOD_DATA_MOVER
                                                      else v.pod_volume_uploader("")),
        "data_mover": (rec.get("data_mover") or "") if method == backups.METHOD_DATA_MOVER else "",
        "backup_storage_location": summary["storage_location"],
        "volume_mode": volume_mode,
        "storage_class": storage_class,
        "node_os": rec.get("node_os") or "",
        "operation_timeout": rec.get("operation_timeout") or summary["csi_snapshot_timeout"],
        "target_namespace": target_ns,
        "target_pvc": target_name,
        "restore_via": restore_via,
        "new_pvc": new_pvc,
    }


def new_pvc_name(pvc_name, session_hash):
    """``<pvc>-restored-<hash>``, at most 63 characters, stable for a session/backup. A claim name that is not a
    DNS-1123 label as it is (dots: ``db.data``) gets a hash of itself too, or it would share ``db-data``'s."""
    if names.sanitize(pvc_name) != pvc_name:
        return names.stable_name(pvc_name, "restored", session_hash, names.short_hash(pvc_name, length=5))
    return names.stable_name(pvc_name, "restored", session_hash)


def _migrated_managed_claims(plan_volumes, target_pvcs):
    """Warnings for claims a rebind recreates in another storage class while a GitOps tool manages them: the
    manifest keeps the old class, and a claim's class is immutable, so the tool's next apply of it is refused."""
    out = []
    for vol in plan_volumes:
        new_class = (vol.get("new_pvc") or {}).get("storage_class")
        claim = target_pvcs.get(vol["target_pvc"])
        markers = workloads.gitops_markers(claim) if claim else []
        if new_class and new_class != vol.get("storage_class") and markers:
            out.append("claim %s moves from storage class %s to %s, and %s manages it: if its manifest sets "
                       "storageClassName, the next sync is refused (a claim's class cannot change: \"spec is "
                       "immutable\"). Change storageClassName to %s in the manifest before syncs resume."
                       % (vol["key"], vol.get("storage_class"), new_class, " and ".join(markers), new_class))
    return out


def _new_pvc(kube, pvc, rec, key, session, session_hash, class_map, storage_class, restore_via, problems,
             storage_classes, warnings):
    target_ns = pvc["metadata"]["namespace"]
    name = new_pvc_name(pvc["metadata"]["name"], session_hash)
    existing = kube.get(k.PVC, name, target_ns)
    if existing is not None:
        labels = (existing.get("metadata") or {}).get("labels") or {}
        ours = labels.get(names.LABEL_MANAGED_BY) == names.MANAGED_BY and (
            session is None or labels.get(names.LABEL_SESSION) in (None, session))
        if not ours:
            problems.add("claim %s/%s (the new claim for %s) already exists and does not belong to this restore "
                         "(labels %s). Delete or rename it, or use another session name." % (
                             target_ns, name, key, ", ".join("%s=%s" % kv for kv in sorted(labels.items())) or "none"))
            return None
    new_class = class_map.get(storage_class, storage_class) if storage_class else None
    if new_class:
        sc = _storage_class(kube, new_class, storage_classes, warnings)
        if sc is None:
            problems.add("StorageClass %s (for the new claim of %s) does not exist. Create it or fix "
                         "storage_class_map." % (new_class, key))
            return None
        if sc and restore_via == RESTORE_VIA_DD and sc.get("provisioner") == "kubernetes.io/no-provisioner":
            problems.add("StorageClass %s cannot provision volumes dynamically, which a DataDownload needs for the "
                         "new claim of %s. Map it to a provisioning class with storage_class_map." % (new_class, key))
            return None
    request = (((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
    size = request
    snapshot = rec.get("snapshot_size")
    if snapshot:
        needed = mi_ceil(snapshot)
        current = quantity_bytes(request)
        if current is None or current < needed * MI:
            size = "%dMi" % needed
    if not size:
        problems.add("cannot size the new claim for %s: the original claim has no storage request and the "
                     "snapshot size is unknown. Set spec.resources.requests.storage on the claim." % key)
        return None
    return {
        "name": name,
        "storage_class": new_class,
        "size": size,
        "access_modes": list((pvc.get("spec") or {}).get("accessModes") or ["ReadWriteOnce"]),
        "volume_mode": _volume_mode(pvc),
    }


def _request_differences(plan, build_args):
    """(what, recorded, asked) for each input of this run that the recorded plan does not match. Only what the
    plan shows without reading the cluster: namespaces, the named volumes, the storage classes of new claims."""
    out = []
    source = build_args.get("source_namespace")
    if source and plan.get("source_namespace") and source != plan["source_namespace"]:
        out.append(("source_namespace", plan["source_namespace"], source))
    mapping = build_args.get("namespace_mapping") or {}
    target = mapping.get(source or plan.get("source_namespace")) if mapping else build_args.get("target_namespace")
    target = target or (None if mapping else source)
    if target and plan.get("target_namespace") and target != plan["target_namespace"]:
        out.append(("target namespace", plan["target_namespace"], target))
    volumes = build_args.get("volumes")
    planned = sorted(set(vol.get("source_pvc") for vol in plan.get("volumes") or []))
    if volumes is not None and sorted(set(volumes)) != planned:
        out.append(("volumes", ", ".join(planned), ", ".join(sorted(set(volumes)))))
    claim_mapping = build_args.get("claim_mapping") or {}
    for vol in plan.get("volumes") or []:
        source_pvc, target_pvc = vol.get("source_pvc"), vol.get("target_pvc")
        if source_pvc and target_pvc and claim_mapping.get(source_pvc, source_pvc) != target_pvc:
            out.append(("target claim of %s/%s" % (vol.get("source_namespace"), source_pvc), target_pvc,
                        claim_mapping.get(source_pvc, source_pvc)))
    selector = build_args.get("volume_selector")
    # Plans recorded before 2026-12-06 have no volume_selector key: their selector is unknown, not compared.
    if selector is not None and "volume_selector" in plan and selector != plan["volume_selector"]:
        out.append(("volume_selector", plan["volume_selector"] or "none (volumes %s)" % ", ".join(planned), selector))
    class_map = build_args.get("storage_class_map") or {}
    for vol in plan.get("volumes") or []:
        new_pvc, original = vol.get("new_pvc") or {}, vol.get("storage_class")
        if new_pvc and original and class_map.get(original, original) != new_pvc.get("storage_class"):
            out.append(("storage class of %s's new claim" % vol.get("key"), new_pvc.get("storage_class"),
                        class_map.get(original, original)))
    return out


def check_same_request(existing, build_args, warnings):
    """A started session goes on with the plan it recorded. Asking it for another backup, namespace, volume set or
    storage class is refused: a settled session would report success without doing what was asked, an unsettled
    one would restore or swap what it recorded instead. Only a backup chosen by latest=true (a backup_info
    record) for an unsettled session is let through, with a warning: the interrupted restore finishes first."""
    plan = existing.doc.get("plan") or {}
    recorded = (existing.doc.get("backup") or {}).get("name")
    backup = build_args.get("backup")
    asked = backup.get("name") if isinstance(backup, dict) else (backup or "").strip()
    settled = existing.state in sessions.SETTLED_STATES
    differences = _request_differences(plan, build_args)
    # swap_mode is held to the mode the begun swaps were made with, from the journal: until a swap begins another mode
    # is still open (e.g. template refused for a claim template, use rebind), so the plan's may be an earlier run's.
    swaps, asked_mode = existing.swaps(), build_args.get("swap_mode")
    if swaps["started"] and swaps["mode"] and asked_mode and asked_mode != swaps["mode"]:
        differences.append(("swap_mode", swaps["mode"], asked_mode))
    latest_only = isinstance(backup, dict) and not settled
    if recorded and asked and asked != recorded and not latest_only:
        differences.insert(0, ("backup", recorded, asked))
    if differences:
        listed = "; ".join("%s: recorded %s, asked %s" % item for item in differences)
        if settled:
            raise PreflightError(
                "Restore session %r already %s a different restore (%s). A finished session is not run again with "
                "other inputs: give another session name (session=...), or free this one first "
                "(playbooks/cleanup.yml)." % (existing.name, existing.state.replace("_", " "), listed))
        raise PreflightError(
            "Restore session %r is %s with a different restore (%s). Re-run with the recorded inputs to finish "
            "it, roll it back (playbooks/rollback.yml), or give another session name (session=...)." % (
                existing.name, existing.state, listed))
    if recorded and asked and asked != recorded:
        warnings.append("Restore session %s is %s with backup %s, which it continues; latest=true names %s now. Use "
                        "another session name to restore %s once this one is done." % (
                            existing.name, existing.state, recorded, asked, asked))


def plan_session(kube, velero_ns, session, check_mode=False, run=None, continue_warnings=None, **build_args):
    """Continue a started session, or build the plan and record it in a new (or still planned) session.

    Returns (plan, Session or None, continued, changed). A session past ``planned`` keeps its recorded plan
    and backup: a re-run after an interruption goes on with what was decided then, even when ``latest`` would
    now pick a newer backup; the plan is not re-validated because the workloads may be stopped by then.
    ``run``: the playbook run that takes the session over (session.ensure); a settled or rolling back session is
    not taken over (its re-run changes nothing), the run that holds it is kept. A continued session asked for another backup:
    check_same_request (``continue_warnings`` receives its warning).
    """
    continue_warnings = [] if continue_warnings is None else continue_warnings
    if not session:
        raise PreflightError("create_session needs session (the name a re-run continues with).")
    existing = sessions.load(kube, velero_ns, session)
    if existing is not None and existing.doc.get("plan") and existing.state != "planned":
        # ensure() refuses another mode; check_same_request the other inputs.
        check_same_request(existing, build_args, continue_warnings)
        existing, changed = sessions.ensure(kube, velero_ns, session, mode=build_args.get("mode"),
                                            check_mode=check_mode,
                                            run=None if existing.state in sessions.KEPT_BY_HOLDER_STATES else run)
        return existing.doc["plan"], existing, True, changed
    plan = build(kube, velero_ns, session=session, **build_args)
    backup = dict((key, value) for key, value in plan["backup"].items() if key != "volumes")
    recorded, changed = sessions.ensure(kube, velero_ns, session, mode=plan["mode"], backup=backup, plan=plan,
                                        check_mode=check_mode, run=run)
    return plan, recorded, False, changed
