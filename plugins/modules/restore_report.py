#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: restore_report
short_description: Write the JSON and Markdown report of a restore session and return its summary
version_added: 0.1.0
description:
  - Reads the restore session (ConfigMap C(data-restore-<session>)) and, with one labelled list each, the
    session's PodVolumeRestores and DataDownloads (only the kinds the plan restores through).
  - Builds the report (volumes, method, bytes, durations, workloads stopped and started, hooks, state timeline,
    warnings and notes; for in-place restores the note that files created after the backup remain in the volumes)
    and writes C(data-restore-<session>.json) and C(data-restore-<session>.md) into O(directory).
  - The report only depends on the session and its Velero objects, so a re-run without changes leaves both files
    untouched and reports no change. Files are replaced atomically.
  - Fails with a message naming the session, its ConfigMap and O(velero_namespace) when the session does not exist.
author:
  - velero.data_restore contributors (@velero-data-restore)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - velero.data_restore.common
  - velero.data_restore.common.session
attributes:
  check_mode:
    support: full
    description: Builds the report and reports whether the files would change, without writing them.
  diff_mode:
    support: full
    description: Shows the content of each report file before and after, when it changes.
options:
  directory:
    description:
      - Directory the report files are written to, on the host running the module. Created (mode C(0755)) if missing.
      - A relative path is taken from the module's working directory. With a local connection Ansible runs modules
        in the playbook's directory, not the one C(ansible-playbook) was started in; the report role passes an
        absolute path (a relative O(directory) there is resolved on the controller). The returned file paths are
        absolute.
      - The files get mode C(0644).
    type: path
    required: true
  warnings:
    description: Extra warnings to list in the report after the plan's warnings (e.g. from the modules' results in this run).
    type: list
    elements: str
    default: []
  write:
    description: Write the files. With V(false) only RV(report) and RV(summary) are returned.
    type: bool
    default: true
  session_state:
    description:
      - Move the session to this state (clearing its error) B(before) the report is built, so the report shows it.
      - The restore playbooks mark a finished restore V(completed) here, which saves a separate
        M(velero.data_restore.restore_session) task (one module start and one session read).
    type: str
    choices: [planned, quiescing, quiesced, restoring, restored, swapping, swapped, resuming, completed, failed,
              rolling_back, rolled_back]
"""

EXAMPLES = r"""
- name: Write the report next to the playbook and show the summary
  velero.data_restore.restore_report:
    session: shop-rollback
    directory: "{{ playbook_dir }}"
  register: report

- name: Print the summary table
  ansible.builtin.debug:
    msg: "{{ report.summary }}"

- name: Mark the restore completed and report it
  velero.data_restore.restore_report:
    session: shop-rollback
    directory: "{{ playbook_dir }}"
    session_state: completed

- name: Only build the report (no files)
  velero.data_restore.restore_report:
    session: shop-rollback
    directory: /tmp
    write: false
  register: report
"""

RETURN = r"""
report:
  description:
    - The JSON report, as written to RV(files.json).
    - Keys session, mode, state, error, backup, created, finished, duration_seconds, volumes (key, source, target_namespace,
      target_pvc, method, restore_via, new_pvc, object, phase, bytes_done, total_bytes, started, completed, duration_seconds,
      swap, ...), total_bytes, workloads, hooks, phases, warnings and notes.
  returned: always
  type: dict
  sample:
    session: shop-rollback
    mode: replace
    state: completed
    total_bytes: 6244
files:
  description: Paths of the report files (written unless O(write=false)).
  returned: always
  type: dict
  contains:
    json:
      description: Path of the JSON report.
      type: str
      sample: /srv/dr/data-restore-shop-rollback.json
    markdown:
      description: Path of the Markdown report.
      type: str
      sample: /srv/dr/data-restore-shop-rollback.md
summary:
  description: The summary table, one line per item (session, one row per volume, workloads, notes, report paths).
  returned: always
  type: list
  elements: str
  sample:
    - "Session shop-rollback (replace): completed; backup nightly; 6244 bytes"
session_state:
  description: The state the session was moved to before the report was built (O(session_state)); in check mode the
    state it would move to.
  returned: when O(session_state) was given
  type: str
  sample: completed
"""

import os

from ansible_collections.velero.data_restore.plugins.module_utils import report as reports
from ansible_collections.velero.data_restore.plugins.module_utils.module import (
    SESSION_ARG_SPEC,
    SESSION_STATE_ARG_SPEC,
    run_module,
)

# (name, spec) pairs: a `warnings` keyword or dict-literal key would read like the deprecated top-level result key.
OPTIONS = (
    ("directory", dict(type="path", required=True)),
    ("warnings", dict(type="list", elements="str", default=[])),
    ("write", dict(type="bool", default=True)),
)


def run(module, kube):
    p = module.params
    # Absolute, so the returned file paths still name the files wherever the caller reads them.
    result = reports.run_report(kube, p["velero_namespace"], p["session"], os.path.abspath(p["directory"]),
                                p["warnings"], write=p["write"], check_mode=module.check_mode,
                                session_state=p["session_state"])
    if not module._diff:
        result.pop("diff")
    return result


def main():
    run_module(dict(OPTIONS, **dict(SESSION_ARG_SPEC, **SESSION_STATE_ARG_SPEC)), run)


if __name__ == "__main__":
    main()
