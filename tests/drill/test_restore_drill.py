"""`outlast drill restore` end to end, small: a real three-site cluster under load is
backed up, destroyed site by site and restored into a new cluster. Nothing acknowledged
before the backup point may be lost, and every message acknowledged after it must be
reported as expected lost (listed), not missing silently."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from outlast.backup.manifest import decode_record
from outlast.backup.target import DirectoryTarget
from outlast.backup.verify import read_manifest
from tests.cluster.harness import start_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_restore_drill_loses_only_what_came_after_the_backup_point(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path / "cluster")
    work, out = tmp_path / "work", tmp_path / "report.json"
    try:
        proc = subprocess.run(
            [
                sys.executable, "-m", "outlast", "drill", "restore",
                "--cluster", str(cluster.dir / "cluster.json"),
                "--users", "4", "--rooms", "2", "--rate", "20", "--at", "3", "--after", "3",
                "--work-dir", str(work), "--json-out", str(out),
            ],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        print(proc.stdout)
        context = f"\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        assert out.exists(), context
        report = json.loads(out.read_text())
        v = report["verdict"]
        assert proc.returncode == 0, context
        assert v["ok"] is True, context
        # Messages before the backup point, and after it, both exist: the drill proves something.
        assert v["acknowledged_before_point"] > 0 and v["acknowledged_after_point"] > 0, v
        assert v["acknowledged_before_point"] + v["acknowledged_after_point"] == v["acknowledged"]
        assert (v["lost_before_point"], v["duplicated"], v["reordered"]) == (0, 0, 0), v
        # Every message acknowledged after the point is listed as expected lost.
        assert v["expected_lost"] == v["acknowledged_after_point"] == len(v["expected_lost_ids"])
        assert (v["after_point_present"], v["not_in_live_log"]) == (0, 0), v
        # Every site of the old deployment lost its data.
        for site in cluster.description["sites"]:
            assert not Path(site["data_dir"]).exists()
        # The backup itself agrees: none of the expected-lost messages is in it, and
        # its per-stream last sequences are the reported backup point.
        backup = DirectoryTarget(Path(report["backup"]["dir"]))
        manifest = read_manifest(backup)
        assert {s.name: s.last_seq for s in manifest.streams} == report["backup"]["point"]
        in_backup = set()
        for entry in manifest.streams:
            with backup.reader(entry.file) as lines:
                for line in lines:
                    msg_id = (decode_record(line).headers or {}).get("Nats-Msg-Id")
                    if msg_id:
                        in_backup.add(msg_id)
        assert not in_backup & set(v["expected_lost_ids"])
        assert report["restore"]["restore_seconds"] > 0
        assert "verdict: PASS" in proc.stdout and "LOST: 0" in proc.stdout
    finally:
        for directory in (work / "restored", cluster.dir):
            if (directory / "cluster.json").exists():
                subprocess.run(
                    [sys.executable, "-m", "outlast", "cluster", "down", "--dir", str(directory)],
                    capture_output=True, timeout=120,
                )  # fmt: skip
