# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Find Velero backups and describe their volumes (DESIGN.md §6 backup_info).

Volume records come from the backup's ``<backup>-volumeinfo.json.gz`` (read through a
DownloadRequest, so it works in a new cluster where only Backups and PodVolumeBackups were
synced, contract §1.8 and §5), and else from the PodVolumeBackup/DataUpload objects of the
backup (contract §1.3, §1.5). Each record says how the volume was backed up and by which
restore modes it can be restored, or why it cannot.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import datetime
import fnmatch
import functools
import gzip
import json
import os
import re
import ssl
import tempfile

from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils import names
from ansible_collections.velero.data_restore.plugins.module_utils import velero_api as v
from ansible_collections.velero.data_restore.plugins.module_utils.errors import (
    ApiError,
    DataRestoreError,
    ForbiddenError,
    MissingApiError,
    PreflightError,
    WaitTimeout,
)
from ansible_collections.velero.data_restore.plugins.module_utils.waiting import WaitState, wait_for

DEFAULT_PHASES = (v.BACKUP_COMPLETED,)
# Seconds to wait for Velero to answer the DownloadRequest before using the custom resources.
VOLUME_INFO_TIMEOUT = 30
# Seconds for the HTTP download of the volume info document.
DOWNLOAD_TIMEOUT = 60

METHOD_FS = "fs"
METHOD_DATA_MOVER = "data_mover"
METHOD_CSI_SNAPSHOT = "csi_snapshot"
METHOD_NATIVE_SNAPSHOT = "native_snapshot"
METHOD_SKIPPED = "skipped"
METHOD_UNKNOWN = "unknown"
RESTORABLE_METHODS = (METHOD_FS, METHOD_DATA_MOVER)
MODES = ("in_place", "replace")

SOURCE_VOLUME_INFO = "volume_info"
SOURCE_CUSTOM_RESOURCES = "custom_resources"


class VolumeInfoAbsent(DataRestoreError):
    """The backup has no volume info document (HTTP 404: made before Velero v1.13)."""


# -- time -------------------------------------------------------------------------------------
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")


def parse_time(value, option="time"):
    """An aware datetime from an ISO 8601 string (date only = midnight UTC; no zone = UTC)."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    if not _ISO.match(text):
        raise PreflightError(
            "%s=%r is not an ISO 8601 date or time; write it like 2026-11-24 or "
            "2026-11-24T22:00:00Z." % (option, value))
    text = text.replace(" ", "T")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    match = re.search(r"([+-])(\d{2})(\d{2})$", text)
    if match and "T" in text:
        text = text[:match.start()] + "%s%s:%s" % match.groups()
    if "." in text:  # fromisoformat wants 3 or 6 fraction digits on older pythons
        head, _dot, rest = text.partition(".")
        digits = re.match(r"\d+", rest).group(0)
        text = "%s.%s%s" % (head, (digits + "000000")[:6], rest[len(digits):])
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise PreflightError("%s=%r is not a valid date or time." % (option, value))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed


def backup_time(backup):
    """When the backup was taken: status.startTimestamp (kept by backup sync), else creation."""
    return ((backup.get("status") or {}).get("startTimestamp")
            or (backup.get("metadata") or {}).get("creationTimestamp") or "")


# -- backups ----------------------------------------------------------------------------------
def includes_namespace(backup, namespace):
    """Whether the backup covers ``namespace``: empty includedNamespaces or ``*`` mean all
    (glob patterns honoured), and excludedNamespaces win (Backup spec, contract §1.2)."""
    spec = backup.get("spec") or {}
    included = spec.get("includedNamespaces") or []
    excluded = spec.get("excludedNamespaces") or []
    if included and not any(fnmatch.fnmatchcase(namespace, p) for p in included):
        return False
    return not any(fnmatch.fnmatchcase(namespace, p) for p in excluded)


def summary(backup):
    """The backup record modules return (without volumes: find adds volumes, volume_source and warnings only when
    it reads them - a list of 5,000 backups without them is a sixth smaller for ansible to handle)."""
    meta = backup.get("metadata") or {}
    spec = backup.get("spec") or {}
    status = backup.get("status") or {}
    labels = meta.get("labels") or {}
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "phase": status.get("phase") or v.BACKUP_NEW,
        "created": meta.get("creationTimestamp"),
        "started": status.get("startTimestamp"),
        "completed": status.get("completionTimestamp"),
        "expiration": status.get("expiration"),
        "storage_location": spec.get("storageLocation") or labels.get(v.LABEL_STORAGE_LOCATION),
        "included_namespaces": list(spec.get("includedNamespaces") or []),
        "excluded_namespaces": list(spec.get("excludedNamespaces") or []),
        "labels": dict(labels),
        "schedule": labels.get(v.LABEL_SCHEDULE_NAME),
        "snapshot_move_data": bool(spec.get("snapshotMoveData")),
        "data_mover": spec.get("datamover") or "",
        "default_volumes_to_fs_backup": spec.get("defaultVolumesToFsBackup"),
        "csi_snapshot_timeout": spec.get("csiSnapshotTimeout") or v.DEFAULT_CSI_SNAPSHOT_TIMEOUT,
        "errors": status.get("errors") or 0,
        "warnings_count": status.get("warnings") or 0,
        "failure_reason": status.get("failureReason"),
    }


def _check_list(value, option):
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not value:
        raise PreflightError("%s must be a non-empty list (got %r); leave it unset for no filter."
                             % (option, value))
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise PreflightError("%s must hold non-empty strings (got %r)." % (option, item))
    return list(value)


def _selector(schedule, label_selectors):
    terms = []
    if schedule:
        terms.append("%s=%s" % (v.LABEL_SCHEDULE_NAME, v.get_valid_name(schedule)))
    terms.extend(s.strip() for s in label_selectors or [])
    return ",".join(terms) or None


def find(kube, velero_ns, name=None, latest=False, schedule=None, label_selectors=None,
         namespace=None, phases=None, created_before=None, created_after=None, volumes=None,
         volume_info_timeout=VOLUME_INFO_TIMEOUT, fetch=None):
    """Backups matching the filters, newest first; returns {backups, warnings}.

    ``phases`` defaults to [Completed], or to any phase when ``name`` is given. Volume records
    are read only when ``volumes`` is true (default: true with ``name`` or ``latest``), one
    PodVolumeBackup list and at most one DownloadRequest per returned backup.
    """
    label_selectors = _check_list(label_selectors, "label_selectors")
    phases = _check_list(phases, "phases")
    if phases:
        unknown = [p for p in phases if p not in v.BACKUP_PHASES]
        if unknown:
            raise PreflightError("phases %s are not Velero backup phases; use some of %s."
                                 % (", ".join(unknown), ", ".join(v.BACKUP_PHASES)))
    elif not name:
        phases = list(DEFAULT_PHASES)
    before = parse_time(created_before, "created_before")
    after = parse_time(created_after, "created_after")
    if before and after and after >= before:
        raise PreflightError("created_after (%s) must be earlier than created_before (%s)."
                             % (created_after, created_before))
    if namespace is not None and not names.is_dns1123_label(namespace):
        raise PreflightError("namespace %r is not a valid namespace name (DNS-1123 label)." % namespace)
    if volumes is None:
        volumes = bool(name or latest)
    v.require_velero(kube, (k.BACKUP,))

    selector = _selector(schedule, label_selectors)
    if name:
        if selector:  # the server applies the selector (set-based terms included)
            candidates = kube.list(k.BACKUP, namespace=velero_ns, label_selector=selector,
                                   field_selector="metadata.name=%s" % name)[0]
        else:
            found = kube.get(k.BACKUP, name, velero_ns)
            candidates = [found] if found else []
    else:
        candidates = kube.list(k.BACKUP, namespace=velero_ns, label_selector=selector)[0]

    selected = []
    for backup in candidates:
        phase = (backup.get("status") or {}).get("phase") or v.BACKUP_NEW
        if phases and phase not in phases:
            continue
        if namespace and not includes_namespace(backup, namespace):
            continue
        if before or after:
            stamp = parse_time(backup_time(backup), "backup time") if backup_time(backup) else None
            if stamp is None or (before and stamp >= before) or (after and stamp < after):
                continue
        selected.append(backup)
    selected.sort(key=lambda b: (backup_time(b), b["metadata"]["name"]), reverse=True)
    warnings, read = [], {}
    locations = _locations(kube, velero_ns, selected[:LATEST_VOLUME_SEARCH] if latest else selected, warnings) \
        if volumes else {}
    if latest and volumes and namespace:
        selected = _latest_with_volumes(kube, velero_ns, selected, namespace, volume_info_timeout, fetch, warnings,
                                        read, locations)
    elif latest:
        selected = selected[:1]

    records = [summary(b) for b in selected]
    if volumes:
        unread = [b for b in selected if b["metadata"]["name"] not in read]
        # Each read waits for Velero to sign a download URL: a listing reads several at once.
        results = k.run_parallel([functools.partial(
            volume_records, kube, velero_ns, b, timeout=volume_info_timeout, fetch=fetch,
            location=locations.get((b.get("spec") or {}).get("storageLocation")) or {}) for b in unread],
            workers=VOLUME_INFO_WORKERS)
        read.update(zip([b["metadata"]["name"] for b in unread], results))
        for backup, record in zip(selected, records):
            vols, source, warns = read[backup["metadata"]["name"]]
            record["volumes"], record["volume_source"], record["warnings"] = vols, source, warns
            warnings.extend("%s: %s" % (record["name"], w) for w in warns)
    for record, backup in zip(records, selected):
        expired = expiry_warning(backup)
        if expired:
            warnings.append(expired)
    return {"backups": records, "warnings": warnings}


# Volume-info reads of a backup listing in flight at once (each a DownloadRequest Velero answers, then a download).
VOLUME_INFO_WORKERS = 4

# Backups latest=true looks into for volumes of the namespace before it gives up (one volume-info read each).
LATEST_VOLUME_SEARCH = 5


def _locations(kube, velero_ns, backups_, warnings):
    """{name: BackupStorageLocation} of the backups' storage locations (one GET each; for the CA bundle their
    downloads trust). One that cannot be read is left out, with a warning."""
    found = {}
    for name in sorted(set((b.get("spec") or {}).get("storageLocation") for b in backups_) - set([None, ""])):
        try:
            found[name] = kube.get(k.BACKUP_STORAGE_LOCATION, name, velero_ns)
        except ForbiddenError:
            warnings.append("cannot read BackupStorageLocation %s/%s (get backupstoragelocations, docs/rbac.yml): "
                            "the CA bundle it names is not trusted for the volume-info download." % (velero_ns, name))
    return found


def _latest_with_volumes(kube, velero_ns, newest_first, namespace, timeout, fetch, warnings, read, locations):
    """[the newest backup that holds a claim volume of ``namespace``]: a backup of every namespace includes it by
    spec, yet its label selector, resource filters or wildcard expansion (at backup time) may have left that
    namespace's volumes out. Newer ones skipped are named in ``warnings``; ``read`` keeps the volume records read
    (by backup name) so that the chosen one is not read twice."""
    skipped = []
    for backup in newest_first[:LATEST_VOLUME_SEARCH]:
        errors = []
        read[backup["metadata"]["name"]] = volume_records(
            kube, velero_ns, backup, timeout=timeout, fetch=fetch, read_errors=errors,
            location=locations.get((backup.get("spec") or {}).get("storageLocation")) or {})
        vols = read[backup["metadata"]["name"]][0]
        found = any(r.get("source_namespace") == namespace and r.get("source_pvc") for r in vols)
        if not found and errors:
            # Unread is not empty: skipping it would restore an older backup than the newest one with the data.
            raise PreflightError(
                "latest: the volume info of backup %s, the newest matching one%s, could not be read (%s), so it is "
                "not known whether it holds volumes of namespace %s. It is not skipped for an older backup: fix the "
                "read and re-run, or give a backup name." % (
                    backup["metadata"]["name"], " after %s" % ", ".join(skipped) if skipped else "",
                    "; ".join(errors), namespace), backup=backup["metadata"]["name"])
        if found:
            if skipped:
                warnings.append("latest: skipped the newer backup(s) %s, which include namespace %s by their spec "
                                "but hold no volume of it (label selector, resource filters, or no volume backup)."
                                % (", ".join(skipped), namespace))
            return [backup]
        skipped.append(backup["metadata"]["name"])
    if skipped:
        warnings.append("latest: none of the %d newest matching backups (%s) holds a volume of namespace %s; give a "
                        "backup name to look further back." % (len(skipped), ", ".join(skipped), namespace))
    return []


def expiry_warning(backup, now=None):
    """A warning when the backup's status.expiration has passed: Velero's garbage collection deletes it (and its
    data in object storage) soon, possibly in the middle of a restore (pkg/controller/gc_controller.go)."""
    expiration = (backup.get("status") or {}).get("expiration")
    if not expiration:
        return None
    try:
        expires = parse_time(expiration, "status.expiration")
    except PreflightError:
        return None
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if expires > now:
        return None
    return ("Backup %s expired at %s: Velero's garbage collection deletes it and its data soon (unless its storage "
            "location is read-only). Restore from it now, extend its TTL, or pick a newer backup."
            % (backup["metadata"]["name"], expiration))


def get(kube, velero_ns, name):
    """The Backup object; PreflightError naming the fix when it does not exist."""
    v.require_velero(kube, (k.BACKUP,))
    backup = kube.get(k.BACKUP, name, velero_ns)
    if backup is None:
        raise PreflightError(
            "Backup %s/%s not found. List the backups with velero.data_restore.backup_info (or "
            "'velero backup get'); in a new cluster wait until Velero has synced the backups of the "
            "BackupStorageLocation, and check velero_namespace." % (velero_ns, name),
            backup=name)
    return backup


# -- volume records ---------------------------------------------------------------------------
def new_record(**fields):
    record = {
        "source_namespace": None,
        "source_pvc": None,
        "source_pv": None,
        "pod_namespace": None,
        "pod_name": None,
        "pod_volume": None,
        "method": METHOD_UNKNOWN,
        "snapshot_id": None,
        "snapshot_size": None,
        "uploader_type": None,
        "data_mover": None,
        "backup_storage_location": None,
        "volume_mode": None,
        "storage_class": None,
        "node_os": "",
        "operation_timeout": None,
        "phase": None,
        "result": None,
        "skipped_reason": None,
        "origin": None,
        "restorable_by": [],
        "reason": None,
    }
    record.update(fields)
    return record


def backup_incomplete(record):
    """The backup of this volume failed or did not finish (its snapshot cannot be trusted)."""
    return record.get("result") == "failed" or record.get("phase") not in (None, "", v.PHASE_COMPLETED)


def assess(record):
    """Set ``restorable_by`` (modes) and ``reason`` (why none, or the restriction)."""
    method = record["method"]
    where = "%s/%s" % (record.get("source_namespace"), record.get("source_pvc") or record.get("pod_volume"))
    modes, reason = [], None
    if method == METHOD_SKIPPED:
        reason = ("Velero skipped volume %s at backup time (%s): there is no data to restore."
                  % (where, record.get("skipped_reason") or "no reason given"))
    elif method == METHOD_NATIVE_SNAPSHOT:
        reason = ("volume %s was backed up as a native (storage provider) snapshot: Velero's node-agent "
                  "cannot restore it data-only. Restore the claim with a Velero Restore (or from the "
                  "provider snapshot), or back up with file-system backup or the data mover "
                  "(snapshotMoveData: true)." % where)
    elif method == METHOD_CSI_SNAPSHOT:
        reason = ("volume %s was backed up as a CSI snapshot without data movement: the node-agent "
                  "cannot restore it data-only. Restore the claim with a Velero Restore or create a "
                  "claim from the VolumeSnapshot, or back up with snapshotMoveData: true or file-system "
                  "backup." % where)
    elif method not in RESTORABLE_METHODS:
        reason = "volume %s has an unknown backup method; it cannot be restored data-only." % where
    elif (record.get("uploader_type") or "") == v.UPLOADER_RESTIC:
        reason = ("volume %s was uploaded with restic (a PodVolumeBackup without uploaderType, from before "
                  "Velero 1.10, is restic too): this collection restores kopia snapshots only; Velero v1.17 and "
                  "v1.18 restore restic ones only through their legacy restic controller (not driven here), later "
                  "versions not at all. Restore it with a Velero Restore on v1.18 or older, or take a new kopia "
                  "backup." % where)
    elif backup_incomplete(record):
        reason = ("the backup of volume %s did not complete (phase %s, result %s): its snapshot cannot be "
                  "trusted. Pick another backup."
                  % (where, record.get("phase") or "-", record.get("result") or "-"))
    elif empty_at_backup(record):
        reason = ("volume %s has an empty snapshot id (it was empty at backup time, or its upload did "
                  "not finish); Velero itself skips such volumes on restore. Leave it out." % where)
    elif not record.get("source_pvc"):
        reason = ("pod volume %s of pod %s/%s is not a PersistentVolumeClaim: data-only restores target "
                  "claims. Leave it out." % (record.get("pod_volume"), record.get("pod_namespace"),
                                             record.get("pod_name")))
    elif method == METHOD_DATA_MOVER and (record.get("data_mover") or "") not in v.BUILTIN_DATA_MOVERS:
        reason = ("volume %s was moved by data mover %r: Velero's node-agent only serves the built-in "
                  "one (\"\" or velero), a DataDownload for it would be ignored." % (where, record["data_mover"]))
    elif method == METHOD_DATA_MOVER and record.get("volume_mode") == "Block":
        modes = ["replace"]
        reason = ("Block-mode data-mover snapshot: it is restored by a DataDownload into a new claim, "
                  "so only mode=replace works.")
    else:
        modes = list(MODES)
    record["restorable_by"] = modes
    record["reason"] = reason
    return record


def _int(value):
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def from_volume_info(entry, backup):
    """A volume record from one BackupVolumeInfo entry (contract §5)."""
    spec = backup.get("spec") or {}
    record = new_record(
        source_namespace=entry.get("pvcNamespace") or None,
        source_pvc=entry.get("pvcName") or None,
        source_pv=entry.get("pvName") or None,
        backup_storage_location=spec.get("storageLocation"),
        operation_timeout=spec.get("csiSnapshotTimeout") or v.DEFAULT_CSI_SNAPSHOT_TIMEOUT,
        result=entry.get("result") or None,
        origin=SOURCE_VOLUME_INFO,
    )
    method = entry.get("backupMethod") or ""
    if entry.get("skipped"):
        record.update(method=METHOD_SKIPPED, skipped_reason=entry.get("skippedReason"))
    elif method == v.VI_POD_VOLUME_BACKUP:
        pvb = entry.get("pvbInfo") or {}
        record.update(
            method=METHOD_FS, snapshot_id=pvb.get("snapshotHandle") or None,
            snapshot_size=_int(pvb.get("size")), uploader_type=v.pod_volume_uploader(pvb.get("uploaderType")),
            pod_namespace=pvb.get("podNamespace") or None, pod_name=pvb.get("podName") or None,
            pod_volume=pvb.get("volumeName") or None, phase=pvb.get("Phase") or None,
            volume_mode="Filesystem")
        record["source_namespace"] = record["source_namespace"] or record["pod_namespace"]
    elif method == v.VI_CSI_SNAPSHOT and entry.get("snapshotDataMoved"):
        dm = entry.get("snapshotDataMovementInfo") or {}
        record.update(
            method=METHOD_DATA_MOVER, snapshot_id=dm.get("snapshotHandle") or None,
            snapshot_size=_int(dm.get("size")), uploader_type=dm.get("uploaderType") or v.UPLOADER_KOPIA,
            data_mover=dm.get("dataMover") or "", phase=dm.get("Phase") or None)
    elif method == v.VI_CSI_SNAPSHOT:
        csi = entry.get("csiSnapshotInfo") or {}
        record.update(method=METHOD_CSI_SNAPSHOT, snapshot_id=csi.get("snapshotHandle") or None,
                      snapshot_size=_int(csi.get("size")))
    elif method == v.VI_NATIVE_SNAPSHOT:
        native = entry.get("nativeSnapshotInfo") or {}
        record.update(method=METHOD_NATIVE_SNAPSHOT, snapshot_id=native.get("snapshotHandle") or None,
                      phase=native.get("Phase") or None)
    return record


def empty_at_backup(record):
    """A completed volume backup without a snapshot: the volume was empty, and Velero skips it on restore."""
    return record.get("method") in RESTORABLE_METHODS and not record.get("snapshot_id") and not backup_incomplete(record)


def from_pod_volume_backup(pvb, backup):
    """A volume record from a PodVolumeBackup (contract §1.3)."""
    meta = pvb.get("metadata") or {}
    spec = pvb.get("spec") or {}
    status = pvb.get("status") or {}
    pod = spec.get("pod") or {}
    return new_record(
        source_namespace=pod.get("namespace"),
        source_pvc=(meta.get("annotations") or {}).get(v.ANNOTATION_PVC_NAME) or None,
        pod_namespace=pod.get("namespace"), pod_name=pod.get("name"), pod_volume=spec.get("volume"),
        method=METHOD_FS, snapshot_id=status.get("snapshotID") or None,
        snapshot_size=_int((status.get("progress") or {}).get("totalBytes")),
        uploader_type=v.pod_volume_uploader(spec.get("uploaderType")),
        backup_storage_location=(backup.get("spec") or {}).get("storageLocation")
        or spec.get("backupStorageLocation"),
        volume_mode="Filesystem",  # Block volumes are never file-system backed up (contract §1.3)
        operation_timeout=(backup.get("spec") or {}).get("csiSnapshotTimeout") or v.DEFAULT_CSI_SNAPSHOT_TIMEOUT,
        phase=status.get("phase") or v.PHASE_NEW, origin="podvolumebackup",
    )


def from_data_upload(du, backup):
    """A volume record from a DataUpload (contract §1.5; exists only in the original cluster)."""
    spec = du.get("spec") or {}
    status = du.get("status") or {}
    return new_record(
        source_namespace=spec.get("sourceNamespace"), source_pvc=spec.get("sourcePVC"),
        method=METHOD_DATA_MOVER, snapshot_id=status.get("snapshotID") or None,
        snapshot_size=_int((status.get("progress") or {}).get("totalBytes")),
        uploader_type=v.UPLOADER_KOPIA, data_mover=spec.get("datamover") or "",
        backup_storage_location=(backup.get("spec") or {}).get("storageLocation")
        or spec.get("backupStorageLocation"),
        storage_class=(spec.get("csiSnapshot") or {}).get("storageClass") or None,
        node_os=status.get("nodeOS") or "",
        operation_timeout=spec.get("operationTimeout") or (backup.get("spec") or {}).get("csiSnapshotTimeout")
        or v.DEFAULT_CSI_SNAPSHOT_TIMEOUT,
        phase=status.get("phase") or v.PHASE_NEW, origin="dataupload",
    )


def _belongs(obj, backup_name):
    """Guard against GetValidName collisions of long backup names."""
    tags = (obj.get("spec") or {}).get("tags") or {}
    if tags.get("backup"):
        return tags["backup"] == backup_name
    owners = [o.get("name") for o in (obj.get("metadata") or {}).get("ownerReferences") or []
              if o.get("kind") == "Backup"]
    return not owners or backup_name in owners


def _backup_uids(obj):
    """The Backup UIDs an object names in its label and its Backup owner reference. Velero tells the PVBs of one
    backup from another's by that label (v1.18.1 pkg/podvolume/backupper.go); backup sync rewrites the label and
    the owner to the synced Backup's UID (pkg/controller/backup_sync_controller.go), but not spec.tags, which keep
    the original cluster's UID."""
    meta = obj.get("metadata") or {}
    uids = set(o.get("uid") for o in meta.get("ownerReferences") or [] if o.get("kind") == "Backup" and o.get("uid"))
    label = (meta.get("labels") or {}).get(v.LABEL_BACKUP_UID)
    if label:
        uids.add(label)
    return uids


def _list_for_backup(kube, kind, velero_ns, backup, warnings):
    """The backup's objects of ``kind`` (PodVolumeBackups or DataUploads), by name label then by UID.

    An object that names another Backup UID belongs to an earlier backup of the same name (deleted, then created
    again; its objects wait for garbage collection): it is left out, and ``warnings`` says so."""
    name = backup["metadata"]["name"]
    uid = backup["metadata"].get("uid")
    kept, stale = [], []
    for item in kube.list(kind, namespace=velero_ns, label_selector=v.backup_selector(name))[0]:
        if _belongs(item, name):
            uids = _backup_uids(item)
            (stale if uid and uids and uid not in uids else kept).append(item)
    if stale:
        warnings.append("%d %s(s) labelled with backup %s belong to an earlier backup of that name (their Backup "
                        "UID is not %s), so they were left out: %s."
                        % (len(stale), kind.kind, name, uid, ", ".join(sorted(i["metadata"]["name"] for i in stale))))
    return kept


def _sort_key(record):
    return (record.get("source_namespace") or "", record.get("source_pvc") or "",
            record.get("pod_name") or "", record.get("pod_volume") or "")


def volume_records(kube, velero_ns, backup, timeout=VOLUME_INFO_TIMEOUT, fetch=None, read_errors=None,
                   location=None):
    """(records, source, warnings) for one Backup object. ``location``: its BackupStorageLocation as the caller read
    it (for the CA bundle its download trusts, storage_location_ca); without one, only the system's CAs.

    ``read_errors`` (a list) gets the message when the volume info exists but could not be read (not when the
    backup has none, as before Velero 1.13): the records then come from the fallback and may miss volumes.

    The volume info document is the main source; the backup's PodVolumeBackups are listed as well (one LIST),
    since Velero leaves a file-system volume out of that document when its pod was gone at the end of the backup
    or its PV was not backed up (v1.18.1 internal/volume/volumes_information.go generateVolumeInfoFromPVB), while
    the PodVolumeBackup, synced into any cluster, still holds the snapshot. DataUploads are read when the document
    has data-mover volumes (their nodeOS and storage class) or the backup moved snapshot data (snapshotMoveData):
    Velero leaves a data-mover volume out of the document too when its PV was not backed up
    (generateVolumeInfoFromDataUpload), and the DataUpload of the original cluster still names its snapshot. They
    are the fallback when the document is missing.
    """
    name = backup["metadata"]["name"]
    warnings = []
    entries = None
    try:
        ca = storage_location_ca(kube, velero_ns, location)
        entries = read_volume_info(kube, velero_ns, name, timeout=timeout, fetch=fetch, ca=ca)
    except VolumeInfoAbsent as exc:
        warnings.append(exc.msg)
    except DataRestoreError as exc:
        warnings.append(exc.msg)
        if read_errors is not None:
            read_errors.append(exc.msg)

    if entries is not None:
        records = [from_volume_info(e, backup) for e in entries if isinstance(e, dict)]
        movers = [r for r in records if r["method"] == METHOD_DATA_MOVER]
        moved = movers or (backup.get("spec") or {}).get("snapshotMoveData")
        dus = _data_uploads(kube, velero_ns, backup, warnings) if moved else []
        dus_by_pvc = dict(((d["spec"].get("sourceNamespace"), d["spec"].get("sourcePVC")), d)
                          for d in dus if d.get("spec"))
        for record in movers:  # the DataUpload (original cluster) knows nodeOS and the class
            du = dus_by_pvc.get((record["source_namespace"], record["source_pvc"]))
            if du is not None:
                extra = from_data_upload(du, backup)
                record["node_os"] = extra["node_os"]
                record["storage_class"] = record["storage_class"] or extra["storage_class"]
                if not record["data_mover"]:
                    record["data_mover"] = extra["data_mover"]
        records += _left_out_of_volume_info(kube, velero_ns, backup, records, dus, warnings)
        source = SOURCE_VOLUME_INFO
    else:
        pvbs = _list_for_backup(kube, k.POD_VOLUME_BACKUP, velero_ns, backup, warnings)
        dus = _data_uploads(kube, velero_ns, backup, warnings)
        records = [from_pod_volume_backup(p, backup) for p in pvbs]
        records += [from_data_upload(d, backup) for d in dus]
        source = SOURCE_CUSTOM_RESOURCES
        warnings.append(
            "volume records were built from %d PodVolumeBackup and %d DataUpload object(s): native and "
            "CSI snapshots are not listed, and data-mover volumes are missing in a cluster the backup was "
            "synced into (DataUploads are not synced)." % (len(pvbs), len(dus)))
    for record in records:
        assess(record)
    records.sort(key=_sort_key)
    return records, source, warnings


def _left_out_of_volume_info(kube, velero_ns, backup, records, data_uploads, warnings):
    """Records of the backup's PodVolumeBackups and of ``data_uploads`` whose claim the volume info does not list
    (see volume_records), each named in ``warnings``."""
    name = backup["metadata"]["name"]
    listed = set((r.get("source_namespace"), r.get("source_pvc")) for r in records if r.get("source_pvc"))
    try:
        pvbs = _list_for_backup(kube, k.POD_VOLUME_BACKUP, velero_ns, backup, warnings)
    except ForbiddenError as exc:
        warnings.append("cannot list the PodVolumeBackups of backup %s (%s): a volume Velero left out of its volume "
                        "info would be missed. Grant list on podvolumebackups (docs/rbac.yml)." % (name, exc.msg))
        pvbs = []
    extra = [from_pod_volume_backup(p, backup) for p in pvbs] + [from_data_upload(d, backup) for d in data_uploads]
    extra = [r for r in extra if r["source_pvc"] and (r["source_namespace"], r["source_pvc"]) not in listed]
    for origin, what, why in (
            ("podvolumebackup", "PodVolumeBackups", "when its pod was gone at the end of the backup, or when the "
             "backup did not include its PersistentVolume"),
            ("dataupload", "DataUploads", "when the backup did not include its PersistentVolume")):
        claims = sorted(set("%s/%s" % (r["source_namespace"], r["source_pvc"]) for r in extra if r["origin"] == origin))
        if claims:
            warnings.append(
                "the volume info of backup %s does not list claim(s) %s, which %s of the backup hold (Velero leaves "
                "a volume out of it %s): their records were built from those %s."
                % (name, ", ".join(claims), what, why, what))
    return extra


def _data_uploads(kube, velero_ns, backup, warnings):
    """The backup's DataUploads; none when the cluster does not serve them (Velero without the data mover)."""
    if not kube.has_api(k.DATA_UPLOAD):
        return []
    return _list_for_backup(kube, k.DATA_UPLOAD, velero_ns, backup, warnings)


# -- volume info through a DownloadRequest (contract §1.8) -------------------------------------
def redact_url(url):
    """scheme://host/… — the only part of a pre-signed URL that may ever be shown."""
    match = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*)", url or "")
    return "%s/<redacted>" % (match.group(1) if match else "<url>")


def scrub(text, url):
    """Remove a signed URL (and its query string) from a message."""
    text = str(text)
    if url:
        text = text.replace(url, redact_url(url))
        query = url.partition("?")[2]
        if query:
            text = text.replace(query, "<redacted>")
        path = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*", "", url).partition("?")[0]
        if len(path) > 1:
            text = text.replace(path, "/<redacted>")
    return text


def http_get(url, timeout=DOWNLOAD_TIMEOUT, ca=None):
    """Download ``url``; never lets the URL into a message. ``ca``: PEM text of the storage location's CA bundle,
    trusted next to the system's CAs (as Velero's own download does: pkg/cmd/util/downloadrequest)."""
    from urllib.error import HTTPError, URLError

    from ansible.module_utils.urls import ConnectionError as UrlConnectionError
    from ansible.module_utils.urls import open_url

    ca_path = _trust_file(ca) if ca else None
    try:
        response = open_url(url, method="GET", timeout=timeout, follow_redirects="safe", ca_path=ca_path)
        try:
            return response.read()
        finally:
            response.close()
    except HTTPError as exc:
        if exc.code == 404:
            raise VolumeInfoAbsent("404")
        raise DataRestoreError("HTTP %s from %s" % (exc.code, redact_url(url)))
    except (URLError, UrlConnectionError, OSError, ValueError) as exc:
        hint = ""
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            hint = (" (the object storage's certificate is not trusted%s: give its BackupStorageLocation the CA "
                    "that signed it, spec.objectStorage.caCertRef or caCert, which Velero's own downloads trust too)"
                    % (" by the location's CA bundle either" if ca else ""))
        raise DataRestoreError("download from %s failed: %s%s" % (redact_url(url), scrub(exc, url), hint))
    finally:
        if ca_path:
            os.remove(ca_path)


def _trust_file(ca):
    """A temporary PEM file with ``ca`` and the system's CA bundle: open_url's ca_path replaces the system's CAs."""
    handle, path = tempfile.mkstemp(prefix="velero-ca-", suffix=".pem")
    with os.fdopen(handle, "w") as out:
        out.write(ca.rstrip() + "\n")
        defaults = ssl.get_default_verify_paths()
        for system in (defaults.cafile, defaults.openssl_cafile):
            if system and os.path.isfile(system):
                with open(system) as bundle:
                    out.write(bundle.read())
                break
    return path


def storage_location_ca(kube, velero_ns, location):
    """PEM text of the CA bundle that Velero's own downloads trust for the signed URLs of a BackupStorageLocation,
    or None (v1.18.1 pkg/cmd/util/cacert/bsl_cacert.go GetCACertFromBSL): the Secret key that
    spec.objectStorage.caCertRef names first, else the inline caCert (deprecated). ``location`` None or {} (not
    found, not readable) has none, as in Velero."""
    storage = ((location or {}).get("spec") or {}).get("objectStorage") or {}
    ref = storage.get("caCertRef")
    if ref:
        return _secret_ca(kube, velero_ns, location["metadata"]["name"], ref)
    if storage.get("caCert"):
        return _pem(storage["caCert"], "spec.objectStorage.caCert of BackupStorageLocation %s/%s"
                    % (velero_ns, location["metadata"]["name"]))
    return None


def _secret_ca(kube, velero_ns, location_name, ref):
    where = "the Secret %s/%s that caCertRef of BackupStorageLocation %s names" % (
        velero_ns, ref.get("name"), location_name)
    if not ref.get("key"):
        raise DataRestoreError("caCertRef of BackupStorageLocation %s/%s has no key" % (velero_ns, location_name))
    try:
        secret = kube.get(k.SECRET, ref.get("name"), velero_ns)
    except ForbiddenError:
        raise DataRestoreError(
            "cannot read %s (its CA certificate bundle, trusted for the volume-info download): grant get on that "
            "Secret (optional Role velero-data-restore-storage-ca of docs/rbac.yml)" % where)
    if secret is None:
        raise DataRestoreError("%s does not exist" % where)
    data = (secret.get("data") or {}).get(ref["key"])
    if data is None:
        raise DataRestoreError("%s has no key %s" % (where, ref["key"]))
    return _pem(data, "key %s of %s" % (ref["key"], where))


def _pem(encoded, where):
    """The text of a base64 field ([]byte in Velero's types, data in a Secret)."""
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise DataRestoreError("%s is not base64-encoded PEM text" % where)


def decode_volume_info(data):
    """The BackupVolumeInfo list from the (gzip) JSON document."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    doc = json.loads(data.decode("utf-8"))
    if not isinstance(doc, list):
        raise DataRestoreError("the volume info document is not a JSON list")
    return doc


def download_request_body(velero_ns, backup_name):
    prefix = names.sanitize(backup_name)[:40].rstrip("-")
    return {
        "apiVersion": k.DOWNLOAD_REQUEST.api_version,
        "kind": k.DOWNLOAD_REQUEST.kind,
        "metadata": {
            "generateName": "%s-volumeinfo-" % prefix,
            "namespace": velero_ns,
            "labels": {names.LABEL_MANAGED_BY: names.MANAGED_BY, names.LABEL_ROLE: "volume-info"},
        },
        "spec": {"target": {"kind": v.DOWNLOAD_TARGET_VOLUME_INFO, "name": backup_name}},
    }


def read_volume_info(kube, velero_ns, backup_name, timeout=VOLUME_INFO_TIMEOUT, fetch=None, ca=None):
    """Entries of ``<backup>-volumeinfo.json.gz``. ``fetch(url, ca=None)`` downloads (http_get; ``ca``: the storage
    location's CA bundle, storage_location_ca).

    Creates a DownloadRequest in the Velero namespace (contract §7.1), waits (watch) until
    Velero sets ``status.phase=Processed`` and the URL, downloads and decodes the document, and
    deletes the request. Raises VolumeInfoAbsent (404) or DataRestoreError with a redacted message.
    """
    fetch = fetch or http_get
    try:
        request = kube.create(k.DOWNLOAD_REQUEST, download_request_body(velero_ns, backup_name), velero_ns)
    except MissingApiError:
        raise DataRestoreError("volume info not read: the cluster does not serve DownloadRequests")
    except ApiError as exc:
        raise DataRestoreError("volume info not read: cannot create a DownloadRequest (%s)" % exc.msg)
    req_name = request["metadata"]["name"]
    try:
        def processed(objects):
            for obj in objects:
                status = obj.get("status") or {}
                if status.get("phase") == v.DOWNLOAD_PROCESSED and status.get("downloadURL"):
                    return WaitState(True)
            return WaitState(False, pending=["DownloadRequest %s/%s" % (velero_ns, req_name)])

        try:
            # The watch starts from the created object: no LIST (Velero answers within a second or so).
            objects = wait_for(kube, k.DOWNLOAD_REQUEST, processed, namespace=velero_ns,
                               field_selector="metadata.name=%s" % req_name, timeout=timeout,
                               what="DownloadRequest %s/%s" % (velero_ns, req_name),
                               initial=([request], (request.get("metadata") or {}).get("resourceVersion")))
        except WaitTimeout:
            raise DataRestoreError(
                "volume info not read: Velero did not process DownloadRequest %s/%s within %ss (is the "
                "Velero server running, and BackupStorageLocation of the backup present?)"
                % (velero_ns, req_name, timeout))
        url = [o["status"]["downloadURL"] for o in objects
               if (o.get("status") or {}).get("downloadURL")][0]
        try:
            data = fetch(url, ca=ca)
        except VolumeInfoAbsent:
            raise VolumeInfoAbsent(
                "backup %s has no volume info document (HTTP 404: made before Velero v1.13, which wrote none, or its "
                "files were removed from object storage - then its snapshots may be gone too)" % backup_name)
        except DataRestoreError as exc:
            raise DataRestoreError("volume info not read: %s" % scrub(exc.msg, url))
        try:
            return decode_volume_info(data)
        except (ValueError, OSError, EOFError) as exc:
            raise DataRestoreError("volume info of backup %s is not gzip JSON: %s" % (backup_name, exc))
    finally:
        try:
            kube.delete(k.DOWNLOAD_REQUEST, req_name, velero_ns)
        except ApiError:
            pass  # Velero deletes expired requests itself (contract §1.8)
