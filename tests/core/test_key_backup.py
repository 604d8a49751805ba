"""Key backup: versions, the replacement rule, uploads, etag/count and errors."""

from __future__ import annotations

from typing import Any

import pytest

from outlast.core.errors import MatrixError
from outlast.core.key_backup import (
    MEGOLM_BACKUP_V1,
    BackupVersion,
    KeyData,
    after_write,
    better,
    check_delete,
    current,
    find,
    keys_body,
    merge,
    parse_upload,
    parse_version_body,
    updated,
    writable,
)

AUTH = {"public_key": "abc", "signatures": {}}
V3 = BackupVersion("3", MEGOLM_BACKUP_V1, AUTH)
V7 = BackupVersion("7", MEGOLM_BACKUP_V1, AUTH, etag=2, count=1)
V9_GONE = BackupVersion("9", MEGOLM_BACKUP_V1, AUTH, deleted=True)
VERSIONS = [V3, V7, V9_GONE]


def key(fmi: int = 0, fwd: int = 0, verified: bool = False, tag: str = "x") -> KeyData:
    return KeyData(fmi, fwd, verified, {"ciphertext": tag})


def wire(k: KeyData) -> dict[str, Any]:
    return k.body()


def errcode(call: Any) -> tuple[int, str, dict[str, Any]]:
    with pytest.raises(MatrixError) as err:
        call()
    return err.value.status, err.value.errcode, err.value.extra


def test_replacement_rule_in_spec_order() -> None:
    assert better(key(fmi=9, fwd=9, verified=True), key(fmi=0, fwd=0, verified=False))
    assert not better(key(fmi=0, verified=False), key(fmi=9, verified=True))
    assert better(key(fmi=1, fwd=9), key(fmi=2, fwd=0))
    assert not better(key(fmi=3), key(fmi=2))
    assert better(key(fmi=2, fwd=0), key(fmi=2, fwd=1))
    assert not better(key(tag="new"), key(tag="old"))  # a full tie keeps the stored key


def test_versions_current_find_and_info() -> None:
    assert current(VERSIONS) == V7  # 9 is deleted
    assert find(VERSIONS, None) == V7 and find(VERSIONS, "3") == V3
    assert V7.info() == {
        "algorithm": MEGOLM_BACKUP_V1,
        "auth_data": AUTH,
        "count": 1,
        "etag": "2",
        "version": "7",
    }
    assert errcode(lambda: find(VERSIONS, "9"))[:2] == (404, "M_NOT_FOUND")
    assert errcode(lambda: find([], None))[:2] == (404, "M_NOT_FOUND")


def test_create_and_update_bodies() -> None:
    assert parse_version_body({"algorithm": MEGOLM_BACKUP_V1, "auth_data": AUTH}) == (
        MEGOLM_BACKUP_V1,
        AUTH,
    )
    bads: list[Any] = [[], {"algorithm": 1, "auth_data": {}}, {"algorithm": "a", "auth_data": "x"}]
    for bad in bads:
        assert errcode(lambda b=bad: parse_version_body(b))[:2] == (400, "M_BAD_JSON")
    new_auth = {"public_key": "def"}
    body = {"algorithm": MEGOLM_BACKUP_V1, "auth_data": new_auth, "version": "7"}
    assert updated(VERSIONS, "7", body) == BackupVersion("7", MEGOLM_BACKUP_V1, new_auth, 2, 1)
    other_alg = {"algorithm": "m.other", "auth_data": new_auth}
    assert errcode(lambda: updated(VERSIONS, "7", other_alg))[:2] == (400, "M_INVALID_PARAM")
    wrong = dict(body, version="3")
    assert errcode(lambda: updated(VERSIONS, "7", wrong))[:2] == (400, "M_INVALID_PARAM")
    assert errcode(lambda: updated(VERSIONS, "9", body))[:2] == (404, "M_NOT_FOUND")


def test_delete_is_idempotent_but_unknown_is_404() -> None:
    assert check_delete(VERSIONS, "7") is True
    assert check_delete(VERSIONS, "9") is False
    assert errcode(lambda: check_delete(VERSIONS, "42"))[:2] == (404, "M_NOT_FOUND")


def test_uploads_go_only_to_the_current_version() -> None:
    assert writable(VERSIONS, "7") == V7
    status, code, extra = errcode(lambda: writable(VERSIONS, "3"))
    assert (status, code, extra) == (403, "M_WRONG_ROOM_KEYS_VERSION", {"current_version": "7"})
    assert errcode(lambda: writable(VERSIONS, "9"))[:2] == (404, "M_NOT_FOUND")
    assert errcode(lambda: writable(VERSIONS, "nope"))[:2] == (404, "M_NOT_FOUND")


def test_three_upload_shapes() -> None:
    k = key(fmi=1)
    everything = parse_upload({"rooms": {"!a:hs": {"sessions": {"s1": wire(k), "s2": wire(k)}}}})
    assert set(everything) == {("!a:hs", "s1"), ("!a:hs", "s2")}
    assert parse_upload({"sessions": {"s1": wire(k)}}, "!a:hs") == {("!a:hs", "s1"): k}
    assert parse_upload(wire(k), "!a:hs", "s1") == {("!a:hs", "s1"): k}
    bad_bodies = [
        ({"rooms": []}, None, None),
        ({"rooms": {"!a:hs": {}}}, None, None),
        ({"sessions": {"s": dict(wire(k), is_verified="yes")}}, "!a:hs", None),
        (dict(wire(k), first_message_index=-1), "!a:hs", "s"),
        (dict(wire(k), forwarded_count=True), "!a:hs", "s"),
        (dict(wire(k), session_data="blob"), "!a:hs", "s"),
    ]
    for body, room, session in bad_bodies:
        assert errcode(lambda b=body, r=room, s=session: parse_upload(b, r, s))[:2] == (
            400,
            "M_BAD_JSON",
        )


def test_merge_and_counters() -> None:
    stored = {("!a:hs", "s1"): key(fmi=5), ("!a:hs", "s2"): key(fmi=0, verified=True)}
    uploads = {
        ("!a:hs", "s1"): key(fmi=2),  # better: lower index
        ("!a:hs", "s2"): key(fmi=0),  # worse: not verified
        ("!b:hs", "s3"): key(),  # new
    }
    winners = merge(stored, uploads)
    assert set(winners) == {("!a:hs", "s1"), ("!b:hs", "s3")}
    after = after_write(V7, count=3, changed=bool(winners))
    assert after.counters() == {"etag": "3", "count": 3}
    assert after_write(V7, count=1, changed=False).counters() == {"etag": "2", "count": 1}


def test_reading_keys() -> None:
    keys = {("!a:hs", "s1"): key(tag="1"), ("!b:hs", "s2"): key(tag="2")}
    assert keys_body(keys)["rooms"]["!b:hs"]["sessions"]["s2"]["session_data"] == {
        "ciphertext": "2"
    }
    assert keys_body(keys, "!a:hs") == {"sessions": {"s1": wire(key(tag="1"))}}
    assert keys_body(keys, "!zz:hs") == {"sessions": {}}
    assert keys_body({}) == {"rooms": {}}
    assert keys_body(keys, "!a:hs", "s1") == wire(key(tag="1"))
    assert errcode(lambda: keys_body(keys, "!a:hs", "nope"))[:2] == (404, "M_NOT_FOUND")
