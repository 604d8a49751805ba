"""An Element-Web-like matrix-js-sdk client with threads on: edits, reacts, replies in a
thread, reloads, and reads it all back with no error answer on any call (tests/js/threads.mjs)."""

from __future__ import annotations

from tests.e2e.test_other_clients import needs_node, run_js
from tests.servers import OutlastProcess


@needs_node
def test_js_sdk_with_threads_edits_reacts_replies_and_reads_back_after_a_reload(
    server: OutlastProcess,
) -> None:
    outcome = run_js("threads.mjs", server.url)
    # The server's /versions turns js-sdk's threads, thread list and paging on (stable names).
    assert outcome["support"] == {"threads": 2, "list": 2, "fwdPagination": 2}, outcome
    # After the reload: the edit applied, the reaction counted, the reply in its thread
    # and not in the main timeline.
    assert outcome["edited"] is True
    assert outcome["root_body"] == "what shall we eat tonight?"
    assert outcome["reactions"] == [["🍕", 1]]
    assert "pizza, obviously" in outcome["thread_bodies"]
    summary = outcome["bundled_thread"]
    assert summary["count"] == 1 and summary["current_user_participated"] is True
    assert summary["latest_event"]["content"]["body"] == "pizza, obviously"
    assert outcome["reply_in_main_timeline"] is False
    # The reload read threads through the thread endpoints...
    paths = outcome["reload_paths"]
    assert "GET /_matrix/client/v1/rooms/*/threads" in paths, paths
    assert "GET /_matrix/client/v1/rooms/*/relations/*" in paths, paths
    # ...and nothing the SDK asked for on the way was answered with an error.
    assert outcome["failures"] == []
