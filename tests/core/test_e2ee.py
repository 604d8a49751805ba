"""The pure parts of the E2EE plumbing: request checks and the device-list delta."""

from __future__ import annotations

from typing import Any

import pytest

from outlast.core import e2ee
from outlast.core.e2ee import MemberChange, device_list_delta
from outlast.core.errors import MatrixError

ME, ALICE, BOB, CAROL = "@me:hs", "@alice:hs", "@bob:hs", "@carol:hs"


def keys(user: str = ME, device: str = "DEV") -> dict[str, Any]:
    return {
        "user_id": user,
        "device_id": device,
        "algorithms": ["m.megolm.v1.aes-sha2"],
        "keys": {f"ed25519:{device}": "k"},
        "signatures": {},
    }


def test_device_keys_must_name_the_uploader() -> None:
    assert e2ee.check_device_keys(keys(), ME, "DEV") == keys()
    for bad in (keys(user=ALICE), keys(device="OTHER")):
        with pytest.raises(MatrixError) as err:
            e2ee.check_device_keys(bad, ME, "DEV")
        assert err.value.errcode == "M_INVALID_PARAM"
    broken = {**keys(), "keys": {"ed25519:DEV": 5}}
    with pytest.raises(MatrixError):
        e2ee.check_device_keys(broken, ME, "DEV")


def test_key_maps() -> None:
    assert e2ee.check_key_map(None, "one_time_keys") == {}
    good = {"signed_curve25519:A": {"key": "x"}, "curve25519:B": "y"}
    assert e2ee.check_key_map(good, "one_time_keys") == good
    bad: Any
    for bad in ([], {"nocolon": "x"}, {":id": "x"}, {"alg:": "x"}, {"alg:id": 3}):
        with pytest.raises(MatrixError):
            e2ee.check_key_map(bad, "one_time_keys")
    with pytest.raises(MatrixError):
        e2ee.check_fallback_keys({"signed_curve25519:A": "x", "signed_curve25519:B": "y"})
    assert e2ee.algorithm_of("signed_curve25519:AAAAHg") == "signed_curve25519"


def test_user_maps() -> None:
    assert e2ee.check_claims({ALICE: {"D": "signed_curve25519"}}) == {
        ALICE: {"D": "signed_curve25519"}
    }
    assert e2ee.check_queries({ALICE: []}) == {ALICE: []}
    assert e2ee.check_to_device({ALICE: {"*": {}}}) == {ALICE: {"*": {}}}
    for check, bad in (
        (e2ee.check_claims, {"alice": {"D": "a"}}),
        (e2ee.check_claims, {ALICE: {"D": 1}}),
        (e2ee.check_queries, {ALICE: "D"}),
        (e2ee.check_to_device, {ALICE: {"D": "not an object"}}),
        (e2ee.check_to_device, None),
    ):
        with pytest.raises(MatrixError):
            check(bad)


def test_to_device_msg_id_is_stable_and_distinct() -> None:
    one = e2ee.to_device_msg_id(ME, "D", "t1", ALICE)
    assert one == e2ee.to_device_msg_id(ME, "D", "t1", ALICE)
    assert (
        len(
            {
                one,
                e2ee.to_device_msg_id(ME, "D", "t1", BOB),
                e2ee.to_device_msg_id(ME, "E", "t1", ALICE),
                e2ee.to_device_msg_id(ME, "D", "t2", ALICE),
            }
        )
        == 4
    )


def test_key_changes_count_only_for_users_sharing_a_room() -> None:
    changed, left = device_list_delta(ME, {ME, ALICE}, {ALICE, BOB, ME}, [], {})
    assert (changed, left) == ([ALICE, ME], [])


def test_new_members_are_changed_and_leavers_left() -> None:
    changes = [MemberChange("!r", ALICE, "join"), MemberChange("!r", BOB, "leave")]
    changed, left = device_list_delta(ME, {ME, ALICE}, set(), changes, {})
    assert (changed, left) == ([ALICE], [BOB])
    # Someone who left one room but still shares another is not "left".
    changed, left = device_list_delta(ME, {ME, BOB}, set(), changes[1:], {})
    assert left == []


def test_my_own_join_and_leave() -> None:
    joined = [MemberChange("!r", ME, "join")]
    changed, _ = device_list_delta(ME, {ME, ALICE, BOB}, set(), joined, {"!r": {ME, ALICE}})
    assert changed == [ALICE, ME]
    left_room = [MemberChange("!r", ME, "leave")]
    changed, left = device_list_delta(ME, {ME, BOB}, {CAROL}, left_room, {"!r": {BOB, CAROL}})
    assert (changed, left) == ([], [CAROL])
