# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Options every module has besides kubernetes.core's connection options.
    DOCUMENTATION = r"""
options:
  velero_namespace:
    description:
      - Namespace where Velero runs; its PodVolumeRestores, DataDownloads, DownloadRequests and
        the restore session live there.
      - Use C(openshift-adp) on OpenShift with OADP.
    type: str
    default: velero
  session_run:
    description:
      - The playbook run this task belongs to - one run id, or a dict of run ids by session name (what the roles
        pass, so one play can hold several sessions). M(velero.data_restore.restore_plan) with
        C(create_session=true) (the preflight role) takes the session over for it and returns the id; the roles
        pass it to every later module of the play (in C(connection__velero)).
      - With O(session_run), a module whose session another run has taken over since fails, before it changes
        anything, with C(superseded_by) naming that run. Two runs of one session thus never act on its volumes
        at the same time; the newest one goes on.
      - Without it (or without an id for the module's session) nothing is checked. Ignored by modules without a
        session (M(velero.data_restore.backup_info)).
    type: raw
notes:
  - Connection options and their C(K8S_AUTH_*) environment variables are those of
    M(kubernetes.core.k8s), so AWX/Automation Controller OpenShift or Kubernetes credentials work as they are.
  - "On failure the result has C(msg) (what failed and what to do about it), C(changed) (whether the task changed
    the cluster before it failed), the C(volumes) and C(pending) a failed wait still reports, and, depending on the
    cause, keys that name what failed:
    C(status) and C(reason) (a Kubernetes API request was refused - its HTTP status, 403 for a missing RBAC
    permission, and the API server's message);
    C(missing) (the Velero kinds the cluster does not serve), C(kind) and C(api_version) (a kind it does not serve);
    C(superseded_by) and C(session_run) (another playbook run took the session over - its id, and this run's);
    C(backup), C(phase), C(storage_location) and C(namespace) (the backup refused, its phase, its
    BackupStorageLocation, the target namespace);
    C(problems) (every problem the plan found, one text each);
    C(volume), C(pvc), C(pod), C(pods), C(node), C(workload), C(workloads), C(other_session), C(config_maps),
    C(missing_pvcs), C(block_pvcs), C(kept), C(path) and C(volumes_done) (the volume record, claim, pods, node,
    workloads, other restore session, ConfigMaps, claims not found or in Block mode, volumes not freed, report
    file, or volumes swapped before the failure)."
requirements:
  - python >= 3.9
  - kubernetes >= 24.2.0
"""

    SESSION = r"""
options:
  session:
    description:
      - Name of the restore session (ConfigMap C(data-restore-<session>) in O(velero_namespace)).
      - A DNS-1123 label of at most 50 characters. Re-running with the same session continues it.
    type: str
    required: true
"""

    SESSION_STATE = r"""
options:
  session_state:
    description:
      - Move the session to this state once the task's own work succeeded (for a waiting task - when it is
        done, not when it timed out), as M(velero.data_restore.restore_session) O(session_state) would.
      - Saves the separate C(restore_session) task (one module start and one session read) at each step of
        the roles.
      - Needs O(session).
    type: str
    choices: [planned, quiescing, quiesced, restoring, restored, swapping, swapped, resuming, completed, failed,
              rolling_back, rolled_back]
"""

    WAIT = r"""
options:
  wait:
    description:
      - Wait until the operation has finished, watching the objects (no polling loops).
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait before giving up; the failure lists what was still pending.
    type: int
    default: 600
"""
