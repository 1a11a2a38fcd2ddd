#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: workload_scale
short_description: Stop and start the workloads that mount PVCs, recording their original values
version_added: 0.1.0
description:
  - Stops workloads before their volumes' data is restored or swapped, and starts them again afterwards.
  - Workloads are named in O(workloads), or discovered from PVCs (O(namespace) and O(pvcs)). Discovery
    follows every non-terminal pod that mounts one of the PVCs up its controller ownerReferences to the
    top controller (Pod, ReplicaSet, Deployment; Pod, StatefulSet; Pod, Job, CronJob; Pod, DaemonSet;
    Pod, ReplicationController, DeploymentConfig when the OpenShift API is served; Pod, Job, KEDA ScaledJob when
    KEDA's API is served). StatefulSets are also found by their volumeClaimTemplates naming
    (C(<template>-<statefulset>-<ordinal>)), even when scaled to 0. With O(pvcs), CronJobs and KEDA ScaledJobs
    whose job template mounts one of the PVCs are found too while no Job of theirs runs (they could start one
    during the restore).
  - Pods of this collection for the same O(session) (its helper and placeholder pods, labelled
    C(app.kubernetes.io/managed-by=velero.data_restore) and C(data-restore.ansible/session=<session>)) are not
    workloads - they are neither stopped nor waited for, so a re-run after an interruption works. Such pods of
    another session mean two sessions restore the same claim - refused, naming the other session.
  - Deployments, StatefulSets, ReplicaSets, ReplicationControllers and DeploymentConfigs are scaled to 0
    replicas, Jobs get parallelism 0, CronJobs are suspended and KEDA ScaledJobs paused with
    C(autoscaling.keda.sh/paused=true) (KEDA 2.11 or later; a Job they already started is stopped too), and
    DaemonSets get an unmatchable node selector C(data-restore.ansible/quiesced=true).
  - Before changing a workload its original value is written into the session (undo record C(scale)) and
    into the annotation C(data-restore.ansible/original) of the object.
  - Starting restores the original only where the current value is still the stopped one; a value someone
    else changed meanwhile is left alone and reported as a warning.
  - A StatefulSet with C(persistentVolumeClaimRetentionPolicy.whenScaled=Delete) is refused before any change,
    since scaling it to 0 would delete its PVCs.
author:
  - velero.data_restore contributors (@velero-data-restore)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - velero.data_restore.common
  - velero.data_restore.common.session_state
  - velero.data_restore.common.wait
attributes:
  check_mode:
    support: full
    description: Reports the workloads that would be stopped or started and their values; nothing is changed or recorded.
  diff_mode:
    support: full
    description: Shows the scaled fields (replicas, parallelism, suspend, paused, nodeSelector) before and after.
options:
  state:
    description:
      - V(stopped) stops the workloads and, with O(wait), waits until no non-terminal pod mounts the PVCs
        (or belongs to the named workloads).
      - V(started) restores the recorded values and, with O(wait), waits until the workloads are ready.
    type: str
    choices: [stopped, started]
    default: stopped
  session:
    description:
      - Name of the restore session whose journal records the original values.
      - Required with O(state=stopped). With O(state=started) and no session, the originals are read from
        the C(data-restore.ansible/original) annotations.
    type: str
  workloads:
    description: Workloads named explicitly.
    type: list
    elements: dict
    suboptions:
      kind:
        description: Kind of the workload.
        type: str
        required: true
        choices: [Deployment, StatefulSet, ReplicaSet, ReplicationController, DeploymentConfig, Job, CronJob,
                  DaemonSet, ScaledJob]
      name:
        description: Name of the workload.
        type: str
        required: true
      namespace:
        description: Namespace of the workload; defaults to O(namespace).
        type: str
  namespace:
    description: Namespace of O(pvcs), and the default namespace of O(workloads).
    type: str
  pvcs:
    description:
      - Names of PVCs in O(namespace) whose workloads to stop or start.
      - With O(state=started) the workloads are found from the session records, the
        C(data-restore.ansible/original) annotations and the StatefulSet claim templates, since their pods are gone.
    type: list
    elements: str
  pause_gitops:
    description:
      - Also pause what would scale the workloads back, where those APIs are served (silently skipped otherwise),
        recording each pause in the session. Argo CD Applications owning a workload (label
        C(app.kubernetes.io/instance) or annotation C(argocd.argoproj.io/tracking-id); without an Application of
        that name, as with a custom C(application.instanceLabelKey), the ones listing the workload in
        C(status.resources)) get the annotation
        C(argocd.argoproj.io/skip-reconcile=true) (when several Argo CD instances have an Application of that name,
        the ones listing the workload in C(status.resources), else the ones deploying to its namespace); Flux
        Kustomizations and HelmReleases named by the C(kustomize.toolkit.fluxcd.io/*) and C(helm.toolkit.fluxcd.io/*) labels get C(spec.suspend=true);
        KEDA ScaledObjects targeting a workload get C(autoscaling.keda.sh/paused-replicas=0).
      - With V(false), O(state=stopped) refuses, before any change, a workload that a KEDA ScaledObject would start
        again while it is stopped (KEDA keeps a target at its minReplicaCount, and scales it from zero when a
        trigger is active) - unless that ScaledObject is paused at 0 replicas (C(autoscaling.keda.sh/paused-replicas)
        V("0")) or at its current count (C(autoscaling.keda.sh/paused) V("true")). Argo CD and Flux marks on a
        workload are warned about instead.
      - Ignored with O(state=started), which always undoes the pauses the session recorded for the started workloads.
    type: bool
    default: false
  delete_helper_pods:
    description:
      - With O(state=started) - first delete the helper pods of O(session) in O(namespace) (those of
        M(velero.data_restore.restore_helper_pod)) and wait until they are gone, so a ReadWriteOnce claim is free
        for the workload's pod. The same as a C(restore_helper_pod state=absent) task before this one, in one module
        run. Needs O(session) and O(namespace).
    type: bool
    default: false
notes:
  - A HorizontalPodAutoscaler does not scale a workload up from 0 replicas, so HPAs are left alone.
  - A pod mounting a PVC without a controller cannot be stopped without deleting it; the module fails and
    names it. So does a workload whose top controller is another kind (an operator's custom resource, an Argo
    Rollout), which would start it again during the restore - stop it through that controller and restore with
    quiesce=none.
  - KEDA before 2.11 ignores C(autoscaling.keda.sh/paused) on a ScaledJob and may start a Job while the data is
    restored; the stop's wait then times out naming its pod.
  - Re-running is safe; an already stopped workload with a recorded original is reported unchanged.
seealso:
  - module: velero.data_restore.restore_session
  - module: velero.data_restore.claim_patch
"""

EXAMPLES = r"""
- name: Stop whatever mounts the PVCs to restore, pausing Argo CD / Flux / KEDA
  velero.data_restore.workload_scale:
    session: shop-rollback
    namespace: shop
    pvcs: [data-db-0, uploads]
    pause_gitops: true
    state: stopped

- name: Start them again once the data is back
  velero.data_restore.workload_scale:
    session: shop-rollback
    namespace: shop
    pvcs: [data-db-0, uploads]
    state: started

- name: Delete the restore's helper pods and start the workloads in one task
  velero.data_restore.workload_scale:
    session: shop-rollback
    namespace: shop
    pvcs: [data-db-0, uploads]
    state: started
    delete_helper_pods: true

- name: Stop named workloads without waiting
  velero.data_restore.workload_scale:
    session: shop-rollback
    workloads:
      - kind: CronJob
        name: nightly-report
        namespace: shop
    wait: false
"""

RETURN = r"""
workloads:
  description:
    - Every workload handled.
    - Also in the failure result when, with O(state=started), the wait for readiness failed after the starts were
      made (a rescue then knows they were started).
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: Kind of the workload.
      type: str
      sample: Deployment
    namespace:
      description: Namespace.
      type: str
      sample: shop
    name:
      description: Name.
      type: str
      sample: web
    uid:
      description: UID of the workload.
      type: str
    original:
      description: "The recorded original value, e.g. C({replicas: 3}); a KEDA ScaledJob's is C({paused: <annotation
        value or null>})."
      type: dict
      sample: {replicas: 3}
    current:
      description: The value after the task.
      type: dict
      sample: {replicas: 0}
    action:
      description:
        - What was done; V(stopped), V(already_stopped), V(started), V(already_started), V(left_changed)
          (someone else changed it; left alone), V(no_record) (nothing recorded to restore) or V(gone) (a workload
          the session stopped was deleted, or recreated with another uid, while stopped - nothing to start, its record
          is closed and the pauses kept for it are lifted; a warning names it), or V(refused) (in the failure
          result of a stop refused before any change, e.g. a KEDA ScaledObject that would start it again).
      type: str
      sample: stopped
gitops:
  description:
    - GitOps objects paused or resumed (kind, namespace, name, action, result).
    - C(result) is V(paused), V(already_paused) (paused before; not recorded, so start leaves it paused),
      V(shared) (paused by another restore session, which still holds it - one Kustomization or Application for
      several namespaces; recorded with that session's original, C(shared_with) names the sessions),
      V(resumed), V(kept_for_other_session) (another session that paused it still needs it - left paused, the last
      one lifts it), V(left_changed) (no longer paused when the start came; left alone), V(not_paused) (journaled
      by a stop that failed or was killed before the pause itself) or V(gone).
    - O(state=started) also lifts the session's pauses whose workloads the session never stopped (a stop that
      failed after pausing), whatever O(pvcs) names.
  returned: always
  type: list
  elements: dict
pods:
  description:
    - With O(state=started) and O(wait) - the Running pods that mount O(pvcs) once the workloads are ready
      (metadata name, namespace, uid and annotations; container names; claim volumes; phase), e.g. for Velero's
      C(post.hook.restore.velero.io/*) annotations. Empty otherwise.
  returned: always
  type: list
  elements: dict
pods_waited:
  description: Pods (namespace/name and uid) the task waited for to go away.
  returned: always
  type: list
  elements: str
helper_pods_deleted:
  description: With O(delete_helper_pods) - the session's helper pods (namespace/name) deleted before the start.
  returned: always
  type: list
  elements: str
session_state:
  description: The state the session was moved to (O(session_state)); in check mode the state it would move to.
  returned: when O(session_state) was given and the task's own work succeeded
  type: str
  sample: restored
"""

from ansible_collections.velero.data_restore.plugins.module_utils import workloads
from ansible_collections.velero.data_restore.plugins.module_utils.module import SESSION_STATE_ARG_SPEC, WAIT_ARG_SPEC, run_module


def run(module, kube):
    result = workloads.scale(kube, module.params, check_mode=module.check_mode)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    if not module._diff:
        result.pop("diff", None)
    return result


def main():
    spec = dict(
        state=dict(type="str", default="stopped", choices=["stopped", "started"]),
        session=dict(type="str"),
        workloads=dict(type="list", elements="dict", options=dict(
            kind=dict(type="str", required=True, choices=sorted(workloads.KINDS)),
            name=dict(type="str", required=True),
            namespace=dict(type="str"),
        )),
        namespace=dict(type="str"),
        pvcs=dict(type="list", elements="str"),
        pause_gitops=dict(type="bool", default=False),
        delete_helper_pods=dict(type="bool", default=False),
    )
    spec.update(WAIT_ARG_SPEC)
    spec.update(SESSION_STATE_ARG_SPEC)
    run_module(spec, run, required_one_of=[("workloads", "pvcs")], required_by=dict(pvcs=["namespace"], session_state=["session"]))


if __name__ == "__main__":
    main()
