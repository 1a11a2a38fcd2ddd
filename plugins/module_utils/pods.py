# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a pod is to a restore: which claims it mounts, whether it uses or holds them, whose helper it is.

Plain functions over pod dicts, shared by the workload, claim and helper-pod layers (each rule once).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.velero.data_restore.plugins.module_utils import names

TERMINAL_PHASES = ("Succeeded", "Failed")


def is_terminal(pod):
    return (pod.get("status") or {}).get("phase") in TERMINAL_PHASES


def claim_names(pod):
    """Names of the PVCs a pod mounts."""
    out = []
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if claim:
            out.append(claim)
    return out


def pods_using(pods, pvcs, exclude_session=None):
    """Non-terminal pods that mount one of ``pvcs`` (names), without the helper pods of ``exclude_session``."""
    wanted = set(pvcs)
    return [p for p in pods if not is_terminal(p) and wanted & set(claim_names(p))
            and not (exclude_session and pod_session(p) == exclude_session)]


def is_scheduled(pod):
    return bool((pod.get("spec") or {}).get("nodeName"))


def pods_holding(pods, pvcs):
    """Pods that keep one of ``pvcs`` (names) from being deleted or taken over: the running ones, and the finished
    ones still scheduled, which kubernetes.io/pvc-protection counts whatever their phase (k8s
    pkg/controller/volume/pvcprotection/pvc_protection_controller.go, podUsesPVC). A pod being deleted is left out:
    it goes by itself (a stopped workload's pod turns Failed/Succeeded before it is removed, Kubernetes >= 1.27), and
    the claim's delete waits for it."""
    wanted = set(pvcs)
    return [p for p in pods if (not is_terminal(p) or is_scheduled(p)) and not (p.get("metadata") or {}).get(
        "deletionTimestamp") and wanted & set(claim_names(p))]


def pod_session(pod):
    """The restore session a pod belongs to (helper/placeholder pods of this collection), else None."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    if labels.get(names.LABEL_MANAGED_BY) != names.MANAGED_BY:
        return None
    return labels.get(names.LABEL_SESSION) or None


def is_own_pod(pod, session):
    """A pod of this collection for ``session`` (its helper or placeholder): never a workload to stop."""
    return bool(session) and pod_session(pod) == session


def finished_pods_holding(listed_pods, pvcs):
    """The finished pods that keep ``pvcs`` (names) from being deleted (pods_holding) and that stopping the
    workloads does not remove: a StatefulSet (apps/v1) deletes its pods, failed ones included, when scaled to 0; a
    ReplicaSet leaves its failed pods (evicted ones, for instance), and a Job keeps its pods until it goes."""
    return [p for p in pods_holding(listed_pods, pvcs) if is_terminal(p) and not any(
        ref.get("kind") == "StatefulSet" and ref.get("apiVersion") == "apps/v1" and ref.get("controller")
        for ref in (p.get("metadata") or {}).get("ownerReferences") or [])]
