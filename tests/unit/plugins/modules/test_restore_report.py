"""The restore_report module end to end through AnsibleModule (argument spec, check mode, diff, failure), with
FakeKube behind module.run_module instead of a cluster."""

import json

import pytest

from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils import session as s
from ansible_collections.velero.data_restore.plugins.modules import restore_report
from fake_kube import FakeKube
from report_fixtures import in_place, replace


def seed(case):
    kube = FakeKube()
    kube.add(k.CONFIG_MAP, s.config_map_body(case["session"], "velero", case["doc"]))
    for obj in case["pvrs"]:
        kube.add(k.POD_VOLUME_RESTORE, obj)
    for obj in case["dds"]:
        kube.add(k.DATA_DOWNLOAD, obj)
    return kube


@pytest.fixture
def run(module_main):
    """run(kube, args, check=False, diff=False) -> the module's result dict."""
    return module_main(restore_report.main)


def test_writes_both_files_then_is_idempotent(run, tmp_path):
    kube = seed(replace())
    args = {"session": "shop-rollback", "directory": str(tmp_path)}
    first = run(kube, args)
    assert first["changed"] and not first.get("failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data-restore-shop-rollback.json", "data-restore-shop-rollback.md"]
    with open(first["files"]["json"]) as handle:
        assert json.load(handle) == first["report"]
    assert first["summary"][-1] == "Reports: %s %s" % (first["files"]["markdown"], first["files"]["json"])
    assert "diff" not in first  # only with --diff
    requests = len(kube.requests)
    assert sorted(kube.requests) == [("get", "ConfigMap"), ("list", "DataDownload"), ("list", "PodVolumeRestore")]

    second = run(kube, args)
    assert not second["changed"] and second["report"] == first["report"]
    assert len(kube.requests) == 2 * requests


def test_check_mode_and_diff(run, tmp_path):
    kube = seed(in_place())
    args = {"session": "shop-nightly", "directory": str(tmp_path / "reports"), "warnings": ["from this run"]}
    result = run(kube, args, check=True, diff=True)
    assert result["changed"] and not (tmp_path / "reports").exists()
    assert [d["after_header"] for d in result["diff"]] == sorted(result["files"].values())
    assert "- from this run\n" in result["diff"][1]["after"]
    run(kube, args)
    again = run(kube, args, check=True, diff=True)
    assert not again["changed"] and again["diff"] == []


def test_missing_session_fails_naming_it(run, tmp_path):
    result = run(FakeKube(), {"session": "gone", "directory": str(tmp_path), "velero_namespace": "openshift-adp"})
    assert result["failed"]
    assert "'gone'" in result["msg"] and "openshift-adp/data-restore-gone" in result["msg"]
    assert "velero_namespace" in result["msg"]
    assert list(tmp_path.iterdir()) == []


def test_check_mode_reports_the_state_the_run_moves_the_session_to(run, tmp_path, monkeypatch):
    """The roles pass session_state: check mode showed the report of the unmoved session (until 2026-12-05)."""
    monkeypatch.setattr(s, "now", lambda: "2026-12-05T23:00:00Z")  # both runs end the session at the same time
    kube = seed(in_place())
    args = {"session": "shop-nightly", "directory": str(tmp_path), "session_state": "failed"}
    predicted = run(kube, args, check=True, diff=True)
    assert predicted["changed"] and not list(tmp_path.iterdir())
    written = run(kube, args, diff=True)
    assert predicted["report"] == written["report"] and written["report"]["state"] == "failed"
    assert predicted["diff"] == written["diff"]
