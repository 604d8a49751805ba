"""The backup commands refuse what they cannot do, with a message and a non-zero status."""

from __future__ import annotations

import json
from pathlib import Path

from tests.backup.helpers import outlast


async def test_list_and_verify_of_a_directory_without_backups(tmp_path: Path) -> None:
    (tmp_path / "backup-unfinished" / "streams").mkdir(parents=True)  # no manifest
    for action in ("list", "verify"):
        code, _, err = await outlast("backup", action, str(tmp_path))
        assert code == 1 and "no backups" in err


async def test_restore_refuses_a_missing_backup_and_a_used_directory(tmp_path: Path) -> None:
    code, _, err = await outlast(
        "backup", "restore", "--from", str(tmp_path / "none"), "--data-dir", str(tmp_path / "x")
    )
    assert code == 2 and "no finished backup" in err
    backup = tmp_path / "b"
    backup.mkdir()
    manifest = {
        "format": "outlast-backup/1",
        "created": "2026-12-02T00:00:00+00:00",
        "source": "test",
        "deployment": {
            "server_name": "localhost",
            "prefix": "outlast",
            "partitions": 1,
            "media_bucket": "OUTLAST_MEDIA",
        },
        "streams": [],
        "duration_seconds": 0.0,
    }
    (backup / "manifest.json").write_text(json.dumps(manifest))
    used = tmp_path / "used"
    used.mkdir()
    (used / "something").write_text("data")
    code, _, err = await outlast(
        "backup", "restore", "--from", str(backup), "--data-dir", str(used)
    )
    assert code == 2 and "not empty" in err
    code, _, err = await outlast(
        "backup", "restore", "--from", str(backup), "--data-dir", str(tmp_path / "n"),
        "--until-seq", "NOPE=3",
    )  # fmt: skip
    assert code == 2 and "no stream 'NOPE'" in err
    code, _, err = await outlast(
        "backup", "restore", "--from", str(backup), "--data-dir", str(tmp_path / "n"),
        "--until", "last tuesday",
    )  # fmt: skip
    assert code == 2 and "--until" in err


async def test_create_without_a_deployment(tmp_path: Path) -> None:
    code, _, err = await outlast(
        "backup", "create", "--to", str(tmp_path / "b"), "--data-dir", str(tmp_path / "none")
    )
    assert code == 2 and "no server data" in err
