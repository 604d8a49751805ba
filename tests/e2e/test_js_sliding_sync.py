"""matrix-js-sdk's SlidingSync, a real client of simplified sliding sync (MSC4186):
log in, room list, invite, open a room, send and receive live (tests/js/sliding.mjs)."""

from __future__ import annotations

from tests.e2e.test_other_clients import needs_node, run_js
from tests.servers import OutlastProcess


@needs_node
def test_js_sdk_sliding_sync_lists_opens_a_room_sends_and_receives(
    server: OutlastProcess,
) -> None:
    outcome = run_js("sliding.mjs", server.url)
    # The room came through the list while Bob was invited, with its name.
    assert outcome["invited_name"] == "sliding chat"
    assert outcome["joined_name"] == "sliding chat"
    assert outcome["bob_list_counts"][-1] == 1
    # The subscription brought the history; the long-poll brought the rest, both ways.
    assert outcome["bob_bodies"] == ["hello from alice", "are you there?", "hello from bob"]
    assert "hello from bob" in outcome["alice_bodies"]
    assert outcome["sliding_requests"] > 4
    # Nothing the SDK asked for on the way was answered with an error.
    assert outcome["failures"] == []
