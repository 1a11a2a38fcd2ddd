# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bench only: count Kubernetes API requests made by any Python process (ansible modules included).

Active only when BENCH_REQUEST_LOG is set (tests/bench/bench.py puts this directory on PYTHONPATH):
every request the kubernetes client sends is appended as one line ``<unix time> <METHOD> <url>`` to that file
(a watch is logged with METHOD ``WATCH``; it counts as one request).
"""
import os
import time

if os.environ.get("BENCH_REQUEST_LOG"):
    try:
        from kubernetes.client import rest as _rest
    except ImportError:  # pragma: no cover
        _rest = None
    if _rest is not None:
        _original = _rest.RESTClientObject.request

        def _counted(self, method, url, *args, **kwargs):
            fd = os.open(os.environ["BENCH_REQUEST_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                path, _sep, query = url.partition("?")
                params = kwargs.get("query_params") or (args[0] if args else None) or []
                watch = "watch=" in query or any(key == "watch" for key, _value in params)
                verb = "WATCH" if method == "GET" and watch else method
                os.write(fd, ("%.3f %s %s\n" % (time.time(), verb, path)).encode())
            finally:
                os.close(fd)
            return _original(self, method, url, *args, **kwargs)

        _rest.RESTClientObject.request = _counted
