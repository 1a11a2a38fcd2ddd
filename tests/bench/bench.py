# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`make bench`: playbooks/restore_in_place.yml vs a do-it-yourself kubernetes.core playbook.

For each N in BENCH_SIZES (default "10 50 200"): N volumes across N/5 Deployments and StatefulSets
(5 volumes each), BENCH_VOLUME_BYTES of known data per volume, an fs backup, the node-agent
simulator at a fixed speed (BENCH_SECONDS_PER_VOLUME of data-path time per volume) and a
concurrency that lets every volume run at once. Then, on the same cluster: scramble → our playbook
→ verify byte for byte; scramble → tests/bench/diy_restore.yml → verify.

Figures: wall time; orchestration overhead = wall − data-path time of the slowest volume (measured from
the PVRs' start/completion timestamps; the nominal value from the configured speed is printed too);
API requests: counted exactly on the client side (tests/request_log/sitecustomize.py hooks the
kubernetes client in every ansible module process), and also Σ apiserver_request_total (GET /metrics)
after − before minus the background rate of the shared cluster measured just before the run - the
latter is reported but is dominated by other suites and the simulators on a shared cluster.
backup_info over BENCH_LIST_BACKUPS Backups (default 5000) + 4 PVBs each.

Prints one line per figure with its target and ratio; writes docs/performance.md and
docs/performance.png; exits 1 when a target is missed.
"""

import concurrent.futures
import json
import os
import re
import secrets
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [os.path.join(REPO, "tests", "cluster"), os.path.join(REPO, "tests", "integration"),
                os.path.join(REPO, "collections")]

import ansible_run  # noqa: E402 pylint: disable=wrong-import-position,import-error
import cluster as test_cluster  # noqa: E402 pylint: disable=wrong-import-position,import-error
import proof_helpers as ph  # noqa: E402 pylint: disable=wrong-import-position,import-error

SIZES = [int(x) for x in os.environ.get("BENCH_SIZES", "10 50 200").replace(",", " ").split()]
VOLUME_BYTES = int(os.environ.get("BENCH_VOLUME_BYTES", str(256 * 1024)))
SECONDS_PER_VOLUME = float(os.environ.get("BENCH_SECONDS_PER_VOLUME", "120"))
WHO = os.environ.get("BENCH_WHO", "ours diy diy_expert").split()
DIY_PLAYBOOKS = {"diy": "diy_restore.yml", "diy_expert": "diy_expert_restore.yml"}
LIST_BACKUPS = int(os.environ.get("BENCH_LIST_BACKUPS", "5000"))
PVBS_PER_BACKUP = 4
VELERO_NS = ph.VELERO_NS
TARGETS = {
    "overhead_pct_at_50": 20.0,      # overhead <= 20 % of data-path time at N = 50
    "concurrency_ratio": 1.2,        # all volumes (first PVR created -> last completed) and the whole run <= 1.2 x slowest volume
    "requests_per_volume": 15.0,
    "request_ratio_vs_diy": 3.0,     # >= 3x fewer requests than DIY
    "speedup_vs_diy": 2.0,           # >= 2x faster than DIY
    "backup_info_seconds": 3.0,
}


def log(msg):
    print("[bench] %s" % msg, flush=True)


# ----------------------------------------------------------------------------- cluster helpers
def clients():
    import kubernetes
    from sim.kube import Kube  # pylint: disable=import-error
    kubeconfig = test_cluster.ensure_cluster(quiet=True)
    api_client = kubernetes.config.new_client_from_config(config_file=kubeconfig)
    return kubeconfig, api_client, Kube(api_client=api_client)


def request_total(api_client):
    resp = api_client.call_api("/metrics", "GET", _preload_content=False, _return_http_data_only=True)
    total = 0.0
    for line in resp.data.decode().splitlines():
        if line.startswith("apiserver_request_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def background_rate(api_client, seconds=5.0):
    first = request_total(api_client)
    time.sleep(seconds)
    return (request_total(api_client) - first) / seconds


def set_sim(kube, **values):
    kube.patch("ConfigMap", VELERO_NS, "sim-config", {"data": {k: str(v) for k, v in values.items()}})
    time.sleep(0.5)


def make_apps(kube, api_client, state_dir, ns, n):
    """N volumes across N/5 workloads (alternating Deployment / StatefulSet, 5 volumes each)."""
    from sim.storage import pvc_volume_path  # pylint: disable=import-error
    from sim.velero import write_files  # pylint: disable=import-error
    workloads, apps = [], []
    for index in range(max(1, n // 5)):
        kind = "Deployment" if index % 2 == 0 else "StatefulSet"
        name = "w%d" % index
        labels = {"app": name}
        vols = ["v%d" % j for j in range(5)]
        spec = {"accessModes": ["ReadWriteOnce"], "storageClassName": "sim-immediate",
                "resources": {"requests": {"storage": "1Gi"}}}
        ctr = {"name": "app", "image": "busybox:1.36", "command": ["sleep", "infinity"],
               "volumeMounts": [{"name": v, "mountPath": "/data/" + v} for v in vols]}
        if kind == "StatefulSet":
            body = {"metadata": {"name": name, "namespace": ns}, "spec": {
                "replicas": 1, "serviceName": name, "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [ctr],
                                                                      "terminationGracePeriodSeconds": 0}},
                "volumeClaimTemplates": [{"metadata": {"name": v}, "spec": spec} for v in vols]}}
            pvcs = ["%s-%s-0" % (v, name) for v in vols]
        else:
            pvcs = ["%s-%s" % (name, v) for v in vols]
            for claim in pvcs:
                kube.create("PersistentVolumeClaim", {"metadata": {"name": claim, "namespace": ns}, "spec": spec})
            body = {"metadata": {"name": name, "namespace": ns}, "spec": {
                "replicas": 1, "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {
                    "containers": [ctr], "terminationGracePeriodSeconds": 0,
                    "volumes": [{"name": v, "persistentVolumeClaim": {"claimName": c}} for v, c in zip(vols, pvcs)]}}}}
        kube.create(kind, body)
        workloads.append({"kind": kind, "name": name, "replicas": 1})
        apps.append({"kind": kind, "name": name, "namespace": ns, "pvcs": pvcs, "files": {}})
    deadline = time.monotonic() + 600
    while True:
        pods = [p for p in kube.list("Pod", ns) if (p.get("status") or {}).get("phase") == "Running"]
        if len(pods) >= len(workloads):
            break
        if time.monotonic() > deadline:
            raise RuntimeError("workloads not Running: %d/%d" % (len(pods), len(workloads)))
        time.sleep(0.5)
    for app in apps:
        for claim in app["pvcs"]:
            files = {"known.bin": secrets.token_bytes(VOLUME_BYTES), "name.txt": claim.encode()}
            write_files(pvc_volume_path(api_client, state_dir, ns, claim), files)
            app["files"][claim] = files
    return workloads, apps


def pvr_times(kube, selector):
    """(slowest PVR start->completion, first start -> last completion, first creation -> last completion) in seconds.
    The last one is the time the run spent restoring volumes: it holds how fast the playbook created the PVRs and the
    node-agent's ramp (it starts PVRs one after the other)."""
    from sim.kube import parse_time  # pylint: disable=import-error
    longest, created, starts, ends = 0.0, [], [], []
    for pvr in kube.list("PodVolumeRestore", VELERO_NS, label_selector=selector):
        status = pvr.get("status") or {}
        begin, end = parse_time(status.get("startTimestamp")), parse_time(status.get("completionTimestamp"))
        if begin and end:
            longest = max(longest, end - begin)
            created.append(parse_time(pvr["metadata"]["creationTimestamp"]))
            starts.append(begin)
            ends.append(end)
    if not starts:
        return longest, 0.0, 0.0
    return longest, max(ends) - min(starts), max(ends) - min(created)


DISCOVERY = re.compile(r"^/(version|api|apis|api/v1|apis/[^/]+/[^/]+)$")
CATEGORIES = ("discovery", "session journal", "reads", "watches", "creates", "writes")


def request_breakdown(path):
    """The request log (tests/request_log) by category: API discovery, the session journal (our ConfigMap),
    other reads (GET/LIST), watches, creates (POST) and other writes (PATCH/PUT/DELETE)."""
    counts = dict((c, 0) for c in CATEGORIES)
    with open(path) as handle:
        for line in handle:
            parts = line.split()
            verb, url = parts[-2], parts[-1]
            url_path = "/" + url.split("://", 1)[-1].split("/", 1)[-1] if "://" in url else url
            session_create = verb == "POST" and url_path.endswith("/namespaces/%s/configmaps" % VELERO_NS)
            if DISCOVERY.match(url_path):
                counts["discovery"] += 1
            elif "/configmaps/data-restore-" in url_path or session_create:
                counts["session journal"] += 1
            elif verb == "WATCH":
                counts["watches"] += 1
            elif verb == "GET":
                counts["reads"] += 1
            elif verb == "POST":
                counts["creates"] += 1
            else:
                counts["writes"] += 1
    return counts


def fresh_discovery_cache():
    """Every measured run starts like a job in a fresh AWX execution environment: without kubernetes.core's API
    discovery cache (a file per API server in the temp directory), so each side pays its own discovery."""
    import glob
    import tempfile
    for path in glob.glob(os.path.join(tempfile.gettempdir(), "k8srcp-*.json")):
        os.unlink(path)


def task_seconds(data, name):
    """Duration of the named task as the json callback measured it (module run + ansible's result handling)."""
    from datetime import datetime
    for play in (data or {}).get("plays", []):
        for task in play.get("tasks", []):
            if task["task"]["name"] == name:
                span = task["task"]["duration"]
                begin = datetime.fromisoformat(span["start"].replace("Z", "+00:00"))
                return (datetime.fromisoformat(span["end"].replace("Z", "+00:00")) - begin).total_seconds()
    raise RuntimeError("task %r not in the playbook output" % name)


def write_task_profile(data, label, started):
    """tests/output/bench-tasks-<who>-<N>.txt: one line per task: when it started (seconds after ansible-playbook was
    started, wall clock ``started``), its duration (both from the json callback) and its name."""
    from datetime import datetime
    lines = ["  start    took task"]
    for play in (data or {}).get("plays", []):
        for task in play.get("tasks", []):
            span = task["task"].get("duration") or {}
            try:
                begin = datetime.fromisoformat(span["start"].replace("Z", "+00:00"))
                end = datetime.fromisoformat(span["end"].replace("Z", "+00:00"))
            except (KeyError, ValueError):
                continue
            lines.append("%7.2f %7.2f %s" % (begin.timestamp() - started, (end - begin).total_seconds(),
                                             task["task"]["name"]))
    os.makedirs(os.path.join(REPO, "tests", "output"), exist_ok=True)
    with open(os.path.join(REPO, "tests", "output", "bench-tasks-%s.txt" % label), "w") as handle:
        handle.write("\n".join(lines) + "\n")


def wait_ready(api_client, apps):
    for app in apps:
        ph.replicas_back(api_client, app, timeout=300)


# ----------------------------------------------------------------------------- one size
def run_size(kubeconfig, api_client, kube, state_dir, n):
    from sim.velero import make_backup  # pylint: disable=import-error
    ns = "bench-%d-%s" % (n, secrets.token_hex(2))
    kube.create("Namespace", {"metadata": {"name": ns, "labels": {"data-restore.test/ephemeral": "true"}}})
    try:
        log("N=%d: creating %d workloads in %s" % (n, max(1, n // 5), ns))
        workloads, apps = make_apps(kube, api_client, state_dir, ns, n)
        volumes = sum(len(a["pvcs"]) for a in apps)
        backup = "bench-%d-%s" % (n, secrets.token_hex(2))
        make_backup(api_client, state_dir, backup, [ns], method="fs")
        total_bytes = VOLUME_BYTES + 64
        bps = max(1, int(total_bytes / SECONDS_PER_VOLUME))
        set_sim(kube, bytesPerSecond=bps, concurrencyPerNode=max(4, volumes))
        data_seconds = total_bytes / float(bps)
        out = {"n": volumes, "data_seconds": data_seconds}
        for who in WHO:
            for app in apps:
                ph.scramble(api_client, state_dir, app)
            rate = background_rate(api_client)
            before = request_total(api_client)
            counter = "/tmp/bench-requests-%s-%s.log" % (ns, who)
            env = {"BENCH_REQUEST_LOG": counter,
                   "PYTHONPATH": os.pathsep.join([os.path.join(REPO, "tests", "request_log"), os.environ.get("PYTHONPATH", "")])}
            fresh_discovery_cache()
            start, started_at = time.monotonic(), time.time()
            run_id = "%s-%s" % ({"diy": "typ", "diy_expert": "exp"}.get(who, who), backup)
            if who == "ours":
                rc, data, _o, err = ansible_run.run_playbook(os.path.join(REPO, "playbooks", "restore_in_place.yml"), {
                    "source_namespace": ns, "backup": backup, "session": "bench-" + ns,
                    "report_directory": "/tmp/bench-reports"}, kubeconfig=kubeconfig, env=env, timeout=14400)
            else:
                rc, data, _o, err = ansible_run.run_playbook(os.path.join(HERE, DIY_PLAYBOOKS[who]), {
                    "diy_namespace": ns, "diy_backup": backup, "diy_run": run_id, "diy_workloads": workloads},
                    kubeconfig=kubeconfig, env=env, timeout=14400)
            failed = [(t, r) for t, r in ansible_run.task_results(data)
                      if r.get("failed") and not r.get("ignore_errors")]
            wall = time.monotonic() - start
            write_task_profile(data, "%s-%d" % (who, n), started_at)
            disturbed = (kube.get("ConfigMap", VELERO_NS, "sim-config").get("data") or {}).get("bytesPerSecond") != str(bps)
            selector = ("data-restore.ansible/session=bench-" + ns) if who == "ours" else ("diy-restore=" + run_id)
            measured, span, restore_span = pvr_times(kube, selector)
            if who != "ours":
                kube.delete("ConfigMap", VELERO_NS, "diy-restore-" + run_id)
            metric_requests = request_total(api_client) - before - rate * wall
            with open(counter) as handle:
                requests = float(sum(1 for _line in handle))
            breakdown = request_breakdown(counter)
            os.replace(counter, os.path.join(REPO, "tests", "output", "bench-requests-%s-%d.log" % (who, n)))
            if rc != 0:
                raise RuntimeError("%s playbook failed at N=%d: %s %s" % (
                    who, n, [(t, r.get("msg")) for t, r in failed][:2], err[-1000:]))
            wait_ready(api_client, apps)
            for app in apps:
                bad = {k: v for k, v in ph.data_matches(api_client, state_dir, app).items() if v is not True}
                if bad:
                    raise RuntimeError("%s restored wrong data at N=%d: %s" % (who, n, bad))
            out[who] = {"wall": wall, "overhead": wall - measured, "requests": requests, "slowest_pvr": measured,
                        "data_span": span, "restore_span": restore_span, "breakdown": breakdown,
                        "metric_requests": metric_requests, "background_rate": rate, "disturbed": disturbed}
            log("N=%d %s: slowest PVR %.0fs (nominal %.0fs)%s" % (
                volumes, who, measured, data_seconds, " - sim-config CHANGED during the run by another test" if disturbed else ""))
            log("N=%d %s: wall %.1fs overhead %.1fs requests %.0f (client count; apiserver_request_total delta "
                "%.0f after subtracting a background of %.1f/s)" % (volumes, who, wall, wall - measured,
                                                                    requests, metric_requests, rate))
        return out
    finally:
        set_sim(kube, bytesPerSecond=50 * 1024 * 1024, concurrencyPerNode=4)
        kube.delete("Namespace", None, ns)


# ----------------------------------------------------------------------------- backup_info at scale
def bench_backup_info(kubeconfig, kube, count):
    label = "bench-list-%s" % secrets.token_hex(2)
    ns_name = "bench-list-src"

    def create_backup(index):
        name = "%s-%05d" % (label, index)
        b = kube.create("Backup", {"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {
            "name": name, "namespace": VELERO_NS, "labels": {"bench": label}},
            "spec": {"includedNamespaces": [ns_name], "storageLocation": "default", "ttl": "720h0m0s"},
            "status": {"phase": "Completed", "startTimestamp": "2026-11-%02dT00:00:00Z" % (1 + index % 28),
                       "completionTimestamp": "2026-11-%02dT00:10:00Z" % (1 + index % 28)}})
        for j in range(PVBS_PER_BACKUP):
            kube.create("PodVolumeBackup", {"apiVersion": "velero.io/v1", "kind": "PodVolumeBackup", "metadata": {
                "name": "%s-%d" % (name, j), "namespace": VELERO_NS,
                "labels": {"bench": label, "velero.io/backup-name": name, "velero.io/backup-uid": b["metadata"]["uid"]},
                "annotations": {"velero.io/pvc-name": "data-%d" % j}},
                "spec": {"node": "sim-node-a", "pod": {"kind": "Pod", "namespace": ns_name, "name": "p", "uid": "u"},
                         "volume": "v%d" % j, "backupStorageLocation": "default", "repoIdentifier": "",
                         "uploaderType": "kopia", "tags": {}},
                "status": {"phase": "Completed", "snapshotID": secrets.token_hex(8),
                           "progress": {"totalBytes": 1, "bytesDone": 1}}})
    log("backup_info: creating %d Backups + %d PodVolumeBackups" % (count, count * PVBS_PER_BACKUP))
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(create_backup, range(count)))
    log("backup_info: created in %.0fs" % (time.monotonic() - t0))
    try:
        timings = {}
        for what, args in (("latest", dict(latest=True, namespace=ns_name)),
                           ("list", dict(namespace=ns_name, volumes=False))):
            play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
                {"name": "backup_info " + what, "velero.data_restore.backup_info": args, "register": "found"},
                {"name": "count", "ansible.builtin.debug": {"msg": "{{ found.backups | length }}"}}]}]
            path = os.path.join(REPO, "tests", "output", "bench-backup-info.yml")
            with open(path, "w") as handle:
                json.dump(play, handle)
            start = time.monotonic()
            rc, data, _out, err = ansible_run.run_playbook(path, kubeconfig=kubeconfig, timeout=600)
            whole = time.monotonic() - start
            results = ansible_run.task_results(data)
            if rc != 0 or not results or results[0][1].get("failed"):
                raise RuntimeError("backup_info failed: %s %s" % (results[:1], err[-500:]))
            timings[what] = task_seconds(data, "backup_info " + what)
            timings[what + "_whole_run"] = whole
            log("backup_info %s: task %.2fs, whole ansible-playbook run %.2fs (%s backups returned)"
                % (what, timings[what], whole, results[1][1].get("msg")))
        return timings
    finally:
        from kubernetes import client as kc
        custom = kc.CustomObjectsApi(kube.api)
        for plural in ("podvolumebackups", "backups"):
            custom.delete_collection_namespaced_custom_object("velero.io", "v1", VELERO_NS, plural,
                                                              label_selector="bench=%s" % label)


# ----------------------------------------------------------------------------- report
def write_report(rows, list_timings, lines, list_count):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ns = [r["n"] for r in rows]
    for who, style, label in (("ours", "o-", "ours"), ("diy", "s--", "DIY runbook"), ("diy_expert", "^:", "DIY expert")):
        points = [(r["n"], r[who]) for r in rows if who in r]
        if points:
            ax1.plot([n for n, _m in points], [m["wall"] for _n, m in points], style, label="%s wall" % label)
            ax2.plot([n for n, _m in points], [m["requests"] for _n, m in points], style, label="%s requests" % label)
    ax1.plot(ns, [r["data_seconds"] for r in rows], ":", label="data path of one volume")
    ax1.set_xlabel("volumes")
    ax1.set_ylabel("seconds")
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.legend(fontsize=8)
    ax2.set_xlabel("volumes")
    ax2.set_ylabel("API requests")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(REPO, "docs", "performance.png"), dpi=90)
    table = ["| N | data path s (one volume) | ours wall s | slowest PVR s (all volumes: first PVR created - last completed) "
             "| overhead s | requests (per volume) | DIY runbook wall s / requests | DIY expert wall s / requests "
             "| speed-up vs runbook | fewer requests vs runbook |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ours, diy, expert = r["ours"], r["diy"], r.get("diy_expert")
        disturbed = any(r[w].get("disturbed") for w in ("ours", "diy", "diy_expert") if w in r)
        table.append("| %d | %.0f%s | %.1f | %.0f%s | %.1f | %.0f (%.1f) | %.1f / %.0f | %s | %.2fx | %.2fx |" % (
            r["n"], r["data_seconds"], " (sim-config disturbed)" if disturbed else "", ours["wall"],
            ours["slowest_pvr"], " (%.0f)" % ours["restore_span"] if ours.get("restore_span") else "", ours["overhead"],
            ours["requests"], ours["requests"] / r["n"], diy["wall"],
            diy["requests"], "%.1f / %.0f" % (expert["wall"], expert["requests"]) if expert else "not run",
            diy["wall"] / ours["wall"], diy["requests"] / max(1.0, ours["requests"])))
    when = ["| N | who | measured | load average (1/5/15 min) at the end |", "|---|---|---|---|"]
    for r in rows:
        for who in ("ours", "diy", "diy_expert"):
            if who in r:
                when.append("| %d | %s | %s | %s |" % (
                    r["n"], who, r[who].get("measured_at", "?"), r[who].get("load_average", "?")))
    split = ["| N | who | total | %s |" % " | ".join(CATEGORIES), "|---|---|---|%s" % ("---|" * len(CATEGORIES))]
    for r in rows:
        for who in ("ours", "diy", "diy_expert"):
            if who in r and r[who].get("breakdown"):
                split.append("| %d | %s | %.0f | %s |" % (r["n"], who, r[who]["requests"], " | ".join(
                    str(r[who]["breakdown"].get(c, 0)) for c in CATEGORIES)))
    info = "; ".join("%s: task %.2f s (whole ansible-playbook run %.2f s)" % (
        what, list_timings[what], list_timings.get(what + "_whole_run", 0)) for what in ("latest", "list") if what in list_timings)
    text = """# Performance (`make bench`)

Generated by `tests/bench/bench.py` (%s; host: %d CPUs). Rendered from tests/output/bench-results.json (copied to
docs/performance-results.json), which keeps the newest measurement of each (N, playbook) - the table below says when
each was taken.

**Workload.** N volumes across N/5 Deployments and StatefulSets (5 claims each), %d bytes of random data per
volume, a file-system (kopia) backup, the node-agent simulator at a fixed speed so that one volume takes the
"data path" seconds below, and a concurrency that lets every volume run at once. After each playbook the data
is compared byte for byte with what was backed up, and every workload must be back at its replicas.

**Playbooks compared** (same cluster, same backup, data scrambled before each):
* ours - `playbooks/restore_in_place.yml`, default options.
* DIY runbook - `tests/bench/diy_restore.yml`: what a user writes with kubernetes.core alone, one workload after the
  other (scale to 0 with `k8s`, wait with `k8s_info` `until`/`retries`/`delay: 2`, a helper pod with Velero's
  restore-wait init container, one PodVolumeRestore per volume from a Jinja template, wait for each, delete the
  helper, scale back, wait until ready). This is the baseline of the targets.
* DIY expert - `tests/bench/diy_expert_restore.yml`, reported for information: kubernetes.core alone but written
  knowing the whole flow - every workload stopped at once, one helper pod, one label-selector wait.

**API requests** are counted exactly on the client side (`tests/request_log/sitecustomize.py` hooks the
kubernetes client in every module process, a watch counts as one request). The apiserver's own
`apiserver_request_total` delta is stored in bench-results.json as well, but the test cluster's simulators (and
other suites) add traffic of their own, so it is not used for the targets.

%s

backup_info over %d Backups + %d PodVolumeBackups (the target applies to the task: the module run and ansible's
handling of its result, as the json callback times it; the whole ansible-playbook run adds ansible's start-up): %s

![plot](performance.png)

## Targets
```
%s
```
"Volumes restored concurrently (total <= 1.2 x the slowest single volume when concurrency allows)" is held to both
readings of "total", against the slowest single volume (its start to completion): the restore itself, from the
creation of the first PodVolumeRestore to the completion of the last one ("all volumes"), and the whole
ansible-playbook run ("whole run": preflight, stopping and starting the workloads, report), the stricter one.
From 2026-12-01 to 2026-12-02 only the first was a target (the second was printed as information, and at N=200
measured 1.23 then, at a higher load average).

## When each figure was measured
%s

## Where the requests go
From the client-side request log of each run (tests/output/bench-requests-<who>-<N>.log): API discovery, the
session journal (reads and writes of our ConfigMap), other reads (GET and LIST), watches, creates and other writes.
Runs measured before the log kept these categories have no row.

%s

## Notes
* Wall time of ours = data path of the slowest volume + a roughly fixed orchestration cost: ansible-playbook's
  start-up, 6 module runs outside the data path (plan + session, stop, helper pods, PodVolumeRestores with the
  first wait slice, helper deletion + start, report + completed), each an ansible task start-up (~0.5 s of it is
  importing the kubernetes client) plus a few API calls, and the cluster's own time to stop and start the pods
  (the controller-manager's client rate limits, the scheduler, the simulated kubelet). Its share shrinks as
  volumes get bigger. All volumes of a run restore concurrently: the PodVolumeRestores are created in one task
  (8 POSTs at a time), and a single watch per wait slice follows all of them.
* The DIY runbook restores one workload at a time, so its wall time grows with the number of workloads. The
  expert DIY restores every volume at once too, but creates the PodVolumeRestores (and scales the workloads) with
  one `k8s` module run per object, so the data path of the last volume starts later as N grows; it also has no
  journal, no preflight and no rollback.
* Requests of ours grow with N by about 1 POST per volume plus 2 PATCHes per workload (stop/start); the fixed part
  (about 60, see "Where the requests go") is API discovery, preflight (backup, volume info via DownloadRequest,
  storage location, claims, workloads, other sessions), one session read per module run, a journal write before
  each change, and the waits (one WATCH each, from the LIST that decided what to change; a later PodVolumeRestore
  wait slice continues the watch of the one before; slices grow from 15 s to 60 s).
""" % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.cpu_count() or 0, VOLUME_BYTES, "\n".join(table),
       list_count, list_count * PVBS_PER_BACKUP, info or "not measured", "\n".join(lines), "\n".join(when),
       "\n".join(split))
    text += misses_explained(rows, lines)
    with open(os.path.join(REPO, "docs", "performance.md"), "w") as handle:
        handle.write(text)


def misses_explained(rows, lines):
    """What the figures say about each missed target (written only for the targets this run missed)."""
    notes = []
    for r in rows:
        ours, diy = r["ours"], r["diy"]
        prefix = "N=%d " % r["n"]
        if any(l.startswith(prefix + "all volumes / slowest volume") and l.endswith("MISSED") for l in lines) \
                and ours.get("restore_span"):
            notes.append(
                "* %sall volumes / slowest volume: the %d PodVolumeRestores were created %.0f s before the first one "
                "started; the node-agent simulator accepts, prepares and starts them with 4 workers (a finalizer and "
                "three phase updates each), so the last volume finished %.0f s after the first one was created while "
                "the slowest single volume took %.0f s."
                % (prefix, r["n"], ours["restore_span"] - ours["data_span"], ours["restore_span"],
                   ours["slowest_pvr"]))
        if any(l.startswith(prefix + "whole run / slowest volume") and l.endswith("MISSED") for l in lines):
            notes.append(
                "* %swhole run / slowest volume: the run took %.1f s against the slowest volume's %.0f s; the "
                "restore itself (all volumes) took %s s, the rest is the fixed cost of the run (overhead %.1f s: "
                "ansible's task start-ups, preflight, stopping and starting the workloads, the report), which grows "
                "with the load and falls with the speed of the machine (load average %s at the end)."
                % (prefix, ours["wall"], ours["slowest_pvr"], ours.get("restore_span", "?"), ours["overhead"],
                   ours.get("load_average", "?")))
        if any(l.startswith(prefix + "DIY/ours API requests") and l.endswith("MISSED") for l in lines):
            split = ours.get("breakdown") or {}
            allowed = int(diy["requests"] / TARGETS["request_ratio_vs_diy"])  # whole requests
            shared = sum(split.get(c, 0) for c in ("creates", "writes", "discovery"))
            rest = sum(split.get(c, 0) for c in ("session journal", "watches", "reads"))
            notes.append(
                "* %sDIY/ours API requests: ours sends %.0f requests (%s). 3x fewer than the runbook's %.0f would "
                "mean %d at most. The creates and writes both playbooks make and API discovery (%d here) leave %d "
                "for everything else; ours spends %d there, on what the runbook does not do: the session journal (%d: "
                "a read per module run, a write before each change), watches (%d: one per wait - the volume-info "
                "download, the stop, the helper pods, each PodVolumeRestore wait slice, the start) and reads (%d: the "
                "preflight's backup, volume info and PodVolumeBackups, storage location, claims, workloads and other "
                "sessions; the stop's and start's re-reads of the workloads just before they change them; the helper "
                "pods' reads of Velero's settings and the nodes' CSI attach limits; the report). The runbook's "
                "requests grow with the time it polls (one "
                "request per 2 s per volume), so the ratio passes 3x from a few workloads on (see the larger N)."
                % (prefix, ours["requests"], ", ".join("%s %d" % (c, split[c]) for c in CATEGORIES if split.get(c))
                   or "no breakdown", diy["requests"], allowed, shared, allowed - shared, rest,
                   split.get("session journal", 0), split.get("watches", 0), split.get("reads", 0)))
    if not notes:
        return ""
    return "\n## Targets missed, and why\n" + "\n".join(notes) + "\n"


RESULTS = os.path.join(REPO, "tests", "output", "bench-results.json")
COMMITTED_RESULTS = os.path.join(REPO, "docs", "performance-results.json")  # the figures behind docs/performance.md


def load_results(path=RESULTS):
    """The kept measurements; a fresh checkout (no tests/output yet) starts from the committed ones, so a run that
    measures only some sizes or playbooks is still evaluated against the rest."""
    candidates = (path, COMMITTED_RESULTS) if path == RESULTS else (path,)
    for candidate in candidates:
        try:
            with open(candidate) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            continue
    return {"sizes": {}, "backup_info": {}}


def merge_results(store, rows, list_timings):
    """Keep the newest measurement of each (N, who); a run may measure only some of them (BENCH_WHO)."""
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = " ".join("%.1f" % x for x in os.getloadavg())
    for row in rows:
        size = store["sizes"].setdefault(str(row["n"]), {"n": row["n"]})
        for who in DIY_PLAYBOOKS.keys() | {"ours"}:
            if who in row:
                size[who] = dict(row[who], measured_at=stamp, load_average=load, data_seconds=row["data_seconds"])
        size["data_seconds"] = row["data_seconds"]
    if list_timings:
        store["backup_info"] = dict(list_timings, measured_at=stamp, count=LIST_BACKUPS)
    return store


def evaluate(store):
    """Figures with targets for every size measured for both ours and the DIY baseline."""
    rows = [r for _k, r in sorted(store["sizes"].items(), key=lambda kv: int(kv[0])) if "ours" in r and "diy" in r]
    lines, missed = [], []

    def figure(name, value, target, at_most=True, unit=""):
        met = value <= target if at_most else value >= target
        line = "%-44s %10.2f%s target %s %.2f%s ratio %.2f %s" % (
            name, value, unit, "<=" if at_most else ">=", target, unit, value / target if target else 0,
            "MET" if met else "MISSED")
        lines.append(line)
        if not met:
            missed.append(name)
    for r in rows:
        n, ours, diy = r["n"], r["ours"], r["diy"]
        if n == 50 or len(rows) == 1:
            figure("N=%d overhead %% of data path" % n, 100.0 * ours["overhead"] / ours["slowest_pvr"],
                   TARGETS["overhead_pct_at_50"])
        if ours.get("restore_span"):
            figure("N=%d all volumes / slowest volume" % n, ours["restore_span"] / ours["slowest_pvr"],
                   TARGETS["concurrency_ratio"])
        else:
            lines.append("%-44s not measured by this run (re-run make bench for N=%d)" % (
                "N=%d all volumes / slowest volume" % n, n))
            missed.append("N=%d all volumes / slowest volume" % n)
        figure("N=%d whole run / slowest volume" % n, ours["wall"] / ours["slowest_pvr"], TARGETS["concurrency_ratio"])
        if diy.get("restore_span"):
            lines.append("%-44s %10.2f (information: the runbook restores one workload after the other)" % (
                "N=%d DIY all volumes / slowest volume" % n, diy["restore_span"] / diy["slowest_pvr"]))
        figure("N=%d API requests per volume" % n, ours["requests"] / n, TARGETS["requests_per_volume"])
        figure("N=%d DIY/ours API requests" % n, diy["requests"] / max(1.0, ours["requests"]),
               TARGETS["request_ratio_vs_diy"], at_most=False)
        figure("N=%d DIY/ours wall time" % n, diy["wall"] / ours["wall"], TARGETS["speedup_vs_diy"], at_most=False)
    info = store.get("backup_info") or {}
    for what in ("latest", "list"):
        if what in info:
            figure("backup_info %s over %d Backups" % (what, info.get("count", LIST_BACKUPS)), info[what],
                   TARGETS["backup_info_seconds"], unit="s")
    return rows, lines, missed


def main():
    merge_from = os.environ.get("BENCH_MERGE_FROM")  # results of another checkout's run (same cluster settings)
    store = load_results()
    if merge_from:
        other = load_results(merge_from)
        for key, size in other["sizes"].items():
            store["sizes"].setdefault(key, {}).update(size)
        if other.get("backup_info"):
            store["backup_info"] = other["backup_info"]
    if not os.environ.get("BENCH_RENDER_ONLY") and not merge_from:
        kubeconfig, api_client, kube = clients()
        kube.api = api_client
        state_dir = str(test_cluster.STATE_DIR)
        rows = [run_size(kubeconfig, api_client, kube, state_dir, n) for n in SIZES]
        list_timings = bench_backup_info(kubeconfig, kube, LIST_BACKUPS) if LIST_BACKUPS else {}
        merge_results(store, rows, list_timings)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as handle:
        json.dump(store, handle, indent=1, sort_keys=True)
    rows, lines, missed = evaluate(store)
    for line in lines:
        print(line, flush=True)
    if not rows:
        print("no size has been measured for both ours and diy yet (BENCH_WHO): no target could be evaluated; "
              "docs/performance.md left as it is")
        return 1
    write_report(rows, store.get("backup_info") or {}, lines, (store.get("backup_info") or {}).get("count", LIST_BACKUPS))
    with open(COMMITTED_RESULTS, "w") as handle:
        json.dump(store, handle, indent=1, sort_keys=True)
    if missed:
        print("targets missed: %s" % ", ".join(missed), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
