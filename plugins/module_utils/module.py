# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place where modules are assembled: argument spec, client, error handling."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.velero.data_restore.plugins.module_utils.client import (
    KUBERNETES_IMPORT_ERROR,
    VELERO_ARG_SPEC,
    auth_arg_spec,
    get_kube,
    missing_dependency_message,
)
from ansible_collections.velero.data_restore.plugins.module_utils import session as sessions
from ansible_collections.velero.data_restore.plugins.module_utils.errors import DataRestoreError, PreflightError

WAIT_ARG_SPEC = dict(
    wait=dict(type="bool", default=True),
    wait_timeout=dict(type="int", default=600),
)

SESSION_ARG_SPEC = dict(
    session=dict(type="str", required=True),
)

# Moves the session to a state after the module's own work succeeded, in the same process (saves a
# restore_session task: one module start and one session read per step).
SESSION_STATE_ARG_SPEC = dict(
    session_state=dict(type="str", choices=list(sessions.STATES)),
)

# Options of the modules that create Velero data-path objects (PodVolumeRestore, DataDownload).
DATA_PATH_ARG_SPEC = dict(
    session=dict(type="str", required=True),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    volumes=dict(type="list", elements="dict"),
    session_state=SESSION_STATE_ARG_SPEC["session_state"],
    retry_failed=dict(type="bool", default=False),
    fail_fast=dict(type="bool", default=False),
    fail_on_timeout=dict(type="bool", default=True),
    **WAIT_ARG_SPEC
)


def build_argument_spec(*specs):
    spec = auth_arg_spec()
    spec.update(VELERO_ARG_SPEC)
    for extra in specs:
        spec.update(extra)
    return spec


def run_module(argument_spec, runner, takes_over=False, runner_sets_state=False, **module_kwargs):
    """Build the module, call ``runner(module, kube) -> result dict``, exit or fail.

    Every DataRestoreError becomes fail_json with its message and details; anything else is
    a bug and keeps its traceback. ``takes_over`` (bool, or a function of the params): the module takes the
    session over for ``session_run`` instead of being fenced by it. ``runner_sets_state``: the runner applies
    ``session_state`` itself (restore_session, with its ``error``), so it is not applied again afterwards.
    """
    module_kwargs.setdefault("supports_check_mode", True)
    module = AnsibleModule(argument_spec=build_argument_spec(argument_spec), **module_kwargs)
    missing = missing_dependency_message()
    if missing:
        module.fail_json(msg=missing, exception=KUBERNETES_IMPORT_ERROR)
    try:
        kube = get_kube(module.params)
        kube.session_cache = {}  # one read of the session per module run (session.load)
        _fence(module, kube, takes_over)
        result = runner(module, kube)
        if module.params.get("session_state") and not runner_sets_state:
            result = _move_session(module, kube, result)
    except DataRestoreError as exc:
        details = dict((key, value) for key, value in exc.details.items() if key not in ("msg", "changed"))
        # What the run changed before it failed (PVRs created, then one failed) is reported, as ansible shows it.
        module.fail_json(msg=exc.msg, changed=bool(exc.details.get("changed")), **details)
    module.exit_json(**result)


def _fence(module, kube, takes_over):
    """With ``session_run``, refuse to act on a session that another playbook run took over (session.fence)."""
    params = module.params
    run = sessions.run_for(params.get("session_run"), params.get("session"))
    if not run or not params.get("session"):
        return
    if takes_over(params) if callable(takes_over) else takes_over:
        return
    sessions.check_name(params["session"])
    sessions.fence(kube, params["velero_namespace"], params["session"], run)


def _move_session(module, kube, result):
    """Apply ``session_state`` after the runner succeeded (not when its result says it failed or timed out)."""
    if result.get("failed") or result.get("done") is False:
        return result
    name = module.params.get("session")
    if not name:
        raise PreflightError("session_state=%s needs session (the restore session to move)." % module.params["session_state"])
    moved, changed = sessions.set_state(kube, module.params["velero_namespace"], name, module.params["session_state"],
                                        check_mode=module.check_mode)
    result = dict(result)
    result["changed"] = bool(result.get("changed")) or changed
    result["session_state"] = moved.state if not module.check_mode else module.params["session_state"]
    return result
