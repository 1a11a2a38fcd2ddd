# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A path given to a playbook, taken from the directory ansible-playbook runs in. Ansible runs a local module in the
playbook's directory, which is inside the installed collection when a playbook is run by its name; filters run on
the controller, in ansible-playbook's own working directory."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: path_from_cwd
short_description: A relative path, taken from the directory ansible-playbook runs in
version_added: 0.1.0
author: velero.data_restore contributors
description:
  - A relative path becomes absolute, joined to the working directory of C(ansible-playbook) on the controller (the
    project directory of an AWX / Automation Controller job).
  - An absolute path, a path starting with C(~) (the module expands it on its host) and an empty or null value are
    returned as they are (empty stays empty, so an option left blank is still left out).
  - Why - Ansible runs a module of a local connection in the playbook's directory, so a relative path given to
    C(ansible-playbook velero.data_restore.restore_in_place) would point inside the installed collection.
options:
  _input:
    description: The path as the user gave it.
    type: path
    required: true
"""

EXAMPLES = r"""
- name: Connection options of a playbook run by its name
  ansible.builtin.set_fact:
    my_kubeconfig: "{{ kubeconfig | default('', true) | velero.data_restore.path_from_cwd }}"
"""

RETURN = r"""
_value:
  description: The path, absolute when it was relative; empty when it was empty or null.
  type: str
"""

import os

from ansible.module_utils.common.text.converters import to_text


def path_from_cwd(path):
    path = to_text(path or "")
    if not path or os.path.isabs(path) or path.startswith("~"):
        return path
    return os.path.normpath(os.path.join(os.getcwd(), path))


class FilterModule(object):
    def filters(self):
        return {"path_from_cwd": path_from_cwd}
