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
    sets C(volume.kubernetes.io/selected-node); the placeholder is deleted after completion.
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
    description: Tolerations of the placeholder pods.
    type: list
    elements: dict
  data_mover_config:
    description: Velero data mover settings, C(WriteSparseFiles) and C(ParallelFilesDownload).
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
        O(fail_on_timeout=false). This run then starts from the DataDownloads as that run last saw them and its
        watch continues from there instead of listing them again (when they had all completed, it only waits for
        the PVCs to be Bound). When the API server no longer has that resourceVersion (HTTP 410), it lists them
        again.
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
  description: Whether every DataDownload completed and its PVC is Bound.
  returned: state is present
  type: bool
progress:
  description: Volumes completed and bytes done of total.
  returned: state is present
  type: str
actions:
  description: What was created per volume.
  returned: state is present
  type: list
  elements: dict
volumes:
  description: One entry per volume.
  returned: always
  type: list
  elements: dict
  contains:
    key:
      description: Session volume key.
      type: str
    name:
      description: DataDownload name.
      type: str
    phase:
      description: DataDownload phase.
      type: str
    bytes_done:
      description: Bytes restored.
      type: int
    total_bytes:
      description: Bytes to restore.
      type: int
    node:
      description: Node that ran the data path.
      type: str
    message:
      description: The node-agent's message.
      type: str
    pvc:
      description: The new PVC.
      type: str
    namespace:
      description: Its namespace.
      type: str
    pv:
      description: The restored PV the PVC is bound to.
      type: str
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
      description: Seconds from start to completion.
      type: int
resume:
  description:
    - Where the wait stopped, for O(resume) of the next run - the DataDownloads as the wait last saw them (spec,
      status, and name, uid, resourceVersion, labels, annotations, deletionTimestamp of the metadata) and the
      resourceVersion its watch had reached.
  returned: on timeout with O(fail_on_timeout=false)
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
  description: Why pending DataDownloads (or PVCs not Bound yet) are stuck, on a timeout with O(fail_on_timeout=false).
  returned: on timeout
  type: list
  elements: str
session_state:
  description: The state the session was moved to (O(session_state)); in check mode the state it would move to.
  returned: when O(session_state) was given and the task's own work succeeded
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
