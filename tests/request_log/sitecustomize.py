# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests only: log the Kubernetes API requests of Python processes (ansible modules included).

Put this directory on PYTHONPATH and set one of:
* BENCH_REQUEST_LOG=<file> (tests/bench/bench.py): every process appends its requests to that file;
* DATA_RESTORE_REQUEST_LOG_DIR=<dir> (tests/integration/ansible_run.py, molecule/run.sh): only the
  processes of this collection's modules log, to <dir>/<module>.log - tools/rbac_usage.py compares
  what they used with docs/rbac.yml.
One line per request: ``<unix time> <METHOD> <path>``; a watch is logged with METHOD ``WATCH`` (one request).
kubernetes.client.rest is patched when it is first imported, so a process that never talks to the API
does not pay for importing the kubernetes client.
"""
import importlib.abc
import importlib.util
import os
import sys
import time

_MODULES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "plugins", "modules")


def _log_file():
    if os.environ.get("BENCH_REQUEST_LOG"):
        return os.environ["BENCH_REQUEST_LOG"]
    directory = os.environ.get("DATA_RESTORE_REQUEST_LOG_DIR")
    script = os.path.basename(sys.argv[0] if sys.argv and sys.argv[0] else "")
    if not directory or not script.startswith("AnsiballZ_"):
        return None
    module = script[len("AnsiballZ_"):-len(".py")]
    if not os.path.exists(os.path.join(_MODULES, module + ".py")):
        return None  # another collection's module (kubernetes.core in a test's own tasks)
    return os.path.join(directory, module + ".log")


def _patch(rest, path):
    original = rest.RESTClientObject.request

    def logged(self, method, url, *args, **kwargs):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            url_path, _sep, query = url.partition("?")
            params = kwargs.get("query_params") or (args[0] if args else None) or []
            watch = "watch=" in query or any(key == "watch" for key, _value in params)
            verb = "WATCH" if method == "GET" and watch else method
            os.write(fd, ("%.3f %s %s\n" % (time.time(), verb, url_path)).encode())
        finally:
            os.close(fd)
        return original(self, method, url, *args, **kwargs)

    rest.RESTClientObject.request = logged


class _PatchOnImport(importlib.abc.MetaPathFinder):
    def __init__(self, path):
        self.path = path

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "kubernetes.client.rest":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module
        log_path = self.path

        def exec_and_patch(module):
            exec_module(module)
            _patch(module, log_path)

        spec.loader.exec_module = exec_and_patch
        return spec


_PATH = _log_file()
if _PATH:
    sys.meta_path.insert(0, _PatchOnImport(_PATH))
