# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The length of one wait slice of the in_place and replace roles (the rule lives once, here)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: wait_slice_seconds
short_description: Length of the next wait slice of a long restore
version_added: 0.1.0
author: velero.data_restore contributors
description:
  - The restore roles wait for PodVolumeRestores and DataDownloads in slices, one module run and one progress line
    each.
  - Slices double from O(first) seconds, so the first lines come quickly, up to O(maximum) seconds, so a long restore
    costs one watch per O(maximum) seconds at most; the last slice ends at the timeout.
  - With O(total), a wait takes about 100 slices at most (100 long ones, after the few short ones that double);
    each slice is an include of the next, and ansible-core stops a play that nests about 245 includes (Python's
    recursion limit) without running its rescue. A long timeout therefore gets longer slices than O(maximum)
    (a 24 hour wait, 864 s slices).
options:
  _input:
    description: The number of slices already waited (0 for the first slice).
    type: int
    required: true
  first:
    description: Seconds of the first slice (at least 1).
    type: int
    required: true
  maximum:
    description: Seconds no slice exceeds, the first one included (at least 1).
    type: int
    required: true
  remaining:
    description: Seconds left until the timeout; the slice never exceeds it.
    type: int
    required: true
  total:
    description:
      - Seconds of the whole wait (the timeout). When given, slices are at least O(total) / 100 seconds long, so
        the wait takes about 100 slices at most.
      - Leave it out only for a wait that cannot get long.
    type: int
    required: false
"""

EXAMPLES = r"""
- name: Size the third slice of a wait that started with 15 s slices (15, 30, then 60)
  ansible.builtin.set_fact:
    slice_seconds: "{{ 2 | velero.data_restore.wait_slice_seconds(first=15, maximum=60, remaining=3600) }}"

- name: Size a slice of a 24 hour wait (slices grow to 864 s, so the wait takes 100 slices at most)
  ansible.builtin.set_fact:
    slice_seconds: "{{ 5 | velero.data_restore.wait_slice_seconds(first=15, maximum=60, remaining=80000, total=86400) }}"
"""

RETURN = r"""
_value:
  description: Seconds of the slice, at least 1 while O(remaining) is positive, else 0.
  type: int
"""

from ansible.errors import AnsibleFilterError

# Each slice is an include of the next; ansible-core hits Python's recursion limit at about 245 nested includes and
# then stops the play without its rescue. 100 leaves room for the includes around the loop.
MAX_SLICES = 100


def _whole(value, what, negative=False):
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise AnsibleFilterError("wait_slice_seconds: %s must be a whole number of seconds, got %r" % (what, value))
    if number < 0 and not negative:
        raise AnsibleFilterError("wait_slice_seconds: %s must not be negative, got %r" % (what, value))
    return number


def wait_slice_seconds(slice_index, first, maximum, remaining, total=None):
    slice_index = _whole(slice_index, "the slice number")
    first = max(1, _whole(first, "first"))
    maximum = max(1, _whole(maximum, "maximum"))
    if total is not None:
        # Ceiling division: MAX_SLICES slices of this length cover the whole wait.
        least = -(-_whole(total, "total") // MAX_SLICES)
        maximum = max(maximum, least)
    remaining = _whole(remaining, "remaining", negative=True)  # negative once a slice overran the timeout
    if remaining <= 0:
        return 0
    # 2 ** slice_index grows without bound; stop doubling once the cap is reached.
    seconds = first
    for _done in range(slice_index):
        if seconds >= maximum:
            break
        seconds *= 2
    return min(seconds, maximum, remaining)


class FilterModule(object):
    def filters(self):
        return {"wait_slice_seconds": wait_slice_seconds}
