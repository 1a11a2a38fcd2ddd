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
from ansible_collections.velero.data_restore.plugins.module_utils.errors import DataRestoreError

WAIT_ARG_SPEC = dict(
    wait=dict(type="bool", default=True),
    wait_timeout=dict(type="int", default=600),
)

SESSION_ARG_SPEC = dict(
    session=dict(type="str", required=True),
)

# Options of the modules that create Velero data-path objects (PodVolumeRestore, DataDownload).
DATA_PATH_ARG_SPEC = dict(
    session=dict(type="str", required=True),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    volumes=dict(type="list", elements="dict"),
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


def run_module(argument_spec, runner, **module_kwargs):
    """Build the module, call ``runner(module, kube) -> result dict``, exit or fail.

    Every DataRestoreError becomes fail_json with its message and details; anything else is
    a bug and keeps its traceback.
    """
    module_kwargs.setdefault("supports_check_mode", True)
    module = AnsibleModule(argument_spec=build_argument_spec(argument_spec), **module_kwargs)
    missing = missing_dependency_message()
    if missing:
        module.fail_json(msg=missing, exception=KUBERNETES_IMPORT_ERROR)
    try:
        kube = get_kube(module.params)
        result = runner(module, kube)
    except DataRestoreError as exc:
        details = dict((key, value) for key, value in exc.details.items() if key not in ("msg", "changed"))
        module.fail_json(msg=exc.msg, **details)
    module.exit_json(**result)
