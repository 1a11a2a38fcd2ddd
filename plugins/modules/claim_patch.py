#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: claim_patch
short_description: Create the new claims of a replace restore, swap them under workloads, or swap them back
version_added: 0.1.0
description:
  - The swap step of a replace-mode restore. Each volume has the original PVC (still mounted by the stopped
    workloads) and a new PVC holding the restored data.
  - O(mode=rebind) (default) keeps the PVC name, so StatefulSets and GitOps manifests stay untouched. Both PVs
    get reclaim policy C(Retain) (originals recorded in the session first), the original PVC (labels,
    annotations, spec) and the restored PVC are recorded, both PVCs are deleted, the restored PV's
    C(claimRef) is pointed at the original name and the original PVC is recreated with C(volumeName) set to the
    restored PV. The PV controller binds the pre-bound pair. The old PV stays C(Released) with C(Retain) for
    rollback.
  - O(mode=template) patches the pod templates of Deployments, DaemonSets, ReplicaSets, StatefulSets (template
    volumes only), CronJobs and KEDA ScaledJobs (their job templates) from the old to the new claim name, recording
    the original template volumes. Claims from StatefulSet volumeClaimTemplates are refused (use rebind), and so are
    Jobs that have not finished, whose pod template is immutable - a Job a CronJob or ScaledJob started too, which
    would go on with the old claim. A finished Job is left alone.
  - O(state=reverted) undoes the swap from the session records, rebinding the original PVC to the retained old
    PV (and the restored PVC to the restored PV), or patching the templates back, and restores the reclaim
    policies.
  - O(state=prepared) creates the new claim of each replace-mode plan record (C(new_pvc) - name, storage class,
    size, access modes, volume mode), labelled with the session, recorded in the session before it is
    created, for a PodVolumeRestore to restore into. An existing claim of the session is left as it is; a claim
    of that name that is not the session's is refused. Records with C(restore_via=data_download) are skipped
    (state V(skipped)) - M(velero.data_restore.data_download) creates those claims with the selector it needs.
    O(mode), O(wait) and O(wait_timeout) do not apply (a claim of a WaitForFirstConsumer class binds only once
    the helper pod mounts it).
  - O(state=freed) frees what a settled session kept (the cleanup step of playbooks/cleanup.yml). After a
    V(completed) replace, the old PVs of the finished rebinds (reclaim policy set to C(Delete) so the storage frees
    the volume, then deleted); after a rollback (V(rolled_back)), the session's new claims that no pod uses and
    their PVs. A retained PV that is C(Bound) gets its recorded reclaim policy back. It refuses, before any change,
    a session that is not settled (a swap may be under way) and any recorded PV it cannot account for (a PV that
    a claim holds, or one no finished swap explains). O(volumes) and O(mode) do not apply.
  - Every step checks the current state first, so re-running after an interruption (even between deleting
    and recreating a claim) completes the swap from the session records. Only O(state=freed) deletes a PV.
  - A volume whose swap began is not given a new claim again with O(state=prepared) - its data is restored, and
    the swap may have deleted the new claim already; continue the swap or roll it back.
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
    description: Reports the planned change per volume (state V(would_create), V(would_swap) or V(would_revert)) without changes.
  diff_mode:
    support: full
    description: >-
      Shows the volume each claim is bound to (rebind) or the template volumes (template), before and after;
      the claims to create (prepared); the claims and PVs to delete and the reclaim policies to give back (freed).
options:
  volumes:
    description:
      - The volumes to swap. Either plan volume records from M(velero.data_restore.restore_plan) plans
        (C(key), C(target_namespace), C(target_pvc), C(new_pvc.name); other keys are ignored), or simple items
        C({namespace, pvc, new_pvc}) where C(new_pvc) is the restored claim's name.
      - With O(state=reverted), C(new_pvc) may be left out; the session knows it.
      - Required unless O(state=freed).
    type: list
    elements: dict
  mode:
    description:
      - How to swap; see the description.
      - A swap that began in one mode (recorded in the session) is finished in that mode; asking for the other one
        fails before any change. With O(state=reverted) each volume is swapped back the way its swap began,
        whatever O(mode) says.
    type: str
    choices: [rebind, template]
    default: rebind
  state:
    description:
      - V(prepared) creates the new claims (before the restore); V(swapped) swaps the restored volumes in;
        V(reverted) swaps the originals back; V(freed) frees what a completed or rolled back session kept.
    type: str
    choices: [prepared, swapped, reverted, freed]
    default: swapped
notes:
  - Rebind refuses while a non-terminal pod uses either PVC and names the pods; stop them first with
    M(velero.data_restore.workload_scale).
  - The recreated claim drops the C(pv.kubernetes.io/*) binding annotations, C(volume.kubernetes.io/selected-node)
    and any selector, and takes the storage class of the PV it is bound to (it differs from the original only
    when the restore mapped storage classes).
  - When a reverted PV would get reclaim policy C(Delete) back while it is not Bound, it keeps C(Retain) and a
    warning says so, since C(Delete) would make Kubernetes delete it. What was left alone is reported as warnings.
seealso:
  - module: velero.data_restore.workload_scale
  - module: velero.data_restore.restore_session
"""

EXAMPLES = r"""
- name: Create the new claims a PodVolumeRestore restores into (replace mode)
  velero.data_restore.claim_patch:
    session: shop-rollback
    volumes: "{{ plan.volumes }}"
    state: prepared

- name: Swap the restored volumes in (workloads stopped before)
  velero.data_restore.claim_patch:
    session: shop-rollback
    volumes: "{{ plan.volumes }}"

- name: Swap one claim by name
  velero.data_restore.claim_patch:
    session: shop-rollback
    volumes:
      - namespace: shop
        pvc: uploads
        new_pvc: uploads-restored

- name: Roll back to the data before the restore
  velero.data_restore.claim_patch:
    session: shop-rollback
    volumes: "{{ plan.volumes }}"
    state: reverted

- name: Free the old volumes once the restore is verified (irreversible; the cleanup role does this)
  velero.data_restore.claim_patch:
    session: shop-rollback
    state: freed
"""

RETURN = r"""
volumes:
  description: One entry per volume.
  returned: always
  type: list
  elements: dict
  contains:
    key:
      description: Session volume key C(<namespace>/<pvc>).
      type: str
      sample: shop/data
    namespace:
      description: Namespace of the claims.
      type: str
      sample: shop
    pvc:
      description: The original claim name (kept by rebind).
      type: str
      sample: data
    new_pvc:
      description: The restored claim name.
      type: str
      sample: data-restored
    old_pv:
      description: The PV holding the data before the restore (retained by rebind).
      type: str
      sample: pvc-5b0d3c6e-1111-4c3b-9a77-0a4c2f1d9e01
    new_pv:
      description: The PV holding the restored data.
      type: str
      sample: pvc-8e1c1f0a-2222-4a55-b3f1-7f0b6c3d2a10
    mode:
      description: V(rebind) or V(template).
      type: str
      sample: rebind
    state:
      description:
        - V(swapped), V(reverted), V(would_swap), V(would_revert) (check mode) or V(not_swapped);
          with O(state=prepared) V(created), V(exists), V(would_create) (check mode) or V(skipped) (a DataDownload volume).
      type: str
      sample: swapped
    changed:
      description: Whether this volume changed.
      type: bool
    workloads:
      description: Template mode, the workloads patched (C(Kind/name)).
      type: list
      elements: str
      returned: mode=template
deleted_pvs:
  description: With O(state=freed), the PersistentVolumes deleted (in check mode, that would be deleted).
  returned: with O(state=freed)
  type: list
  elements: str
  sample: [pvc-3f1c0e0b-2a54-4c1e-9d8e-6a1b8f0c2d11]
deleted_claims:
  description: With O(state=freed), the session's new claims deleted after a rollback (C(namespace/name)).
  returned: with O(state=freed)
  type: list
  elements: str
  sample: [shop/data-restored-ab12cd]
policies_restored:
  description: With O(state=freed), the Bound PVs given their recorded reclaim policy back.
  returned: with O(state=freed)
  type: list
  elements: dict
  contains:
    pv:
      description: PersistentVolume name.
      type: str
    policy:
      description: The reclaim policy it has again.
      type: str
  sample: [{pv: pvc-9a0e, policy: Delete}]
kept:
  description: With O(state=freed), what is not freed and why (empty when the task succeeds; the task fails otherwise).
  returned: with O(state=freed)
  type: list
  elements: dict
  sample: []
session_state:
  description: The state the session was moved to (O(session_state)); in check mode the state it would move to.
  returned: when O(session_state) was given and the task's own work succeeded
  type: str
  sample: restored
"""

from ansible_collections.velero.data_restore.plugins.module_utils import claims
from ansible_collections.velero.data_restore.plugins.module_utils.module import (
    SESSION_ARG_SPEC,
    SESSION_STATE_ARG_SPEC,
    WAIT_ARG_SPEC,
    run_module,
)


def run(module, kube):
    result = claims.patch_claims(kube, module.params, check_mode=module.check_mode)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    if not module._diff:
        result.pop("diff", None)
    return result


def main():
    spec = dict(
        volumes=dict(type="list", elements="dict"),
        mode=dict(type="str", default="rebind", choices=list(claims.MODES)),
        state=dict(type="str", default="swapped", choices=list(claims.STATES)),
    )
    spec.update(SESSION_ARG_SPEC)
    spec.update(SESSION_STATE_ARG_SPEC)
    spec.update(WAIT_ARG_SPEC)
    run_module(spec, run, required_if=[("state", state, ["volumes"]) for state in claims.STATES if state != "freed"])


if __name__ == "__main__":
    main()
