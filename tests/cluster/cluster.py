#!/usr/bin/env python
"""Launcher for the real Kubernetes test control plane.

Builds (once, cached) the multi-call binary in tests/cluster/controlplane
(embedded etcd 3.6, kube-apiserver, kube-controller-manager, kube-scheduler
and kubectl of k8s.io/kubernetes v1.34.x) and runs every component as its own
background process with state under tests/cluster/.state/.

CLI:
    cluster.py up                 build if needed, start (idempotent), print export line
    cluster.py down [--purge]     stop every process (and remove .state with --purge)
    cluster.py status             show what runs
    cluster.py env                print `export KUBECONFIG=...`
    cluster.py build              only build (or locate) the cached binary
    cluster.py restart-apiserver  restart only kube-apiserver with the same flags
    cluster.py kubectl ARGS...    run the built kubectl against the cluster

Python API (for pytest fixtures):
    ensure_cluster() -> str       kubeconfig path (starts the cluster if needed)
    stop_cluster(purge=False)
    restart_apiserver()
    kubectl(*args, check=True, input=None) -> subprocess.CompletedProcess
    binary_path() / build_binary() / kubeconfig_path() / is_running()

Setting VELERO_E2E=1 together with KUBECONFIG makes ensure_cluster() use that
existing cluster instead of starting one.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

CLUSTER_DIR = Path(__file__).resolve().parent
REPO_ROOT = CLUSTER_DIR.parent.parent
MODULE_DIR = CLUSTER_DIR / "controlplane"
STATE_DIR = CLUSTER_DIR / ".state"
PKI_DIR = STATE_DIR / "pki"
LOG_DIR = STATE_DIR / "logs"
PID_DIR = STATE_DIR / "pids"
ARGV_DIR = STATE_DIR / "argv"
KUBECONFIG = STATE_DIR / "kubeconfig"
ENV_FILE = STATE_DIR / "env"
PORTS_FILE = STATE_DIR / "ports.json"
SIM_MAIN = CLUSTER_DIR / "sim" / "__main__.py"
SIM_READY = STATE_DIR / "sim.ready"
CONTEXT = "data-restore-test"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "velero-data-restore"
SERVICE_CIDR = "10.96.0.0/16"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
# Start order; `down` stops in reverse.
COMPONENTS = ["etcd", "apiserver", "controller-manager", "scheduler", "sim"]


class ClusterError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[cluster] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- build

def k8s_version() -> str:
    """The k8s.io/kubernetes version required by the controlplane module."""
    m = re.search(r"^\s*(?:require\s+)?k8s\.io/kubernetes\s+(v\S+)", (MODULE_DIR / "go.mod").read_text(), re.M)
    if not m:
        raise ClusterError("cannot find k8s.io/kubernetes in controlplane/go.mod")
    return m.group(1)


def ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    return " ".join(flags)


def source_hash() -> str:
    version = k8s_version()
    h = hashlib.sha256()
    h.update(f"version={version}\nldflags={ldflags(version)}\ncgo=0\n".encode())
    files = [MODULE_DIR / "go.mod", MODULE_DIR / "go.sum"] + sorted(MODULE_DIR.rglob("*.go"))
    for f in files:
        h.update(str(f.relative_to(MODULE_DIR)).encode() + b"\0")
        h.update(f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def binary_path() -> Path:
    override = os.environ.get("CONTROLPLANE_BIN")
    if override:
        return Path(override)
    return CACHE_DIR / f"controlplane-{source_hash()}"


def build_binary() -> Path:
    """Return the cached binary, building it first when the inputs changed."""
    out = binary_path()
    if out.exists():
        return out
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with _flock(CACHE_DIR / ".build.lock"):
        if out.exists():
            return out
        go = shutil.which("go")
        if not go:
            raise ClusterError("`go` not found in PATH; needed to build the control plane (Go >= 1.24)")
        version = k8s_version()
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        build_log = CACHE_DIR / f"{out.name}.build.log"
        env = dict(os.environ, CGO_ENABLED="0")
        cmd = [go, "build", "-v", "-p", str(os.cpu_count() or 2), "-ldflags", ldflags(version), "-o", str(tmp), "."]
        log(f"building control plane {version} -> {out}")
        log("(a cold build of k8s.io/kubernetes took ~5 min on 2 cores plus module download; "
            "log: %s)" % build_log)
        start = time.monotonic()
        last = start
        npkgs = 0
        with open(build_log, "w") as lf:
            proc = subprocess.Popen(cmd, cwd=MODULE_DIR, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
            assert proc.stdout is not None
            for line in proc.stdout:
                lf.write(line)
                lf.flush()
                if re.fullmatch(r"[\w.~+\-/]+", line.strip()):  # `go build -v` prints each package built
                    npkgs += 1
                now = time.monotonic()
                if now - last >= 30:
                    log(f"  build: {npkgs} packages compiled, {int(now - start)}s elapsed, last: {line.strip()[:80]}")
                    last = now
            rc = proc.wait()
        elapsed = time.monotonic() - start
        if rc != 0:
            tail = "".join(build_log.read_text().splitlines(True)[-30:])
            tmp.unlink(missing_ok=True)
            raise ClusterError(f"go build failed (exit {rc}) after {elapsed:.0f}s:\n{tail}")
        os.replace(tmp, out)
        log(f"build finished in {elapsed:.0f}s ({int(elapsed // 60)}m{int(elapsed % 60):02d}s), {npkgs} packages")
        return out


# --------------------------------------------------------------------------- helpers

@contextlib.contextmanager
def _flock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _lock():
    return _flock(CLUSTER_DIR / ".state.lock")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Like Go's listeners: connections in TIME_WAIT do not block a re-bind.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _read_pid(name: str) -> int | None:
    try:
        return int((PID_DIR / f"{name}.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    _reap(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    if state in ("Z", "X"):
        return False
    # Guard against pid reuse: it must be one of ours.
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return _is_our_process(cmdline, _load_argv_any(pid))


def _is_our_process(cmdline: bytes, argv: list[str] | None) -> bool:
    """Whether /proc/<pid>/cmdline belongs to the component started with ``argv``.

    Popen returns once execve has closed the close-on-exec pipe, but the kernel sets up the new program's
    argument area only after that: for a moment (longer for our 185 MB binary) cmdline reads empty. That is
    our process mid-exec, not a dead one; reading it as dead failed the start and left the process behind."""
    if not argv:
        return False
    if cmdline == b"":
        return True
    return cmdline.split(b"\0")[0].decode(errors="replace") == argv[0]


def _load_argv_any(pid: int) -> list[str] | None:
    for name in COMPONENTS:
        if _read_pid(name) == pid:
            return _load_argv(name)
    return None


def _load_argv(name: str) -> list[str] | None:
    try:
        return json.loads((ARGV_DIR / f"{name}.json").read_text())["argv"]
    except (OSError, ValueError, KeyError):
        return None


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "".join(path.read_text(errors="replace").splitlines(True)[-n:])
    except OSError:
        return "(no log)"


def _start(name: str, argv: list[str], env: dict | None = None, cwd: Path | None = None) -> int:
    for d in (LOG_DIR, PID_DIR, ARGV_DIR):
        d.mkdir(parents=True, exist_ok=True)
    (ARGV_DIR / f"{name}.json").write_text(json.dumps(
        {"argv": argv, "env": env or {}, "cwd": str(cwd or REPO_ROOT)}, indent=1))
    logf = open(LOG_DIR / f"{name}.log", "ab")
    logf.write(f"\n==== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {name}: {' '.join(argv)}\n".encode())
    logf.flush()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                            cwd=str(cwd or REPO_ROOT), env=dict(os.environ, **(env or {})),
                            start_new_session=True)
    logf.close()
    (PID_DIR / f"{name}.pid").write_text(str(proc.pid))
    # Keep a reference so the object is not finalised while we run; reaping is
    # done by _reap()/_alive() for processes that die while we are alive.
    _CHILDREN[name] = proc
    return proc.pid


_CHILDREN: dict[str, subprocess.Popen] = {}


def _stop(name: str, timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
    pid = _read_pid(name)
    if pid and _alive(pid):
        log(f"stopping {name} (pid {pid})")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            log(f"{name} did not exit after SIGTERM, sending SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
    proc = _CHILDREN.pop(name, None)
    if proc is not None:
        with contextlib.suppress(Exception):
            proc.wait(timeout=1)
    (PID_DIR / f"{name}.pid").unlink(missing_ok=True)


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    if res.returncode != 0:
        raise ClusterError(f"command failed ({res.returncode}): {' '.join(cmd)}\n{res.stdout}{res.stderr}")
    return res


# --------------------------------------------------------------------------- PKI

def _ensure_pki() -> None:
    """CA, apiserver serving cert, client certs, SA key pair, static token file (openssl CLI)."""
    if shutil.which("openssl") is None:
        raise ClusterError("the `openssl` CLI is required (apt-get install openssl)")
    PKI_DIR.mkdir(parents=True, exist_ok=True)
    os.chmod(PKI_DIR, 0o700)
    p = PKI_DIR
    ossl = "openssl"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    if not (p / "ca.crt").exists() or not (p / "ca.key").exists():
        _run([ossl, "req", "-x509", *ec, "-keyout", str(p / "ca.key"), "-out", str(p / "ca.crt"),
              "-days", "3650", "-subj", "/CN=data-restore-test-ca",
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"])
        for f in p.glob("*"):  # a new CA invalidates every leaf
            if f.name not in ("ca.crt", "ca.key") and not f.name.startswith("front-proxy"):
                f.unlink()

    def leaf(name: str, subj: str, ext: str) -> None:
        if (p / f"{name}.crt").exists() and (p / f"{name}.key").exists():
            return
        extfile = p / f"{name}.ext"
        extfile.write_text(ext)
        _run([ossl, "req", "-new", *ec, "-keyout", str(p / f"{name}.key"), "-out", str(p / f"{name}.csr"),
              "-subj", subj])
        _run([ossl, "x509", "-req", "-in", str(p / f"{name}.csr"), "-CA", str(p / "ca.crt"),
              "-CAkey", str(p / "ca.key"), "-set_serial", str(secrets.randbits(63)), "-days", "3650",
              "-out", str(p / f"{name}.crt"), "-extfile", str(extfile)])
        (p / f"{name}.csr").unlink(missing_ok=True)
        extfile.unlink(missing_ok=True)

    leaf("apiserver", "/CN=kube-apiserver",
         "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
         "extendedKeyUsage=serverAuth\n"
         "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
         "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1\n")
    client_ext = ("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                  "extendedKeyUsage=clientAuth\n")
    leaf("admin", "/O=system:masters/CN=admin", client_ext)
    leaf("controller-manager", "/CN=system:kube-controller-manager", client_ext)
    leaf("scheduler", "/CN=system:kube-scheduler", client_ext)

    # Front-proxy (aggregation layer) CA + client, as kubeadm sets up; without it
    # controller-manager/scheduler complain about a missing requestheader CA.
    if not (p / "front-proxy-ca.crt").exists() or not (p / "front-proxy-ca.key").exists():
        _run([ossl, "req", "-x509", *ec, "-keyout", str(p / "front-proxy-ca.key"),
              "-out", str(p / "front-proxy-ca.crt"), "-days", "3650", "-subj", "/CN=front-proxy-ca",
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"])
        (p / "front-proxy-client.crt").unlink(missing_ok=True)
    if not (p / "front-proxy-client.crt").exists() or not (p / "front-proxy-client.key").exists():
        extfile = p / "front-proxy-client.ext"
        extfile.write_text(client_ext)
        _run([ossl, "req", "-new", *ec, "-keyout", str(p / "front-proxy-client.key"),
              "-out", str(p / "front-proxy-client.csr"), "-subj", "/CN=front-proxy-client"])
        _run([ossl, "x509", "-req", "-in", str(p / "front-proxy-client.csr"), "-CA", str(p / "front-proxy-ca.crt"),
              "-CAkey", str(p / "front-proxy-ca.key"), "-set_serial", str(secrets.randbits(63)),
              "-days", "3650", "-out", str(p / "front-proxy-client.crt"), "-extfile", str(extfile)])
        (p / "front-proxy-client.csr").unlink(missing_ok=True)
        extfile.unlink(missing_ok=True)

    if not (p / "sa.key").exists() or not (p / "sa.pub").exists():
        _run([ossl, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(p / "sa.key")])
        _run([ossl, "pkey", "-in", str(p / "sa.key"), "-pubout", "-out", str(p / "sa.pub")])

    if not (p / "tokens.csv").exists() or not (p / "admin.token").exists():
        token = secrets.token_hex(24)
        (p / "admin.token").write_text(token + "\n")
        (p / "tokens.csv").write_text(f'{token},admin-token,admin-token-uid,"system:masters"\n')
    for f in p.glob("*.key"):
        os.chmod(f, 0o600)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _write_kubeconfig(path: Path, server: str, user: str, cert: str) -> None:
    text = f"""apiVersion: v1
kind: Config
clusters:
- name: {CONTEXT}
  cluster:
    server: {server}
    certificate-authority-data: {_b64(PKI_DIR / "ca.crt")}
users:
- name: {user}
  user:
    client-certificate-data: {_b64(PKI_DIR / f"{cert}.crt")}
    client-key-data: {_b64(PKI_DIR / f"{cert}.key")}
contexts:
- name: {CONTEXT}
  context:
    cluster: {CONTEXT}
    user: {user}
current-context: {CONTEXT}
"""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- health

def _ports() -> dict:
    try:
        return json.loads(PORTS_FILE.read_text())
    except (OSError, ValueError):
        return {}


def _apiserver_get(path: str, timeout: float = 3.0) -> tuple[int, str]:
    port = _ports().get("apiserver")
    if not port:
        return 0, "no port"
    ctx = ssl.create_default_context(cafile=str(PKI_DIR / "ca.crt"))
    ctx.load_cert_chain(str(PKI_DIR / "admin.crt"), str(PKI_DIR / "admin.key"))
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", context=ctx, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (OSError, ssl.SSLError) as e:
        return 0, str(e)


def _insecure_get(port: int, path: str) -> int:
    ctx = ssl._create_unverified_context()
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", context=ctx, timeout=3) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (OSError, ssl.SSLError):
        return 0


def _wait(what: str, cond, timeout: float, proc_name: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        if proc_name and not _alive(_read_pid(proc_name)):
            raise ClusterError(f"{proc_name} exited while waiting for {what}; log tail:\n"
                               + _tail(LOG_DIR / f"{proc_name}.log"))
        time.sleep(0.25)
    name = proc_name or what
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}; log tail:\n"
                       + _tail(LOG_DIR / f"{name}.log"))


def _wait_readyz(timeout: float = 90) -> None:
    _wait("kube-apiserver /readyz", lambda: _apiserver_get("/readyz")[0] == 200, timeout, "apiserver")


def _expected_components() -> list[str]:
    names = ["etcd", "apiserver", "controller-manager", "scheduler"]
    if SIM_MAIN.exists():
        names.append("sim")
    return names


def is_running() -> bool:
    """True when every component process is alive and the apiserver is ready."""
    if not all(_alive(_read_pid(n)) for n in _expected_components()):
        return False
    if SIM_MAIN.exists() and not SIM_READY.exists():
        return False
    return KUBECONFIG.exists() and _apiserver_get("/readyz")[0] == 200


def kubeconfig_path() -> str:
    return str(KUBECONFIG)


def export_line(path: str | os.PathLike | None = None) -> str:
    return f"export KUBECONFIG={path or KUBECONFIG}"


# --------------------------------------------------------------------------- kubectl / CRDs

def kubectl(*args: str, check: bool = True, input: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the built kubectl against the test cluster; returns the CompletedProcess."""
    cmd = [str(build_binary()), "kubectl", f"--kubeconfig={KUBECONFIG}", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout, check=False)
    if check and res.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args)} failed ({res.returncode}):\n{res.stdout}{res.stderr}")
    return res


def crds_dir() -> Path:
    raw = os.environ.get("VELERO_CRDS_DIR", "../shared/velero/crds")
    p = Path(raw)
    if not p.is_absolute():
        p = REPO_ROOT / p  # "../shared/..." resolves next to the repo root
    return p.resolve()


def _install_crds() -> None:
    d = crds_dir()
    files = sorted(d.glob("*.yaml")) + sorted(d.glob("*.yml")) if d.is_dir() else []
    if not files:
        raise ClusterError(f"no Velero CRDs found in {d} (set VELERO_CRDS_DIR)")
    log(f"installing {len(files)} Velero CRDs from {d}")
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(d))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(d))


def _ensure_namespace(name: str) -> None:
    manifest = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    kubectl("apply", "--server-side", "-f", "-", input=manifest)


# --------------------------------------------------------------------------- up / down

def _choose_ports() -> dict:
    old = _ports()
    names = ["etcd-client", "etcd-peer", "apiserver", "controller-manager", "scheduler"]
    if old and all(isinstance(old.get(n), int) and _port_free(old[n]) for n in names):
        return old
    ports: dict = {}
    while len(set(ports.values())) < len(names):
        ports = {n: _free_port() for n in names}
    return ports


def _start_all(binary: Path) -> None:
    ports = _choose_ports()
    PORTS_FILE.write_text(json.dumps(ports, indent=1))
    p = PKI_DIR
    server = f"https://127.0.0.1:{ports['apiserver']}"
    comp_cfg = {}
    for comp, user in (("controller-manager", "system:kube-controller-manager"),
                       ("scheduler", "system:kube-scheduler")):
        kc = STATE_DIR / f"{comp}.kubeconfig"
        _write_kubeconfig(kc, server, user, comp)
        comp_cfg[comp] = str(kc)

    # Keep one previous generation of logs; restarts append to the current one.
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    for f in LOG_DIR.glob("*.log"):
        os.replace(f, f.with_name(f.name + ".prev"))

    # Fresh etcd data on every cold start: each `up` gives a clean cluster.
    etcd_dir = STATE_DIR / "etcd"
    shutil.rmtree(etcd_dir, ignore_errors=True)
    SIM_READY.unlink(missing_ok=True)

    t0 = time.monotonic()
    _start("etcd", [str(binary), "etcd", f"--data-dir={etcd_dir}",
                    f"--listen-client=127.0.0.1:{ports['etcd-client']}",
                    f"--listen-peer=127.0.0.1:{ports['etcd-peer']}",
                    "--unsafe-no-fsync"])
    _wait("etcd", lambda: not _port_free(ports["etcd-client"]), 30, "etcd")
    log(f"etcd up on 127.0.0.1:{ports['etcd-client']}")

    _start("apiserver", [
        str(binary), "apiserver",
        f"--etcd-servers=http://127.0.0.1:{ports['etcd-client']}",
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
        f"--secure-port={ports['apiserver']}",
        f"--cert-dir={p}",
        f"--tls-cert-file={p / 'apiserver.crt'}", f"--tls-private-key-file={p / 'apiserver.key'}",
        f"--client-ca-file={p / 'ca.crt'}",
        f"--token-auth-file={p / 'tokens.csv'}",
        "--authorization-mode=RBAC",
        f"--service-account-issuer={SA_ISSUER}",
        f"--service-account-key-file={p / 'sa.pub'}",
        f"--service-account-signing-key-file={p / 'sa.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--requestheader-client-ca-file={p / 'front-proxy-ca.crt'}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={p / 'front-proxy-client.crt'}",
        f"--proxy-client-key-file={p / 'front-proxy-client.key'}",
        "--allow-privileged=true",
        "--enable-priority-and-fairness=false",
        "--endpoint-reconciler-type=none",
        # on top of the default plugin set (which already contains both):
        "--enable-admission-plugins=DefaultStorageClass,StorageObjectInUseProtection",
        "--profiling=false",
        "--v=1",
    ])
    _wait_readyz()
    log(f"kube-apiserver ready on {server} ({time.monotonic() - t0:.1f}s)")
    _write_kubeconfig(KUBECONFIG, server, "admin", "admin")
    ENV_FILE.write_text(export_line() + "\n")

    _start("controller-manager", [
        str(binary), "controller-manager",
        f"--kubeconfig={comp_cfg['controller-manager']}",
        f"--authentication-kubeconfig={comp_cfg['controller-manager']}",
        f"--authorization-kubeconfig={comp_cfg['controller-manager']}",
        "--leader-elect=false",
        f"--root-ca-file={p / 'ca.crt'}",
        f"--service-account-private-key-file={p / 'sa.key'}",
        "--use-service-account-credentials=true",
        "--controllers=*",
        f"--cluster-signing-cert-file={p / 'ca.crt'}", f"--cluster-signing-key-file={p / 'ca.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--cluster-name={CONTEXT}",
        "--bind-address=127.0.0.1", f"--secure-port={ports['controller-manager']}",
        "--profiling=false",
        "--v=1",
    ])
    _start("scheduler", [
        str(binary), "scheduler",
        f"--kubeconfig={comp_cfg['scheduler']}",
        f"--authentication-kubeconfig={comp_cfg['scheduler']}",
        f"--authorization-kubeconfig={comp_cfg['scheduler']}",
        "--leader-elect=false",
        "--bind-address=127.0.0.1", f"--secure-port={ports['scheduler']}",
        "--profiling=false",
        "--v=1",
    ])
    _install_crds()
    _ensure_namespace("velero")
    for comp in ("controller-manager", "scheduler"):
        _wait(f"{comp} /healthz", lambda c=comp: _insecure_get(ports[c], "/healthz") == 200, 60, comp)
    log(f"controller-manager and scheduler healthy ({time.monotonic() - t0:.1f}s)")

    if SIM_MAIN.exists():
        _start("sim", [sys.executable, "-m", "sim", "--kubeconfig", str(KUBECONFIG),
                       "--state-dir", str(STATE_DIR)],
               env={"PYTHONPATH": str(CLUSTER_DIR)}, cwd=REPO_ROOT)
        try:
            _wait("simulator (.state/sim.ready)", SIM_READY.exists, 60, "sim")
        except ClusterError as e:
            raise ClusterError(f"{e}\n(simulator log: {LOG_DIR / 'sim.log'})") from None
        log("simulator ready")


def _stop_all() -> None:
    for name in reversed(COMPONENTS):
        # kube-apiserver's graceful termination waits for open watches to drain.
        _stop(name, timeout=5.0 if name == "apiserver" else 10.0)
    SIM_READY.unlink(missing_ok=True)


def ensure_cluster(quiet: bool = False) -> str:
    """Start the cluster unless it already runs; return the kubeconfig path."""
    if os.environ.get("VELERO_E2E") == "1" and os.environ.get("KUBECONFIG"):
        if not quiet:
            log("VELERO_E2E=1: using the existing cluster of $KUBECONFIG; nothing started")
        return os.environ["KUBECONFIG"]
    t0 = time.monotonic()
    binary = build_binary()
    with _lock():
        if is_running():
            return str(KUBECONFIG)
        if _repair():
            return str(KUBECONFIG)
        if any(_alive(_read_pid(n)) for n in COMPONENTS):
            log("cluster partially running or unhealthy: restarting it")
        _stop_all()
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        _ensure_pki()
        try:
            try:
                _start_all(binary)
            except ClusterError as first:
                # A component that really exits at once (e.g. a port taken meanwhile) gets fresh ports.
                log("start failed (%s); retrying once on fresh ports" % str(first).splitlines()[0])
                _stop_all()
                PORTS_FILE.unlink(missing_ok=True)
                _start_all(binary)
        except BaseException:
            log("start failed; stopping what was started (logs kept in %s)" % LOG_DIR)
            _stop_all()
            raise
    if not quiet:
        log(f"cluster up in {time.monotonic() - t0:.1f}s")
    return str(KUBECONFIG)


def _repair() -> bool:
    """etcd and apiserver healthy but a later component died: restart only that one."""
    if not (_alive(_read_pid("etcd")) and _alive(_read_pid("apiserver"))
            and KUBECONFIG.exists() and _apiserver_get("/readyz")[0] == 200):
        return False
    dead = [n for n in _expected_components()[2:] if not _alive(_read_pid(n))]
    if SIM_MAIN.exists() and "sim" not in dead and not SIM_READY.exists():
        dead.append("sim")
    argvs = {n: _load_argv(n) for n in dead}
    if not dead or not all(argvs.values()):
        return False
    for name in dead:
        log(f"{name} is not running: restarting it")
        _stop(name)
        rec = json.loads((ARGV_DIR / f"{name}.json").read_text())
        if name == "sim":
            SIM_READY.unlink(missing_ok=True)
        _start(name, argvs[name], env=rec.get("env") or None, cwd=Path(rec.get("cwd") or REPO_ROOT))
    if "sim" in dead:
        _wait("simulator (.state/sim.ready)", SIM_READY.exists, 60, "sim")
    return is_running()


def stop_cluster(purge: bool = False) -> None:
    """Stop every component (safe when nothing runs); purge also removes .state/."""
    with _lock():
        _stop_all()
        if purge:
            shutil.rmtree(STATE_DIR, ignore_errors=True)


def restart_apiserver(timeout: float = 90, graceful: bool = True) -> None:
    """Kill and restart only kube-apiserver with its recorded argv; wait for /readyz.

    graceful=True sends SIGTERM (SIGKILL after 5 s); graceful=False sends SIGKILL at once.
    """
    with _lock():
        argv = _load_argv("apiserver")
        if not argv:
            raise ClusterError("no recorded apiserver argv; run `up` first")
        _stop("apiserver", timeout=5.0, sig=signal.SIGTERM if graceful else signal.SIGKILL)
        port = _ports().get("apiserver")
        deadline = time.monotonic() + 30
        while port and not _port_free(port) and time.monotonic() < deadline:
            time.sleep(0.2)
        _start("apiserver", argv)
        _wait_readyz(timeout)


def status() -> str:
    lines = []
    ports = _ports()
    for name in _expected_components():
        pid = _read_pid(name)
        alive = _alive(pid)
        port = ports.get(name) or ports.get(f"{name}-client")
        lines.append(f"{name:20s} {'running' if alive else 'stopped':8s} pid={pid or '-'}"
                     + (f" port={port}" if port else ""))
    code = _apiserver_get("/readyz")[0] if ports else 0
    lines.append(f"apiserver /readyz: {code if code else 'unreachable'}")
    if SIM_MAIN.exists():
        lines.append(f"sim.ready: {'yes' if SIM_READY.exists() else 'no'}")
    lines.append(f"binary: {binary_path()}{'' if binary_path().exists() else ' (not built)'}")
    lines.append(f"kubeconfig: {KUBECONFIG}{'' if KUBECONFIG.exists() else ' (absent)'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up", help="build if needed and start the cluster (idempotent)")
    d = sub.add_parser("down", help="stop every process")
    d.add_argument("--purge", action="store_true", help="also remove tests/cluster/.state")
    sub.add_parser("status", help="show what runs")
    sub.add_parser("env", help="print the export line")
    sub.add_parser("build", help="build (or locate) the cached binary and print its path")
    r = sub.add_parser("restart-apiserver", help="restart kube-apiserver only")
    r.add_argument("--kill", action="store_true", help="SIGKILL instead of a graceful SIGTERM")
    k = sub.add_parser("kubectl", help="run the built kubectl against the cluster")
    k.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    try:
        if a.cmd == "up":
            print(export_line(ensure_cluster()), flush=True)
        elif a.cmd == "down":
            stop_cluster(purge=a.purge)
        elif a.cmd == "status":
            print(status())
            return 0 if is_running() else 3
        elif a.cmd == "env":
            if not is_running():
                log("warning: the cluster is not running (cluster.py up)")
            print(export_line())
        elif a.cmd == "build":
            print(build_binary())
        elif a.cmd == "restart-apiserver":
            t0 = time.monotonic()
            restart_apiserver(graceful=not a.kill)
            log(f"kube-apiserver restarted and ready in {time.monotonic() - t0:.1f}s")
        elif a.cmd == "kubectl":
            binary = build_binary()
            os.execv(str(binary), [str(binary), "kubectl", f"--kubeconfig={KUBECONFIG}", *a.args])
    except ClusterError as e:
        log(f"error: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
