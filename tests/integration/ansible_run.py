"""Run a module or playbook of this collection through real ansible, for integration tests.

Results come back as parsed JSON (the ``json`` stdout callback), so tests assert on what a
user's playbook would see.
"""

import json
import os
import subprocess
import sys
import tempfile

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
RESULT_PREFIX = "velero.data_restore."


def ansible_env(kubeconfig=None, extra=None):
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": os.path.join(REPO, "collections"),
        "ANSIBLE_STDOUT_CALLBACK": "json",
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_NOCOLOR": "1",
        "PATH": BIN + os.pathsep + env.get("PATH", ""),
    })
    if kubeconfig:
        env["K8S_AUTH_KUBECONFIG"] = str(kubeconfig)
    env.update(extra or {})
    return env


def run_playbook(playbook, extra_vars=None, kubeconfig=None, check=False, diff=False, env=None,
                 timeout=900, args=(), cwd=REPO):
    """Run a playbook file in ``cwd``; returns (rc, parsed json output, raw stdout, stderr)."""
    cmd = [os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)]
    if isinstance(extra_vars, dict) and "report_directory" not in extra_vars:
        # The reports default to the working directory (the repository here): keep them out of the tree.
        extra_vars = dict(extra_vars, report_directory=os.path.join(REPO, "tests", "output", "reports"))
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    cmd += list(args)
    proc = subprocess.run(cmd, capture_output=True, check=False, text=True, timeout=timeout,
                          env=ansible_env(kubeconfig, env), cwd=str(cwd))
    try:
        data = json.loads(proc.stdout[proc.stdout.index("{"):])
    except ValueError:
        data = None
    log_module_results(data)
    return proc.returncode, data, proc.stdout, proc.stderr


def log_module_results(data):
    """Append this collection's module results to DATA_RESTORE_RESULT_LOG_DIR (JSON lines), when set:
    tools/return_docs.py checks them against the modules' RETURN docs."""
    log_dir = os.environ.get("DATA_RESTORE_RESULT_LOG_DIR")
    if not log_dir:
        return
    entries = []
    for _name, result in task_results(data):
        action = result.get("action") or ""
        if not action.startswith(RESULT_PREFIX):
            continue
        for item in result.get("results") or [result]:
            if isinstance(item, dict) and not item.get("skipped"):
                entries.append({"module": action[len(RESULT_PREFIX):], "result": item})
    if entries:
        os.makedirs(log_dir, exist_ok=True)
        with open(os.path.join(log_dir, "results-%d.jsonl" % os.getpid()), "a") as handle:
            handle.writelines(json.dumps(entry, default=str) + "\n" for entry in entries)


def task_results(data):
    """[(task name, host result)] in order."""
    out = []
    for play in (data or {}).get("plays", []):
        for task in play.get("tasks", []):
            for _host, result in task.get("hosts", {}).items():
                out.append((task["task"]["name"], result))
    return out


def run_module(module, args, kubeconfig=None, check=False, diff=False, env=None, timeout=900):
    """Run one module task on localhost; returns its result dict (``failed`` on failure)."""
    fqcn = module if "." in module else "velero.data_restore." + module
    play = [{"hosts": "localhost", "gather_facts": False,
             "tasks": [{"name": "under test", fqcn: args, "ignore_errors": True}]}]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as handle:
        yaml.safe_dump(play, handle)
        path = handle.name
    try:
        rc, data, stdout, stderr = run_playbook(path, kubeconfig=kubeconfig, check=check, diff=diff,
                                                env=env, timeout=timeout)
    finally:
        os.unlink(path)
    results = task_results(data)
    if not results:
        raise AssertionError("ansible produced no result (rc=%s)\nstdout:\n%s\nstderr:\n%s"
                             % (rc, stdout[-3000:], stderr[-3000:]))
    return results[-1][1]
