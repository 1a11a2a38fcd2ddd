# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/return_docs.py: module results against RETURN, and the result log that feeds it."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tools"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "integration"))

import ansible_run  # noqa: E402 pylint: disable=wrong-import-position,import-error
import return_docs as rd  # noqa: E402 pylint: disable=wrong-import-position,import-error

DOC = {"exists": {"type": "bool"},
       "session": {"type": "dict", "contains": {"name": {"type": "str"}, "state": {"type": "str"}}}}


def test_every_module_has_a_return_doc():
    docs = rd.return_docs()
    assert set(docs) == {"backup_info", "claim_patch", "data_download", "pod_volume_restore", "restore_helper_pod",
                         "restore_plan", "restore_report", "restore_session", "workload_scale"}
    assert "session" in docs["restore_session"] and "contains" in docs["restore_session"]["session"]


def test_undocumented_keys_are_named_at_the_top_and_inside_documented_contains():
    result = {"changed": True, "msg": "ok", "exists": True, "surprise": 1,
              "session": {"name": "s", "state": "planned", "secret_sauce": 2}}
    assert sorted(rd.undocumented(result, DOC)) == ["session.secret_sauce", "surprise"]


def test_list_elements_are_checked_and_ansibles_own_keys_are_not():
    doc = {"volumes": {"type": "list", "contains": {"key": {"type": "str"}}}}
    result = {"failed": True, "invocation": {}, "diff": {}, "_ansible_no_log": False,
              "volumes": [{"key": "a"}, {"key": "b", "extra": 1}]}
    assert rd.undocumented(result, doc) == ["volumes.extra"]


def test_the_tool_fails_on_an_undocumented_key_and_writes_its_summary(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(rd, "return_docs", lambda: {"restore_session": DOC, "backup_info": {"backups": {}}})
    (tmp_path / "results-1.jsonl").write_text(
        json.dumps({"module": "restore_session", "result": {"exists": True, "oops": 1}}) + "\n")
    out = tmp_path / "summary.md"
    assert rd.main([str(tmp_path), "--out", str(out)]) == 1
    assert "restore_session returned oops" in capsys.readouterr().err
    summary = out.read_text()
    assert "| backup_info | no | backups |" in summary and "| restore_session | yes | session |" in summary


def test_the_tool_refuses_an_empty_log(tmp_path):
    assert rd.main([str(tmp_path)]) == 1


def test_ansible_run_logs_this_collections_results_with_loop_items(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_RESTORE_RESULT_LOG_DIR", str(tmp_path))
    data = {"plays": [{"tasks": [
        {"task": {"name": "plan"}, "hosts": {"localhost": {"action": "velero.data_restore.restore_plan",
                                                           "plan": {}, "changed": False}}},
        {"task": {"name": "debug"}, "hosts": {"localhost": {"action": "ansible.builtin.debug", "msg": "x"}}},
        {"task": {"name": "pods"}, "hosts": {"localhost": {"action": "velero.data_restore.restore_helper_pod",
                                                           "results": [{"pods": []}, {"skipped": True}]}}},
    ]}]}
    ansible_run.log_module_results(data)
    (log,) = tmp_path.iterdir()
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["module"], sorted(e["result"])) for e in entries] == [
        ("restore_plan", ["action", "changed", "plan"]), ("restore_helper_pod", ["pods"])]


def test_a_failed_result_may_carry_the_failure_keys_the_doc_fragment_names():
    on_failure = rd.failure_keys()
    assert {"status", "reason", "superseded_by", "problems", "missing_pvcs", "volumes_done"} <= on_failure
    results = [("restore_session", {"failed": True, "msg": "x", "status": 403, "reason": "Forbidden"}),
               ("restore_session", {"exists": True, "status": 200})]  # not a failure: status is not documented
    errors, _returned = rd.compare(results, {"restore_session": DOC}, on_failure)
    assert errors == {("restore_session", "status"): 1}


def test_a_loop_items_loop_var_is_ansibles_not_the_modules():
    result = {"exists": True, "quiesce__result": {"x": 1}, "ansible_loop_var": "quiesce__result",
              "hook_index": 0, "ansible_index_var": "hook_index"}
    assert rd.undocumented(result, DOC) == []
    assert rd.undocumented({"exists": True, "quiesce__result": {}}, DOC) == ["quiesce__result"]
