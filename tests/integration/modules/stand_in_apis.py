"""Stand-in CRDs for API groups of other products (Argo CD, Flux, KEDA, OpenShift) in the test cluster.

The real API server serves them (discovery, RBAC, merge patches, status subresource); no controller of those
products runs. ``served_for_module`` installs them for one test module and removes them afterwards, and never
touches a group the cluster already serves.
"""

import contextlib
import glob
import os
import tempfile
import time

import pytest


def served(api_client, group, version):
    try:
        api_client.call_api("/apis/%s/%s" % (group, version), "GET", auth_settings=["BearerToken"],
                            _preload_content=False)
        return True
    except Exception as exc:  # pylint: disable=broad-except
        if getattr(exc, "status", None) == 404:
            return False
        raise


def wait_until(condition, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.2)


def forget_discovery():
    # kubernetes.core's discovery cache (one file per API server and user in the temp directory)
    for path in glob.glob(os.path.join(tempfile.gettempdir(), "k8srcp-*.json")):
        os.unlink(path)


def crd(group, version, kind, plural, status_subresource=False):
    version_spec = {"name": version, "served": True, "storage": True, "schema": {"openAPIV3Schema": {
        "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
    if status_subresource:
        version_spec["subresources"] = {"status": {}}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "%s.%s" % (plural, group), "labels": {"data-restore.test/stand-in": "true"}},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": kind + "List"},
                     "versions": [version_spec]}}


@contextlib.contextmanager
def served_for_module(api_client, definitions):
    """``definitions``: CRD bodies (see crd()). Skips the module when the cluster serves one of their groups."""
    from kubernetes import client as kc
    ext = kc.ApiextensionsV1Api(api_client)
    versions = [(d["spec"]["group"], d["spec"]["versions"][0]["name"]) for d in definitions]
    for group, version in versions:
        if served(api_client, group, version):  # never replace (nor, afterwards, delete) a real installation
            pytest.skip("this cluster serves %s/%s already" % (group, version))
    for body in definitions:
        ext.create_custom_resource_definition(body)
    try:
        for group, version in versions:
            wait_until(lambda g=group, v=version: served(api_client, g, v), "%s/%s to be served" % (group, version))
        forget_discovery()
        yield kc.CustomObjectsApi(api_client)
    finally:
        for body in definitions:
            ext.delete_custom_resource_definition(body["metadata"]["name"])
        for group, version in versions:
            wait_until(lambda g=group, v=version: not served(api_client, g, v), "%s/%s to be gone" % (group, version))
        forget_discovery()
