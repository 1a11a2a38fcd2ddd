"""pytest plugin: cluster, API client, namespaces, sim-config, app and backup factories.

Loaded by ``tests/conftest.py`` with ``pytest_plugins = ["cluster_fixtures"]`` (tests/cluster is
on the pythonpath).  With ``VELERO_E2E=1`` the tests run against ``$KUBECONFIG`` (a real cluster
with real Velero) and tests marked ``sim_only`` are skipped.
"""
from __future__ import annotations

import os
import secrets
import time
from typing import Any, Callable

import pytest

E2E = os.environ.get("VELERO_E2E") == "1"
VELERO_NS = os.environ.get("VELERO_NAMESPACE", "velero")


def pytest_configure(config):
    config.addinivalue_line("markers", "integration: needs a Kubernetes cluster (tests/cluster or VELERO_E2E=1)")
    config.addinivalue_line("markers", "sim_only: needs the simulators (skipped with VELERO_E2E=1)")


def pytest_collection_modifyitems(config, items):
    if not E2E:
        return
    skip = pytest.mark.skip(reason="simulator-only test (VELERO_E2E=1)")
    for item in items:
        if "sim_only" in item.keywords:
            item.add_marker(skip)


def wait_for(predicate: Callable[[], Any], timeout: float = 60, interval: float = 0.2, message: str = "") -> Any:
    """Poll ``predicate`` until it returns a truthy value (returned) or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = predicate()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - retried
            last_exc = e
        if time.monotonic() >= deadline:
            msg = message or getattr(predicate, "__name__", "condition")
            raise TimeoutError(f"timed out after {timeout}s waiting for {msg}" + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


@pytest.fixture(scope="session")
def cluster() -> str:
    """Kubeconfig path of the test cluster (started on demand unless VELERO_E2E=1)."""
    if E2E:
        kc = os.environ.get("KUBECONFIG")
        if not kc:
            pytest.fail("VELERO_E2E=1 needs KUBECONFIG")
        return kc
    import cluster as _cluster
    return _cluster.ensure_cluster()


@pytest.fixture(scope="session")
def kubeconfig(cluster) -> str:
    return cluster


@pytest.fixture(scope="session")
def state_dir(cluster) -> str | None:
    """Simulator state directory (volumes, repository, object store); None with VELERO_E2E=1."""
    if E2E:
        return None
    import cluster as _cluster
    return str(_cluster.STATE_DIR)


@pytest.fixture(scope="session")
def api_client(kubeconfig):
    import kubernetes
    return kubernetes.config.new_client_from_config(config_file=kubeconfig)


@pytest.fixture(scope="session")
def kube(api_client):
    """Raw-JSON client (sim.kube.Kube): get/list/create/patch/delete for core and Velero kinds."""
    from sim.kube import Kube
    return Kube(api_client=api_client)


@pytest.fixture
def namespace(kube):
    """A fresh namespace, deleted after the test unless KEEP_NAMESPACES=1."""
    name = "t-" + secrets.token_hex(4)
    kube.create("Namespace", {"metadata": {"name": name, "labels": {"data-restore.test/ephemeral": "true"}}})
    # The controller-manager adds the namespace's "default" ServiceAccount shortly after: wait for it, so that
    # tests comparing the objects of the namespace before/after a run do not see it appear.
    deadline = time.monotonic() + 30
    while kube.get_or_none("ServiceAccount", name, "default") is None and time.monotonic() < deadline:
        time.sleep(0.1)
    yield name
    if os.environ.get("KEEP_NAMESPACES") != "1":
        kube.delete("Namespace", None, name)


class SimConfigHandle:
    """Set/reset keys of the sim-config ConfigMap; the original data is restored after the test."""

    def __init__(self, kube):
        self.kube = kube
        cm = kube.get_or_none("ConfigMap", VELERO_NS, "sim-config")
        self.original = dict((cm or {}).get("data") or {})

    def set(self, **values):
        self.kube.patch("ConfigMap", VELERO_NS, "sim-config", {"data": {k: str(v) for k, v in values.items()}})
        time.sleep(0.3)  # let the simulator's watch deliver it

    def reset(self, *keys):
        from sim.config import DEFAULTS
        keys = keys or tuple(DEFAULTS)
        self.kube.patch("ConfigMap", VELERO_NS, "sim-config", {"data": {k: self.original.get(k, DEFAULTS.get(k)) for k in keys}})
        time.sleep(0.3)

    def restore(self):
        cm = self.kube.get("ConfigMap", VELERO_NS, "sim-config")
        cm["data"] = self.original
        self.kube.replace("ConfigMap", cm)


@pytest.fixture
def sim_config(kube):
    if E2E:
        pytest.skip("sim-config needs the simulators")
    h = SimConfigHandle(kube)
    yield h
    h.restore()


def default_files(pvc: str) -> dict[str, bytes]:
    return {"hello.txt": f"hello from {pvc}\n".encode(), "dir/data.bin": secrets.token_bytes(4096)}


@pytest.fixture
def app_factory(kube, api_client, state_dir, namespace):
    """``make(kind="Deployment"|"StatefulSet", name="app", namespace=<ns>, replicas=1, volumes=None,
    wait=True)`` where ``volumes`` is a list of dicts ``{name, storage_class="sim-immediate",
    size="1Gi", access_mode="ReadWriteOnce", volume_mode="Filesystem", files=None|{path: bytes}}``
    (default: one volume "data").  Creates the PVCs (StatefulSet: volumeClaimTemplates), the
    workload (image busybox, mounts /data/<volume> or device /dev/<volume>), waits until its pods
    are Running, then writes the files into each PVC (Block: bytes at offset 0).
    Returns ``{"kind","name","namespace","pvcs":[...],"pods":[...],"files":{pvc: files}}``."""
    if E2E:
        pytest.skip("app_factory writes volume data through the simulator")
    from sim.storage import pvc_volume_path
    from sim.velero import write_block, write_files

    def make(kind="Deployment", name="app", namespace=namespace, replicas=1, volumes=None, wait=True,
             timeout=60):
        volumes = volumes or [{"name": "data"}]
        vols = [dict({"storage_class": "sim-immediate", "size": "1Gi", "access_mode": "ReadWriteOnce",
                      "volume_mode": "Filesystem", "files": None}, **v) for v in volumes]
        labels = {"app": name}

        def claim_spec(v):
            return {"accessModes": [v["access_mode"]], "storageClassName": v["storage_class"],
                    "volumeMode": v["volume_mode"], "resources": {"requests": {"storage": v["size"]}}}
        mounts, devices, pod_vols = [], [], []
        for v in vols:
            if v["volume_mode"] == "Block":
                devices.append({"name": v["name"], "devicePath": f"/dev/{v['name']}"})
            else:
                mounts.append({"name": v["name"], "mountPath": f"/data/{v['name']}"})
        ctr = {"name": "app", "image": "busybox:1.36", "command": ["sleep", "infinity"]}
        if mounts:
            ctr["volumeMounts"] = mounts
        if devices:
            ctr["volumeDevices"] = devices
        pvc_names: list[str] = []
        if kind == "StatefulSet":
            body = {"metadata": {"name": name, "namespace": namespace, "labels": labels},
                    "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": labels},
                             "template": {"metadata": {"labels": labels},
                                          "spec": {"containers": [ctr], "terminationGracePeriodSeconds": 0}},
                             "volumeClaimTemplates": [{"metadata": {"name": v["name"]}, "spec": claim_spec(v)}
                                                      for v in vols]}}
            kube.create("StatefulSet", body)
            pvc_names = [f"{v['name']}-{name}-{i}" for i in range(replicas) for v in vols]
        else:
            for v in vols:
                claim = f"{name}-{v['name']}"
                kube.create("PersistentVolumeClaim", {"metadata": {"name": claim, "namespace": namespace, "labels": labels},
                                                      "spec": claim_spec(v)})
                pod_vols.append({"name": v["name"], "persistentVolumeClaim": {"claimName": claim}})
                pvc_names.append(claim)
            body = {"metadata": {"name": name, "namespace": namespace, "labels": labels},
                    "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                             "template": {"metadata": {"labels": labels},
                                          "spec": {"containers": [ctr], "volumes": pod_vols,
                                                   "terminationGracePeriodSeconds": 0}}}}
            kube.create("Deployment", body)
        result = {"kind": kind, "name": name, "namespace": namespace, "pvcs": pvc_names, "pods": [], "files": {}}
        if not wait:
            return result

        def running():
            pods = [p for p in kube.list("Pod", namespace, label_selector=f"app={name}")
                    if (p.get("status") or {}).get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]
            return pods if len(pods) >= replicas else None
        pods = wait_for(running, timeout, message=f"{kind} {namespace}/{name} pods Running")
        result["pods"] = sorted(p["metadata"]["name"] for p in pods)
        for claim in pvc_names:
            vname = next(v for v in vols if claim == f"{name}-{v['name']}" or claim.startswith(f"{v['name']}-{name}-"))
            path = pvc_volume_path(api_client, state_dir, namespace, claim)
            files = vname["files"] if vname["files"] is not None else default_files(claim)
            if vname["volume_mode"] == "Block":
                data = files if isinstance(files, bytes) else b"".join(files.values())
                write_block(path, data)
                result["files"][claim] = data
            else:
                write_files(path, files)
                result["files"][claim] = {k: (x.encode() if isinstance(x, str) else x) for k, x in files.items()}
        return result
    return make


@pytest.fixture
def backup_factory(api_client, state_dir, namespace, kube):
    """``make(name=None, namespaces=None, **kw)`` → sim.velero.make_backup(...) (default: the
    test namespace, random name).  Backups are deleted after the test unless KEEP_NAMESPACES=1."""
    if E2E:
        pytest.skip("backup_factory simulates Velero backups")
    from sim.velero import make_backup
    made = []

    def make(name=None, namespaces=None, **kw):
        name = name or "b-" + secrets.token_hex(4)
        b = make_backup(api_client, state_dir, name, namespaces or [namespace], **kw)
        made.append(name)
        return b
    yield make
    if os.environ.get("KEEP_NAMESPACES") != "1":
        for n in made:
            kube.delete("Backup", VELERO_NS, n)


@pytest.fixture(name="wait_for")
def wait_for_fixture():
    return wait_for
