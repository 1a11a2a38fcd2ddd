"""Modules report warnings with AnsibleModule.warn(), never as a top-level ``warnings`` result key
(ansible-core 2.19 deprecates passing ``warnings`` to exit_json)."""

import ast
import glob
import os

from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils import session as s
from ansible_collections.velero.data_restore.plugins.modules import claim_patch, workload_scale
from fake_kube import FakeKube

MODULES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "plugins", "modules")


class FakeModule(object):
    check_mode = False
    _diff = False

    def __init__(self, params):
        self.params = params
        self.warned = []

    def warn(self, msg):
        self.warned.append(msg)


def fake():
    fk = FakeKube(missing_kinds=(k.DEPLOYMENT_CONFIG, k.ARGO_APPLICATION, k.FLUX_KUSTOMIZATION,
                                 k.FLUX_HELM_RELEASE, k.KEDA_SCALED_OBJECT, k.KEDA_SCALED_JOB))
    s.ensure(fk, "velero", "nightly", mode="replace")
    return fk


def test_workload_scale_warns_through_the_module():
    module = FakeModule(dict(state="stopped", velero_namespace="velero", session="nightly", namespace="shop",
                             pvcs=["nobody-mounts-this"], workloads=None, pause_gitops=False, wait=True,
                             wait_timeout=5))
    result = workload_scale.run(module, fake())
    assert "warnings" not in result
    assert module.warned == ["No workload mounts PVC(s) nobody-mounts-this in namespace shop."]


def test_claim_patch_warns_through_the_module():
    module = FakeModule(dict(velero_namespace="velero", session="nightly", mode="rebind", state="reverted",
                             volumes=[{"namespace": "shop", "pvc": "data"}], wait=True, wait_timeout=5))
    result = claim_patch.run(module, fake())
    assert "warnings" not in result
    assert module.warned and "has no rebind record for PVC shop/data" in module.warned[0]


def test_no_module_returns_a_warnings_key():
    """No exit_json(warnings=...) / dict(warnings=...) / {"warnings": ...} in a module's run()."""
    for path in sorted(glob.glob(os.path.join(MODULES, "*.py"))):
        with open(path) as handle:
            tree = ast.parse(handle.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                assert "warnings" not in [kw.arg for kw in node.keywords], (path, node.lineno)
            if isinstance(node, ast.Dict):
                keys = [key.value for key in node.keys if isinstance(key, ast.Constant)]
                assert "warnings" not in keys, (path, node.lineno)
