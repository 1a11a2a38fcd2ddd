# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Velero's names, phases and API facts, and detection of what the installed CRDs support.

Sources are cited against docs/velero-contract.md (shared design doc) by section.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import re

from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils.errors import (
    ForbiddenError,
    MissingApiError,
)

# -- labels and annotations Velero writes or reads (contract §1.2, §1.3, §1.5, §2, §3) ----------
LABEL_BACKUP_NAME = "velero.io/backup-name"
LABEL_BACKUP_UID = "velero.io/backup-uid"
LABEL_PVC_UID = "velero.io/pvc-uid"
LABEL_SCHEDULE_NAME = "velero.io/schedule-name"
LABEL_STORAGE_LOCATION = "velero.io/storage-location"
LABEL_POD_UID = "velero.io/pod-uid"
LABEL_DYNAMIC_PV_RESTORE = "velero.io/dynamic-pv-restore"
# The label of the data path pod the node-agent creates for a PodVolumeRestore / DataDownload, named after the CR
# (v1.18.1 pkg/apis/velero/v1/labels_annotations.go PVRLabel, DataDownloadLabel; pkg/exposer createHostingPod,
# createRestorePod).
LABEL_PVR_POD = "velero.io/pod-volume-restore"
LABEL_DATA_DOWNLOAD_POD = "velero.io/data-download"
ANNOTATION_PVC_NAME = "velero.io/pvc-name"
ANNOTATION_DATA_UPLOAD_NAME = "velero.io/data-upload-name"

# -- Backup phases (contract §1.2) ---------------------------------------------------------------
BACKUP_NEW = "New"
BACKUP_QUEUED = "Queued"
BACKUP_READY_TO_START = "ReadyToStart"
BACKUP_FAILED_VALIDATION = "FailedValidation"
BACKUP_IN_PROGRESS = "InProgress"
BACKUP_WAITING_FOR_PLUGIN_OPERATIONS = "WaitingForPluginOperations"
BACKUP_WAITING_FOR_PLUGIN_OPERATIONS_PARTIALLY_FAILED = "WaitingForPluginOperationsPartiallyFailed"
BACKUP_FINALIZING = "Finalizing"
BACKUP_FINALIZING_PARTIALLY_FAILED = "FinalizingPartiallyFailed"
BACKUP_COMPLETED = "Completed"
BACKUP_PARTIALLY_FAILED = "PartiallyFailed"
BACKUP_FAILED = "Failed"
BACKUP_DELETING = "Deleting"
BACKUP_PHASES = (
    BACKUP_NEW, BACKUP_QUEUED, BACKUP_READY_TO_START, BACKUP_FAILED_VALIDATION, BACKUP_IN_PROGRESS,
    BACKUP_WAITING_FOR_PLUGIN_OPERATIONS, BACKUP_WAITING_FOR_PLUGIN_OPERATIONS_PARTIALLY_FAILED,
    BACKUP_FINALIZING, BACKUP_FINALIZING_PARTIALLY_FAILED, BACKUP_COMPLETED, BACKUP_PARTIALLY_FAILED,
    BACKUP_FAILED, BACKUP_DELETING,
)

# -- PodVolumeBackup / DataUpload / PodVolumeRestore / DataDownload phases (contract §1.3-§1.6) --
PHASE_NEW = "New"
PHASE_ACCEPTED = "Accepted"
PHASE_PREPARED = "Prepared"
PHASE_IN_PROGRESS = "InProgress"
PHASE_CANCELING = "Canceling"
PHASE_CANCELED = "Canceled"
PHASE_COMPLETED = "Completed"
PHASE_FAILED = "Failed"
DATA_PATH_FINAL_PHASES = (PHASE_CANCELED, PHASE_COMPLETED, PHASE_FAILED)

# -- DownloadRequest (contract §1.8) ---------------------------------------------------------------
DOWNLOAD_PROCESSED = "Processed"
DOWNLOAD_TARGET_VOLUME_INFO = "BackupVolumeInfos"

# -- BackupStorageLocation (contract §1.9) ---------------------------------------------------------
BSL_AVAILABLE = "Available"
BSL_UNAVAILABLE = "Unavailable"

# -- uploaders and data movers (contract §1.4, §1.6, §7.2, §7.12) ---------------------------------
UPLOADER_KOPIA = "kopia"
UPLOADER_RESTIC = "restic"


def pod_volume_uploader(uploader_type):
    """The uploader of a file-system (PodVolumeBackup) snapshot: an empty uploaderType is restic - backups from
    before Velero 1.10 have none - as Velero's restore reads it (getUploaderTypeOrDefault, pkg/podvolume/util.go).
    (velero-contract.md §4 says "PVB uploaderType or kopia"; Velero's source wins.) Velero's main branch after
    v1.18.1 (da3e7cf, "Remove Restic code path from PodVolumeRestore") defaults it to kopia and ignores PVRs of any
    other uploader, but such a snapshot was still written by restic, so it stays restic here."""
    return uploader_type or UPLOADER_RESTIC


BUILTIN_DATA_MOVERS = ("", "velero")
# Backup spec.csiSnapshotTimeout default, used as DataDownload operationTimeout (contract §4).
DEFAULT_CSI_SNAPSHOT_TIMEOUT = "10m0s"

# volumeinfo backupMethod values (contract §5)
VI_POD_VOLUME_BACKUP = "PodVolumeBackup"
VI_CSI_SNAPSHOT = "CSISnapshot"
VI_NATIVE_SNAPSHOT = "NativeSnapshot"

# k8s.io/apimachinery validation.DNS1035LabelMaxLength, used by Velero's GetValidName.
DNS1035_LABEL_MAX_LENGTH = 63
_VALID_NAME_HASH_CHARS = 6

# Kinds whose absence means "Velero is not installed" for the info/plan modules.
CORE_KINDS = (k.BACKUP, k.POD_VOLUME_BACKUP, k.BACKUP_STORAGE_LOCATION, k.DOWNLOAD_REQUEST)


def get_valid_name(label):
    """Velero's ``label.GetValidName`` (pkg/label/label.go): the value Velero stores in a label.

    A value of at most 63 characters is returned unchanged. A longer one keeps its first 57
    characters followed by the first 6 hex digits of the SHA-256 of the whole value.
    """
    label = label or ""
    if len(label) <= DNS1035_LABEL_MAX_LENGTH:
        return label
    digest = hashlib.sha256(label.encode("utf-8")).hexdigest()
    return label[:DNS1035_LABEL_MAX_LENGTH - _VALID_NAME_HASH_CHARS] + digest[:_VALID_NAME_HASH_CHARS]


def data_path_settings(settings):
    """PVR uploaderSettings / DD dataMoverConfig: a map of strings, booleans as "true"/"false"
    (pkg/uploader/util/uploader_config.go StoreRestoreConfig, contract §1.4)."""
    return dict((key, str(value).lower() if isinstance(value, bool) else str(value))
                for key, value in (settings or {}).items())


# What kopia's restore parses (pkg/uploader/util/uploader_config.go): GetWriteSparseFiles with Go's strconv.ParseBool,
# GetRestoreConcurrency with strconv.Atoi. A value they refuse fails the restore only after the data path was exposed.
GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")
GO_BOOLS = GO_TRUE + GO_FALSE
_GO_INT = re.compile(r"^[+-]?[0-9]+$")


def go_int(value):
    """``value`` read as Go's strconv.Atoi / ParseInt(s, 10, 64) would: an int, or None where Go fails."""
    value = str(value)
    if not _GO_INT.match(value) or abs(int(value)) >= 2 ** 63:
        return None
    return int(value)


def data_path_setting_problems(settings, option):
    """Messages for the values of ``settings`` (an uploaderSettings / dataMoverConfig map) that Velero's restore
    refuses; ``option`` names the module option."""
    problems = []
    for key, value in sorted(data_path_settings(settings).items()):
        if key == "WriteSparseFiles" and value not in GO_BOOLS:
            problems.append("%s.WriteSparseFiles is %r; Velero parses it as a boolean (true or false)." % (option, value))
        elif key == "ParallelFilesDownload" and go_int(value) is None:
            problems.append("%s.ParallelFilesDownload is %r; Velero parses it as a whole number (0 or less: one "
                            "per CPU of the node)." % (option, value))
    return problems


def backup_selector(backup_name):
    """Label selector of the PodVolumeBackups/DataUploads of a backup (contract §7.17: by name)."""
    return "%s=%s" % (LABEL_BACKUP_NAME, get_valid_name(backup_name))


def phase_of(obj):
    return ((obj or {}).get("status") or {}).get("phase") or ""


def require_velero(kube, kinds=CORE_KINDS):
    """Raise MissingApiError naming every Velero kind the cluster does not serve."""
    missing = [kind for kind in kinds if not kube.has_api(kind)]
    if missing:
        raise MissingApiError(
            "Velero's CRDs are not installed in this cluster: it does not serve %s. Install Velero "
            "(v1.16 or newer, with its node-agent) or point the connection options (kubeconfig, "
            "context, host) at the cluster where Velero runs."
            % ", ".join("%s (%s)" % (kind.kind, kind.api_version) for kind in missing),
            missing=[kind.kind for kind in missing])


# -- CRD field-support detection (contract §7.18) --------------------------------------------------
_CACHE_ATTR = "_velero_crd_schemas"


def crd_name(kind):
    return "%s.%s" % (kind.plural, k.api_group(kind))


def crd_schema(kube, kind):
    """openAPIV3Schema of ``kind``'s served version from its installed CRD.

    Returns None when the CRD cannot be read (no permission on customresourcedefinitions):
    callers then treat field support as unknown. Raises MissingApiError when the CRD is absent.
    """
    cache = getattr(kube, _CACHE_ATTR, None)
    if cache is None:
        cache = {}
        try:
            setattr(kube, _CACHE_ATTR, cache)
        except AttributeError:
            pass
    if kind in cache:
        return cache[kind]
    try:
        crd = kube.get(k.CRD, crd_name(kind))
    except ForbiddenError:
        cache[kind] = None
        return None
    if crd is None:
        raise MissingApiError(
            "CustomResourceDefinition %s is not installed: Velero is missing or too old in this "
            "cluster. Install Velero (v1.16 or newer)." % crd_name(kind), kind=kind.kind)
    version = kind.api_version.split("/")[-1]
    schema = None
    for entry in (crd.get("spec") or {}).get("versions") or []:
        if entry.get("name") == version:
            schema = ((entry.get("schema") or {}).get("openAPIV3Schema")) or {}
            break
    if schema is None:
        raise MissingApiError(
            "CustomResourceDefinition %s does not serve version %s: the installed Velero is too old "
            "or too new for this collection. Install Velero v1.16 or newer."
            % (crd_name(kind), version), kind=kind.kind)
    cache[kind] = schema
    return schema


def schema_has_field(schema, path):
    """True when the dotted ``path`` (e.g. ``spec.snapshotSize``) is declared in ``schema``."""
    node = schema
    for part in path.split("."):
        if not isinstance(node, dict):
            return False
        if node.get("x-kubernetes-preserve-unknown-fields") and part not in (node.get("properties") or {}):
            return True
        props = node.get("properties") or {}
        if part not in props:
            return False
        node = props[part]
    return True


def field_supported(kube, kind, path):
    """Whether the installed CRD of ``kind`` has field ``path``: True, False, or None (unknown).

    Older CRDs prune unknown fields silently (e.g. PodVolumeRestore ``spec.snapshotSize`` before
    v1.18, ``spec.cancel`` before v1.17), so a module checks before relying on one.
    """
    schema = crd_schema(kube, kind)
    if schema is None:
        return None
    return schema_has_field(schema, path)
