"""The report of a session (module_utils/report.py): the JSON dict, the Markdown page and the summary lines.

golden/report/ holds what the report role's former Jinja templates rendered for the cases of report_fixtures.py;
the port must produce the same bytes.
"""

import json
import os

import pytest

from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils import plan
from ansible_collections.velero.data_restore.plugins.module_utils import report as r
from ansible_collections.velero.data_restore.plugins.module_utils import session as s
from ansible_collections.velero.data_restore.plugins.module_utils.errors import PreflightError
from fake_kube import FakeKube
from report_fixtures import CASES, dd, in_place, planned, pvr, replace

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "report")
NS = "velero"


def golden(name):
    with open(os.path.join(GOLDEN, name), "rb") as handle:
        return handle.read().decode("utf-8")


def build(case):
    kinds = r.needed_kinds(case["doc"])
    return r.build_report(case["doc"], case["pvrs"] if k.POD_VOLUME_RESTORE in kinds else [],
                          case["dds"] if k.DATA_DOWNLOAD in kinds else [], case["warnings"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_output_is_byte_for_byte_what_the_templates_rendered(name):
    report = build(CASES[name]())
    files = {"json": "/srv/dr/data-restore-%s.json" % report["session"],
             "markdown": "/srv/dr/data-restore-%s.md" % report["session"]}
    assert r.render_json(report) == golden(name + ".json")
    assert r.render_markdown(report) == golden(name + ".md")
    assert "\n".join(r.render_summary(report, files)) + "\n" == golden(name + ".summary.txt")
    assert json.loads(golden(name + ".json")) == report


def test_in_place_volumes_from_pod_volume_restores_and_the_session():
    report = build(in_place())
    data, logs, cache = report["volumes"]
    assert data == {
        "key": "shop/data", "source": "shop-old/data", "target_namespace": "shop", "target_pvc": "data", "new_pvc": None,
        "method": "fs", "restore_via": "pod_volume_restore", "volume_mode": "Filesystem", "storage_class": "sim-immediate",
        "snapshot_id": "snap-data", "snapshot_size": 4096, "object": "PodVolumeRestore/shop-nightly-shop-data",
        "phase": "Completed", "bytes_done": 1048576, "total_bytes": 1048576, "started": "2026-11-25T10:00:05Z",
        "completed": "2026-11-25T10:00:17Z", "duration_seconds": 12, "swap": None}
    assert (logs["phase"], logs["bytes_done"], logs["total_bytes"], logs["duration_seconds"]) == ("InProgress", 100, 5000, None)
    # no PVR yet: the phase comes from the session's volume record, no object, no bytes
    assert (cache["object"], cache["phase"], cache["bytes_done"], cache["started"]) == (None, "Pending", 0, None)
    assert report["total_bytes"] == 1048576  # completed volumes only: the InProgress one's 100 bytes are no restore
    assert report["backup"] == {"name": "nightly-20261124", "phase": "Completed", "started": "2026-11-24T22:00:00Z",
                                "completed": "2026-11-24T22:05:00Z"}
    assert (report["created"], report["finished"], report["duration_seconds"]) == ("2026-11-25T10:00:00Z", "2026-11-25T10:01:05Z", 65)


def test_workloads_hooks_timeline_warnings_and_the_in_place_note():
    report = build(in_place())
    assert report["workloads"] == [
        {"kind": "Deployment", "namespace": "shop", "name": "web", "original": {"replicas": 2}, "stopped": True,
         "started": True, "status": "reverted"},
        {"kind": "StatefulSet", "namespace": "shop", "name": "db", "original": {"paused": u"\u00e9", "replicas": 1},
         "stopped": True, "started": False, "status": "applied"}]
    assert [h["name"] for h in report["hooks"]] == ["flush", "fsfreeze", "warm"]
    assert report["phases"] == [
        {"state": "quiescing", "at": "2026-11-25T10:00:01Z", "seconds": 3},
        {"state": "quiesced", "at": "2026-11-25T10:00:04Z", "seconds": 16},
        {"state": "restored", "at": "2026-11-25T10:00:20Z", "seconds": 45},
        {"state": "completed", "at": "2026-11-25T10:01:05Z", "seconds": None}]
    assert report["warnings"][1:] == ["extra: from the run", u"\u00fc\u00f1\u00ed"]
    assert report["notes"] == [r.IN_PLACE_NOTE]
    md = r.render_markdown(report)
    assert "| StatefulSet `shop/db` | {\"paused\": \"\\u00e9\", \"replicas\": 1} | yes | no (applied) |" in md
    assert "- 2026-11-25T10:00:03Z **pre** `fsfreeze` (command in db-0/db): succeeded rc=0\n" in md
    assert "- 2026-11-25T10:01:03Z **post** `warm` (command in web-1/web): ignored - exec timed out\n" in md
    assert "files created after the backup" in md  # what tests/cluster/scenario.py verify --report looks for


def test_the_in_place_note_is_not_repeated():
    case = in_place()
    case["doc"]["plan"]["notes"] = ["Kopia keeps files created after the backup."]
    assert build(case)["notes"] == ["Kopia keeps files created after the backup."]


def test_replace_volumes_from_data_downloads_by_annotation_or_target_pvc():
    report = build(replace())
    data, logs, conf = report["volumes"]
    assert (data["object"], data["new_pvc"], data["duration_seconds"]) == ("DataDownload/shop-rollback-shop-data", "data-restored-1", 150)
    assert data["swap"]["old_pv"] == "pv-old"
    # not annotated: matched by spec.targetVolume; no progress: 0 bytes; no volume_mode in the plan: Filesystem
    assert (logs["object"], logs["phase"], logs["bytes_done"], logs["volume_mode"]) == (
        "DataDownload/shop-rollback-shop-logs", "Failed", 0, "Filesystem")
    assert (conf["object"], conf["storage_class"]) == ("PodVolumeRestore/shop-rollback-shop-conf", "fast")
    assert report["error"].startswith("DataDownload shop-rollback-shop-logs failed")
    assert report["backup"]["started"] == "2026-11-24T22:00:00Z" and report["backup"]["completed"] is None
    # a failed replace gets no Retain note; the plan's own note is kept
    assert report["notes"] == ["Replace: the original volumes are set to Retain and kept."]
    assert r.render_markdown(report).count("| rebind swapped, old PV pv-old |") == 1
    assert "| template reverted, old PV - |" in r.render_markdown(report)


def test_a_completed_replace_gets_the_retain_note_once():
    case = replace()
    case["doc"].update(state="completed", error=None)
    case["doc"]["plan"]["notes"] = []
    assert build(case)["notes"] == [r.RETAIN_NOTE]
    case["doc"]["plan"]["notes"] = ["PVs kept with reclaim policy Retain."]
    assert build(case)["notes"] == ["PVs kept with reclaim policy Retain."]


def test_a_completed_template_swap_gets_no_retain_note():
    """A template swap leaves the original claims and their PVs as they were: no Retain, nothing for cleanup.yml to
    free (review of 2026-12-06: the note said both)."""
    doc = {"session": "s", "mode": "replace", "state": "completed", "history": [], "volumes": {}, "undo": [],
           "plan": {"swap_mode": "template", "volumes": [], "notes": [plan.NOTE_REPLACE_TEMPLATE_KEEPS_CLAIMS]}}
    assert r.build_report(doc, [], [])["notes"] == [plan.NOTE_REPLACE_TEMPLATE_KEEPS_CLAIMS]
    doc["volumes"] = {"shop/data": {"swap": {"mode": "template", "state": "swapped"}}}
    doc["plan"].update(swap_mode="rebind", notes=[plan.NOTE_REPLACE_RETAIN])  # an earlier run planned a rebind
    assert r.build_report(doc, [], [])["notes"] == [plan.NOTE_REPLACE_TEMPLATE_KEEPS_CLAIMS]


def test_the_notes_follow_the_swap_mode_the_journal_recorded():
    """A run refused at a template swap (claim templates) re-run with swap_mode=rebind keeps the plan of the first run:
    the report says what was done."""
    doc = {"session": "s", "mode": "replace", "state": "completed", "history": [], "undo": [],
           "volumes": {"shop/data": {"swap": {"mode": "rebind", "state": "swapped"}}},
           "plan": {"swap_mode": "template", "volumes": [], "notes": [plan.NOTE_REPLACE_TEMPLATE_KEEPS_CLAIMS]}}
    assert r.build_report(doc, [], [])["notes"] == [plan.NOTE_REPLACE_RETAIN]


def test_the_last_matching_object_wins_as_in_the_templates():
    case = replace()
    case["dds"].append(dd("shop-rollback-shop-data-2", "shop", "data-restored-1", key="shop/data", phase="InProgress",
                          done=5, total=10, end=None))
    data = build(case)["volumes"][0]
    assert (data["object"], data["phase"], data["bytes_done"]) == ("DataDownload/shop-rollback-shop-data-2", "InProgress", 5)


def test_a_planned_session_without_plan_or_backup():
    report = build(planned())
    assert report["volumes"] == [] and report["backup"] is None and report["total_bytes"] == 0
    assert report["notes"] == [] and report["phases"] == [] and report["duration_seconds"] == 0
    summary = r.render_summary(report)
    assert summary[0] == "Session fresh (): planned; backup ?; 0 bytes"
    assert summary[-1] == "Workloads: none stopped; hooks: 0; warnings: 0"


def test_needed_kinds_follow_restore_via():
    assert r.needed_kinds(in_place()["doc"]) == [k.POD_VOLUME_RESTORE]
    assert r.needed_kinds(replace()["doc"]) == [k.POD_VOLUME_RESTORE, k.DATA_DOWNLOAD]
    assert r.needed_kinds(planned()["doc"]) == []


def test_render_json_matches_to_nice_json():
    report = build(in_place())
    text = r.render_json(report)
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert json.loads(text) == report
    assert "\\u00fc" in text  # ensure_ascii, as to_nice_json wrote it
    assert text == json.dumps(report, indent=4, sort_keys=True, separators=(",", ": ")) + "\n"


# -- collect / run_report against FakeKube -------------------------------------------------------------------

def seed(case, missing_kinds=()):
    kube = FakeKube(missing_kinds=missing_kinds)
    kube.add(k.CONFIG_MAP, s.config_map_body(case["session"], NS, case["doc"]))
    for obj in case["pvrs"]:
        kube.add(k.POD_VOLUME_RESTORE, obj)
    for obj in case["dds"]:
        kube.add(k.DATA_DOWNLOAD, obj)
    return kube


def test_collect_reads_the_session_once_and_lists_each_needed_kind_once():
    case = replace()
    kube = seed(case)
    kube.add(k.POD_VOLUME_RESTORE, pvr("other-session", "shop/conf", session="someone-else"))
    doc, pvrs, dds = r.collect(kube, NS, "shop-rollback")
    assert doc == case["doc"]
    assert [o["metadata"]["name"] for o in pvrs] == ["shop-rollback-shop-conf"]
    assert len(dds) == 2
    assert sorted(kube.requests) == [("get", "ConfigMap"), ("list", "DataDownload"), ("list", "PodVolumeRestore")]


def test_collect_skips_kinds_the_plan_does_not_use():
    kube = seed(in_place())
    r.collect(kube, NS, "shop-nightly")
    assert sorted(kube.requests) == [("get", "ConfigMap"), ("list", "PodVolumeRestore")]


def test_collect_tolerates_a_missing_crd():
    kube = seed(replace(), missing_kinds=(k.DATA_DOWNLOAD,))
    _doc, pvrs, dds = r.collect(kube, NS, "shop-rollback")
    assert len(pvrs) == 1 and dds == []


def test_missing_session_names_the_session_configmap_and_velero_namespace():
    with pytest.raises(PreflightError) as info:
        r.run_report(FakeKube(), NS, "nope", "/tmp/unused")
    msg = info.value.msg
    assert "'nope'" in msg and "velero/data-restore-nope" in msg and "velero_namespace" in msg


def test_run_report_writes_once_then_leaves_the_files_alone(tmp_path):
    kube = seed(in_place())
    directory = str(tmp_path / "reports" / "nested")
    first = r.run_report(kube, NS, "shop-nightly", directory, ["extra: from the run", u"\u00fc\u00f1\u00ed"])
    assert first["changed"]
    assert first["files"] == {"json": directory + "/data-restore-shop-nightly.json",
                              "markdown": directory + "/data-restore-shop-nightly.md"}
    with open(first["files"]["json"], "rb") as handle:
        assert handle.read().decode("utf-8") == golden("in_place.json")
    with open(first["files"]["markdown"], "rb") as handle:
        assert handle.read().decode("utf-8") == golden("in_place.md")
    assert oct(os.stat(directory).st_mode & 0o777) == oct(0o755)
    assert oct(os.stat(first["files"]["json"]).st_mode & 0o777) == oct(0o644)
    assert [d["after_header"] for d in first["diff"]] == sorted(first["files"].values())
    assert sorted(os.listdir(directory)) == ["data-restore-shop-nightly.json", "data-restore-shop-nightly.md"]
    stamps = [os.stat(p).st_mtime_ns for p in sorted(first["files"].values())]

    second = r.run_report(kube, NS, "shop-nightly", directory, ["extra: from the run", u"\u00fc\u00f1\u00ed"])
    assert not second["changed"] and second["diff"] == []
    assert second["report"] == first["report"] and second["summary"] == first["summary"]
    assert [os.stat(p).st_mtime_ns for p in sorted(first["files"].values())] == stamps


def test_run_report_rewrites_only_the_changed_content_and_fixes_the_mode(tmp_path):
    kube = seed(in_place())
    first = r.run_report(kube, NS, "shop-nightly", str(tmp_path))
    os.chmod(first["files"]["markdown"], 0o600)
    fixed = r.run_report(kube, NS, "shop-nightly", str(tmp_path))
    assert fixed["changed"] and fixed["diff"] == []
    assert os.stat(first["files"]["markdown"]).st_mode & 0o777 == 0o644
    changed = r.run_report(kube, NS, "shop-nightly", str(tmp_path), ["new warning"])
    assert changed["changed"]
    assert [d["before_header"] for d in changed["diff"]] == sorted(first["files"].values())
    assert "- new warning\n" in changed["diff"][1]["after"] and "- new warning\n" not in changed["diff"][1]["before"]


def test_check_mode_writes_nothing_but_reports_the_change(tmp_path):
    kube = seed(replace())
    directory = str(tmp_path / "new")
    result = r.run_report(kube, NS, "shop-rollback", directory, check_mode=True)
    assert result["changed"] and not os.path.exists(directory)
    assert [d["before"] for d in result["diff"]] == ["", ""]
    assert result["summary"][0].startswith("Session shop-rollback (replace): failed")
    r.run_report(kube, NS, "shop-rollback", directory)
    again = r.run_report(kube, NS, "shop-rollback", directory, check_mode=True)
    assert not again["changed"] and again["diff"] == []


def test_write_false_returns_the_report_only(tmp_path):
    result = r.run_report(seed(planned()), NS, "fresh", str(tmp_path / "x"), write=False)
    assert not result["changed"] and not os.path.exists(str(tmp_path / "x"))
    assert result["report"]["session"] == "fresh" and result["summary"][-1].startswith("Reports: ")


def test_an_unwritable_directory_fails_with_the_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(r.DataRestoreError) as info:
        r.run_report(seed(planned()), NS, "fresh", str(blocker / "sub"))
    assert str(blocker / "sub") in info.value.msg


def test_session_state_is_set_before_the_report_is_built(tmp_path):
    kube = seed(in_place())
    kube.session_cache = {}  # as in a module run
    result = r.run_report(kube, NS, "shop-nightly", str(tmp_path), session_state="completed")
    assert result["changed"] and result["report"]["state"] == "completed" and result["report"]["error"] is None
    assert s.require(kube, NS, "shop-nightly").state == "completed"
    assert len([q for q in kube.requests if q == ("get", "ConfigMap")]) == 1  # one session read for both
    again = r.run_report(kube, NS, "shop-nightly", str(tmp_path), session_state="completed")
    assert not again["changed"]


def test_session_state_in_check_mode_writes_nothing(tmp_path):
    kube = seed(in_place())
    before = s.require(kube, NS, "shop-nightly").state
    result = r.run_report(kube, NS, "shop-nightly", str(tmp_path), session_state="completed", check_mode=True)
    assert result["changed"] and s.require(kube, NS, "shop-nightly").state == before
    assert os.listdir(str(tmp_path)) == []


def test_a_volume_whose_restore_was_canceled_and_deleted_shows_how_far_it_got():
    """The rescue cancels and deletes unfinished PodVolumeRestores before the report: the journal's last record
    (pod_volume_restore.record_canceled) stands in for them, and the partial bytes are no restore."""
    case = in_place()
    case["pvrs"] = [p for p in case["pvrs"] if p["metadata"]["name"] != "shop-nightly-shop-logs"]
    case["doc"]["volumes"]["shop/logs"] = {"phase": "Canceled", "bytes_done": 3072, "total_bytes": 5120,
                                           "message": "canceled in phase InProgress after 3072 of 5120 bytes"}
    report = build(case)
    logs = [v for v in report["volumes"] if v["key"] == "shop/logs"][0]
    assert (logs["object"], logs["phase"], logs["bytes_done"], logs["total_bytes"]) == (None, "Canceled", 3072, 5120)
    assert report["total_bytes"] == 1048576
