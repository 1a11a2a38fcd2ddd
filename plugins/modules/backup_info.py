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
    through a Velero DownloadRequest, so they are complete even in a new cluster where Velero only synced the
    Backups and PodVolumeBackups. The DownloadRequest is deleted afterwards and its pre-signed URL is never
    shown.
  - When the document is absent (backups made before Velero v1.13) or Velero does not answer within
    O(volume_info_timeout), the records are built from the PodVolumeBackup and DataUpload objects of the
    backup and a warning says so.
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
    description: Runs the same way in check mode; it changes nothing (the transient DownloadRequest is removed).
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
    description: Return only the newest backup that matches the other filters.
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
      - Whether to read the volume records of the returned backups (one PodVolumeBackup list and one
        DownloadRequest per backup).
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
      type: str
      sample: nightly-20261124220000
    uid:
      description: Backup UID (it changes when Velero syncs the backup into another cluster).
      type: str
    phase:
      description: Backup phase.
      type: str
      sample: Completed
    created:
      description: Creation time of the Backup object.
      type: str
    started:
      description: C(status.startTimestamp).
      type: str
    completed:
      description: C(status.completionTimestamp).
      type: str
    expiration:
      description: When Velero garbage-collects the backup.
      type: str
    storage_location:
      description: Name of the BackupStorageLocation in this cluster.
      type: str
      sample: default
    included_namespaces:
      description: C(spec.includedNamespaces) (empty means all).
      type: list
      elements: str
    excluded_namespaces:
      description: C(spec.excludedNamespaces).
      type: list
      elements: str
    labels:
      description: Labels of the Backup.
      type: dict
    schedule:
      description: Schedule that made the backup, if any.
      type: str
    snapshot_move_data:
      description: Whether CSI snapshots were moved to the backup storage by the data mover.
      type: bool
    csi_snapshot_timeout:
      description: C(spec.csiSnapshotTimeout) (default V(10m0s)); the DataDownload operation timeout.
      type: str
    volume_source:
      description: Where the volume records came from, V(volume_info) or V(custom_resources).
      returned: when O(volumes) is true
      type: str
    warnings:
      description: Why volume records may be incomplete.
      returned: when O(volumes) is true
      type: list
      elements: str
    volumes:
      description:
        - Volume records.
        - Absent when O(volumes) is false (a list of thousands of backups is then a sixth smaller).
      returned: when O(volumes) is true
      type: list
      elements: dict
      contains:
        source_namespace:
          description: Namespace of the claim at backup time (the key of Velero's repository).
          type: str
        source_pvc:
          description: Claim name at backup time (null for pod volumes that are not claims).
          type: str
        source_pv:
          description: Volume name at backup time (from the volume info only).
          type: str
        pod_name:
          description: Pod that mounted the volume (file-system backups).
          type: str
        pod_volume:
          description: Pod volume name (file-system backups).
          type: str
        method:
          description: V(fs), V(data_mover), V(csi_snapshot), V(native_snapshot), V(skipped) or V(unknown).
          type: str
        snapshot_id:
          description: Kopia snapshot id (PodVolumeBackup or DataUpload C(status.snapshotID)).
          type: str
        snapshot_size:
          description: Bytes backed up, or null.
          type: int
        uploader_type:
          description: V(kopia) (or V(restic) for old backups, which cannot be restored).
          type: str
        data_mover:
          description: Data mover of a data-mover volume (V(velero) or empty for the built-in one).
          type: str
        node_os:
          description: C(status.nodeOS) of the DataUpload when it still exists, else empty.
          type: str
        restorable_by:
          description: Restore modes that can restore the volume (V(in_place), V(replace)); empty when none.
          type: list
          elements: str
        reason:
          description: Why the volume cannot be restored, or the restriction on its modes; null otherwise.
          type: str
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
