#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: data_download
short_description: Restore data-mover snapshots into new PVCs with Velero DataDownloads
version_added: 0.1.0
description:
  - For volume records with C(restore_via=data_download) (replace mode, Filesystem or Block), creates the new
    target PVC C(new_pvc) UNBOUND with a unique C(velero.io/dynamic-pv-restore) selector (set at creation, since
    selectors are immutable), or adopts an existing unbound one that carries such a selector.
  - Creates the Velero DataDownload in the Velero namespace, owned by the restore session, with
    C(targetVolume.pv=""), a non-zero C(operationTimeout), C(datamover) C("") or C(velero) and C(nodeOS) C("")
    / C(linux) / C(windows).
    C(snapshotSize) is sent too; a CRD older than Velero v1.18 prunes it, which is harmless
    (it only sizes the optional cache volume).
  - For WaitForFirstConsumer storage classes it creates a placeholder pod consuming the PVC, so the scheduler
    sets C(volume.kubernetes.io/selected-node); the placeholder is deleted after completion. It keeps to the nodes
    where a node-agent pod (label C(role=node-agent)) is Running, since only the node-agent of the selected node
    prepares the DataDownload; the original volume's topology and the DataDownload's node OS narrow it further.
  - Velero pins its restore pod to the node the placeholder picks (by the C(kubernetes.io/hostname) label) and gives
    it only the node-agent's tolerations of the keys C(kubernetes.azure.com/scalesetpriority) and
    C(CriticalAddonsOnly) (and C(os=windows) for Windows); a Pending restore pod fails the DataDownload only at the
    node-agent's prepare timeout (30 minutes). So the placeholder keeps off the nodes that pod cannot run on (a
    NoSchedule/NoExecute taint it does not tolerate, a hostname label that is not the node's name), and the run is
    refused before any change when no node is left. That check lists the Nodes (optional ClusterRole
    C(velero-data-restore-nodes) of C(docs/rbac.yml)); without that right the placeholder carries only the restore
    pod's tolerations, so the scheduler keeps it off such nodes, and O(tolerations) is not used.
  - Waits until every DataDownload is Completed and its PVC is Bound to the restored PV. Velero leaves a
    DataDownload InProgress forever when its rebind step fails, so the timeout says so and points at the
    node-agent logs.
author:
  - velero.data_restore contributors (@velero-data-restore)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - velero.data_restore.common
  - velero.data_restore.common.session_state
  - velero.data_restore.common.session
  - velero.data_restore.common.wait
attributes:
  check_mode:
    support: full
    description: Reports the PVCs, DataDownloads and placeholder pods that would be created.
  diff_mode:
    support: full
    description: Shows the objects created.
options:
  state:
    description:
      - V(present) creates PVCs, DataDownloads and placeholders and waits with O(wait).
      - V(absent) cancels (merge patch C(spec.cancel=true)) and deletes the DataDownloads, deletes the placeholder
        pods, and deletes the session's new PVCs that are still unbound (bound ones are kept and listed).
      - Waiting for the cancel of a DataDownload that is not final allows at least 390 seconds, whatever
        O(wait_timeout) says (Velero forces such a cancel at its first periodic check, every minute, after 5
        minutes).
    type: str
    choices: [present, absent]
    default: present
  volumes:
    description:
      - Volume records of the restore plan. Used keys are C(key), C(target_namespace), C(target_pvc), C(new_pvc)
        (C(name), C(storage_class), C(size), C(access_modes), C(volume_mode)), C(snapshot_id),
        C(source_namespace), C(backup_storage_location), C(method), C(data_mover), C(node_os),
        C(operation_timeout), C(snapshot_size), C(volume_mode) and C(restore_via).
    type: list
    elements: dict
  namespace:
    description: With O(state=absent) and no O(volumes), limit the cleanup of placeholders and PVCs to this namespace.
    type: str
  placeholder:
    description:
      - V(auto) creates a placeholder consumer pod only for WaitForFirstConsumer classes; V(always) or V(never)
        force it.
    type: str
    choices: [auto, always, never]
    default: auto
  image:
    description: Image of the placeholder pod (default the C(velero) Deployment's image).
    type: str
  node_selector:
    description: nodeSelector of the placeholder pods (decides the node for WaitForFirstConsumer volumes).
    type: dict
  tolerations:
    description:
      - Tolerations of the placeholder pods, next to those of Velero's restore pod. Used only when the Nodes can be
        listed (see the description); a node whose taints Velero's restore pod does not tolerate is left out
        whatever these say.
    type: list
    elements: dict
  data_mover_config:
    description:
      - Velero data mover settings, C(WriteSparseFiles) and C(ParallelFilesDownload). Values kopia would refuse
        (Go's C(strconv.ParseBool) and C(strconv.Atoi)) are refused before any change.
    type: dict
  retry_failed:
    description: Delete Failed or Canceled DataDownloads of these volumes and create them again.
    type: bool
    default: false
  fail_fast:
    description: Fail as soon as one DataDownload fails.
    type: bool
    default: false
  fail_on_timeout:
    description:
      - With V(false), a timed-out wait returns RV(done=false) and the progress instead of failing - also when
        the DataDownloads completed but a target PVC is not Bound to its restored PV yet (wait another slice).
    type: bool
    default: true
  resume:
    description:
      - The RV(resume) value of the previous run of this module for the same session, whose wait timed out with
        O(fail_on_timeout=false) or which ran with O(wait=false). This run then starts from the DataDownloads as
        that run last saw them and its watch continues from there instead of listing them again (when they had all
        completed, it only waits for the PVCs to be Bound). When the API server no longer has that resourceVersion
        (HTTP 410), it lists them again.
      - A DataDownload that failed is then waited for with the others and reported when the wait ends (without
        O(resume), this run refuses at once, before any change, unless O(retry_failed)).
      - With O(retry_failed=true) the value is checked but not used. The DataDownloads are listed again, so that
        the ones that failed since are seen and created again.
      - The target PVCs, placeholder pods and the session are read again as in any run.
      - Anything else than that value fails before any request. Omit it in the first run.
    type: dict
"""

EXAMPLES = r"""
- name: Restore data-mover snapshots into new PVCs
  velero.data_restore.data_download:
    session: shop-rollback
    volumes: "{{ plan.volumes }}"
    wait_timeout: 3600

- name: Cancel them
  velero.data_restore.data_download:
    session: shop-rollback
    state: absent
"""

RETURN = r"""
done:
  description:
    - Whether every DataDownload completed and its PVC is Bound.
    - V(false) with O(wait=false) and after a timeout with O(fail_on_timeout=false).
    - In check mode, whether that holds already (nothing left to create).
  returned: state is present
  type: bool
  sample: true
progress:
  description:
    - Volumes completed and bytes done of total; after a timeout of the PVC wait, followed by the PVCs not Bound
      yet.
  returned: state is present, except in check mode
  type: str
  sample: 2/2 volumes completed, 2147483648/2147483648 bytes
actions:
  description: What this run created (or would create in check mode), one entry per object; empty when everything
    existed already.
  returned: state is present
  type: list
  elements: dict
  contains:
    key:
      description: Session volume key.
      type: str
      sample: shop/data-db-0
    action:
      description: V(create claim) (the new PVC), V(create datadownload) or V(create placeholder pod).
      type: str
      sample: create datadownload
  sample: [{"key": "shop/data-db-0", "action": "create claim"}, {"key": "shop/data-db-0", "action": "create datadownload"}]
volumes:
  description:
    - One entry per volume record with C(restore_via=data_download), sorted by DataDownload name.
    - Empty with O(state=absent).
    - In check mode the DataDownloads that do not exist yet are shown with phase V(New) and no progress.
  returned: always
  type: list
  elements: dict
  contains:
    key:
      description: Session volume key.
      type: str
      sample: shop/data-db-0
    name:
      description: DataDownload name.
      type: str
    phase:
      description: DataDownload phase (V(New) when it has no status yet).
      type: str
      sample: Completed
    bytes_done:
      description: Bytes restored.
      type: int
    total_bytes:
      description: Bytes to restore.
      type: int
    node:
      description: Node that ran the data path (C(status.node), else C(status.acceptedByNode)); null before that.
      type: str
    message:
      description: The node-agent's message (empty when none).
      type: str
    pvc:
      description: The new PVC (C(new_pvc.name) of the record).
      type: str
      sample: data-db-0-restored
    namespace:
      description: Its namespace.
      type: str
      sample: shop
    volume_mode:
      description:
        - Volume mode of the new PVC, V(Filesystem) or V(Block) - the existing PVC's C(spec.volumeMode), else
          C(new_pvc.volume_mode) or C(volume_mode) of the record, else V(Filesystem). The placeholder pod mounts
          (Filesystem) or attaches (Block) the PVC accordingly.
      type: str
      sample: Filesystem
    pv:
      description:
        - The restored PV the PVC is bound to (its C(spec.volumeName)); null while it is not bound.
        - Only once every DataDownload was final and the PVCs were checked (RV(done=true), or a timeout of the PVC
          wait with O(fail_on_timeout=false)).
      type: str
    pvc_phase:
      description:
        - C(status.phase) of the new PVC (V(Bound) when done); null when the PVC is missing.
        - Present when RV(volumes[].pv) is.
      type: str
      sample: Bound
    selector:
      description: Value of its C(velero.io/dynamic-pv-restore) selector label.
      type: str
    started:
      description: status.startTimestamp.
      type: str
    completed:
      description: status.completionTimestamp.
      type: str
    duration:
      description: Seconds from start to completion; null until both are set.
      type: int
pending:
  description:
    - What the wait was still waiting for - DataDownloads not final (C(<key> (<name>, <phase>, <done>/<total> bytes)),
      or C(<key> (<name>, gone))), or, once they were all final, PVCs not Bound to the restored PV yet
      (C(<namespace>/<pvc> (<phase>)), phase V(missing) when the PVC does not exist).
    - Also in the failure result of a timeout with O(fail_on_timeout=true), next to RV(volumes).
  returned: on timeout with O(fail_on_timeout=false)
  type: list
  elements: str
  sample: ["shop/data-db-0 (shop-rollback-shop-data-db-0-restored, InProgress, 1048576/2147483648 bytes)"]
resume:
  description:
    - Where the wait stopped, for O(resume) of the next run - the DataDownloads as the wait last saw them (spec,
      status, and name, uid, resourceVersion, labels, annotations, deletionTimestamp of the metadata) and the
      resourceVersion its watch had reached.
    - With O(wait=false), the DataDownloads as this run listed and created them, and the resourceVersion of its LIST
      (not when it had to delete one first).
  returned: on timeout with O(fail_on_timeout=false), and with O(wait=false)
  type: dict
  contains:
    resource_version:
      description: The resourceVersion the watch had reached.
      type: str
    objects:
      description: The DataDownloads.
      type: list
      elements: dict
hints:
  description:
    - Why pending DataDownloads (or PVCs not Bound yet) are stuck; may be empty.
    - With O(fail_on_timeout=true) the hints are part of the failure message instead.
  returned: on timeout with O(fail_on_timeout=false)
  type: list
  elements: str
placeholders_deleted:
  description:
    - Placeholder consumer pods deleted (C(<namespace>/<name>)).
    - With O(state=present), once every DataDownload completed and its PVC is Bound (RV(done=true)).
    - With O(state=absent), every placeholder pod of the session in the namespaces of O(volumes) (else in
      O(namespace), or in all namespaces when neither is given); in check mode the ones that would be deleted.
  returned: when done is true, and state is absent
  type: list
  elements: str
  sample: ["shop/consumer-shop-rollback-shop-data-db-0-restored"]
canceled:
  description: DataDownloads whose cancel was requested (merge patch C(spec.cancel=true)); empty in check mode.
  returned: state is absent
  type: list
  elements: str
deleted:
  description: DataDownloads of the session deleted (those of O(volumes), else all); in check mode the ones that would
    be.
  returned: state is absent
  type: list
  elements: str
claims_deleted:
  description:
    - New PVCs this session created (label C(data-restore.ansible/role=claim)) that were still unbound and were deleted
      (C(<namespace>/<name>)); in check mode the ones that would be.
    - Same namespaces as RV(placeholders_deleted); with O(volumes), only their C(new_pvc).
  returned: state is absent
  type: list
  elements: str
claims_kept:
  description: New PVCs of the session left in place because they are bound (C(<namespace>/<name>)).
  returned: state is absent
  type: list
  elements: str
session_state:
  description: The state the session was moved to (O(session_state)); in check mode the state it would move to.
  returned:
    when O(session_state) was given and the task's own work succeeded - with O(state=present) only when RV(done)
    is true (so neither in check mode nor with O(wait=false) or after a timeout)
  type: str
  sample: restored
"""

from ansible_collections.velero.data_restore.plugins.module_utils import data_download
from ansible_collections.velero.data_restore.plugins.module_utils.module import DATA_PATH_ARG_SPEC, run_module


def run(module, kube):
    return data_download.run(kube, module.params, check_mode=module.check_mode)


def main():
    spec = dict(
        namespace=dict(type="str"),
        placeholder=dict(type="str", default="auto", choices=["auto", "always", "never"]),
        image=dict(type="str"),
        node_selector=dict(type="dict"),
        tolerations=dict(type="list", elements="dict"),
        data_mover_config=dict(type="dict"),
        resume=dict(type="dict"),
        **DATA_PATH_ARG_SPEC
    )
    run_module(spec, run, required_if=[("state", "present", ["volumes"])])


if __name__ == "__main__":
    main()
