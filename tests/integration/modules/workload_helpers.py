"""Workloads, claims and sessions for the workload_scale suites (test_workload_scale, the stand-in API suites)."""

from ansible_run import run_module  # pylint: disable=import-error


def live_pods(kube, namespace, app):
    return [p for p in kube.list("Pod", namespace, label_selector="app=%s" % app)
            if p["status"].get("phase") not in ("Succeeded", "Failed")]


def make_session(kubeconfig, name):
    result = run_module("restore_session", {"session": name, "mode": "in_place"}, kubeconfig=kubeconfig)
    assert not result.get("failed"), result


def make_claim(kube, namespace, name):
    kube.create("PersistentVolumeClaim", {"metadata": {"name": name, "namespace": namespace}, "spec": {
        "accessModes": ["ReadWriteOnce"], "storageClassName": "sim-immediate",
        "resources": {"requests": {"storage": "1Gi"}}}})


def pod_template(app, claim, **spec):
    return {"metadata": {"labels": {"app": app}},
            "spec": dict({"containers": [{"name": "app", "image": "busybox:1.36", "command": ["sleep", "infinity"],
                                          "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                          "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
                          "terminationGracePeriodSeconds": 0}, **spec)}
