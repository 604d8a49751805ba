"""The drill's terminal summary and PNG chart, from a synthetic report."""

from __future__ import annotations

import copy
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from outlast.cli import main
from outlast.drill.report import PLOT_NEEDS, PlotUnavailable, plot, summary

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def synthetic_report(**overrides: Any) -> dict[str, Any]:
    """What `Drill.run` returns, with made-up but consistent figures (a power drill)."""
    duration = 20
    by_site: dict[str, dict[str, int]] = {"a": {}, "b": {}, "c": {}}
    for second in range(duration + 1):
        if 5 <= second < 11:  # the write gap
            continue
        for site in ("a", "c") if 5 <= second < 13 else ("a", "b", "c"):
            by_site[site][str(second)] = 9 + (second + ord(site)) % 3
    report: dict[str, Any] = {
        "id": "20260101-120000-abc123",
        "started": "2026-01-01T12:00:00Z",
        "fault": "power",
        "site": "b",
        "fault_at_s": 4.2,
        "recovered_at_s": 10.5,
        "load": {"users": 6, "rooms": 3, "rate": 30.0, "duration": float(duration)},
        "counters": {"sent": 481, "acked": 477, "errors": 62, "retries": 58},
        "acks_per_second_by_site": by_site,
        "verdict": {
            "acknowledged": 477,
            "lost": 0,
            "duplicated": 0,
            "reordered": 0,
            "in_doubt_resolved": 6,
            "unacknowledged_but_stored": 1,
            "unacknowledged": 4,
            "examples": {"lost": [], "duplicated": [], "reordered": []},
            "ok": True,
        },
        "nats_server_version": "nats-server: v2.15.1",
        "settings": {"replicas": 3, "sync_interval": "always", "placement": "unique_tag site:"},
        "write_gap": {"clients": 6.0, "min": 6.73, "median": 7.018, "p99": 7.509, "max": 7.509},
    }
    report.update(overrides)
    return report


# -- summary() ---------------------------------------------------------------------------


def test_summary_names_the_key_figures() -> None:
    text = summary(synthetic_report())
    assert "Fire drill 20260101-120000-abc123" in text
    assert "fault 'power' on site b at t=4.2s" in text
    assert "nats-server: v2.15.1" in text
    assert "'replicas': 3" in text and "'sync_interval': 'always'" in text
    assert "6 users, 3 rooms, 30.0 msg/s for 20.0s" in text
    assert "sent 481, acknowledged 477, client errors 62" in text
    assert "LOST: 0   DUPLICATED: 0   REORDERED: 0" in text
    assert "in-doubt sends resolved by retry: 6" in text
    assert "never acknowledged: 4 (of which stored: 1)" in text
    assert "min 6.73  median 7.018  p99 7.509  max 7.509  over 6 clients" in text
    assert "read back" not in text  # older records carry no settle time


def test_summary_reports_own_writes_read_back_after_the_fault() -> None:
    own = {
        "clients": 6,
        "reads": 12,
        "fresh": 11,
        "stale": 0,
        "unavailable": 1,
        "read_ms_p50": 3.5,
        "read_ms_max": 4100.0,
    }
    text = summary({**synthetic_report(), "own_write_reads": own})
    assert "6 clients, 12 reads: STALE: 0, fresh 11, unavailable 1" in text
    assert "read p50 3.5 ms, max 4100.0 ms" in text
    assert "own write" not in summary(synthetic_report())  # older records have none


def test_summary_says_when_the_timelines_were_read() -> None:
    text = summary({**synthetic_report(), "views_settled_after_s": 2.5})
    assert "timelines read back 2.5s after the load ended" in text
    assert "fault undone at t=10.5s" in text
    assert "rebuild" not in text
    assert text.rstrip().endswith("verdict: PASS")


def test_summary_splits_the_write_gap_at_the_undoing() -> None:
    phases = {"during": {"p99": 7.1, "max": 7.4}, "after": {"p99": 5.2, "max": 5.9}}
    text = summary({**synthetic_report(), "write_gap_by_phase": phases})
    assert "during the fault p99 7.1  max 7.4; after it p99 5.2  max 5.9" in text
    assert "split at the undoing" not in summary(synthetic_report())


def test_summary_of_a_maintenance_drill_shows_the_roll_and_the_calm_before() -> None:
    roll = {
        "sites": [{"site": "a", "seconds": 4.1}, {"site": "b", "seconds": 4.9}],
        "seconds": 9.5,
    }
    calm = {"clients": 6.0, "min": 0.2, "median": 0.31, "p99": 0.52, "max": 0.52}
    text = summary(
        {
            **synthetic_report(fault="maintenance", site="all"),
            "maintenance": roll,
            "write_gap_before_fault": calm,
        }
    )
    assert "fault 'maintenance' on site all" in text
    assert "rolling restart of every site in 9.5s (a 4.1s, b 4.9s)" in text
    assert "the same before the fault (t=1s to t=4s): median 0.31  p99 0.52  max 0.52" in text
    assert "before the fault" not in summary(synthetic_report())  # older records have none


def test_summary_of_a_failed_drill_says_fail_with_the_counts() -> None:
    report = synthetic_report()
    report["verdict"] = {
        **report["verdict"],
        "lost": 2,
        "duplicated": 1,
        "reordered": 3,
        "ok": False,
    }
    text = summary(report)
    assert "LOST: 2   DUPLICATED: 1   REORDERED: 3" in text
    assert "verdict: FAIL" in text and "PASS" not in text


def test_summary_of_a_fire_with_rebuild_and_no_gap() -> None:
    report = synthetic_report(
        fault="fire",
        recovered_at_s=None,
        write_gap={},
        rebuild={"site": "b", "node": "b-2", "replaced": "b-1", "seconds": 3.2, "identical": True},
    )
    text = summary(report)
    assert "fault 'fire' on site b" in text
    assert "rebuild: site b as node b-2 in 3.2s; timelines through it identical: True" in text
    assert "snapshot" not in text
    assert "fault undone" not in text
    assert "write gap" not in text


def test_summary_of_a_rebuild_that_failed() -> None:
    report = synthetic_report(
        fault="fire",
        recovered_at_s=None,
        write_gap={},
        rebuild={"site": "a", "error": "sites not healthy in 300s: ['a']"},
    )
    text = summary(report)
    assert "rebuild: site a FAILED: sites not healthy in 300s: ['a']" in text
    assert "timelines through it identical" not in text


# -- plot() ------------------------------------------------------------------------------


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk, checking each CRC on the way."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        payload = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + payload) == crc, f"bad CRC in {kind!r}"
        chunks.append((kind, payload))
        offset += 12 + length
        if kind == b"IEND":
            break
    return chunks


def ihdr(data: bytes) -> tuple[int, int, int, int]:
    """Width, height, bit depth and colour type, from the IHDR chunk (always first)."""
    assert data[12:16] == b"IHDR"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    return width, height, depth, colour


def colour_fraction(path: Path, rgb: tuple[int, int, int], tolerance: int = 12) -> float:
    """Share of the image's pixels within ``tolerance`` of ``rgb`` (0-255 per channel)."""
    import matplotlib.image
    import numpy as np

    pixels = matplotlib.image.imread(str(path))[..., :3]
    if pixels.dtype != np.uint8:
        pixels = (pixels * 255).round()
    close = (np.abs(pixels.astype(int) - np.array(rgb)) <= tolerance).all(axis=-1)
    return float(close.mean())


def test_plot_writes_a_real_png(tmp_path: Path) -> None:
    out = tmp_path / "charts" / "drill.png"  # the directory is created
    plot(synthetic_report(), out)
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 10_000, f"suspiciously small chart: {len(data)} bytes"
    width, height, depth, colour = ihdr(data)
    assert 600 <= width <= 3000 and 300 <= height <= 2000, (width, height)
    assert width > height  # a landscape timeline chart
    assert depth == 8 and colour in (2, 6)  # 8-bit RGB or RGBA
    kinds = [kind for kind, _ in png_chunks(data)]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    # Drawn, not blank: mostly white background, bars in the default first
    # colour (site a), and the crimson fault line.
    assert colour_fraction(out, (255, 255, 255)) > 0.3
    assert colour_fraction(out, (31, 119, 180)) > 0.005  # matplotlib's C0 (site a's bars)
    assert colour_fraction(out, (220, 20, 60)) > 0.0005  # crimson: the fault marker
    assert colour_fraction(out, (46, 139, 87)) > 0.0002  # seagreen: the fault undone


def test_plot_differs_with_the_data(tmp_path: Path) -> None:
    """The chart is drawn from the report: another report gives another image."""
    plot(synthetic_report(), tmp_path / "one.png")
    other = copy.deepcopy(synthetic_report())
    other["acks_per_second_by_site"] = {"a": {str(s): 30 for s in range(21)}}
    other["recovered_at_s"] = None
    plot(other, tmp_path / "two.png")
    one, two = (tmp_path / "one.png").read_bytes(), (tmp_path / "two.png").read_bytes()
    assert ihdr(one)[:2] == ihdr(two)[:2]
    assert one != two


@pytest.mark.parametrize("gap", [{}, None])
def test_plot_without_gap_or_acks(tmp_path: Path, gap: dict[str, float] | None) -> None:
    report = synthetic_report(
        write_gap=gap, acks_per_second_by_site={}, recovered_at_s=None, fault="fire"
    )
    out = tmp_path / "empty.png"
    plot(report, out)
    assert out.read_bytes().startswith(PNG_SIGNATURE)


# -- matplotlib is optional ---------------------------------------------------------------


def without_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import matplotlib`` fail as it does where the extra is not installed."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def test_plot_without_matplotlib_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_matplotlib(monkeypatch)
    with pytest.raises(PlotUnavailable, match=r"outlast\[plot\]"):
        plot(synthetic_report(), tmp_path / "drill.png")
    assert not (tmp_path / "drill.png").exists()


def test_drill_with_plot_refuses_to_start_without_matplotlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The check comes before the drill: no cluster is started and no load is run."""
    without_matplotlib(monkeypatch)
    missing = str(tmp_path / "nowhere.json")
    code = main(["drill", "fire", "--cluster", missing, "--plot", str(tmp_path / "d.png")])
    assert code == 2
    assert PLOT_NEEDS in capsys.readouterr().err


def test_summary_says_a_rebuilt_site_was_seeded_from_a_snapshot() -> None:
    report = synthetic_report(
        fault="fire",
        recovered_at_s=None,
        write_gap={},
        rebuild={
            "site": "b",
            "node": "b-2",
            "seconds": 2.0,
            "identical": True,
            "seeded_from_snapshot": True,
        },
    )
    assert "its views were seeded from a snapshot" in summary(report)
