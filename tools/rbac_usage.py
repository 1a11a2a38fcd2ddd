# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compare the API requests this collection's modules made during the test suites with docs/rbac.yml.

Input: the request logs of tests/request_log/sitecustomize.py (DATA_RESTORE_REQUEST_LOG_DIR, one
<module>.log per module, ``<time> <METHOD> <url>`` per line). Each request becomes a permission
(apiGroup, resource[/subresource], verb) the way the kube-apiserver's RBAC authorizer sees it.

* A request no rule of docs/rbac.yml grants (required or optional) is an error: the documented rules
  would make that step fail with a 403.
* Required permissions no module used are listed (over-grant candidates); with --strict they are an
  error too, unless docs/rbac.yml says why the suites cannot reach them (``# unexercised:`` comment
  on the rule: the list of permissions of that rule the tests do not drive, with the reason). A noted
  permission that was used after all is only reported: for some, timing decides.

Writes a Markdown summary (--out) with every permission, the modules that used it and how often.
"""

import argparse
import glob
import os
import re
import sys
from urllib.parse import urlsplit

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RBAC_FILE = os.path.join(REPO, "docs", "rbac.yml")
UNEXERCISED = re.compile(r"#\s*unexercised:\s*(?P<perms>[^()]+?)\s*\((?P<why>.+)\)\s*$")


def permission(method, url):
    """(group, resource, verb) of one request, or None for discovery and other non-resource paths."""
    parts = [p for p in urlsplit(url).path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return None
    if not rest:
        return None
    if rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else None
    if len(rest) > 2:
        resource += "/" + rest[2]
    verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "WATCH": "watch"}.get(method)
    if verb is None:
        if method == "GET":
            verb = "get" if name else "list"
        elif method == "DELETE":
            verb = "delete" if name else "deletecollection"
        else:
            verb = method.lower()
    return group, resource, verb


def rbac_documents(text=None):
    """The RBAC objects of docs/rbac.yml (one ``kind: List`` document), or of ``text``."""
    if text is None:
        with open(RBAC_FILE) as handle:
            text = handle.read()
    docs = []
    for doc in yaml.safe_load_all(text):
        if doc and doc.get("kind") == "List":
            docs.extend(doc.get("items") or [])
        elif doc:
            docs.append(doc)
    return docs


def permissions(docs):
    """{(group, resource, verb)} the rules of ``docs`` grant."""
    return set((group, res, verb) for doc in docs for rule in doc["rules"] for group in rule["apiGroups"]
               for res in rule["resources"] for verb in rule["verbs"])


def rbac_rules(path=None):
    """{(group, resource, verb): 'required'|'optional'} and {(group, resource, verb): reason} of unexercised notes."""
    with open(path or RBAC_FILE) as handle:
        text = handle.read()
    docs = rbac_documents(text)
    granted = dict((perm, "optional") for perm in permissions(docs))
    granted.update((perm, "required") for perm in permissions(
        [d for d in docs if d["metadata"]["labels"]["data-restore.ansible/rbac"] == "required"]))
    notes = {}
    lines = text.splitlines()
    for index, line in enumerate(lines):
        match = UNEXERCISED.search(line)
        if not match:
            continue
        rule = _next_rule(lines, index)
        if rule is None:
            raise SystemExit("docs/rbac.yml:%d: an unexercised note must precede a rule" % (index + 1))
        for item in match.group("perms").split(","):
            res, _sep, verb = item.strip().partition(" ")
            for group in rule["apiGroups"]:
                key = (group, res, verb.strip())
                if key not in granted:
                    raise SystemExit("docs/rbac.yml:%d: unexercised %r is not granted by the rule below it"
                                     % (index + 1, item.strip()))
                notes[key] = match.group("why").strip()
    return granted, notes


def _next_rule(lines, index):
    """The rule (apiGroups/resources/verbs) starting after the comment block at ``index``."""
    for start in range(index + 1, len(lines)):
        stripped = lines[start].strip()
        if stripped.startswith("#"):
            continue
        if not stripped.startswith("- apiGroups"):
            return None
        block = [lines[start].replace("- ", "  ", 1)]
        for line in lines[start + 1:start + 3]:
            block.append(line)
        return yaml.safe_load("\n".join(block))
    return None


def usage(log_dir):
    """{(group, resource, verb): {module: count}}."""
    used = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "*.log"))):
        module = os.path.basename(path)[:-len(".log")]
        with open(path) as handle:
            for line in handle:
                fields = line.split()
                if len(fields) < 3:
                    continue
                perm = permission(fields[1], fields[2])
                if perm is not None:
                    counts = used.setdefault(perm, {})
                    counts[module] = counts.get(module, 0) + 1
    return used


def _fmt(perm):
    return "%s %s%s" % (perm[2], perm[1], " (%s)" % perm[0] if perm[0] else "")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("log_dir")
    parser.add_argument("--out", help="write a Markdown summary here")
    parser.add_argument("--strict", action="store_true",
                        help="also fail on required permissions no module used (full test run only)")
    args = parser.parse_args(argv)
    granted, notes = rbac_rules()
    used = usage(args.log_dir)
    if not used:
        print("rbac_usage: no request logs in %s" % args.log_dir)
        return 1
    ungranted = sorted(p for p in used if p not in granted)
    required = sorted(p for p, level in granted.items() if level == "required")
    unused = [p for p in required if p not in used and p not in notes]
    noted_but_used = sorted(p for p in notes if p in used)
    rows = ["| permission | rbac.yml | used by (requests) |", "|---|---|---|"]
    for perm in sorted(set(granted) | set(used)):
        who = ", ".join("%s (%d)" % item for item in sorted(used.get(perm, {}).items()))
        if not who:
            who = "not exercised: " + notes[perm] if perm in notes else "**not used**"
        rows.append("| %s | %s | %s |" % (_fmt(perm), granted.get(perm, "**missing**"), who))
    if args.out:
        with open(args.out, "w") as handle:
            handle.write("# API permissions used by the modules during the test suites\n\n"
                         "Generated by tools/rbac_usage.py from %d requests.\n\n%s\n"
                         % (sum(sum(c.values()) for c in used.values()), "\n".join(rows)))
    print("rbac_usage: %d permissions used by the modules, %d required by docs/rbac.yml, %d of them noted as "
          "not exercised by the suites" % (len(used), len(required), len([p for p in notes if granted[p] == "required"])))
    failed = False
    for perm in ungranted:
        print("rbac_usage: ERROR the modules used %s, which docs/rbac.yml does not grant (%s)"
              % (_fmt(perm), ", ".join(sorted(used[perm]))))
        failed = True
    for perm in noted_but_used:  # timing decides for some (a readiness wait watches only when not ready yet)
        print("rbac_usage: note: %s, noted as unexercised in docs/rbac.yml, was used this time by %s"
              % (_fmt(perm), ", ".join(sorted(used[perm]))))
    for perm in unused:
        print("rbac_usage: %s required permission %s was not used by any module"
              % ("ERROR" if args.strict else "note:", _fmt(perm)))
        failed = failed or args.strict
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
