# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tests/bench/bench.py: the targets of issue #6 as make bench judges them, without a cluster."""

import copy
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))

import bench  # noqa: E402 pylint: disable=wrong-import-position,import-error

BREAKDOWN = {"discovery": 5, "session journal": 14, "reads": 33, "watches": 9, "creates": 12, "writes": 6}


def _size(n, wall, slowest=120, restore_span=121, requests=None, diy_requests=None, diy_wall=None):
    ours = {"wall": wall, "slowest_pvr": slowest, "restore_span": restore_span, "overhead": wall - slowest,
            "requests": requests if requests is not None else 2.0 * n, "breakdown": dict(BREAKDOWN),
            "load_average": "0.5 0.5 0.5"}
    diy = {"wall": diy_wall or 10.0 * wall, "slowest_pvr": slowest, "restore_span": 2 * restore_span,
           "requests": diy_requests if diy_requests is not None else 10.0 * ours["requests"]}
    return {"n": n, "ours": ours, "diy": diy}


def _store(*sizes):
    return {"sizes": dict((str(s["n"]), s) for s in sizes),
            "backup_info": {"latest": 1.7, "list": 2.5, "count": 5000}}


def test_every_figure_is_printed_with_its_ratio_and_all_met():
    rows, lines, missed = bench.evaluate(_store(_size(10, 128.0), _size(50, 130.0), _size(200, 139.0)))
    assert [r["n"] for r in rows] == [10, 50, 200] and missed == []
    targeted = [line for line in lines if " target " in line]
    # per size: concurrency twice (restore, whole run), requests per volume, request ratio, speed-up; overhead at 50
    assert len(targeted) == 3 * 5 + 1 + 2
    assert all(" ratio " in line and line.endswith("MET") for line in targeted)


@pytest.mark.parametrize("change,figure", [
    ({"wall": 148.0}, "N=200 whole run / slowest volume"),  # 1.23x: the stricter reading of "total"
    ({"restore_span": 150}, "N=200 all volumes / slowest volume"),
    ({"requests": 3100.0}, "N=200 API requests per volume"),
])
def test_a_figure_over_its_target_is_missed(change, figure):
    size = _size(200, 139.0)
    size["ours"].update(change)
    size["diy"]["requests"] = 10.0 * size["ours"]["requests"]  # only the figure under test moves
    rows, lines, missed = bench.evaluate(_store(_size(50, 130.0), size))
    assert missed == [figure]
    assert [line for line in lines if line.startswith(figure)][0].endswith("MISSED")
    if "whole run" in figure:
        assert "* N=200 whole run / slowest volume: the run took 148.0 s" in bench.misses_explained(rows, lines)


def test_the_missed_request_ratio_is_explained_with_its_budget():
    store = _store(_size(10, 128.0, requests=79.0, diy_requests=143.0))
    rows, lines, missed = bench.evaluate(store)
    assert missed == ["N=10 DIY/ours API requests"]
    note = bench.misses_explained(rows, lines)
    assert "would mean 47 at most" in note  # 143 / 3 = 47.7: whole requests
    assert "(23 here) leave 24" in note and "ours spends 56 there" in note


def test_a_fresh_checkout_starts_from_the_committed_figures(tmp_path, monkeypatch):
    committed = tmp_path / "performance-results.json"
    committed.write_text(json.dumps(_store(_size(10, 128.0))))
    monkeypatch.setattr(bench, "RESULTS", str(tmp_path / "missing" / "bench-results.json"))
    monkeypatch.setattr(bench, "COMMITTED_RESULTS", str(committed))
    assert list(bench.load_results(bench.RESULTS)["sizes"]) == ["10"]
    assert bench.load_results(str(tmp_path / "other.json")) == {"sizes": {}, "backup_info": {}}  # asked for: no fallback


def test_a_run_that_leaves_no_size_to_judge_exits_non_zero(tmp_path, monkeypatch):
    only_ours = _store(_size(10, 128.0))
    del only_ours["sizes"]["10"]["diy"]
    monkeypatch.setattr(bench, "RESULTS", str(tmp_path / "bench-results.json"))
    monkeypatch.setattr(bench, "load_results", lambda path=None: copy.deepcopy(only_ours))
    monkeypatch.setattr(bench, "write_report", lambda *a: pytest.fail("nothing to report"))
    monkeypatch.setenv("BENCH_RENDER_ONLY", "1")
    monkeypatch.delenv("BENCH_MERGE_FROM", raising=False)
    assert bench.main() == 1
