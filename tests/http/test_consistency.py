"""Every read route says what it reads, so none skips the barrier (outlast.http.consistency)."""

from __future__ import annotations

from outlast.http.app import ROUTE_GROUPS
from outlast.http.consistency import NOT_VIEW_READS, READS, route_path
from outlast.view.barrier import Reads


def routes() -> set[tuple[str, str]]:
    return {
        (method, route_path(prefix + path))
        for group in ROUTE_GROUPS
        for method, path, _, prefixes in group.entries
        for prefix in prefixes
    }


def test_route_paths_lose_their_prefix_and_patterns() -> None:
    assert route_path("/_matrix/client/v3/rooms/{room_id}/event/{event_id}") == (
        "/rooms/{room_id}/event/{event_id}"
    )
    assert route_path("/_matrix/client/r0/rooms/{room_id}/state/{event_type}/{state_key:.*}") == (
        "/rooms/{room_id}/state/{event_type}/{state_key}"
    )
    assert route_path("/_matrix/media/v3/download/{server_name}/{media_id}") == (
        "/download/{server_name}/{media_id}"
    )
    assert route_path("/_outlast/health") == "/health"
    assert route_path("/_matrix/client/versions") == "/_matrix/client/versions"


def test_every_get_route_is_classified() -> None:
    gets = {path for method, path in routes() if method == "GET"}
    unlisted = gets - {path for method, path in READS if method == "GET"} - NOT_VIEW_READS
    assert not unlisted, f"say what these GET routes read (READS or NOT_VIEW_READS): {unlisted}"


def test_the_tables_name_only_routes_that_exist() -> None:
    existing = routes()
    assert set(READS) <= existing, set(READS) - existing
    assert {path for method, path in existing if method == "GET"} >= NOT_VIEW_READS


def test_the_reads_the_consistency_rule_promises_wait_for_their_room() -> None:
    """docs/consistency.md: these see a write made at another site before them."""
    for path in (
        "/rooms/{room_id}/event/{event_id}",
        "/rooms/{room_id}/context/{event_id}",
        "/rooms/{room_id}/state",
        "/rooms/{room_id}/messages",
        "/rooms/{room_id}/members",
    ):
        assert READS[("GET", path)] is Reads.ROOM, path
    assert READS[("GET", "/sync")] is Reads.EVERYTHING
    sliding = ("POST", "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync")
    assert READS[sliding] is Reads.EVERYTHING
