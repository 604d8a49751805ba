"""The connection state's id: derived from its content, the same at every site."""

from __future__ import annotations

from outlast.sliding_sync.service import state_id


def test_the_id_depends_on_the_content_only() -> None:
    a = {"configs": [], "rooms": {"!a:x": 0, "!b:x": 0}}
    b = {"rooms": {"!b:x": 0, "!a:x": 0}, "configs": []}
    assert state_id(a) == state_id(b)
    assert state_id(a) != state_id({"configs": [], "rooms": {"!a:x": 0}})
    assert 0 < state_id(a) < 2**60
