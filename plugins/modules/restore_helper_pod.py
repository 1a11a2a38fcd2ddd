#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: restore_helper_pod
short_description: Create or delete the pods that mount target PVCs for Velero's node-agent
version_added: 0.1.0
description:
  - Velero's node-agent restores a PodVolumeRestore only into a pod that runs on its node and whose init
    container named C(restore-wait) is running. This module creates such helper pods in the target namespace,
    one per group of PVCs that can be mounted together (same node constraint of their bound PVs).
  - The C(restore-wait) init container is built exactly as Velero's own restore does, with image, command,
    resources and securityContext taken from Velero's plugin ConfigMap (labels C(velero.io/plugin-config) and
    C(velero.io/pod-volume-restore=RestoreItemAction)) or else from the C(velero) Deployment's image, and
    with the session UID as its argument (the node-agent writes the done file for that UID).
  - The main container runs C(/velero-helper pause) with C(restartPolicy=Always), so the pod and its volume
    mounts stay up until it is deleted, even if a container dies while a restore is running.
  - Waits until C(restore-wait) runs in every pod. Once a pod is scheduled, fails at once when no Ready
    node-agent pod runs on its node (instead of Velero's 30-minute prepare timeout).
  - An existing helper pod is reused only when its spec is what would be created now; a different one is
    never replaced silently.
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
    description: Reports the pods that would be created, with their full spec in the diff.
  diff_mode:
    support: full
    description: Shows the pods created or deleted.
options:
  state:
    description:
      - V(present) creates the helper pods and waits until C(restore-wait) runs.
      - V(absent) deletes the session's helper pods (in O(namespace), or in every namespace) and waits until gone.
    type: str
    choices: [present, absent]
    default: present
  namespace:
    description:
      - Namespace of the PVCs. Required with O(pvcs); with O(volumes) it limits the records used.
    type: str
  pvcs:
    description: Names of the PVCs to mount.
    type: list
    elements: str
  volumes:
    description:
      - Volume records of the restore plan (as returned by M(velero.data_restore.restore_plan)). Records with
        C(restore_via=pod_volume_restore) are mounted, using C(new_pvc.name) in replace mode and C(target_pvc)
        otherwise; other keys are ignored.
    type: list
    elements: dict
  image:
    description:
      - Image of the helper containers, overriding Velero's resolution (for air-gapped registries).
    type: str
  node_selector:
    description: nodeSelector of the helper pods.
    type: dict
  affinity:
    description: Affinity of the helper pods (Kubernetes Affinity object).
    type: dict
  tolerations:
    description: Tolerations of the helper pods.
    type: list
    elements: dict
  node_name:
    description:
      - Run the helper pods on this node (C(spec.nodeName), bypassing the scheduler).
    type: str
  pin_to_consumer_node:
    description:
      - For a ReadWriteOnce PVC still mounted by a running pod (quiesce none), pin the helper pod to that pod's
        node (required node affinity on C(metadata.name)) and copy its tolerations, since another node could
        not attach the volume.
    type: bool
    default: false
  max_volumes_per_pod:
    description:
      - The most claims one helper pod mounts; a group of co-schedulable claims with more is split into pods
        C(<group>-1), C(<group>-2), ...
      - V(0) splits to the CSI volume attach limit of the nodes (the smallest C(allocatable.count) the CSINode objects
        give for the volumes' drivers), the limit kube-scheduler enforces; a pod over it would stay Pending. No split
        when no node gives a limit, or (with a warning) when the CSINodes cannot be listed.
      - Set it where the nodes' attach slots are partly taken by other pods' volumes.
    type: int
    default: 0
  labels:
    description: Extra labels of the helper pods.
    type: dict
  check_node_agent:
    description:
      - Fail as soon as a helper pod is scheduled on a node without a Running node-agent pod (label
        C(role=node-agent), as Velero counts them).
    type: bool
    default: true
notes:
  - Helper pods carry no ownerReference to the session, which lives in another namespace; delete them with
    O(state=absent) (the in_place and replace roles do).
"""

EXAMPLES = r"""
- name: Mount the app's PVCs for a restore
  velero.data_restore.restore_helper_pod:
    session: shop-restore
    namespace: shop
    pvcs: [data-db-0, uploads]
  register: helper

- name: Mount the planned volumes, pinned to the node of the running consumer
  velero.data_restore.restore_helper_pod:
    session: shop-restore
    volumes: "{{ plan.volumes }}"
    pin_to_consumer_node: true
    image: registry.example.com/velero/velero:v1.18.1

- name: Remove the helper pods after the restore
  velero.data_restore.restore_helper_pod:
    session: shop-restore
    state: absent
"""

RETURN = r"""
pods:
  description: One entry per helper pod (one per co-schedulable group of PVCs).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Pod name.
      type: str
      sample: restore-shop-restore-shared
    namespace:
      description: Pod namespace.
      type: str
      sample: shop
    uid:
      description: Pod UID (label C(velero.io/pod-uid) of its PodVolumeRestores). Null in check mode.
      type: str
    node:
      description: Node the pod runs on.
      type: str
      sample: worker-1
    group:
      description:
        - Group id (C(shared), C(node-<name>) or a hash of the PV node affinity), with a suffix C(-<n>) when the
          group was split (O(max_volumes_per_pod)).
      type: str
    phase:
      description: Pod phase.
      type: str
    restore_wait:
      description:
        - State of the restore-wait init container - V(pending) (no status yet, as in check mode), V(running),
          V(completed) (exited 0), C(waiting:<reason>) (for example V(waiting:ImagePullBackOff)) or
          C(terminated:<exit code>) (exited non-zero, for example V(terminated:1)).
      type: str
      sample: running
    volumes:
      description: PVC name to pod volume name.
      type: dict
      sample: {"data-db-0": "data-db-0"}
deleted:
  description: Pods deleted (namespace/name), with O(state=absent).
  returned: state is absent
  type: list
  elements: str
image:
  description: Image used for the helper containers.
  returned: state is present
  type: str
  sample: velero/velero:v1.18.1
notes:
  description: How Velero's plugin ConfigMap was applied (ignored values and why).
  returned: state is present
  type: list
  elements: str
session_state:
  description: The state the session was moved to (O(session_state)); in check mode the state it would move to.
  returned: when O(session_state) was given and the task's own work succeeded
  type: str
  sample: restored
"""

from ansible_collections.velero.data_restore.plugins.module_utils import helper_pod
from ansible_collections.velero.data_restore.plugins.module_utils.module import SESSION_STATE_ARG_SPEC, WAIT_ARG_SPEC, run_module


def run(module, kube):
    result = helper_pod.run(kube, module.params, check_mode=module.check_mode)
    for warning in result.pop("warnings", None) or []:
        module.warn(warning)
    return result


def main():
    spec = dict(
        session=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        namespace=dict(type="str"),
        pvcs=dict(type="list", elements="str"),
        volumes=dict(type="list", elements="dict"),
        image=dict(type="str"),
        node_selector=dict(type="dict"),
        affinity=dict(type="dict"),
        tolerations=dict(type="list", elements="dict"),
        node_name=dict(type="str"),
        pin_to_consumer_node=dict(type="bool", default=False),
        max_volumes_per_pod=dict(type="int", default=0),
        labels=dict(type="dict"),
        check_node_agent=dict(type="bool", default=True),
    )
    spec.update(WAIT_ARG_SPEC)
    spec.update(SESSION_STATE_ARG_SPEC)
    run_module(spec, run, required_by=dict(pvcs=["namespace"]))


if __name__ == "__main__":
    main()
