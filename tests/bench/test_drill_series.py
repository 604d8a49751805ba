"""The drill series' plan and its per-kind table (pure: no cluster)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.drill_series import earlier, interleave, summarize, table


def report(fault: str, median: float, p99: float, worst: float, lost: int = 0) -> dict[str, Any]:
    return {
        "fault": fault,
        "write_gap": {"clients": 3, "min": 0.1, "median": median, "p99": p99, "max": worst},
        "verdict": {
            "acknowledged": 100,
            "lost": lost,
            "duplicated": 0,
            "reordered": 0,
            "in_doubt_resolved": 2,
            "ok": lost == 0,
        },
    }


def test_kinds_are_interleaved_until_each_has_its_count() -> None:
    plan = interleave({"fire": 3, "partition": 1, "maintenance": 2})
    assert plan == ["fire", "partition", "maintenance", "fire", "maintenance", "fire"]


def test_table_rows_sum_per_kind_and_flag_a_loss() -> None:
    reports = [
        report("fire", 1.0, 2.0, 3.0),
        report("fire", 3.0, 4.0, 9.5),
        report("partition", 2.0, 2.5, 2.5, lost=1),
    ]
    summary = summarize(reports)
    assert summary["fire"]["drills"] == 2
    assert summary["fire"]["acknowledged"] == 200
    assert summary["fire"]["gap_p50_s"] == 2.0
    assert summary["fire"]["gap_max_s"] == 9.5
    assert summary["partition"]["all_passed"] is False
    text = table(summary, {"partition": 1})
    assert "| fire | 2 | 200 | 0 | 0 | 0 | 2.00 s | 4.00 s | 9.50 s | yes |" in text
    assert "| partition | 1 (1 left no report) | 100 | 1 |" in text
    assert text.rstrip().endswith("**no** |")


def test_a_series_resumes_after_the_drills_it_already_holds(tmp_path: Path) -> None:
    (tmp_path / "000-fire.json").write_text(json.dumps(report("fire", 1.0, 2.0, 3.0)))
    (tmp_path / "001-maintenance.failed.txt").write_text("the front door did not ...")
    (tmp_path / "002-fire.json").write_text(json.dumps(report("fire", 1.0, 2.0, 3.0)))
    reports, no_report, next_number = earlier(tmp_path)
    assert [r["fault"] for r in reports] == ["fire", "fire"]
    assert dict(no_report) == {"maintenance": 1}
    assert next_number == 3
    (tmp_path / "empty").mkdir()
    assert earlier(tmp_path / "empty") == ([], {}, 0)
