"""Entry point: ``python -m sim --kubeconfig K --state-dir S`` (PYTHONPATH=tests/cluster)."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time

from . import contract
from .config import CONFIGMAP, SimConfig, ensure_configmap
from .kube import Informer, Kube
from .kubelet import Kubelet
from .node_agent import NodeAgent
from .storage import Provisioner
from .velero_server import VeleroServer

log = logging.getLogger("sim")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="sim")
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--velero-namespace", default=contract.VELERO_NS)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s")
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    state = os.path.abspath(a.state_dir)
    os.makedirs(state, exist_ok=True)
    ready = os.path.join(state, "sim.ready")
    if os.path.exists(ready):
        os.remove(ready)
    kube = Kube(a.kubeconfig)
    vns = a.velero_namespace

    # wait for the API server and the Velero CRDs
    while True:
        try:
            kube.request("GET", "/apis/velero.io/v1")
            kube.request("GET", "/apis/velero.io/v2alpha1")
            break
        except Exception as e:  # noqa: BLE001
            log.info("waiting for API server / Velero CRDs: %s", e)
            time.sleep(1)

    config = SimConfig()
    inf = {
        "Pod": Informer(kube, "Pod"),
        "PersistentVolumeClaim": Informer(kube, "PersistentVolumeClaim"),
        "PersistentVolume": Informer(kube, "PersistentVolume"),
        "StorageClass": Informer(kube, "StorageClass"),
        "PodVolumeRestore": Informer(kube, "PodVolumeRestore", namespace=vns),
        "DataDownload": Informer(kube, "DataDownload", namespace=vns),
        "DownloadRequest": Informer(kube, "DownloadRequest", namespace=vns),
        "BackupStorageLocation": Informer(kube, "BackupStorageLocation", namespace=vns),
        "ConfigMap": Informer(kube, "ConfigMap", namespace=vns, field_selector=f"metadata.name={CONFIGMAP}"),
    }
    inf["ConfigMap"].add_handler(lambda t, o, old: config.update(None if t == "DELETED" else o.get("data")))

    server = VeleroServer(kube, state, inf, vns)
    server.install()
    ensure_configmap(kube, vns)
    prov = Provisioner(kube, state, inf)
    prov.install()
    kubelet = Kubelet(kube, state, inf)
    kubelet.install()
    agent = NodeAgent(kube, state, inf, config, vns)

    for i in inf.values():
        i.start()
    for i in inf.values():
        i.synced.wait(60)
    prov.start()
    kubelet.start()
    server.start()
    agent.start()
    with open(ready, "w") as f:
        f.write(f"{os.getpid()}\n")
    log.info("simulator ready (object store http://127.0.0.1:%d)", server.http.port)
    stop = threading.Event()
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
