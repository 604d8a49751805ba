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


def test_sliding_sync_is_not_claimed_while_it_is_not_routed() -> None:
    flags = versions.body(ROUTE_GROUPS)["unstable_features"]
    assert flags["org.matrix.simplified_msc3575"] is False


def _key_backup() -> list[Endpoint]:
    return [e for e in spec_versions.ADDED["v1.1"] if "/room_keys/" in e[1]]


def test_key_backup_is_all_that_v1_1_still_lacks() -> None:
    """Knocking is served (route and behaviour); only key backup, built on another
    branch, stands between the route table and v1.1."""
    routes = versions.endpoints(ROUTE_GROUPS)
    gaps = spec_versions.missing([*routes, *versions.WAIVED], "v1.1")
    assert gaps and set(gaps) <= set(_key_backup())  # GET /room_keys/version answers today
    assert "knocking" in versions.DONE
    with_backup = spec_versions.advertised(
        [*routes, *_key_backup()], versions.DONE, versions.WAIVED
    )
    assert with_backup[:1] == ["v1.1"]


def test_v1_2_follows_once_prev_content_moves_into_unsigned() -> None:
    """Every endpoint v1.2 added is routed (/hierarchy, registration token validity), and
    restricted joins are done; v1.2 then waits only for unsigned.prev_content."""
    routes = [*versions.endpoints(ROUTE_GROUPS), *_key_backup()]
    assert spec_versions.missing([*routes, *versions.WAIVED], "v1.2") == []
    assert "restricted_joins" in versions.DONE
    claimed = spec_versions.advertised(routes, versions.DONE, versions.WAIVED)
    assert "v1.2" not in claimed
    done = versions.DONE | {"unsigned_prev_content"}
    assert spec_versions.advertised(routes, done, versions.WAIVED)[:2] == ["v1.1", "v1.2"]
