# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compare what this collection's modules returned during the integration suites with their RETURN docs.

Input: the result logs of tests/integration/ansible_run.py (DATA_RESTORE_RESULT_LOG_DIR, JSON lines
``{"module": name, "result": {...}}``, one per module task result ansible reported, loop items included).

* A key a module returned that its RETURN does not document is an error: users register these results
  and build on them. Checked at the top level, and one level down where RETURN documents ``contains``.
* A failed result may also carry the keys that name what failed, which every module documents once, in the
  "On failure ..." note of the common doc fragment (plugins/doc_fragments/common.py): those are allowed there.
* RETURN keys no run returned are listed (information: some only come with rare states).

Ansible's own result keys (changed, failed, msg, diff, ...) are not the modules' to document.
"""

import argparse
import ast
import glob
import json
import os
import re
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = os.path.join(REPO, "plugins", "modules")
FRAGMENT = os.path.join(REPO, "plugins", "doc_fragments", "common.py")
PREFIX = "velero.data_restore."
ANSIBLE_KEYS = frozenset((
    "action", "changed", "failed", "msg", "diff", "invocation", "warnings", "deprecations", "exception", "skipped",
    "skip_reason", "false_condition", "item", "ansible_loop_var", "ansible_index_var", "ansible_loop", "attempts",
    "retries", "failed_when_result", "changed_when_result", "results", "censored", "unreachable", "module_stdout",
    "module_stderr", "rc", "_ansible_no_log", "_ansible_verbose_always", "_ansible_item_label",
    "_ansible_ignore_errors", "_ansible_delegated_vars",
))


def return_docs():
    """{module name: parsed RETURN}."""
    docs = {}
    for path in sorted(glob.glob(os.path.join(MODULES, "*.py"))):
        with open(path) as handle:
            tree = ast.parse(handle.read())
        for node in tree.body:
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "RETURN":
                docs[os.path.basename(path)[:-3]] = yaml.safe_load(node.value.value) or {}
    return docs


def failure_keys():
    """The keys the common doc fragment's "On failure" note names (C(key))."""
    with open(FRAGMENT) as handle:
        tree = ast.parse(handle.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "DOCUMENTATION":
            for note in yaml.safe_load(node.value.value).get("notes", []):
                if note.startswith("On failure"):
                    return frozenset(re.findall(r"C\(([a-z_]+)\)", note))
    raise ValueError("%s has no 'On failure' note" % FRAGMENT)


def read_results(log_dir):
    """[(module name, result dict)], loop items as results of their own."""
    results = []
    for path in sorted(glob.glob(os.path.join(log_dir, "*.jsonl"))):
        with open(path) as handle:
            for line in handle:
                entry = json.loads(line)
                results.append((entry["module"], entry["result"]))
    return results


def undocumented(result, doc, where=""):
    """Paths of the keys in ``result`` that ``doc`` (a RETURN mapping) does not name."""
    found = []
    # A loop item's result holds the item under the loop's loop_var (and index_var) name: Ansible's, not the module's.
    loop_keys = set(result.get(name) for name in ("ansible_loop_var", "ansible_index_var")) if not where else set()
    for key, value in result.items():
        if key.startswith("_ansible") or (not where and (key in ANSIBLE_KEYS or key in loop_keys)):
            continue
        if key not in doc:
            found.append(where + key)
            continue
        contains = doc[key].get("contains") if isinstance(doc[key], dict) else None
        if not contains:
            continue
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict):
                found.extend(undocumented(item, contains, where + key + "."))
    return found


def compare(results, docs, on_failure=frozenset()):
    """(errors: {(module, key path): count}, returned: {module: set of top-level keys}). ``on_failure``: the keys a
    failed result may carry besides its module's RETURN."""
    errors, returned = {}, {}
    for module, result in results:
        if module not in docs:
            continue
        returned.setdefault(module, set()).update(result)
        for path in undocumented(result, docs[module]):
            if result.get("failed") and path in on_failure:
                continue
            errors[(module, path)] = errors.get((module, path), 0) + 1
    return errors, returned


def report(errors, returned, docs):
    lines = ["# Module results against their RETURN docs", "",
             "From the integration suites' module results (tests/integration/ansible_run.py).", "",
             "| module | results seen | RETURN keys never returned |", "|---|---|---|"]
    for module in sorted(docs):
        never = sorted(set(docs[module]) - returned.get(module, set()))
        lines.append("| %s | %s | %s |" % (module, "yes" if module in returned else "no", ", ".join(never) or "-"))
    if errors:
        lines += ["", "## Returned but not documented", ""]
        lines += ["- %s: `%s` (%d results)" % (module, path, count) for (module, path), count in sorted(errors.items())]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log_dir")
    parser.add_argument("--out", help="write the Markdown summary here")
    args = parser.parse_args(argv)
    docs = return_docs()
    results = read_results(args.log_dir)
    if not results:
        print("no module results in %s: were the integration suites run with DATA_RESTORE_RESULT_LOG_DIR?"
              % args.log_dir, file=sys.stderr)
        return 1
    errors, returned = compare(results, docs, failure_keys())
    text = report(errors, returned, docs)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text)
    for (module, path), count in sorted(errors.items()):
        print("%s returned %s, which neither its RETURN nor (for a failure) the doc fragment's 'On failure' note "
              "documents (%d results)" % (module, path, count), file=sys.stderr)
    print("%d module results checked against RETURN: %d undocumented keys" % (len(results), len(errors)))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
