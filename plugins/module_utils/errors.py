# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Domain errors. Modules turn every one of them into fail_json in one place (module.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class DataRestoreError(Exception):
    """An expected failure with a message a user can act on.

    ``details`` go into the module result next to ``msg`` (e.g. the offending objects).
    """

    def __init__(self, msg, **details):
        super(DataRestoreError, self).__init__(msg)
        self.msg = msg
        self.details = details


class PreflightError(DataRestoreError):
    """Bad input or cluster state found before any mutation."""


class SupersededError(DataRestoreError):
    """Another playbook run took the restore session over: this one must not act on it any more."""


class ApiError(DataRestoreError):
    """The Kubernetes API refused a request; ``status`` is the HTTP status (or None)."""

    def __init__(self, msg, status=None, reason=None, **details):
        super(ApiError, self).__init__(msg, status=status, reason=reason, **details)
        self.status = status
        self.reason = reason


class NotFoundError(ApiError):
    pass


class ForbiddenError(ApiError):
    pass


class ConflictError(ApiError):
    pass


class MissingApiError(DataRestoreError):
    """A kind is not served by the cluster (e.g. Velero's CRDs are not installed)."""


class WaitTimeout(DataRestoreError):
    """A wait ran out of time; ``pending`` says what was still not done.

    ``objects`` and ``version`` (what the wait saw last, for a later wait to continue from) are attributes, not
    details: details go into the module's failure result, and the objects may be whole pods of the namespace -
    their environment values included."""

    def __init__(self, msg, pending=None, objects=None, version=None, **details):
        super(WaitTimeout, self).__init__(msg, pending=pending or [], **details)
        self.pending = pending or []
        self.objects = objects or []
        self.version = version
