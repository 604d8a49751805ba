"""``/versions`` claims what the route table serves (outlast/http/versions.py), over HTTP."""

from __future__ import annotations

import aiohttp

from outlast.core import spec_versions
from outlast.core.spec_versions import Endpoint
from outlast.http import versions
from outlast.http.app import ROUTE_GROUPS
from outlast.site import Site


async def served(site: Site) -> dict[str, object]:
    url = f"http://127.0.0.1:{site.port}/_matrix/client/versions"
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
        session.get(url) as resp,
    ):
        assert resp.status == 200
        body: dict[str, object] = await resp.json()
        return body


async def test_the_served_claim_is_the_one_derived_from_the_routes(site: Site) -> None:
    routes = versions.endpoints(ROUTE_GROUPS)
    body = await served(site)
    derived = spec_versions.advertised(routes, versions.DONE, versions.WAIVED)
    assert body["versions"] == [*versions.BASELINE, *derived]
    assert body["unstable_features"] == spec_versions.unstable_features(routes, versions.DONE)
    # Every v1.x claimed has each endpoint it added routed or waived in writing.
    for version in derived:
        assert spec_versions.missing([*routes, *versions.WAIVED], version) == []
    nxt = spec_versions.ORDER[len(derived)] if len(derived) < len(spec_versions.ORDER) else None
    if nxt is not None:
        gaps = spec_versions.missing([*routes, *versions.WAIVED], nxt)
        unfinished = set(spec_versions.BEHAVIOURS.get(nxt, ())) - versions.DONE
        assert gaps or unfinished, f"{nxt} is served in full but not claimed"


def test_every_waiver_has_a_reason_and_names_a_spec_endpoint() -> None:
    added = {e for v in spec_versions.ORDER for e in spec_versions.ADDED.get(v, ())}
    for endpoint, reason in versions.WAIVED.items():
        assert endpoint in added, endpoint
        assert len(reason) > 10, endpoint


def _drop(routes: list[Endpoint], endpoint: Endpoint) -> list[Endpoint]:
    gone = spec_versions.shape(endpoint)
    return [r for r in routes if spec_versions.shape(r) != gone]


def test_removing_any_route_withdraws_the_claims_that_need_it() -> None:
    routes = versions.endpoints(ROUTE_GROUPS)
    full = versions.body(ROUTE_GROUPS)
    claimed = full["versions"][len(versions.BASELINE) :]
    for version in claimed:
        for endpoint in spec_versions.ADDED.get(version, ()):
            if endpoint in versions.WAIVED:
                continue
            cut = spec_versions.advertised(_drop(routes, endpoint), versions.DONE, versions.WAIVED)
            assert version not in cut, (version, endpoint)
    for name, (needed, _) in spec_versions.UNSTABLE.items():
        if not full["unstable_features"][name]:
            continue
        for endpoint in needed:
            flags = spec_versions.unstable_features(_drop(routes, endpoint), versions.DONE)
            assert flags[name] is False, (name, endpoint)


def test_sliding_sync_is_claimed_because_it_is_routed() -> None:
    flags = versions.body(ROUTE_GROUPS)["unstable_features"]
    assert flags["org.matrix.simplified_msc3575"] is True


def test_v1_1_to_v1_5_are_claimed_and_v1_6_waits_for_timestamp_to_event() -> None:
    """Key backup and knocking complete v1.1; /hierarchy, registration-token validity,
    restricted joins and unsigned.prev_content complete v1.2; POST /refresh and the
    relations complete v1.3; /threads and the thread receipts and counts v1.4 (v1.5
    added no endpoint). v1.6 adds timestamp_to_event, which is not served."""
    routes = versions.endpoints(ROUTE_GROUPS)
    claimed = spec_versions.advertised(routes, versions.DONE, versions.WAIVED)
    assert claimed == ["v1.1", "v1.2", "v1.3", "v1.4", "v1.5"]
    assert spec_versions.missing([*routes, *versions.WAIVED], "v1.6") == [
        ("GET", "/_matrix/client/v1/rooms/{roomId}/timestamp_to_event")
    ]
    without_refresh = [e for e in routes if not e[1].endswith("/refresh")]
    assert spec_versions.advertised(without_refresh, versions.DONE, versions.WAIVED) == [
        "v1.1",
        "v1.2",
    ]
    without_backup = [e for e in routes if "/room_keys/" not in e[1]]
    assert spec_versions.advertised(without_backup, versions.DONE, versions.WAIVED) == []
    without_prev_content = versions.DONE - {"unsigned_prev_content"}
    assert spec_versions.advertised(routes, without_prev_content, versions.WAIVED) == ["v1.1"]
