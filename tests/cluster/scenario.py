# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Seed, back up, damage and verify the test cluster for molecule scenarios and the demo.

One small CLI over the simulator's Python API (sim.velero, sim.storage). Every subcommand keeps its
facts in a JSON state file (``--state``), so ``verify`` compares the volumes BYTE FOR BYTE with what
``backup`` captured::

    scenario.py seed     --state S --namespace NS [--kind Deployment|StatefulSet] [--name app] [--replicas N]
                         [--volume name[,class=sim-immediate][,mode=Filesystem|Block][,size=1Gi][,unmounted]]...
    scenario.py backup   --state S --name B [--method fs|data_mover] [--pvc P]... [--new-cluster]
    scenario.py damage   --state S [--pvc P]...
    scenario.py verify   --state S --mode in_place|replace [--expected OTHER_STATE] [--pvc P]... [--damaged P]...
                         [--report FILE.md]
    scenario.py assert-clean --namespace NS [--session S]
    scenario.py sim-config key=value...
    scenario.py teardown --namespace NS... [--backup B]... [--session S]...

Runs against tests/cluster (KUBECONFIG of ``cluster.py up``); exits non-zero with a plain message when a
check fails.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

STATE_DIR = os.path.join(HERE, ".state")
VELERO_NS = "velero"
ROLE_LABEL = "data-restore.ansible/role"
SESSION_LABEL = "data-restore.ansible/session"
BLOCK_DATA_LEN = 64 * 1024


class CheckFailed(Exception):
    pass


def kube_client():
    import kubernetes
    from sim.kube import Kube
    kubeconfig = os.environ.get("KUBECONFIG") or os.environ.get("K8S_AUTH_KUBECONFIG") or os.path.join(STATE_DIR, "kubeconfig")
    api = kubernetes.config.new_client_from_config(config_file=kubeconfig)
    return api, Kube(api_client=api)


def wait(pred, timeout=90, what="condition", interval=0.25):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise CheckFailed("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


def load(path):
    with open(path) as handle:
        return json.load(handle)


def save(path, state):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(state, handle, indent=1, sort_keys=True)


def b64(data):
    return base64.b64encode(data).decode()


def unb64(text):
    return base64.b64decode(text.encode())


def content(namespace, pvc, rel):
    """Deterministic file content (differs per namespace, claim and file, some binary)."""
    seed = hashlib.sha256(("%s/%s/%s" % (namespace, pvc, rel)).encode()).digest()
    return b"%s/%s/%s\n" % (namespace.encode(), pvc.encode(), rel.encode()) + seed * 64


def parse_volume(spec):
    parts = spec.split(",")
    vol = {"name": parts[0], "storage_class": "sim-immediate", "volume_mode": "Filesystem", "size": "1Gi",
           "unmounted": False}
    for part in parts[1:]:
        key, _sep, value = part.partition("=")
        if key == "class":
            vol["storage_class"] = value
        elif key == "mode":
            vol["volume_mode"] = value
        elif key == "size":
            vol["size"] = value
        elif key == "unmounted":
            vol["unmounted"] = True
        else:
            raise SystemExit("unknown volume option %r in %r" % (key, spec))
    return vol


def delete_namespace(kube, namespace):
    if kube.get_or_none("Namespace", None, namespace) is None:
        return
    kube.delete("Namespace", None, namespace)
    wait(lambda: kube.get_or_none("Namespace", None, namespace) is None, 120, "namespace %s to go" % namespace)


def volume_path(api, namespace, pvc):
    from sim.storage import pvc_volume_path
    return pvc_volume_path(api, STATE_DIR, namespace, pvc)


def running_pods(kube, namespace, name):
    return [p for p in kube.list("Pod", namespace, label_selector="app=%s" % name)
            if (p.get("status") or {}).get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]


# ---------------------------------------------------------------- seed
def cmd_seed(args):
    api, kube = kube_client()
    ns, name = args.namespace, args.name
    vols = [parse_volume(v) for v in (args.volume or ["data"])]
    delete_namespace(kube, ns)
    kube.create("Namespace", {"metadata": {"name": ns, "labels": {"data-restore.test/scenario": "true"}}})
    labels = {"app": name}

    def claim_spec(v):
        return {"accessModes": ["ReadWriteOnce"], "storageClassName": v["storage_class"], "volumeMode": v["volume_mode"],
                "resources": {"requests": {"storage": v["size"]}}}

    mounts, devices, pod_vols, pvcs = [], [], [], {}
    mounted = [v for v in vols if not v["unmounted"]]
    for v in mounted:
        if v["volume_mode"] == "Block":
            devices.append({"name": v["name"], "devicePath": "/dev/%s" % v["name"]})
        else:
            mounts.append({"name": v["name"], "mountPath": "/data/%s" % v["name"]})
    container = {"name": "app", "image": "busybox:1.36", "command": ["sleep", "infinity"]}
    if mounts:
        container["volumeMounts"] = mounts
    if devices:
        container["volumeDevices"] = devices
    template = {"metadata": {"labels": labels, "annotations": dict(a.split("=", 1) for a in args.pod_annotation or [])},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": 0}}
    if args.kind == "StatefulSet":
        kube.create("StatefulSet", {"metadata": {"name": name, "namespace": ns, "labels": labels},
                                    "spec": {"replicas": args.replicas, "serviceName": name,
                                             "selector": {"matchLabels": labels}, "template": template,
                                             "volumeClaimTemplates": [{"metadata": {"name": v["name"]}, "spec": claim_spec(v)}
                                                                      for v in mounted]}})
        for i in range(args.replicas):
            for v in mounted:
                pvcs["%s-%s-%d" % (v["name"], name, i)] = dict(v, pod_volume=v["name"])
    else:
        for v in mounted:
            claim = "%s-%s" % (name, v["name"])
            kube.create("PersistentVolumeClaim", {"metadata": {"name": claim, "namespace": ns, "labels": labels},
                                                  "spec": claim_spec(v)})
            pod_vols.append({"name": v["name"], "persistentVolumeClaim": {"claimName": claim}})
            pvcs[claim] = dict(v, pod_volume=v["name"])
        template["spec"]["volumes"] = pod_vols
        kube.create("Deployment", {"metadata": {"name": name, "namespace": ns, "labels": labels},
                                   "spec": {"replicas": args.replicas, "selector": {"matchLabels": labels},
                                            "template": template}})
    for v in vols:
        if v["unmounted"]:
            claim = "%s-%s" % (name, v["name"])
            kube.create("PersistentVolumeClaim", {"metadata": {"name": claim, "namespace": ns, "labels": {"app": name + "-spare"}},
                                                  "spec": claim_spec(v)})
            pvcs[claim] = dict(v, pod_volume=None)
    wait(lambda: len(running_pods(kube, ns, name)) >= args.replicas, 120, "%s %s/%s Running" % (args.kind, ns, name))
    wait(lambda: all((kube.get("PersistentVolumeClaim", ns, c).get("status") or {}).get("phase") == "Bound" for c in pvcs),
         60, "PVCs of %s Bound" % ns)
    from sim.velero import write_block, write_files
    for claim, v in pvcs.items():
        path = volume_path(api, ns, claim)
        if v["volume_mode"] == "Block":
            write_block(path, content(ns, claim, "block")[:BLOCK_DATA_LEN])
        else:
            write_files(path, {"hello.txt": content(ns, claim, "hello.txt"),
                               "dir/data.bin": content(ns, claim, "dir/data.bin"),
                               "dir/sub/deep.txt": content(ns, claim, "dir/sub/deep.txt")})
    save(args.state, {"namespace": ns, "kind": args.kind, "name": name, "replicas": args.replicas, "pvcs": pvcs,
                      "expected": {}, "added": {}, "backup": None})
    print("seeded %s %s/%s (%d replicas), PVCs: %s" % (args.kind, ns, name, args.replicas, ", ".join(sorted(pvcs))))


# ---------------------------------------------------------------- backup
def snapshot_of(api, ns, claim, v):
    from sim.velero import read_block, read_tree
    path = volume_path(api, ns, claim)
    if v["volume_mode"] == "Block":
        return {"__block__": b64(read_block(path, BLOCK_DATA_LEN))}
    return {rel: b64(data) for rel, data in sorted(read_tree(path).items())}


def cmd_backup(args):
    api, kube = kube_client()
    state = load(args.state)
    from sim.velero import make_backup, new_cluster
    if kube.get_or_none("Backup", VELERO_NS, args.name) is not None:
        kube.delete("Backup", VELERO_NS, args.name)
        wait(lambda: kube.get_or_none("Backup", VELERO_NS, args.name) is None, 60, "old backup %s to go" % args.name)
    make_backup(api, STATE_DIR, args.name, [state["namespace"]], method=args.method, pvcs=args.pvc or None)
    expected = {}
    for claim, v in state["pvcs"].items():
        if args.pvc and claim not in args.pvc:
            continue
        if args.method == "fs" and (v["pod_volume"] is None or v["volume_mode"] == "Block"):
            continue  # Velero's fs backup skips them
        expected[claim] = snapshot_of(api, state["namespace"], claim, v)
    if args.new_cluster:
        new_cluster(api, STATE_DIR, args.name)
    state.update(expected=expected, backup=args.name, method=args.method)
    save(args.state, state)
    print("backup %s (%s%s) of %s: %s" % (args.name, args.method, ", new cluster: only Backup + PVBs synced" if args.new_cluster else "",
                                          state["namespace"], ", ".join(sorted(expected))))


# ---------------------------------------------------------------- damage
def cmd_damage(args):
    api, _kube = kube_client()
    state = load(args.state)
    from sim.velero import write_block
    added = {}
    for claim, v in sorted(state["pvcs"].items()):
        if args.pvc and claim not in args.pvc:
            continue
        path = volume_path(api, state["namespace"], claim)
        if v["volume_mode"] == "Block":
            write_block(path, b"\xde\xad" * 512)
            continue
        with open(os.path.join(path, "hello.txt"), "wb") as handle:
            handle.write(b"DAMAGED after the backup\n")
        os.remove(os.path.join(path, "dir", "data.bin"))
        new = b"created after the backup in %s\n" % claim.encode()
        with open(os.path.join(path, "after-backup.txt"), "wb") as handle:
            handle.write(new)
        added[claim] = {"after-backup.txt": b64(new)}
    state["added"] = added
    state["damaged"] = {claim: snapshot_of(api, state["namespace"], claim, v) for claim, v in state["pvcs"].items()
                        if claim in state.get("expected", {}) and (not args.pvc or claim in args.pvc)}
    save(args.state, state)
    print("damaged %s: hello.txt overwritten, dir/data.bin deleted, after-backup.txt added (Block: first KiB overwritten)"
          % ", ".join(c for c in sorted(state["pvcs"]) if not args.pvc or c in args.pvc))


# ---------------------------------------------------------------- verify
def current_claims(kube, state):
    """Original PVC name -> the claim the workload uses now (rebind keeps it, template switches it)."""
    ns, name = state["namespace"], state["name"]
    out = {c: c for c in state["pvcs"]}
    if state["kind"] == "Deployment":
        dep = kube.get("Deployment", ns, name)
        by_volume = {v["name"]: (v.get("persistentVolumeClaim") or {}).get("claimName")
                     for v in dep["spec"]["template"]["spec"].get("volumes") or []}
        for claim, v in state["pvcs"].items():
            if v["pod_volume"] and by_volume.get(v["pod_volume"]):
                out[claim] = by_volume[v["pod_volume"]]
    return out


def cmd_verify(args):
    api, kube = kube_client()
    state = load(args.state)
    source = load(args.expected) if args.expected else state
    ns = state["namespace"]
    problems = []
    claims = current_claims(kube, state)
    checked = []
    wanted = source["expected"] if args.mode != "rolled_back" else state.get("damaged") or {}
    for claim, want in sorted(wanted.items()):
        target = claim if claim in state["pvcs"] else None
        if target is None:
            continue
        if args.pvc and claim not in args.pvc:
            continue
        if claim in (args.damaged or []):
            continue
        v = state["pvcs"][claim]
        got = snapshot_of(api, ns, claims[claim], v)
        checked.append(claims[claim])
        if v["volume_mode"] == "Block":
            if got != want:
                problems.append("%s/%s: block device data differs from the backup" % (ns, claims[claim]))
            continue
        added = (state.get("added") or {}).get(claim) or {}
        for rel, data in sorted(want.items()):
            if rel not in got:
                problems.append("%s/%s: %s is missing (it was backed up)" % (ns, claims[claim], rel))
            elif got[rel] != data:
                problems.append("%s/%s: %s differs from the backup (%d bytes, backup %d)" % (
                    ns, claims[claim], rel, len(unb64(got[rel])), len(unb64(data))))
        extra = sorted(set(got) - set(want))
        if args.mode in ("replace", "rolled_back"):
            if extra:
                problems.append("%s/%s: files not in the backup: %s (replace must give an exact copy)" % (ns, claims[claim], extra))
        else:
            for rel, data in added.items():
                if got.get(rel) != data:
                    problems.append("%s/%s: %s, created after the backup, should still be there unchanged (Kopia never deletes)"
                                    % (ns, claims[claim], rel))
            unexpected = sorted(set(extra) - set(added))
            if unexpected:
                problems.append("%s/%s: unexpected files %s" % (ns, claims[claim], unexpected))
    for claim in args.damaged or []:
        v = state["pvcs"][claim]
        got = snapshot_of(api, ns, claims[claim], v)
        if v["volume_mode"] != "Block" and "after-backup.txt" not in got:
            problems.append("%s/%s was not selected for the restore but was changed" % (ns, claim))
    if not checked:
        problems.append("no volume was verified (state %s)" % args.state)
    # replicas back at their originals, every pod running
    kind, name = state["kind"], state["name"]
    obj = kube.get(kind, ns, name)
    if obj["spec"].get("replicas") != state["replicas"]:
        problems.append("%s %s/%s has %s replicas, originally %s" % (kind, ns, name, obj["spec"].get("replicas"), state["replicas"]))
    try:
        wait(lambda: len(running_pods(kube, ns, name)) == state["replicas"], 60, "%s pods" % name)
    except CheckFailed:
        problems.append("%s %s/%s: %d Running pods, want %d" % (kind, ns, name, len(running_pods(kube, ns, name)), state["replicas"]))
    if args.report and args.mode == "in_place":
        with open(args.report) as handle:
            text = handle.read()
        if "created after the backup" not in text:
            problems.append("report %s does not tell that files created after the backup remain" % args.report)
        for claim in (state.get("added") or {}):
            if claim in checked and ns + "/" + claim not in text:
                problems.append("report %s does not list volume %s/%s" % (args.report, ns, claim))
    problems += clean_problems(kube, ns, None)
    if problems:
        raise CheckFailed("verify failed:\n  " + "\n  ".join(problems))
    print("verified %s: %s equal %s byte for byte%s; %s %s back at %d replicas; no helper/placeholder pods left"
          % (args.mode, ", ".join(checked),
             "the pre-restore data" if args.mode == "rolled_back" else "the backup %s" % source.get("backup"),
             " (files created after the backup kept)" if args.mode == "in_place" else " (exact copy)",
             kind, name, state["replicas"]))


# ---------------------------------------------------------------- assert-clean
def clean_problems(kube, namespace, session):
    problems = []
    for pod in kube.list("Pod", namespace):
        role = (pod["metadata"].get("labels") or {}).get(ROLE_LABEL)
        if role and (session is None or pod["metadata"]["labels"].get(SESSION_LABEL) == session):
            problems.append("pod %s/%s (role %s) was left behind" % (namespace, pod["metadata"]["name"], role))
    return problems


def cmd_assert_clean(args):
    _api, kube = kube_client()
    problems = clean_problems(kube, args.namespace, args.session)
    if problems:
        raise CheckFailed("\n".join(problems))
    print("no helper or placeholder pods in %s" % args.namespace)


# ---------------------------------------------------------------- sim-config / teardown
def cmd_sim_config(args):
    _api, kube = kube_client()
    data = dict(kv.split("=", 1) for kv in args.values)
    kube.patch("ConfigMap", VELERO_NS, "sim-config", {"data": data})
    time.sleep(0.3)
    print("sim-config: %s" % data)


def cmd_teardown(args):
    _api, kube = kube_client()
    for session in args.session or []:
        kube.delete("ConfigMap", VELERO_NS, "data-restore-" + session)
    for backup in args.backup or []:
        kube.delete("Backup", VELERO_NS, backup)
    for ns in args.namespace or []:
        delete_namespace(kube, ns)
        for pv in kube.list("PersistentVolume"):
            ref = pv["spec"].get("claimRef") or {}
            if ref.get("namespace") == ns:
                kube.delete("PersistentVolume", None, pv["metadata"]["name"])
    print("torn down: namespaces %s, backups %s, sessions %s" % (args.namespace or [], args.backup or [], args.session or []))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("seed")
    p.add_argument("--state", required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--kind", default="Deployment", choices=["Deployment", "StatefulSet"])
    p.add_argument("--name", default="app")
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--volume", action="append")
    p.add_argument("--pod-annotation", action="append", help="key=value on the pod template")
    p.set_defaults(fn=cmd_seed)
    p = sub.add_parser("backup")
    p.add_argument("--state", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--method", default="fs", choices=["fs", "data_mover"])
    p.add_argument("--pvc", action="append")
    p.add_argument("--new-cluster", action="store_true")
    p.set_defaults(fn=cmd_backup)
    p = sub.add_parser("damage")
    p.add_argument("--state", required=True)
    p.add_argument("--pvc", action="append")
    p.set_defaults(fn=cmd_damage)
    p = sub.add_parser("verify")
    p.add_argument("--state", required=True)
    p.add_argument("--mode", required=True, choices=["in_place", "replace", "rolled_back"],
                   help="rolled_back: the volumes equal what they were before the restore (after damage)")
    p.add_argument("--expected", help="state file whose backup the volumes must equal (other namespace)")
    p.add_argument("--pvc", action="append", help="only these volumes were restored")
    p.add_argument("--damaged", action="append", help="volumes that must keep their damage (not selected)")
    p.add_argument("--report", help="Markdown report to check (in_place)")
    p.set_defaults(fn=cmd_verify)
    p = sub.add_parser("assert-clean")
    p.add_argument("--namespace", required=True)
    p.add_argument("--session")
    p.set_defaults(fn=cmd_assert_clean)
    p = sub.add_parser("sim-config")
    p.add_argument("values", nargs="+")
    p.set_defaults(fn=cmd_sim_config)
    p = sub.add_parser("teardown")
    p.add_argument("--namespace", action="append")
    p.add_argument("--backup", action="append")
    p.add_argument("--session", action="append")
    p.set_defaults(fn=cmd_teardown)
    args = parser.parse_args(argv)
    try:
        args.fn(args)
    except CheckFailed as exc:
        print("FAILED: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
