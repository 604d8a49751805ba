"""/versions derived from routes: cumulative versions, behaviours, waivers, unstable features."""

from __future__ import annotations

from outlast.core.spec_versions import ADDED, ORDER, advertised, missing, unstable_features

ALL = [e for v in ORDER for e in ADDED.get(v, ())]
EVERYTHING = (
    "knocking",
    "restricted_joins",
    "unsigned_prev_content",
    "bundled_aggregations",
    "threaded_receipts",
    "thread_notifications",
    "intentional_mentions",
    "relations_recursion",
)


def test_nothing_past_v1_0_without_the_v1_1_endpoints() -> None:
    assert advertised([]) == []
    assert ("POST", "/_matrix/client/v3/room_keys/version") in missing([], "v1.1")


def test_everything_routed_and_done_claims_v1_11() -> None:
    assert advertised(ALL, EVERYTHING) == list(ORDER)


def test_a_missing_behaviour_stops_the_list() -> None:
    early = ("knocking", "restricted_joins", "unsigned_prev_content")
    assert advertised(ALL, (*early, "bundled_aggregations")) == ["v1.1", "v1.2", "v1.3"]
    assert advertised(ALL, ("restricted_joins", "unsigned_prev_content")) == []
    assert advertised(ALL, ("knocking", "restricted_joins")) == ["v1.1"]


def test_a_gap_stops_the_list_even_if_later_versions_are_served() -> None:
    without_threads = [e for e in ALL if not e[1].endswith("/threads")]
    assert advertised(without_threads, EVERYTHING) == ["v1.1", "v1.2", "v1.3"]
    assert missing(without_threads, "v1.4") == [
        ("GET", "/_matrix/client/v1/rooms/{roomId}/threads")
    ]


def test_parameter_names_do_not_matter_and_waivers_count() -> None:
    renamed = [(m, p.replace("{roomId}", "{room_id}")) for m, p in ALL]
    sso = [e for e in ALL if "/sso/" in e[1]]
    routed = [e for e in renamed if "/sso/" not in e[1]]
    assert advertised(routed, EVERYTHING)[:1] == []
    waived = {e: "no identity provider is configured" for e in sso}
    assert advertised(routed, EVERYTHING, waived) == list(ORDER)


def test_unstable_features_follow_routes_and_behaviours() -> None:
    route = ("POST", "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync")
    assert unstable_features([])["org.matrix.simplified_msc3575"] is False
    assert unstable_features([route])["org.matrix.simplified_msc3575"] is True
    threads = ("GET", "/_matrix/client/v1/rooms/{room_id}/threads")
    relations = [e for e in ADDED["v1.3"] if "/relations/" in e[1]]
    assert unstable_features([threads])["org.matrix.msc3856.stable"] is True
    assert unstable_features(relations)["org.matrix.msc3715.stable"] is True
    # Threads need the bundled m.thread summary, recursion needs the walk.
    assert unstable_features(relations)["org.matrix.msc3440.stable"] is False
    assert unstable_features(relations, ["bundled_aggregations"])["org.matrix.msc3440.stable"]
    assert unstable_features(relations)["org.matrix.msc3981"] is False
    assert unstable_features(relations, ["relations_recursion"])["org.matrix.msc3981"] is True
    assert unstable_features([], ["threaded_receipts"])["org.matrix.msc3771"] is True
