#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: restore_plan
short_description: Validate a data-only restore and return its plan (and record it in the session)
version_added: 0.1.0
description:
  - Matches the volumes of a Velero backup with the claims that receive their data and runs every preflight
    check of the collection. It is what the C(preflight) role calls; check mode of a restore stops here.
  - The backup must be V(Completed) (V(PartiallyFailed) only with O(allow_partially_failed)); its
    BackupStorageLocation must exist and be V(Available); every requested claim must be in the backup and
    restorable (native snapshots, CSI snapshots without data movement, restic uploads, failed or empty
    volumes are refused with the reason).
  - For O(mode=in_place) every target claim must exist, be Bound, be a Filesystem volume for a file-system
    backup, and be at least as large as the data of its snapshot. Block-mode data-mover snapshots need
    O(mode=replace).
  - Velero does not record the volume mode of a data-mover snapshot and restores it in the target claim's mode, so
    a Block snapshot restored into a Filesystem claim (or the other way round) would complete without usable data.
    The mode is read from the snapshot's source PersistentVolume while it exists (the target claim's own volume,
    or one GET), and a target claim of another mode is refused; when the volume is gone a warning says the mode
    could not be checked.
  - For O(mode=replace) it plans one new claim per volume, named C(<claim>-restored-<hash>), with the mapped
    storage class, size max(original request, snapshot size rounded up to Mi), and the access modes and
    volume mode of the original claim. A claim of that name that does not belong to the session is refused.
  - For O(mode=replace) with O(swap_mode=rebind), a finished pod that still holds a target claim (a Job's pod,
    an evicted pod) is refused; Kubernetes keeps a claim while a scheduled pod names it, whatever its phase, so
    the swap could not delete it. The message gives the C(kubectl delete pod) command. A StatefulSet's own pods
    are not refused (its stop deletes them).
  - For O(mode=replace) with O(swap_mode=template), every target claim must be mounted by the pod template of a
    Deployment, DaemonSet, ReplicaSet, StatefulSet, CronJob or KEDA ScaledJob that the swap can patch; a claim made
    by a StatefulSet's claim templates, a claim a Job that has not finished mounts (one a CronJob or ScaledJob
    started too), and a claim no such template mounts (the swap would patch nothing) are refused here, before the
    restore and the stop, not at the swap (one LIST per kind).
  - No other unfinished restore session may hold one of the claims; nor may a failed replace session whose swap of
    the claim is still in effect (roll it back or finish it first).
  - With O(quiesce=scale) (default), the workloads whose pods mount the target claims (and StatefulSets whose
    claim templates made them) must be stoppable by M(velero.data_restore.workload_scale) - in place for the
    restore, replace for the swap. A StatefulSet with C(persistentVolumeClaimRetentionPolicy.whenScaled=Delete)
    is refused here, before a session exists, since scaling it to 0 would delete its claims; so is a running pod
    that mounts a target claim and has no controller, or one that workload_scale cannot stop, or a pod of another
    restore session (workload_scale would refuse them at the stop - for a replace, after the restore).
  - With O(quiesce=scale) and O(pause_gitops=false), a workload that a KEDA ScaledObject scales is refused
    unless the ScaledObject is paused at 0 replicas (C(autoscaling.keda.sh/paused-replicas) V("0")) or at its
    current count (C(autoscaling.keda.sh/paused) V("true")) - KEDA would start it again (its minReplicaCount, or
    an active trigger) while its volumes are restored. This costs one discovery request where KEDA is not
    installed; a forbidden LIST of ScaledObjects is a warning, not a refusal.
  - All problems found are reported together, each with its fix. Nothing in the cluster is changed (reading
    the volume info of a backup passed by name creates and deletes a transient DownloadRequest), except the
    session with O(create_session).
  - With O(create_session), a session that has gone past V(planned) is continued - its recorded plan is
    returned as it is (C(continued=true)), without reading the backup again - and otherwise the plan is
    written into a new (or still planned) session. This is the preflight role's one call.
  - A continued session keeps its recorded backup. A different O(backup) is refused before any change - a
    V(completed) or V(rolled_back) session would otherwise report success without restoring it, an unfinished one
    would restore the recorded backup instead - except a backup record (what latest=true resolved) given to an
    unfinished session, which finishes the restore it started and warns that latest names another backup now.
  - With O(create_session), the session is taken over for O(session_run) (a new run id when not given,
    returned as RV(session_run)). A run that held it before - an interrupted one, or one still running - fails
    at its next step before it changes anything. Taking over from a run that may still have a module running
    waits 6 seconds, so that such a module sees the take-over before its next write (no wait when that run
    marked the session V(failed), since it has ended). A V(completed) or V(rolled_back) session is not taken over (a
    re-run of it changes nothing), nor a V(rolling_back) one (the rollback run holds it; the restore playbooks refuse
    it); RV(session_run) is then the run that holds it.
author:
  - velero.data_restore contributors (@velero-data-restore)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - velero.data_restore.common
attributes:
  check_mode:
    support: full
    description:
      - Runs the same way in check mode; with O(create_session) the session is not written.
      - Reading the backup's volume info creates a DownloadRequest and deletes it once read, in check mode too, since
        Velero serves the volume info only that way.
  diff_mode:
    support: none
    description: Only the session journal may be written, so there is no diff.
options:
  backup:
    description:
      - The backup to restore - a record returned by M(velero.data_restore.backup_info) (an element of
        its C(backups), with its volumes), or a backup name.
      - With a name, or a record without volumes, the volume records are read here.
    type: raw
    required: true
  mode:
    description:
      - V(in_place) writes the data into the existing claims (workloads must be stopped).
      - V(replace) restores into new claims while the workloads run, then swaps them.
    type: str
    required: true
    choices: [in_place, replace]
  source_namespace:
    description:
      - Namespace of the claims at backup time.
      - Defaults to the only namespace among the backup's claim volumes (or the only key of
        O(namespace_mapping)); required when there are several.
    type: str
  target_namespace:
    description: Namespace of the claims that receive the data. Defaults to O(source_namespace).
    type: str
  namespace_mapping:
    description:
      - "Mapping C({source namespace: target namespace}), as in a Velero Restore. Only the entry of
        O(source_namespace) is used; one plan covers one namespace."
      - Mutually exclusive with O(target_namespace).
    type: dict
  claim_mapping:
    description:
      - "Mapping C({claim name at backup time: target claim name}) for claims whose names changed since the backup
        (a renamed Helm release, a StatefulSet renamed with its claim templates). Other claims keep their names."
      - The target claims must exist in the target namespace; two claims restored into one claim, or a key that is
        not a claim of the backup in O(source_namespace), are refused before any change.
      - O(volumes) still names claims as they were at backup time; O(volume_selector) selects target claims.
    type: dict
  volumes:
    description:
      - Names of the claims to restore, as they were at backup time. Others are left out.
      - Default - every claim of the namespace in the backup (claims Velero skipped are left out with a warning).
    type: list
    elements: str
  volume_selector:
    description:
      - Label selector on the claims of the target namespace; the matching claims that are in the backup (by name,
        or as a value of O(claim_mapping)) are restored. Mutually exclusive with O(volumes).
    type: str
  storage_class_map:
    description:
      - "With O(mode=replace), storage class of the new claims by class of the original claim,
        C({old: new}) - for example to move to another storage provider."
    type: dict
  allow_partially_failed:
    description:
      - Accept a V(PartiallyFailed) backup; volumes whose own backup failed are still refused.
        Backups in progress or V(Failed) are never accepted.
    type: bool
    default: false
  quiesce:
    description:
      - How the workloads that mount the target claims will be stopped. V(scale) (the playbooks' default)
        checks that M(velero.data_restore.workload_scale) can stop them; V(none) (you stop them yourself)
        skips that check.
    type: str
    choices: [scale, none]
    default: scale
  swap_mode:
    description:
      - With O(mode=replace), how M(velero.data_restore.claim_patch) will swap the claims. V(rebind) (default)
        moves the restored volume under the existing claim, which must be Bound; the plan refuses an unbound one
        here rather than after the restore. V(template) points the workloads at the new claims.
    type: str
    choices: [rebind, template]
    default: rebind
  pause_gitops:
    description:
      - Whether M(velero.data_restore.workload_scale) will pause the GitOps tools and KEDA (its O(pause_gitops)).
        With V(false) (default), O(quiesce=scale) refuses the workloads a KEDA ScaledObject would start again while
        they are stopped; the playbooks pass their C(pause_gitops) here.
    type: bool
    default: false
  session:
    description:
      - Name of the restore session the plan is for. Claims held by other unfinished sessions are refused,
        and the names of new claims (O(mode=replace)) derive from it (else from the backup name).
    type: str
  create_session:
    description:
      - Record the plan in the restore session O(session) (created when missing), or continue that session
        when it has already started - see the description.
    type: bool
    default: false
  volume_info_timeout:
    description:
      - Seconds to wait for Velero to process the DownloadRequest of the backup's volume info document,
        when the volume records are read here.
    type: int
    default: 30
"""

EXAMPLES = r"""
- name: Find the newest backup of the nightly schedule
  velero.data_restore.backup_info:
    schedule: nightly
    namespace: shop
    latest: true
  register: found

- name: Plan an in-place restore of two claims
  velero.data_restore.restore_plan:
    backup: "{{ found.backups[0] }}"
    mode: in_place
    volumes: [data-app-0, data-app-1]
    session: shop-restore
  register: planned

- name: Plan and create the session in one step (a re-run continues the session)
  velero.data_restore.restore_plan:
    backup: nightly-20261124220000
    mode: in_place
    source_namespace: shop
    session: shop-restore
    create_session: true
  register: planned

- name: Plan an in-place restore into the claims of a renamed Helm release (shop-v1 became shop-v2)
  velero.data_restore.restore_plan:
    backup: nightly-20261124220000
    mode: in_place
    source_namespace: shop
    claim_mapping:
      data-shop-v1-db-0: data-shop-v2-db-0
      shop-v1-uploads: shop-v2-uploads
    session: shop-rename
  register: planned

- name: Plan a restore into new claims of another storage class, swapped under the claims of the app deployed in a test namespace
  velero.data_restore.restore_plan:
    backup: nightly-20261124220000
    mode: replace
    namespace_mapping:
      shop: shop-upgrade-test
    storage_class_map:
      gp2: gp3
    session: shop-upgrade-test
"""

RETURN = r"""
session_run:
  description:
    - With O(create_session) - the playbook run that now holds the session (in check mode, the one that would);
      null for a completed, rolled back or rolling back session that no run was recorded for.
      Pass it as O(session_run) to the later modules of the run (the preflight role adds it to
      C(connection__velero)).
  returned: success
  type: str
  sample: run-3f9c0a51d2e4
continued:
  description: With O(create_session) - the session had already started and its recorded plan is returned.
  returned: success
  type: bool
session:
  description:
    - With O(create_session) - the session (name, object_name, namespace, uid, state, document), as
      M(velero.data_restore.restore_session) returns it; null in check mode when it does not exist yet.
  returned: success
  type: dict
plan:
  description: The validated plan.
  returned: success
  type: dict
  contains:
    backup:
      description:
        - Summary of the backup, as returned by M(velero.data_restore.backup_info), with C(volumes) null (the
          volumes are in C(volumes) below) and C(volume_source), where the volume records came from.
      type: dict
    mode:
      description: V(in_place) or V(replace).
      type: str
    session:
      description: The session the plan was made for, or null.
      type: str
    source_namespace:
      description: Namespace of the claims at backup time.
      type: str
    target_namespace:
      description: Namespace of the claims that receive the data.
      type: str
    restore_timeout:
      description:
        - Seconds the restore playbooks wait for the data path when C(restore_timeout) is not given. One hour, plus
          the backup's bytes of the planned volumes at 20 MiB/s, as if they were restored one after another,
          at most 24 hours (a run that times out is rescued, and a re-run of the session continues the restore).
      type: int
      sample: 3652
    swap_mode:
      description:
        - With O(mode=replace), the O(swap_mode) the plan was made with. Until a swap begins, a re-run of the
          session may ask for another one; once a swap began, a re-run that asks for another mode than the one the
          journal recorded for it is refused, because a begun swap must be finished the way it began.
      type: str
      returned: mode=replace
    volume_selector:
      description:
        - The O(volume_selector) the volumes were chosen with (null when they were not). A re-run of the session
          that asks for another selector is refused.
      type: str
    pause_gitops:
      description:
        - The O(pause_gitops) the plan was made with. The rollback role pauses GitOps tools and KEDA when the
          restore it undoes did.
      type: bool
    volumes:
      description:
        - One record per volume, the input of the data-path modules (their C(volumes) option).
        - Keys C(key) (V(<target namespace>/<target claim>)), C(source_namespace), C(source_pvc), C(source_pv),
          C(pod_name), C(pod_volume), C(method) (V(fs) or V(data_mover)), C(snapshot_id), C(snapshot_size),
          C(uploader_type), C(data_mover), C(backup_storage_location), C(volume_mode), C(storage_class),
          C(node_os), C(operation_timeout), C(target_namespace), C(target_pvc), C(restore_via)
          (V(pod_volume_restore) or V(data_download)) and C(new_pvc) (replace mode - name, storage_class,
          size, access_modes, volume_mode; else null).
      type: list
      elements: dict
    warnings:
      description: Things the user should know that do not stop the restore.
      type: list
      elements: str
    notes:
      description: Consequences of the mode (for example files created after the backup stay in place).
      type: list
      elements: str
"""

from ansible_collections.velero.data_restore.plugins.module_utils import plan as plans
from ansible_collections.velero.data_restore.plugins.module_utils import session as sessions
from ansible_collections.velero.data_restore.plugins.module_utils.module import run_module


def run(module, kube):
    p = module.params
    build_args = dict(
        backup=p["backup"], mode=p["mode"], source_namespace=p["source_namespace"],
        target_namespace=p["target_namespace"], namespace_mapping=p["namespace_mapping"],
        claim_mapping=p["claim_mapping"], volumes=p["volumes"], volume_selector=p["volume_selector"],
        storage_class_map=p["storage_class_map"],
        allow_partially_failed=p["allow_partially_failed"], volume_info_timeout=p["volume_info_timeout"],
        quiesce=p["quiesce"], swap_mode=p["swap_mode"], pause_gitops=p["pause_gitops"])
    if not p["create_session"]:
        result = plans.build(kube, p["velero_namespace"], session=p["session"], **build_args)
        for warning in result["warnings"]:
            module.warn(warning)
        return dict(changed=False, plan=result, continued=False, session=None)
    run = sessions.run_for(p["session_run"], p["session"]) or sessions.new_run_id()
    continue_warnings = []
    result, recorded, continued, changed = plans.plan_session(
        kube, p["velero_namespace"], p["session"], check_mode=module.check_mode, run=run,
        continue_warnings=continue_warnings, **build_args)
    for warning in continue_warnings if continued else result["warnings"]:
        module.warn(warning)
    if recorded is not None and (recorded.state in sessions.KEPT_BY_HOLDER_STATES or not module.check_mode):
        run = recorded.run  # the run that holds it now: this one, or the one a settled session keeps
    return dict(changed=changed, plan=result, continued=continued, session=recorded.result() if recorded else None,
                session_run=run)


def main():
    run_module(
        dict(
            backup=dict(type="raw", required=True),
            mode=dict(type="str", required=True, choices=list(plans.MODES)),
            source_namespace=dict(type="str"),
            target_namespace=dict(type="str"),
            namespace_mapping=dict(type="dict"),
            claim_mapping=dict(type="dict"),
            volumes=dict(type="list", elements="str"),
            volume_selector=dict(type="str"),
            storage_class_map=dict(type="dict"),
            allow_partially_failed=dict(type="bool", default=False),
            session=dict(type="str"),
            create_session=dict(type="bool", default=False),
            volume_info_timeout=dict(type="int", default=30),
            quiesce=dict(type="str", default="scale", choices=list(plans.QUIESCE)),
            swap_mode=dict(type="str", default="rebind", choices=["rebind", "template"]),
            pause_gitops=dict(type="bool", default=False),
        ),
        run,
        takes_over=True,
        mutually_exclusive=[("target_namespace", "namespace_mapping"), ("volumes", "volume_selector")],
    )


if __name__ == "__main__":
    main()
