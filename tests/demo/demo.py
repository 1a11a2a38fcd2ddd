# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""make demo: Scenario 2 end to end on the local test cluster.

Deploys a small app with data, backs it up (simulated Velero), damages the data, runs
playbooks/restore_replace.yml through ansible-playbook (plan, progress, swap, report), then checks the
volume equals the backup byte for byte. Exits non-zero when it does not.
"""

from __future__ import annotations

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "cluster"))

import cluster  # noqa: E402  pylint: disable=wrong-import-position
import scenario  # noqa: E402  pylint: disable=wrong-import-position

NAMESPACE = "demo-shop"
BACKUP = "demo-shop-nightly"
SESSION = "demo-shop-rollback"
OUT = os.path.join(REPO, "tests", "output", "demo")
STATE = os.path.join(OUT, "state.json")

BANNER = """
==============================================================================================
 velero.data_restore demo - Scenario 2: roll a running app's data back to last night, safely
----------------------------------------------------------------------------------------------
 What is REAL here: etcd, kube-apiserver, kube-controller-manager, kube-scheduler (Kubernetes
 v1.34 built from source), Velero's CRDs, and this collection's roles and modules driven by
 ansible-playbook.
 What is SIMULATED: kubelet/nodes (no containers run), the CSI storage (volumes are local
 directories under tests/cluster/.state/volumes), and Velero itself (the backup is written by a
 fixture; a Python node-agent processes PodVolumeRestores/DataDownloads by Velero's rules).
==============================================================================================
"""

REAL_CLUSTER = """
To run the same against a real cluster with Velero (>= 1.16 with the kopia uploader, node-agent installed):

  export K8S_AUTH_KUBECONFIG=~/.kube/config           # or kubeconfig=... / kube_context=... extra vars
  ansible-galaxy collection install kubernetes.core
  ansible-playbook velero.data_restore.list_backups -e source_namespace=<ns> -e show_volumes=true
  ansible-playbook velero.data_restore.restore_replace -e source_namespace=<ns> -e backup=<backup> --check   # plan only
  ansible-playbook velero.data_restore.restore_replace -e source_namespace=<ns> -e backup=<backup>
  ansible-playbook velero.data_restore.rollback -e session=<session>                                        # if needed

(velero_namespace=openshift-adp on OADP; see docs/awx.md for AWX job templates.)
"""


def step(title):
    print("\n>>> %s" % title, flush=True)


def cli(*args):
    rc = scenario.main(list(args))
    if rc:
        raise SystemExit("demo: scenario.py %s failed" % args[0])


def main():
    print(BANNER, flush=True)
    step("Starting the local test cluster (idempotent)")
    kubeconfig = cluster.ensure_cluster()
    os.environ["KUBECONFIG"] = kubeconfig
    os.makedirs(OUT, exist_ok=True)
    cli("teardown", "--namespace", NAMESPACE, "--backup", BACKUP, "--session", SESSION)

    step("Deploying the app 'shop' (Deployment, 2 replicas) with data in PVC shop-data")
    cli("seed", "--state", STATE, "--namespace", NAMESPACE, "--name", "shop", "--replicas", "2", "--volume", "data")
    step("Backing it up with (simulated) Velero file-system backup: Backup %s" % BACKUP)
    cli("backup", "--state", STATE, "--name", BACKUP, "--method", "fs")
    step("Damaging the data after the backup (overwrite, delete, add a file)")
    cli("damage", "--state", STATE)

    step("Running playbooks/restore_replace.yml (plan -> restore into a new PVC while the app runs -> swap -> resume -> report)")
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": os.path.join(REPO, "collections"),
        "K8S_AUTH_KUBECONFIG": kubeconfig,
        "ANSIBLE_DISPLAY_SKIPPED_HOSTS": "false",
        "ANSIBLE_DISPLAY_OK_HOSTS": "true",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_DEPRECATION_WARNINGS": "false",
        "PATH": os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),
    })
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
           "-e", "ansible_python_interpreter=%s" % sys.executable,
           "-e", "source_namespace=%s" % NAMESPACE, "-e", "backup=%s" % BACKUP, "-e", "session=%s" % SESSION,
           "-e", "report_directory=%s" % OUT, "-e", "wait_slice=2",
           os.path.join(REPO, "playbooks", "restore_replace.yml")]
    print("$ " + " ".join(cmd[:1] + cmd[3:]), flush=True)
    # Slow the simulated node-agent down (1 KiB/s) so the progress lines show; reset afterwards.
    cli("sim-config", "bytesPerSecond=1024")
    try:
        proc = subprocess.run(cmd, env=env, cwd=REPO, check=False)
    finally:
        cli("sim-config", "bytesPerSecond=52428800")
    if proc.returncode != 0:
        print("\ndemo: the playbook failed (rc %d); see the output above." % proc.returncode)
        return 1

    report = os.path.join(OUT, "data-restore-%s.md" % SESSION)
    step("The Markdown report (%s)" % report)
    with open(report) as handle:
        print(handle.read())

    step("Checking that the volume now equals the backup byte for byte")
    if scenario.main(["verify", "--state", STATE, "--mode", "replace"]) != 0:
        print("\ndemo: FAILED - the restored data does not equal the backup.")
        return 1
    print("\ndemo: OK - shop-data equals Backup %s exactly; the old volume is kept (Retain) for "
          "playbooks/rollback.yml -e session=%s" % (BACKUP, SESSION))
    print(REAL_CLUSTER)
    return 0


if __name__ == "__main__":
    sys.exit(main())
