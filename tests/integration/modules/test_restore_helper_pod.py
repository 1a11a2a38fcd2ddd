"""restore_helper_pod against the test cluster: real scheduler/apiserver, simulated kubelet + node-agent."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data_path_helpers as h  # noqa: E402
from data_path_helpers import run_module  # noqa: E402

pytestmark = pytest.mark.integration


def test_helper_pod_check_mode_idempotency_and_absent(kubeconfig, kube, namespace, app_factory, wait_for):
    app = app_factory(volumes=[{"name": "data"}, {"name": "logs"}])
    h.scale(kube, namespace, "app", 0, wait_for)
    sess = h.session(kubeconfig, namespace)
    args = {"session": namespace, "namespace": namespace, "pvcs": app["pvcs"], "wait_timeout": 60}
    check = run_module("restore_helper_pod", args, kubeconfig=kubeconfig, check=True)
    assert check["changed"] is True and not kube.list("Pod", namespace)
    first = run_module("restore_helper_pod", args, kubeconfig=kubeconfig)
    assert not first.get("failed"), first
    [pod] = first["pods"]
    assert pod["restore_wait"] == "running" and pod["volumes"] == {"app-data": "app-data", "app-logs": "app-logs"}
    live = kube.get("Pod", namespace, pod["name"])
    init = live["spec"]["initContainers"][0]
    assert init["name"] == "restore-wait" and init["args"] == [sess["uid"]]
    assert init["image"] == "velero/velero:v1.18.1" and init["command"] == ["/velero-restore-helper"]
    assert live["spec"]["restartPolicy"] == "Always"
    again = run_module("restore_helper_pod", args, kubeconfig=kubeconfig)
    assert again["changed"] is False and again["pods"][0]["uid"] == pod["uid"]
    differs = run_module("restore_helper_pod", dict(args, image="mirror.local/velero:v1"), kubeconfig=kubeconfig)
    assert differs["failed"] and "different spec" in differs["msg"]
    gone = run_module("restore_helper_pod", {"session": namespace, "state": "absent", "namespace": namespace},
                      kubeconfig=kubeconfig)
    assert gone["changed"] is True and kube.get_or_none("Pod", namespace, pod["name"]) is None


def test_missing_pvc_message(kubeconfig, kube, namespace):
    h.session(kubeconfig, namespace)
    result = run_module("restore_helper_pod", {"session": namespace, "namespace": namespace, "pvcs": ["nope"]},
                        kubeconfig=kubeconfig)
    assert result["failed"] and "nope not found in namespace %s" % namespace in result["msg"]
