# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The session name of a restore playbook run: the user's, or one derived from the restore (the rule lives once,
in module_utils/names.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: session_name
short_description: Session name of a restore run, given or derived
version_added: 0.1.0
author: velero.data_restore contributors
description:
  - A given name is lowercased and trimmed, nothing else; the modules refuse it, naming it, when it is not a
    DNS-1123 label of at most 50 characters (two different names never become one).
  - Without a name, one is derived from the mode, the namespace, the target namespace when it is another one, and
    the backup, e.g. C(in-place-shop-nightly-1) or C(replace-shop-to-shop-test-nightly-1); a
    name longer than 50 characters is cut and ends with a hash of the parts, so two long backup names that share a
    prefix get different sessions.
options:
  _input:
    description: The session name the user gave; empty or null derives one.
    type: str
    required: true
  mode:
    description: Restore mode, V(in_place) or V(replace).
    type: str
    required: true
  namespace:
    description: Source namespace of the restore; empty gives an empty name (the caller reports the namespace
      missing).
    type: str
    required: true
  backup:
    description: Backup name, or V(latest).
    type: str
    required: true
  target:
    description: Target namespace; part of the derived name when it differs from O(namespace).
    type: str
"""

EXAMPLES = r"""
- name: The session of this run
  ansible.builtin.set_fact:
    restore_session_name: >-
      {{ session | default('') | velero.data_restore.session_name(mode='in_place', namespace='shop',
         backup=backup | default('latest', true)) }}
"""

RETURN = r"""
_value:
  description: The session name.
  type: str
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.velero.data_restore.plugins.module_utils import names


def session_name(given, mode, namespace, backup, target=None):
    given = to_text(given or "").strip().lower()
    if given:
        return given
    if not namespace:
        return ""  # the preflight names what is missing (the source namespace), before any change
    if not backup:
        raise AnsibleFilterError("session_name: backup (a name, or latest) is needed to derive a session name.")
    return names.derive_session_name(to_text(backup), to_text(namespace), to_text(mode),
                                     to_text(target) if target else None)


class FilterModule(object):
    def filters(self):
        return {"session_name": session_name}
