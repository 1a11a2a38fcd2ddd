#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: pod_volume_restore
short_description: Create, wait for and cancel Velero PodVolumeRestores of a data-only restore
version_added: 0.1.0
description:
  - Creates one Velero PodVolumeRestore per planned volume (records with C(restore_via=pod_volume_restore)) in
    the Velero namespace, targeting the helper pod that mounts the receiving PVC (see
    M(velero.data_restore.restore_helper_pod)). Velero's node-agent then restores the kopia snapshot into it.
  - Each PodVolumeRestore carries what the node-agent needs, labelled C(velero.io/pod-uid) with the helper pod's
    UID, owned by the restore session (whose UID names the done file), with C(uploaderType=kopia),
    C(repoIdentifier=""), the ORIGINAL namespace as C(sourceNamespace) and the local backup storage location.
    C(snapshotSize) is sent too; a CRD older than Velero v1.18 prunes it, which is harmless
    (it only sizes the optional cache volume).
  - The volumes are recorded in the session before anything is created. Existing PodVolumeRestores of the
    session are reused; a Failed or Canceled one is reported and created again only with O(retry_failed=true).
  - Waits with one watch for all volumes and reports per-volume progress and the node-agent's message.
  - Velero's node-agent takes a PodVolumeRestore only while its helper pod's restore-wait init container runs. A
    wait that ends, or reaches 15 seconds, with a PodVolumeRestore no node-agent has taken reads the session's
    helper pods once, and fails when that one's restore-wait has exited. It exits at once when the volume
    already holds the session's done file from an earlier data path of the session; a new session name is
    then the way to restore it again.
  - Kopia overwrites files but never deletes files absent from the backup, so an in-place restore keeps files
    created after the backup.
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
    description: Reports the PodVolumeRestores that would be created.
  diff_mode:
    support: full
    description: Shows the PodVolumeRestores created or deleted.
options:
  state:
    description:
      - V(present) creates the PodVolumeRestores (and waits with O(wait)).
      - V(absent) cancels them (merge patch C(spec.cancel=true)) and deletes them; limited to O(volumes) when given.
      - Waiting for a cancel allows at least 390 seconds, whatever O(wait_timeout) says, because Velero forces the
        cancel of a PodVolumeRestore its node-agent has not finished exposing only at its first periodic check
        (every minute) after 5 minutes. Deleted ones that were already final go at once.
    type: str
    choices: [present, absent]
    default: present
  volumes:
    description:
      - Volume records of the restore plan (M(velero.data_restore.restore_plan) C(plan.volumes)). Used keys are
        C(key), C(target_namespace), C(target_pvc), C(new_pvc), C(snapshot_id), C(source_namespace),
        C(backup_storage_location), C(method), C(uploader_type), C(data_mover), C(volume_mode), C(snapshot_size)
        and C(restore_via); records restored otherwise are ignored.
    type: list
    elements: dict
  pods:
    description:
      - The C(pods) result of M(velero.data_restore.restore_helper_pod). When omitted, the session's helper pods are
        looked up by label.
    type: list
    elements: dict
  uploader_settings:
    description:
      - Velero uploader settings for the restore, C(WriteSparseFiles) (bool) and C(ParallelFilesDownload) (int).
        Values kopia would refuse (Go's C(strconv.ParseBool) and C(strconv.Atoi)) are refused before any change.
    type: dict
  retry_failed:
    description: Delete Failed or Canceled PodVolumeRestores of these volumes and create them again.
    type: bool
    default: false
  fail_fast:
    description: Fail as soon as one volume fails instead of waiting for every volume to finish.
    type: bool
    default: false
  keep_final:
    description:
      - With O(state=absent), cancel and delete only the PodVolumeRestores that are not final yet (New, Accepted,
        Prepared, InProgress, Canceling) and keep the Completed, Failed and Canceled ones, so a re-run reuses the
        completed volumes and O(retry_failed) still decides about the failed ones.
      - The restore playbooks do this when a run fails, before they delete the helper pods, because a PodVolumeRestore
        whose helper pod is gone can never finish.
    type: bool
    default: false
  fail_on_timeout:
    description:
      - With V(false), a wait that times out returns RV(done=false) with the progress instead of failing, so a
        task can loop (C(until)) and print progress.
    type: bool
    default: true
  resume:
    description:
      - The RV(resume) value of the previous run of this module for the same session, whose wait timed out with
        O(fail_on_timeout=false). This run then starts from the PodVolumeRestores as that run last saw them and
        its watch continues from there, instead of listing them again (one request less per wait slice; a long
        restore of many volumes is not listed again every minute). When the API server no longer has that
        resourceVersion (HTTP 410), it lists them again.
      - Anything else than that value fails before any change. Omit it in the first run.
    type: dict
"""

EXAMPLES = r"""
- name: Restore the planned volumes through the helper pods
  velero.data_restore.pod_volume_restore:
    session: shop-restore
    volumes: "{{ plan.volumes }}"
    pods: "{{ helper.pods }}"
    wait_timeout: 3600

- name: Poll progress every 30 seconds and print it
  velero.data_restore.pod_volume_restore:
    session: shop-restore
    volumes: "{{ plan.volumes }}"
    wait_timeout: 30
    fail_on_timeout: false
  register: pvr
  until: pvr.done
  retries: 240
  delay: 0

# One slice of 60 seconds that continues the watch of the slice before. Put it in a task file that includes itself
# while not pvr.done (as the in_place role's wait_slice.yml does): until/retries template a task's arguments once,
# so the retries of one task would not pass on resume.
- name: Wait one slice of 60 seconds, continuing the watch of the slice before
  velero.data_restore.pod_volume_restore:
    session: shop-restore
    volumes: "{{ plan.volumes }}"
    wait_timeout: 60
    fail_on_timeout: false
    resume: "{{ pvr.resume | default(omit) }}"
  register: pvr

- name: Cancel and delete the session's PodVolumeRestores
  velero.data_restore.pod_volume_restore:
    session: shop-restore
    state: absent

- name: Stop only the PodVolumeRestores still running, keep the finished ones for the re-run
  velero.data_restore.pod_volume_restore:
    session: shop-restore
    state: absent
    keep_final: true
"""

RETURN = r"""
done:
  description:
    - Whether every volume reached a final phase.
    - In check mode, whether that holds already (nothing left to create).
  returned: state is present
  type: bool
progress:
  description: One progress line (volumes completed, bytes done of total).
  returned: state is present
  type: str
  sample: 3/4 volumes completed, 1048576/2097152 bytes
pending:
  description: Volumes still running when the wait timed out with O(fail_on_timeout=false).
  returned: on timeout
  type: list
  elements: str
resume:
  description:
    - Where the wait stopped, for O(resume) of the next run - the PodVolumeRestores as the wait last saw them
      (spec, status, and of the metadata what the next run reads - name, uid, resourceVersion, labels,
      annotations, deletionTimestamp) and the resourceVersion its watch had reached.
  returned: on timeout with O(fail_on_timeout=false)
  type: dict
  contains:
    resource_version:
      description: The resourceVersion the watch had reached.
      type: str
    objects:
      description: The session's PodVolumeRestores at that resourceVersion.
      type: list
      elements: dict
volumes:
  description: One entry per volume.
  returned: always
  type: list
  elements: dict
  contains:
    key:
      description: Session volume key C(<namespace>/<pvc>).
      type: str
    name:
      description: PodVolumeRestore name.
      type: str
    phase:
      description: PodVolumeRestore phase.
      type: str
    bytes_done:
      description: Bytes restored so far.
      type: int
    total_bytes:
      description: Bytes to restore.
      type: int
    node:
      description: Node whose node-agent serves it.
      type: str
    message:
      description: The node-agent's message (why it failed).
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
    action:
      description: In check mode, what the task would do with the volume's PodVolumeRestore - V(create),
        V(recreate) (create it again once the one there is gone - a failed one with O(retry_failed), or one being
        deleted) or V(reuse).
      type: str
      returned: in check mode
canceled:
  description: PodVolumeRestores whose cancel was requested.
  returned: state is absent
  type: list
  elements: str
deleted:
  description: PodVolumeRestores deleted.
  returned: state is absent
  type: list
  elements: str
session_state:
  description: The state the session was moved to (O(session_state)); in check mode the state it would move to.
  returned:
    when O(session_state) was given and the task's own work succeeded - with O(state=present) only when RV(done)
    is true (so not in check mode, nor after a timeout, nor with O(wait=false) while a PodVolumeRestore is unfinished)
  type: str
  sample: restored
"""

from ansible_collections.velero.data_restore.plugins.module_utils import pod_volume_restore
from ansible_collections.velero.data_restore.plugins.module_utils.module import DATA_PATH_ARG_SPEC, run_module


def run(module, kube):
    return pod_volume_restore.run(kube, module.params, check_mode=module.check_mode)


def main():
    spec = dict(
        pods=dict(type="list", elements="dict"),
        uploader_settings=dict(type="dict"),
        keep_final=dict(type="bool", default=False),
        resume=dict(type="dict"),
        **DATA_PATH_ARG_SPEC
    )
    run_module(spec, run, required_if=[("state", "present", ["volumes"])])


if __name__ == "__main__":
    main()
