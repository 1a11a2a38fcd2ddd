"""Simulated Velero server pieces: install objects (velero Deployment, node-agent DaemonSet, BSL),
keep the BSL Available, answer DownloadRequests with pre-signed loopback URLs served by a tiny
HTTP server over ``<state>/objectstore``."""
from __future__ import annotations

import http.server
import logging
import os
import secrets
import threading
import time
import urllib.parse

from kubernetes.client.rest import ApiException

from . import contract as C
from .kube import Informer, Kube, WorkQueue, now_iso, parse_time, run_workers

log = logging.getLogger("sim.velero_server")

IMAGE = "velero/velero:v1.18.1"
BUCKET = "sim-bucket"


def velero_objects(ns: str) -> list[tuple[str, dict]]:
    dep = {
        "metadata": {"name": "velero", "namespace": ns, "labels": {"component": "velero", "deploy": "velero"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"deploy": "velero"}},
                 "template": {"metadata": {"labels": {"component": "velero", "deploy": "velero", "name": "velero"}},
                              "spec": {"containers": [{"name": "velero", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                                                       "command": ["/velero"], "args": ["server", "--uploader-type=kopia"],
                                                       "ports": [{"name": "metrics", "containerPort": 8085}]}],
                                       "terminationGracePeriodSeconds": 0}}},
    }
    ds = {
        "metadata": {"name": "node-agent", "namespace": ns, "labels": {"component": "velero", "name": "node-agent"}},
        "spec": {"selector": {"matchLabels": {"name": "node-agent"}},
                 "template": {"metadata": {"labels": {"component": "velero", "name": "node-agent", "role": "node-agent"}},
                              "spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                                       "containers": [{"name": "node-agent", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                                                       "command": ["/velero"], "args": ["node-agent", "server"],
                                                       "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                                                               {"name": "VELERO_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
                                                       "volumeMounts": [{"name": "host-pods", "mountPath": "/host_pods",
                                                                         "mountPropagation": "HostToContainer"}]}],
                                       "volumes": [{"name": "host-pods", "hostPath": {"path": "/var/lib/kubelet/pods"}}],
                                       "terminationGracePeriodSeconds": 0}}},
    }
    bsl = {
        "metadata": {"name": "default", "namespace": ns, "labels": {"component": "velero"}},
        "spec": {"provider": "aws", "default": True, "objectStorage": {"bucket": BUCKET},
                 "config": {"region": "minio", "s3ForcePathStyle": "true", "s3Url": "http://minio.velero.svc:9000"}},
    }
    return [("Deployment", dep), ("DaemonSet", ds), ("BackupStorageLocation", bsl)]


class ObjectStoreServer:
    """127.0.0.1-only HTTP server over <state>/objectstore with fake S3-style signatures."""

    def __init__(self, root: str):
        self.root = root
        self.signatures: dict[str, tuple[str, float]] = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):
                log.info("objectstore: " + fmt, *args)

            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                q = urllib.parse.parse_qs(u.query)
                sig = (q.get("X-Amz-Signature") or [""])[0]
                path = urllib.parse.unquote(u.path)
                with outer.lock:
                    ok = outer.signatures.get(sig)
                if not ok or ok[0] != path or ok[1] < time.time():
                    return self._send(403, b"<Error><Code>SignatureDoesNotMatch</Code></Error>")
                fp = os.path.normpath(os.path.join(outer.root, path.lstrip("/")))
                if not fp.startswith(os.path.normpath(outer.root) + os.sep) or not os.path.isfile(fp):
                    return self._send(404, b"<Error><Code>NoSuchKey</Code></Error>")
                with open(fp, "rb") as f:
                    self._send(200, f.read(), "application/octet-stream")

            def _send(self, code, body, ctype="application/xml"):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]

    def start(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True, name="objectstore-http").start()

    def sign(self, key_path: str, ttl: int = C.DOWNLOAD_URL_TTL_SECONDS) -> str:
        sig = secrets.token_hex(32)
        path = "/" + key_path.lstrip("/")
        with self.lock:
            self.signatures[sig] = (path, time.time() + ttl)
        return (f"http://127.0.0.1:{self.port}{urllib.parse.quote(path)}"
                f"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires={ttl}&X-Amz-Signature={sig}")


class VeleroServer:
    def __init__(self, kube: Kube, state_dir: str, informers: dict[str, Informer], velero_ns: str = C.VELERO_NS):
        self.kube = kube
        self.ns = velero_ns
        self.state_dir = state_dir
        self.drs = informers["DownloadRequest"]
        self.bsls = informers["BackupStorageLocation"]
        self.queue = WorkQueue("velero-server")
        os.makedirs(os.path.join(state_dir, "objectstore", BUCKET, "backups"), exist_ok=True)
        self.http = ObjectStoreServer(os.path.join(state_dir, "objectstore"))
        self.drs.add_handler(lambda t, o, old: t != "DELETED" and self.queue.add("dr:" + o["metadata"]["name"]))
        self.bsls.add_handler(lambda t, o, old: t != "DELETED" and self.queue.add("bsl:" + o["metadata"]["name"]))

    def install(self):
        if self.kube.get_or_none("Namespace", None, self.ns) is None:
            try:
                self.kube.create("Namespace", {"metadata": {"name": self.ns}})
            except ApiException as e:
                if e.status != 409:
                    raise
        for kind, body in velero_objects(self.ns):
            if self.kube.get_or_none(kind, self.ns, body["metadata"]["name"]) is None:
                self.kube.create(kind, body)

    def start(self):
        self.http.start()
        run_workers(self.queue, self.reconcile, 2)
        threading.Thread(target=self._periodic, daemon=True, name="velero-periodic").start()

    def _periodic(self):
        while True:
            time.sleep(30)
            for o in self.drs.items():
                self.queue.add("dr:" + o["metadata"]["name"])
            for o in self.bsls.items():
                self.queue.add("bsl:" + o["metadata"]["name"])

    def reconcile(self, key):
        kind, _sep, name = key.partition(":")
        if kind == "bsl":
            bsl = self.bsls.get(self.ns, name)
            if bsl and (bsl.get("status") or {}).get("phase") != "Available":
                self.kube.patch("BackupStorageLocation", self.ns, name, {"status": {
                    "phase": "Available", "lastValidationTime": now_iso(), "lastSyncedTime": now_iso()}})
            return None
        return self.reconcile_dr(name)

    def reconcile_dr(self, name):
        """Velero: pkg/controller/download_request_controller.go Reconcile."""
        dr = self.drs.get(self.ns, name)
        if dr is None:
            return None
        st = dr.get("status") or {}
        if st.get("phase") == "Processed":
            if C.download_request_expired(dr, time.time(), parse_time):
                self.kube.delete("DownloadRequest", self.ns, name)
            return None
        target = (dr.get("spec") or {}).get("target") or {}
        backup = self.kube.get_or_none("Backup", self.ns, target.get("name", ""))
        if backup is None:
            log.info("DownloadRequest %s: backup %s not found", name, target.get("name"))
            return None  # phase stays New
        bsl = self.kube.get_or_none("BackupStorageLocation", self.ns, (backup.get("spec") or {}).get("storageLocation", ""))
        if bsl is None:
            log.info("DownloadRequest %s: BSL not found", name)
            return None
        os_ = (bsl.get("spec") or {}).get("objectStorage") or {}
        key = C.download_object_key(target.get("kind", ""), target.get("name", ""), os_.get("prefix", ""))
        if key is None:
            log.info("DownloadRequest %s: unsupported target kind %s", name, target.get("kind"))
            return None
        url = self.http.sign(f"{os_.get('bucket', BUCKET)}/{key}")
        exp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + C.DOWNLOAD_URL_TTL_SECONDS))
        self.kube.patch("DownloadRequest", self.ns, name, {"status": {
            "phase": "Processed", "downloadURL": url, "expiration": exp}})
        return None
