# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build the API client exactly as kubernetes.core does.

Connection options are kubernetes.core's ``AUTH_ARG_SPEC`` and its ``K8S_AUTH_*`` environment
fallbacks (``K8S_AUTH_HOST``, ``K8S_AUTH_API_KEY``, ``K8S_AUTH_VERIFY_SSL``,
``K8S_AUTH_SSL_CA_CERT``, ``K8S_AUTH_KUBECONFIG``, ``K8S_AUTH_CONTEXT`` ... as AWX injects them),
because we call kubernetes.core's own ``get_api_client``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import os
import time
import traceback

from ansible_collections.velero.data_restore.plugins.module_utils.errors import DataRestoreError

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
except ImportError:  # pragma: no cover - kubernetes.core is a declared dependency
    AUTH_ARG_SPEC = {}
    HAS_K8S_CORE = False
    K8S_CORE_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_K8S_CORE = True
    K8S_CORE_IMPORT_ERROR = None

try:
    import kubernetes  # noqa: F401 pylint: disable=unused-import
except ImportError:
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None

MIN_KUBERNETES_VERSION = "24.2.0"

VELERO_ARG_SPEC = dict(
    velero_namespace=dict(type="str", default="velero"),
    session_run=dict(type="raw"),
)


def auth_arg_spec():
    """kubernetes.core's connection options (a copy: callers may extend it)."""
    return copy.deepcopy(AUTH_ARG_SPEC)


def missing_dependency_message():
    """Why the modules cannot run, or None."""
    if not HAS_K8S_CORE:
        return ("The kubernetes.core collection (>= 5.0.0) is required: "
                "ansible-galaxy collection install kubernetes.core")
    if not HAS_KUBERNETES:
        return ("The Python library 'kubernetes' (>= {0}) is required on the host that runs the module "
                "(usually localhost): pip install 'kubernetes>={0}'".format(MIN_KUBERNETES_VERSION))
    return None


def get_kube(params):
    """A Kube facade for the connection described by the module params."""
    from ansible_collections.velero.data_restore.plugins.module_utils.kube import Kube

    missing = missing_dependency_message()
    if missing:
        raise DataRestoreError(missing)
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException

    from ansible_collections.velero.data_restore.plugins.module_utils.kube import (
        DEFAULT_RETRY_SECONDS,
        RETRY_SECONDS_ENV,
    )

    auth = dict((key, params.get(key)) for key in AUTH_ARG_SPEC)
    # Building the client reads API discovery: ride out an apiserver restart like every request does.
    deadline = time.monotonic() + float(os.environ.get(RETRY_SECONDS_ENV) or DEFAULT_RETRY_SECONDS)
    delay = 0.5
    while True:
        try:
            k8s_client = get_api_client(**auth)
            break
        except CoreException as exc:
            raise DataRestoreError("Could not build a Kubernetes client: %s. Check kubeconfig, context, "
                                   "host and credentials (or the K8S_AUTH_* variables)." % exc)
        except Exception as exc:  # urllib3/ssl errors while loading discovery, bad kubeconfig files
            if _unreachable(exc) and time.monotonic() + delay < deadline:
                time.sleep(delay)
                delay = min(delay * 2, 4.0)
                continue
            raise DataRestoreError("Could not connect to the Kubernetes API: %s. Check kubeconfig, "
                                   "context, host and that the cluster is reachable." % exc)
    host = getattr(getattr(k8s_client, "configuration", None), "host", None)
    return Kube(k8s_client.client, host=host)


def _unreachable(exc):
    """Connection refused/reset or 5xx from discovery: worth another try."""
    if getattr(exc, "status", None) in (429, 500, 502, 503, 504):
        return True
    return type(exc).__name__ in ("MaxRetryError", "NewConnectionError", "ProtocolError",
                                  "ConnectionRefusedError", "ConnectionResetError")
