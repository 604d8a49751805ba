"""Tests for outlast.core.members: the /members membership query."""

from __future__ import annotations

import pytest

from outlast.core.errors import MatrixError
from outlast.core.members import MEMBERSHIPS, member_filter


def kept(membership: str | None, not_membership: str | None) -> list[str]:
    f = member_filter(membership, not_membership)
    return [m for m in MEMBERSHIPS if f.keeps(m)]


def test_each_parameter_alone() -> None:
    assert kept(None, None) == list(MEMBERSHIPS)
    assert kept("invite", None) == ["invite"]
    assert kept(None, "leave") == ["join", "invite", "knock", "ban"]


def test_both_together_must_each_hold() -> None:
    assert kept("join", "leave") == ["join"]
    assert kept("join", "join") == []


@pytest.mark.parametrize("bad", [("member", None), (None, "left"), ("JOIN", None)])
def test_an_unknown_membership_is_refused(bad: tuple[str | None, str | None]) -> None:
    with pytest.raises(MatrixError) as refused:
        member_filter(*bad)
    assert (refused.value.status, refused.value.errcode) == (400, "M_INVALID_PARAM")
