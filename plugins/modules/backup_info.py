#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: backup_info
short_description: Find Velero backups and describe how each of their volumes can be restored data-only
version_added: 0.1.0
description:
  - Lists the Velero Backups of O(velero_namespace) that match the filters, newest first (by
    C(status.startTimestamp), which backup sync keeps, else the creation time).
  - For the selected backups it returns one record per backed-up volume - how it was backed up
    (file-system backup, data mover, CSI or native snapshot, skipped), its snapshot id and size, uploader,
    data mover, source namespace, claim and volume - and by which restore modes it can be restored, or why not.
  - Volume records come from the backup's volume info document (C(<backup>-volumeinfo.json.gz)), read
    through a Velero DownloadRequest, so they cover snapshots and data-mover volumes even in a new cluster where
    Velero only synced the Backups and PodVolumeBackups. The DownloadRequest is deleted afterwards and its
    pre-signed URL is never shown.
  - The download trusts the CA bundle of the backup's BackupStorageLocation next to the system's CAs, as Velero's
    own downloads do (object storage such as MinIO or Ceph with a private CA) - the Secret key that
    C(spec.objectStorage.caCertRef) names (which needs the optional Role C(velero-data-restore-storage-ca) of
    C(docs/rbac.yml)), else the inline C(caCert).
  - The backup's PodVolumeBackups are listed as well - Velero leaves a file-system volume out of the document when
    its pod was gone at the end of the backup or the backup did not include its PersistentVolume - and one whose
    claim the document lacks gives a record too (C(origin=podvolumebackup)), with a warning.
  - For a backup with C(snapshotMoveData) the DataUploads are listed too, since Velero leaves a data-mover volume
    out of the document when the backup did not include its PersistentVolume (for example with
    C(includeClusterResources=false)). One whose claim the document lacks gives a record (C(origin=dataupload)),
    with a warning. DataUploads exist only in the cluster that made the backup.
  - When the document is absent (backups made before Velero v1.13) or Velero does not answer within
    O(volume_info_timeout), the records are built from the PodVolumeBackup and DataUpload objects of the
    backup and a warning says so.
  - PodVolumeBackups and DataUploads are found by the backup's name label; one whose C(velero.io/backup-uid) label
    or Backup owner names another UID belongs to an earlier backup of that name (deleted and created again) and is
    left out, with a warning. Backup sync gives synced objects the new Backup's UID, so they are kept.
  - Backups are listed page by page, with the schedule and label filters applied by the API server; volume
    records are read only for the backups returned.
author:
  - velero.data_restore contributors (@velero-data-restore)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - velero.data_restore.common
attributes:
  check_mode:
    support: full
    description:
      - Runs the same way in check mode. Reading a backup's volume info creates a DownloadRequest and deletes it
        once read, in check mode too (Velero serves the volume info only that way); nothing else is written.
  diff_mode:
    support: none
    description: Nothing is changed, so there is no diff.
options:
  name:
    description:
      - Name of one backup. With a name, O(phases) defaults to every phase, so a backup still in progress
        is returned (with its phase) instead of nothing.
    type: str
  latest:
    description:
      - Return only the newest backup that matches the other filters.
      - With O(namespace) and O(volumes), the newest one that holds a volume of that namespace. A backup of every
        namespace includes it by spec, yet its label selector or resource filters may have left its volumes out;
        such newer backups are skipped with a warning (the 5 newest are looked into, one volume-info read each).
      - A backup whose C(status.expiration) has passed is returned with a warning (Velero deletes it soon).
    type: bool
    default: false
  schedule:
    description: Only backups made by this Velero Schedule (label C(velero.io/schedule-name)).
    type: str
  label_selectors:
    description:
      - Kubernetes label selectors on the Backup objects, combined with AND (for example V(team=payments)).
    type: list
    elements: str
  namespace:
    description:
      - Only backups that include this namespace. Empty C(includedNamespaces) or V(*) include every
        namespace; glob patterns are honoured; C(excludedNamespaces) win.
    type: str
  phases:
    description:
      - Only backups in these phases.
      - Defaults to V(Completed), or to every phase when O(name) is given.
    type: list
    elements: str
  created_after:
    description: Only backups started at or after this ISO 8601 date or time (for example V(2026-11-24T22:00:00Z)).
    type: str
  created_before:
    description: Only backups started before this ISO 8601 date or time.
    type: str
  volumes:
    description:
      - Whether to read the volume records of the returned backups (one DownloadRequest per backup, for Velero's
        volume info, and one LIST of its PodVolumeBackups; DataUploads are listed too when it names data-mover
        volumes, or when a backup has no volume info).
      - Defaults to V(true) with O(name) or O(latest), else V(false).
    type: bool
  volume_info_timeout:
    description:
      - Seconds to wait for Velero to process the DownloadRequest of the volume info document before
        falling back to the PodVolumeBackup and DataUpload objects.
    type: int
    default: 30
notes:
  - Needs get/list on C(backups), list on C(podvolumebackups) and C(datauploads), and create/watch/delete on
    C(downloadrequests) (list only after a broken watch) in O(velero_namespace), as docs/rbac.yml lists them.
    Without permission on DownloadRequests the module falls back to the custom resources and warns.
"""

EXAMPLES = r"""
- name: The newest completed backup of the nightly schedule, with its volumes
  velero.data_restore.backup_info:
    schedule: nightly
    latest: true
  register: found

- name: Show how each volume can be restored
  ansible.builtin.debug:
    msg: "{{ item.source_pvc }}: {{ item.method }} {{ item.restorable_by | join(',') or item.reason }}"
  loop: "{{ found.backups[0].volumes }}"

- name: Completed backups of namespace shop from last week, without volumes
  velero.data_restore.backup_info:
    namespace: shop
    created_after: "2026-11-17"
    created_before: "2026-11-24"

- name: One backup by name (any phase)
  velero.data_restore.backup_info:
    name: shop-20261124
    velero_namespace: openshift-adp
"""

RETURN = r"""
backups:
  description: The matching backups, newest first.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Backup name.
      returned: always
      type: str
      sample: nightly-20261124220000
    namespace:
      description: Namespace of the Backup object (O(velero_namespace)).
      returned: always
      type: str
      sample: velero
    uid:
      description: Backup UID (it changes when Velero syncs the backup into another cluster).
      returned: always
      type: str
      sample: 0f8c2a4e-5b1d-4c8e-9a63-2d7f1e0b9c41
    phase:
      description: Backup phase (V(New) when the Backup has no status yet).
      returned: always
      type: str
      sample: Completed
    created:
      description: Creation time of the Backup object.
      returned: always
      type: str
      sample: "2026-11-24T22:00:01Z"
    started:
      description: C(status.startTimestamp); null before Velero started the backup.
      returned: always
      type: str
      sample: "2026-11-24T22:00:01Z"
    completed:
      description: C(status.completionTimestamp); null until the backup finished.
      returned: always
      type: str
      sample: "2026-11-24T22:03:17Z"
    expiration:
      description: C(status.expiration), when Velero garbage-collects the backup.
      returned: always
      type: str
      sample: "2026-12-24T22:00:01Z"
    storage_location:
      description:
        - Name of the BackupStorageLocation in this cluster (C(spec.storageLocation), else the
          C(velero.io/storage-location) label).
      returned: always
      type: str
      sample: default
    included_namespaces:
      description: C(spec.includedNamespaces) (empty means all).
      returned: always
      type: list
      elements: str
      sample: ["shop"]
    excluded_namespaces:
      description: C(spec.excludedNamespaces).
      returned: always
      type: list
      elements: str
      sample: []
    labels:
      description: Labels of the Backup.
      returned: always
      type: dict
      sample: {"velero.io/schedule-name": "nightly", "velero.io/storage-location": "default"}
    schedule:
      description: Schedule that made the backup (label C(velero.io/schedule-name)); null if none.
      returned: always
      type: str
      sample: nightly
    snapshot_move_data:
      description: Whether CSI snapshots were moved to the backup storage by the data mover (C(spec.snapshotMoveData)).
      returned: always
      type: bool
      sample: false
    data_mover:
      description: C(spec.datamover), the data mover asked for; empty for Velero's built-in one.
      returned: always
      type: str
      sample: ""
    default_volumes_to_fs_backup:
      description:
        - C(spec.defaultVolumesToFsBackup); null when the Backup does not set it (the Velero server's default
          applied).
      returned: always
      type: bool
      sample: true
    csi_snapshot_timeout:
      description: C(spec.csiSnapshotTimeout) (default V(10m0s)); the DataDownload operation timeout.
      returned: always
      type: str
      sample: 10m0s
    errors:
      description: C(status.errors), the number of errors Velero counted in the backup (0 when unset).
      returned: always
      type: int
      sample: 0
    warnings_count:
      description:
        - C(status.warnings), the number of warnings Velero counted in the backup (0 when unset).
        - Not the same as RV(backups[].warnings), this module's notes about the volume records.
      returned: always
      type: int
      sample: 0
    failure_reason:
      description: C(status.failureReason); null unless Velero set one (a failed backup).
      returned: always
      type: str
      sample: null
    volume_source:
      description:
        - Where the volume records came from, V(volume_info) or V(custom_resources).
        - With V(volume_info), records of volumes the document left out come from PodVolumeBackups (their
          C(origin) is V(podvolumebackup)).
      returned: when O(volumes) is true
      type: str
      sample: volume_info
    warnings:
      description:
        - Why volume records may be incomplete or were left out (no volume info document, a DownloadRequest Velero
          did not answer, records built from the custom resources, PodVolumeBackups or DataUploads of an earlier
          backup of the same name); empty when none. The module also shows them as warnings, prefixed with the
          backup name.
      returned: when O(volumes) is true
      type: list
      elements: str
      sample: []
    volumes:
      description:
        - Volume records, sorted by source namespace, claim, pod and pod volume.
        - Absent when O(volumes) is false (a list of thousands of backups is then a sixth smaller).
        - Every record has every key below; the ones that do not apply to its method are null.
      returned: when O(volumes) is true
      type: list
      elements: dict
      contains:
        source_namespace:
          description: Namespace of the claim at backup time (the key of Velero's repository).
          returned: always
          type: str
          sample: shop
        source_pvc:
          description: Claim name at backup time (null for pod volumes that are not claims).
          returned: always
          type: str
          sample: data-db-0
        source_pv:
          description: Volume name at backup time (from the volume info only, else null).
          returned: always
          type: str
          sample: pvc-6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d
        pod_namespace:
          description: Namespace of the pod that mounted the volume (file-system backups), else null.
          returned: always
          type: str
          sample: shop
        pod_name:
          description: Pod that mounted the volume (file-system backups), else null.
          returned: always
          type: str
          sample: db-0
        pod_volume:
          description: Pod volume name (file-system backups), else null.
          returned: always
          type: str
          sample: data
        method:
          description: V(fs), V(data_mover), V(csi_snapshot), V(native_snapshot), V(skipped) or V(unknown).
          returned: always
          type: str
          sample: fs
        snapshot_id:
          description:
            - Kopia snapshot id of V(fs) and V(data_mover) volumes (C(snapshotHandle) of the volume info, or
              C(status.snapshotID) of the PodVolumeBackup or DataUpload); the snapshot handle of V(csi_snapshot)
              and V(native_snapshot) volumes; null when there is none.
          returned: always
          type: str
          sample: 7d3c9e0a1b2f4c5d6e7f8091a2b3c4d5
        snapshot_size:
          description: Bytes backed up, or null.
          returned: always
          type: int
          sample: 1073741824
        uploader_type:
          description:
            - V(kopia) (or V(restic) for old backups, which cannot be restored) for V(fs) and V(data_mover)
              volumes; null for the other methods.
            - A file-system backup that does not record it (a PodVolumeBackup from before Velero 1.10) is
              V(restic), as Velero reads it (C(getUploaderTypeOrDefault)).
          returned: always
          type: str
          sample: kopia
        data_mover:
          description:
            - Data mover of a V(data_mover) volume (V(velero) or empty for the built-in one); null for the other
              methods.
          returned: always
          type: str
          sample: ""
        backup_storage_location:
          description:
            - BackupStorageLocation the data is in (the backup's C(spec.storageLocation), else that of the
              PodVolumeBackup or DataUpload).
          returned: always
          type: str
          sample: default
        volume_mode:
          description:
            - V(Filesystem) for V(fs) volumes (Block volumes are never file-system backed up); null for the other
              methods, whose volume info and DataUploads do not record it. For a data-mover volume restore_plan
              reads it from the source PersistentVolume (RV(backups[].volumes[].source_pv)) while that exists,
              and refuses a target claim of another volume mode; else it warns and takes the target claim's.
          returned: always
          type: str
          sample: Filesystem
        storage_class:
          description:
            - StorageClass of the source claim, from C(spec.csiSnapshot.storageClass) of the volume's DataUpload
              (V(data_mover) volumes, in the cluster the backup was made in); null otherwise.
          returned: always
          type: str
          sample: standard
        node_os:
          description: C(status.nodeOS) of the DataUpload when it still exists, else empty.
          returned: always
          type: str
          sample: linux
        operation_timeout:
          description:
            - Timeout for a DataDownload of the volume - the DataUpload's C(spec.operationTimeout) when the record
              was built from it, else the backup's C(spec.csiSnapshotTimeout), else V(10m0s).
          returned: always
          type: str
          sample: 10m0s
        phase:
          description:
            - Phase of the volume's backup as Velero recorded it (PodVolumeBackup, DataUpload or native snapshot
              phase; V(New) for a PodVolumeBackup or DataUpload without status); null for CSI snapshots, skipped
              volumes and when the volume info has none. A phase other than V(Completed) makes the volume unrestorable.
          returned: always
          type: str
          sample: Completed
        result:
          description:
            - C(result) of the volume info entry (V(succeeded) or V(failed)); null for records built from the
              custom resources. V(failed) makes the volume unrestorable.
          returned: always
          type: str
          sample: succeeded
        skipped_reason:
          description: Why Velero skipped the volume (V(skipped) volumes, from the volume info), else null.
          returned: always
          type: str
          sample: null
        origin:
          description: Where the record came from, V(volume_info), V(podvolumebackup) or V(dataupload).
          returned: always
          type: str
          sample: volume_info
        restorable_by:
          description: Restore modes that can restore the volume (V(in_place), V(replace)); empty when none.
          returned: always
          type: list
          elements: str
          sample: ["in_place", "replace"]
        reason:
          description: Why the volume cannot be restored, or the restriction on its modes; null otherwise.
          returned: always
          type: str
          sample: null
"""

from ansible_collections.velero.data_restore.plugins.module_utils import backups
from ansible_collections.velero.data_restore.plugins.module_utils.module import run_module


def run(module, kube):
    p = module.params
    result = backups.find(
        kube, p["velero_namespace"], name=p["name"], latest=p["latest"], schedule=p["schedule"],
        label_selectors=p["label_selectors"], namespace=p["namespace"], phases=p["phases"],
        created_before=p["created_before"], created_after=p["created_after"], volumes=p["volumes"],
        volume_info_timeout=p["volume_info_timeout"])
    for warning in result["warnings"]:
        module.warn(warning)
    return dict(changed=False, backups=result["backups"])


def main():
    run_module(
        dict(
            name=dict(type="str"),
            latest=dict(type="bool", default=False),
            schedule=dict(type="str"),
            label_selectors=dict(type="list", elements="str"),
            namespace=dict(type="str"),
            phases=dict(type="list", elements="str"),
            created_after=dict(type="str"),
            created_before=dict(type="str"),
            volumes=dict(type="bool"),
            volume_info_timeout=dict(type="int", default=30),
        ),
        run,
    )


if __name__ == "__main__":
    main()
