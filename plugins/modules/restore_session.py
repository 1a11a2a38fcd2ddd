#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: restore_session
short_description: Create, read, update or delete a data-only restore session
version_added: 0.1.0
description:
  - A restore session is the journal and anchor of one data-only restore, a ConfigMap
    C(data-restore-<session>) in the Velero namespace holding the plan, per-volume state, hook
    results and every undo record (original replicas, retained PVs, ...).
  - Its UID owns the PodVolumeRestores and DataDownloads of the restore and is the argument of the
    C(restore-wait) init container, so Velero's node-agent writes the done file for it.
  - Deleting a session lets Kubernetes garbage-collect those objects. Deletion is refused while undo
    records are still in effect, unless O(force=true).
author:
  - velero.data_restore contributors (@velero-data-restore)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - velero.data_restore.common
  - velero.data_restore.common.session
attributes:
  check_mode:
    support: full
    description: Reports what would change without changing the cluster.
  diff_mode:
    support: full
    description: Shows the session document before and after.
options:
  state:
    description:
      - V(present) creates the session if missing (and fills an empty mode, backup or plan).
      - V(query) only reads it; RV(exists) tells whether it exists.
      - V(absent) deletes it.
    type: str
    choices: [present, absent, query]
    default: present
  mode:
    description: Restore mode recorded in the session. A different mode than the recorded one fails.
    type: str
    choices: [in_place, replace]
  backup:
    description:
      - The backup being restored, as returned by M(velero.data_restore.backup_info) (at least C(name)).
      - A different backup name than the recorded one fails.
    type: dict
  plan:
    description:
      - The validated restore plan to store. Replaced only while the session is still V(planned).
      - A session that has started keeps the plan it recorded; a different plan given then is not stored, and a
        warning says so.
    type: dict
  session_state:
    description: Move the session to this state (e.g. V(failed) with O(error)).
    type: str
    choices: [planned, quiescing, quiesced, restoring, restored, swapping, swapped, resuming, completed,
              failed, rolling_back, rolled_back]
  error:
    description: Error message stored with O(session_state).
    type: str
  hook_result:
    description: A hook result to append to the session's hook log (used by the quiesce and resume roles).
    type: dict
  force:
    description: With O(state=absent), delete even though undo records are still in effect.
    type: bool
    default: false
  take_over:
    description:
      - With O(state=present), take the existing session over for O(session_run) (a new run id when not given,
        returned as RV(session_run)), as M(velero.data_restore.restore_plan) with C(create_session=true) does. The
        run that held it fails at its next step, before it changes anything; the take-over waits 6 seconds for a
        module still running in that run, as in M(velero.data_restore.restore_plan). The rollback role does this.
      - Fails when the session does not exist.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Start (or continue) a session for last night's backup
  velero.data_restore.restore_session:
    session: shop-rollback
    mode: replace
    backup:
      name: nightly-20261124
  register: restore

- name: Read a session
  velero.data_restore.restore_session:
    session: shop-rollback
    state: query
  register: found

- name: Mark it failed
  velero.data_restore.restore_session:
    session: shop-rollback
    session_state: failed
    error: PodVolumeRestore failed

- name: Take it over for this playbook run (a run that still holds it stops at its next step)
  velero.data_restore.restore_session:
    session: shop-rollback
    take_over: true
  register: taken

- name: Delete it once the restore was verified and rolled forward
  velero.data_restore.restore_session:
    session: shop-rollback
    state: absent
"""

RETURN = r"""
session_run:
  description: With O(take_over) - the playbook run that now holds the session.
  returned: with O(take_over)
  type: str
  sample: run-3f9c0a51d2e4
exists:
  description: Whether the session exists (after the task).
  returned: always
  type: bool
  sample: true
session:
  description: The session.
  returned: when it exists
  type: dict
  contains:
    name:
      description: Session name.
      type: str
      sample: shop-rollback
    object_name:
      description: Name of the ConfigMap.
      type: str
      sample: data-restore-shop-rollback
    namespace:
      description: Namespace of the ConfigMap (the Velero namespace).
      type: str
      sample: velero
    uid:
      description: UID of the ConfigMap; owner of the session's Velero objects.
      type: str
      sample: 6f0c1b36-3c59-4c64-b8a4-2f0f4a1c1d2e
    state:
      description: Session state.
      type: str
      sample: planned
    swaps:
      description:
        - The swaps of a replace, from the journal's records (a swap counts from its first record, before any change).
      type: dict
      contains:
        started:
          description: Keys of the plan volumes whose swap began and was not reverted (their data is restored).
          type: list
          elements: str
          sample: [shop/data]
        mode:
          description: The swap mode (V(rebind) or V(template)), or null when no swap was recorded.
          type: str
          sample: rebind
        partial:
          description:
            - True when some plan volume's swap began but not every volume is swapped. Starting the workloads then
              would run them on a mix of restored and old data (the restore playbooks' rescue rolls those swaps back
              first).
          type: bool
          sample: false
    stopped_workloads:
      description:
        - The workloads (V(Kind namespace/name)) the session stopped and has not started again. The quiesce role
          skips the pre-restore hooks of a re-run while this list is not empty, because the hooks ran before the
          workloads were stopped, and their pods are gone.
      type: list
      elements: str
      sample: [Deployment shop/web]
    cleanup_began:
      description:
        - The PersistentVolumes cleanup (M(velero.data_restore.claim_patch) O(state=freed)) began to delete, marked in
          the journal before its first change. Once it is not empty the session cannot be rolled back.
      type: list
      elements: str
      sample: []
    document:
      description: The full session document (plan, volumes, undo records, hooks, history).
      type: dict
"""

from ansible_collections.velero.data_restore.plugins.module_utils import session as sessions
from ansible_collections.velero.data_restore.plugins.module_utils.errors import PreflightError
from ansible_collections.velero.data_restore.plugins.module_utils.module import run_module


def run(module, kube):
    p = module.params
    ns, name, check = p["velero_namespace"], p["session"], module.check_mode
    sessions.check_name(name)
    before = sessions.load(kube, ns, name)
    before_doc = before.doc if before else None
    if p["state"] == "query":
        return dict(changed=False, exists=before is not None,
                    session=before.result() if before else None)
    if p["state"] == "absent":
        changed = sessions.delete(kube, ns, name, force=p["force"], check_mode=check)
        return dict(changed=changed, exists=False, session=None,
                    diff=dict(before=before_doc or {}, after={}))
    run = None
    if p["take_over"]:
        if p["state"] != "present" or before is None:
            raise PreflightError(
                "take_over needs state=present and an existing session; restore session %r %s." % (
                    name, "not found in %s" % ns if before is None else "is only read with state=%s" % p["state"]))
        run = sessions.run_for(p["session_run"], name) or sessions.new_run_id()
    current, changed = sessions.ensure(kube, ns, name, mode=p["mode"], backup=p["backup"],
                                       plan=p["plan"], check_mode=check, run=run)
    if before is not None and p["plan"] is not None and before.state != "planned" and before_doc.get("plan") != p["plan"]:
        module.warn("Restore session %s is %s: it keeps the plan it recorded, the plan given was not stored. Use another "
                    "session name for a different restore, or roll this one back first." % (name, before.state))
    if current is not None and p["session_state"]:
        current, moved = sessions.set_state(kube, ns, name, p["session_state"], error=p["error"],
                                            check_mode=check)
        changed = changed or moved
    if current is not None and p["hook_result"]:
        if not check:
            current = sessions.append_hook_result(kube, ns, name, p["hook_result"])
        changed = True
    after_doc = current.doc if current else sessions.new_document(name, p["mode"], p["backup"], p["plan"])
    result = dict(changed=changed, exists=current is not None or check,
                  session=current.result() if current else None,
                  diff=dict(before=before_doc or {}, after=after_doc))
    if run:
        result["session_run"] = run
    return result


def main():
    run_module(
        dict(
            state=dict(type="str", default="present", choices=["present", "absent", "query"]),
            mode=dict(type="str", choices=list(sessions.MODES)),
            backup=dict(type="dict"),
            plan=dict(type="dict"),
            session_state=dict(type="str", choices=list(sessions.STATES)),
            error=dict(type="str"),
            hook_result=dict(type="dict"),
            force=dict(type="bool", default=False),
            take_over=dict(type="bool", default=False),
            session=dict(type="str", required=True),
        ),
        run,
        takes_over=lambda params: params["take_over"],
        runner_sets_state=True,
        required_by=dict(error=["session_state"]),
    )


if __name__ == "__main__":
    main()
