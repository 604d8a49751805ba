"""The cross-signing view extension: keys replace keys, signatures are re-checked when applied,
and signatures go with the keys and devices they involve (outlast.e2ee.signing_tables)."""

from __future__ import annotations

from typing import Any

import pytest

from outlast.e2ee import signing_tables as xs
from tests.view.test_apply import ALICE, BOB, NAMES, View, device, register


def key(user: str, usage: str, pub: str) -> dict[str, Any]:
    return {"user_id": user, "usage": [usage], "keys": {f"ed25519:{pub}": pub}}


def upload_keys(view: View, user: str, **keys: dict[str, Any]) -> set[str]:
    fact = {"op": "cross_signing_keys", "user_id": user, "keys": keys}
    return view.send(NAMES.users_stream, NAMES.cross_signing_subject(user), fact)


def sign(view: View, signer: str, *items: dict[str, str]) -> set[str]:
    fact = {"op": "cross_signing_signatures", "user_id": signer, "signatures": list(items)}
    return view.send(NAMES.users_stream, NAMES.cross_signing_subject(signer), fact)


def item(user: str, kind: str, target: str, by: str, sig: str = "sig") -> dict[str, str]:
    return {"user_id": user, "kind": kind, "target": target, "key_id": by, "signature": sig}


def device_keys(view: View, user: str, device_id: str) -> None:
    fact = {
        "op": "keys_upload",
        "user_id": user,
        "device_id": device_id,
        "device_keys": {"user_id": user, "device_id": device_id, "keys": {}, "signatures": {}},
    }
    view.send(NAMES.users_stream, NAMES.device_keys_subject(user, device_id), fact)


@pytest.fixture
def alice(view: View) -> View:
    """Alice with device D1 (keys published) and master M1, self-signing S1, user-signing U1."""
    view.account(ALICE, register(ALICE, device("D1", "h1")))
    view.account(BOB, register(BOB, device("B1", "h2")))
    device_keys(view, ALICE, "D1")
    upload_keys(
        view,
        ALICE,
        master=key(ALICE, "master", "M1"),
        self_signing=key(ALICE, "self_signing", "S1"),
        user_signing=key(ALICE, "user_signing", "U1"),
    )
    upload_keys(view, BOB, master=key(BOB, "master", "BM1"))
    return view


def changes(view: View, user: str) -> int:
    return int(view.value("SELECT COUNT(*) FROM device_list_changes WHERE user_id = ?", user))


def test_keys_are_stored_replaced_and_count_as_device_changes(alice: View) -> None:
    conn = alice.conn
    assert {u: k for u, (k, _) in xs.stored_keys(conn, ALICE).items()} == {
        "master": "ed25519:M1",
        "self_signing": "ed25519:S1",
        "user_signing": "ed25519:U1",
    }
    before = changes(alice, ALICE)
    assert ALICE in upload_keys(alice, ALICE, self_signing=key(ALICE, "self_signing", "S2"))
    assert xs.key_id(conn, ALICE, "self_signing") == "ed25519:S2"
    assert xs.key_id(conn, ALICE, "master") == "ed25519:M1"
    assert changes(alice, ALICE) == before + 1
    assert xs.subject_seq(conn, ALICE) == alice.seqs[NAMES.users_stream]


def test_signatures_are_checked_when_applied(alice: View) -> None:
    conn = alice.conn
    sign(
        alice,
        ALICE,
        item(ALICE, xs.DEVICE, "D1", "ed25519:S1", "by-ssk"),
        item(ALICE, xs.DEVICE, "D1", "ed25519:S-old", "stale"),  # not her self-signing key
        item(ALICE, xs.MASTER, "M1", "ed25519:D1", "by-device"),
        item(ALICE, xs.MASTER, "M1", "ed25519:NODEVICE", "no-device"),
        item(BOB, xs.MASTER, "BM1", "ed25519:U1", "by-usk"),
        item(BOB, xs.MASTER, "BM-old", "ed25519:U1", "old-master"),
        item(BOB, xs.DEVICE, "B1", "ed25519:S1", "not-hers"),
        item(ALICE, "bogus", "D1", "ed25519:S1", "bogus-kind"),
    )
    assert xs.signatures(conn, ALICE, xs.DEVICE) == {"D1": {ALICE: {"ed25519:S1": "by-ssk"}}}
    assert xs.signatures(conn, ALICE, xs.MASTER) == {"M1": {ALICE: {"ed25519:D1": "by-device"}}}
    assert xs.signatures(conn, BOB, xs.MASTER) == {"BM1": {ALICE: {"ed25519:U1": "by-usk"}}}
    assert xs.signatures(conn, BOB, xs.DEVICE) == {}


def test_signatures_go_with_replaced_keys_and_deleted_devices(alice: View) -> None:
    conn = alice.conn
    sign(
        alice,
        ALICE,
        item(ALICE, xs.DEVICE, "D1", "ed25519:S1"),
        item(ALICE, xs.MASTER, "M1", "ed25519:D1"),
        item(BOB, xs.MASTER, "BM1", "ed25519:U1"),
    )
    sign(alice, BOB, item(ALICE, xs.MASTER, "M1", "ed25519:BOB-USK"))  # Bob has no usk: dropped
    assert len(alice.rows("SELECT * FROM e2e_cross_signatures")) == 3

    # Bob's new master key: Alice's signature was on the old one.
    upload_keys(alice, BOB, master=key(BOB, "master", "BM2"))
    assert xs.signatures(conn, BOB, xs.MASTER) == {}
    # Alice's new self-signing key: what the old one signed is gone, the rest stays.
    upload_keys(alice, ALICE, self_signing=key(ALICE, "self_signing", "S2"))
    assert xs.signatures(conn, ALICE, xs.DEVICE) == {}
    assert xs.signatures(conn, ALICE, xs.MASTER) == {"M1": {ALICE: {"ed25519:D1": "sig"}}}
    # Deleting D1 takes its signature on the master key with it.
    alice.session(ALICE, {"op": "device_delete", "user_id": ALICE, "device_ids": ["D1"]})
    assert alice.rows("SELECT * FROM e2e_cross_signatures") == []
