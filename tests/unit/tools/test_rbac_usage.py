# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/rbac_usage.py: requests → RBAC permissions, and the verdicts against an rbac.yml."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tools"))

import rbac_usage as ru  # noqa: E402 pylint: disable=wrong-import-position,import-error

HOST = "https://127.0.0.1:6443"


@pytest.mark.parametrize("method,path,expected", [
    ("GET", "/api/v1/namespaces/velero/configmaps/data-restore-s", ("", "configmaps", "get")),
    ("GET", "/api/v1/namespaces/app/pods", ("", "pods", "list")),
    ("WATCH", "/api/v1/namespaces/app/pods", ("", "pods", "watch")),
    ("POST", "/apis/velero.io/v1/namespaces/velero/podvolumerestores", ("velero.io", "podvolumerestores", "create")),
    ("PUT", "/api/v1/namespaces/velero/configmaps/data-restore-s", ("", "configmaps", "update")),
    ("PATCH", "/apis/apps/v1/namespaces/app/statefulsets/db", ("apps", "statefulsets", "patch")),
    ("DELETE", "/api/v1/namespaces/app/persistentvolumeclaims/data", ("", "persistentvolumeclaims", "delete")),
    ("DELETE", "/api/v1/namespaces/app/pods", ("", "pods", "deletecollection")),
    ("GET", "/api/v1/persistentvolumes/pv-1", ("", "persistentvolumes", "get")),
    ("PATCH", "/api/v1/persistentvolumes/pv-1", ("", "persistentvolumes", "patch")),
    ("GET", "/api/v1/namespaces/app", ("", "namespaces", "get")),
    ("GET", "/api/v1/namespaces", ("", "namespaces", "list")),
    ("PATCH", "/apis/apps/v1/namespaces/app/deployments/web/scale", ("apps", "deployments/scale", "patch")),
    ("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/podvolumerestores.velero.io",
     ("apiextensions.k8s.io", "customresourcedefinitions", "get")),
])
def test_permission_of_a_request(method, path, expected):
    assert ru.permission(method, HOST + path) == expected


@pytest.mark.parametrize("path", ["/version", "/api", "/api/v1", "/apis", "/apis/velero.io/v1", "/metrics"])
def test_discovery_needs_no_rule(path):
    assert ru.permission("GET", HOST + path) is None


RBAC = """---
apiVersion: v1
kind: List
items:
  - kind: ClusterRole
    metadata:
      name: a
      labels:
        data-restore.ansible/rbac: required
    rules:
      # Pods.
      - apiGroups: [""]
        resources: [pods]
        verbs: [get, list, delete]
      # Jobs.
      # unexercised: jobs patch (no Job in the suites)
      - apiGroups: [batch]
        resources: [jobs]
        verbs: [get, patch]
  - kind: ClusterRole
    metadata:
      name: b
      labels:
        data-restore.ansible/rbac: optional
    rules:
      # KEDA.
      - apiGroups: [keda.sh]
        resources: [scaledobjects]
        verbs: [get]
"""


def _run(tmp_path, monkeypatch, lines, strict):
    rbac = tmp_path / "rbac.yml"
    rbac.write_text(RBAC)
    monkeypatch.setattr(ru, "RBAC_FILE", str(rbac))
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    (logs / "workload_scale.log").write_text("".join("1.0 %s %s%s\n" % (m, HOST, p) for m, p in lines))
    out = tmp_path / "usage.md"
    argv = [str(logs), "--out", str(out)] + (["--strict"] if strict else [])
    rc = ru.main(argv)
    return rc, out.read_text()


def test_rules_and_unexercised_notes_are_read(tmp_path):
    rbac = tmp_path / "rbac.yml"
    rbac.write_text(RBAC)
    granted, notes = ru.rbac_rules(str(rbac))
    assert granted[("", "pods", "delete")] == "required"
    assert granted[("keda.sh", "scaledobjects", "get")] == "optional"
    assert notes == {("batch", "jobs", "patch"): "no Job in the suites"}


def test_a_note_must_name_a_permission_of_its_rule(tmp_path):
    rbac = tmp_path / "rbac.yml"
    rbac.write_text(RBAC.replace("unexercised: jobs patch", "unexercised: jobs delete"))
    with pytest.raises(SystemExit, match="not granted by the rule below"):
        ru.rbac_rules(str(rbac))


ALL_USED = [("GET", "/api/v1/namespaces/a/pods/p"), ("GET", "/api/v1/namespaces/a/pods"),
            ("DELETE", "/api/v1/namespaces/a/pods/p"), ("GET", "/apis/batch/v1/namespaces/a/jobs/j"),
            ("GET", "/version")]


def test_every_required_permission_used_passes_strict(tmp_path, monkeypatch):
    rc, text = _run(tmp_path, monkeypatch, ALL_USED, strict=True)
    assert rc == 0
    assert "| delete pods | required | workload_scale (1) |" in text
    assert "| patch jobs (batch) | required | not exercised: no Job in the suites |" in text


def test_an_unused_required_permission_fails_only_when_strict(tmp_path, monkeypatch, capsys):
    used = [line for line in ALL_USED if line[0] != "DELETE"]
    assert _run(tmp_path, monkeypatch, used, strict=False)[0] == 0
    rc, text = _run(tmp_path, monkeypatch, used, strict=True)
    assert rc == 1 and "| delete pods | required | **not used** |" in text
    assert "ERROR required permission delete pods was not used" in capsys.readouterr().out


def test_a_request_without_a_rule_always_fails(tmp_path, monkeypatch, capsys):
    rc, text = _run(tmp_path, monkeypatch, ALL_USED + [("POST", "/api/v1/namespaces/a/pods")], strict=False)
    assert rc == 1 and "| create pods | **missing** | workload_scale (1) |" in text
    assert "the modules used create pods, which docs/rbac.yml does not grant (workload_scale)" in capsys.readouterr().out


def test_a_noted_permission_used_after_all_is_reported_only(tmp_path, monkeypatch, capsys):
    rc, text = _run(tmp_path, monkeypatch, ALL_USED + [("PATCH", "/apis/batch/v1/namespaces/a/jobs/j")], strict=True)
    assert rc == 0 and "| patch jobs (batch) | required | workload_scale (1) |" in text
    assert "patch jobs (batch), noted as unexercised in docs/rbac.yml, was used this time" in capsys.readouterr().out
