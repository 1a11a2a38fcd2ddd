# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Watch-based waits: one LIST, then a WATCH from its resourceVersion; never a sleep loop.

A wait keeps a local cache of the watched objects and asks a predicate after every event.
It re-lists when the watch expires (HTTP 410) or the connection drops (e.g. an apiserver
restart), and gives up at a monotonic deadline with what was still pending.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.velero.data_restore.plugins.module_utils.errors import ApiError, WaitTimeout
from ansible_collections.velero.data_restore.plugins.module_utils.kube import WatchExpired

# Longest single watch request; the loop re-watches until the deadline.
MAX_WATCH_SECONDS = 300
# Back-off after a dropped connection before listing again.
RECONNECT_DELAY = 1.0
# A watch (or its re-list) that ended with these is re-established: connection dropped (None), throttled, server
# unavailable. Anything else ends the wait.
RECONNECT_STATUSES = (None, 429, 500, 502, 503, 504)


class WaitState(object):
    """What a predicate says about the watched objects."""

    def __init__(self, done, pending=None, progress=None):
        self.done = done
        self.pending = pending or []
        self.progress = progress

    def __repr__(self):
        return "WaitState(done=%r, pending=%r)" % (self.done, self.pending)


def _uid(obj):
    meta = obj.get("metadata") or {}
    return meta.get("uid") or "%s/%s" % (meta.get("namespace"), meta.get("name"))


def wait_for(kube, kind, predicate, namespace=None, label_selector=None, field_selector=None,
             timeout=300, on_progress=None, what=None, clock=time.monotonic, sleep=time.sleep, initial=None,
             with_version=False):
    """Wait until ``predicate(objects)`` returns a WaitState with done=True.

    ``objects`` is the current list of matching objects. ``on_progress(state)`` is called
    whenever the state's progress changes. Returns the final objects. Raises WaitTimeout with
    the pending items when the deadline passes. Errors the predicate raises propagate
    (that is how a Failed phase ends a wait early).

    ``initial=(items, resourceVersion)``: a LIST the caller just made with the same selectors - the wait starts
    from it instead of listing again (the watch then also delivers what the caller created after that LIST). It may
    also be what an earlier wait ended with (WaitTimeout's ``objects`` and ``version``): the watch continues from
    there, and lists again only when the API server no longer has that resourceVersion (HTTP 410).
    ``with_version``: return ``(objects, resourceVersion)``, where a later wait can continue from (``initial``).
    """
    deadline = clock() + max(0, timeout)
    what = what or kind.kind
    if initial is not None:
        cache, version = dict((_uid(o), o) for o in initial[0]), initial[1]
    else:
        cache, version = _relist(kube, kind, namespace, label_selector, field_selector)
    state = predicate(list(cache.values()))
    last_progress = _report(on_progress, state, None)
    reconnects = 0
    while not state.done:
        remaining = deadline - clock()
        if remaining <= 0:
            raise _timed_out(timeout, what, state, cache, version)
        try:
            for event_type, obj in kube.watch(
                    kind, namespace=namespace, label_selector=label_selector,
                    field_selector=field_selector, resource_version=version,
                    timeout_seconds=min(remaining, MAX_WATCH_SECONDS)):
                version = (obj.get("metadata") or {}).get("resourceVersion") or version
                if event_type == "BOOKMARK":
                    continue
                if event_type == "DELETED":
                    cache.pop(_uid(obj), None)
                else:
                    cache[_uid(obj)] = obj
                state = predicate(list(cache.values()))
                last_progress = _report(on_progress, state, last_progress)
                if state.done or clock() >= deadline:
                    break
        except WatchExpired:
            cache, version = _relist(kube, kind, namespace, label_selector, field_selector)
            state = predicate(list(cache.values()))
        except ApiError as exc:
            # Connection dropped (status None), throttled or server unavailable: re-list after a pause.
            if exc.status not in RECONNECT_STATUSES:
                raise
            if clock() + RECONNECT_DELAY >= deadline:
                raise _timed_out(timeout, what, state, cache, version, cause=exc)
            reconnects += 1
            sleep(min(RECONNECT_DELAY * reconnects, 5.0))
            try:
                cache, version = _relist(kube, kind, namespace, label_selector, field_selector)
            except ApiError as again:
                if again.status not in RECONNECT_STATUSES:
                    raise
                continue
            state = predicate(list(cache.values()))
    return (list(cache.values()), version) if with_version else list(cache.values())


def _timed_out(timeout, what, state, cache, version, cause=None):
    return WaitTimeout(
        "Timed out after %ss waiting for %s; still pending: %s%s"
        % (timeout, what, ", ".join(state.pending) or "unknown",
           (" (the last watch ended with: %s)" % cause.msg) if cause is not None else ""),
        pending=state.pending, objects=list(cache.values()), version=version)


def _relist(kube, kind, namespace, label_selector, field_selector):
    items, version = kube.list(kind, namespace=namespace, label_selector=label_selector,
                               field_selector=field_selector)
    return dict((_uid(o), o) for o in items), version


def _report(on_progress, state, last):
    if on_progress is not None and state.progress is not None and state.progress != last:
        on_progress(state)
    return state.progress
