# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What is wrong with a list of restore hooks (the rule lives once, here): the playbooks check their hook inputs
with it before anything changes, and roles/quiesce checks its list before it runs the first hook."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: hook_problems
short_description: Problems of a list of pre- or post-restore hooks
version_added: 0.1.0
author: velero.data_restore contributors
description:
  - A hook is a task file C({name, tasks}) or a command C({name, command, pod | pod_selector, namespace,
    container, on_error, timeout}) (see roles/quiesce/README.md).
  - Returns one message per problem, naming the hook by its position and name, and O(variable); an empty list
    when the hooks are valid. An empty string or null counts as no hooks (an empty AWX survey answer).
options:
  _input:
    description: The hooks, a list of dicts (or one dict).
    type: raw
    required: true
  variable:
    description: The variable the hooks came from, used in the messages.
    type: str
    default: hooks
"""

EXAMPLES = r"""
- name: Refuse invalid hooks before anything changes
  ansible.builtin.assert:
    that: pre_restore_hooks | velero.data_restore.hook_problems(variable='pre_restore_hooks') | length == 0
    fail_msg: "{{ pre_restore_hooks | velero.data_restore.hook_problems(variable='pre_restore_hooks') | join(' ') }}"
"""

RETURN = r"""
_value:
  description: The problems, each with its fix; empty when the hooks are valid.
  type: list
  elements: str
"""

from ansible.module_utils.six import string_types

ON_ERROR = ("fail", "continue")
KNOWN = ("name", "tasks", "command", "pod", "pod_selector", "namespace", "container", "on_error", "timeout")


def _hook_problems(index, hook, variable):
    if not isinstance(hook, dict):
        return ["%s[%d] must be a dict with tasks, or command plus pod or pod_selector; got %r." % (
            variable, index, hook)]
    label = "%s[%d]%s" % (variable, index, (" (%s)" % hook["name"]) if hook.get("name") else "")
    problems = []
    unknown = sorted(set(hook) - set(KNOWN))
    if unknown:
        problems.append("%s has unknown keys %s (known: %s)." % (label, ", ".join(unknown), ", ".join(KNOWN)))
    if ("tasks" in hook) == ("command" in hook):
        problems.append("%s needs either tasks (a task file) or command, not both and not neither." % label)
    if "tasks" in hook and not (isinstance(hook["tasks"], string_types) and hook["tasks"].strip()):
        problems.append("%s: tasks must be the path of a task file." % label)
    if "command" in hook:
        command = hook["command"]
        if not command or not (isinstance(command, string_types) or (
                isinstance(command, list) and all(isinstance(part, string_types) for part in command))):
            problems.append("%s: command must be a non-empty string or list of strings." % label)
        if not hook.get("pod") and not hook.get("pod_selector"):
            problems.append("%s: give pod (a pod name) or pod_selector (a label selector) to run the command in."
                            % label)
    on_error = hook.get("on_error", "fail")
    if on_error not in ON_ERROR:
        problems.append("%s: on_error must be fail or continue (lowercase); got %r." % (label, on_error))
    if "timeout" in hook:
        timeout = hook["timeout"]
        if isinstance(timeout, bool) or not (isinstance(timeout, int) or (
                isinstance(timeout, string_types) and timeout.strip().isdigit())) or int(timeout) < 1:
            problems.append("%s: timeout must be a whole number of seconds, at least 1; got %r." % (label, timeout))
    return problems


def hook_problems(hooks, variable="hooks"):
    if hooks in (None, ""):
        return []
    if isinstance(hooks, dict):
        hooks = [hooks]
    if not isinstance(hooks, list):
        return ["%s must be a list of hooks (dicts); got %r." % (variable, hooks)]
    problems = []
    for index, hook in enumerate(hooks):
        problems.extend(_hook_problems(index, hook, variable))
    return problems


class FilterModule(object):
    def filters(self):
        return {"hook_problems": hook_problems}
