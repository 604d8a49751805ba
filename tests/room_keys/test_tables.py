"""The key backup view (outlast/room_keys/tables.py): uploads judged again when applied."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from outlast.core.key_backup import MEGOLM_BACKUP_V1, KeyData
from outlast.log.client import LogMessage
from outlast.log.facts import BackupCreated, BackupDeleted, BackupKeysStored, Fact
from outlast.room_keys import tables
from outlast.view.apply import apply_message
from outlast.view.store import open_db

USER = "@a:x"
ROOM = "!r:x"


def upload(version: str, index: int, verified: bool, tag: str) -> BackupKeysStored:
    data = {
        "first_message_index": index,
        "forwarded_count": 0,
        "is_verified": verified,
        "session_data": {"c": tag},
    }
    return BackupKeysStored(USER, version, {ROOM: {"sessions": {"s": data}}})


def project(path: Path, facts: list[Fact]) -> dict[Any, KeyData]:
    conn = open_db(path, ["USERS"])
    try:
        for seq, fact in zip(itertools.count(1), facts, strict=False):
            with conn:
                apply_message(conn, LogMessage("USERS", seq, "u", fact.encode()))
        return tables.keys(conn, USER, "1")
    finally:
        conn.close()


def test_concurrent_uploads_end_in_the_same_key_in_either_order(tmp_path: Path) -> None:
    create = BackupCreated(USER, MEGOLM_BACKUP_V1, {})
    a, b = upload("1", 4, True, "verified"), upload("1", 0, False, "lower index")
    one = project(tmp_path / "1.sqlite", [create, a, b])
    two = project(tmp_path / "2.sqlite", [create, b, a])
    assert one == two
    assert one[(ROOM, "s")].session_data == {"c": "verified"}


def test_an_upload_to_a_version_deleted_first_stores_nothing(tmp_path: Path) -> None:
    create = BackupCreated(USER, MEGOLM_BACKUP_V1, {})
    assert (
        project(
            tmp_path / "v.sqlite", [create, BackupDeleted(USER, "1"), upload("1", 0, False, "x")]
        )
        == {}
    )
