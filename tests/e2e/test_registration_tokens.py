"""Registration token validity on a server without registration tokens, over real HTTP."""

from __future__ import annotations

from pathlib import Path

from outlast.site import Site
from tests.e2e.helpers import api
from tests.testrig import running_site

PATH = "/_matrix/client/v1/register/m.login.registration_token/validity"


async def test_no_token_is_valid_while_registration_is_open(site: Site) -> None:
    url = f"http://127.0.0.1:{site.port}{PATH}"
    for token in ("fBVFdqVE", "", "x" * 64):
        status, body = await api("GET", url, params={"token": token})
        assert (status, body) == (200, {"valid": False}), token
    status, body = await api("GET", url)
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
    # The registration flows offered never include the token stage.
    status, body = await api(
        "POST", f"http://127.0.0.1:{site.port}/_matrix/client/v3/register", {"username": "x"}
    )
    assert status == 401
    stages = {s for flow in body["flows"] for s in flow["stages"]}
    assert "m.login.registration_token" not in stages


async def test_every_token_is_refused_while_registration_is_closed(
    shared_nats: str, tmp_path: Path
) -> None:
    closed = "[registration]\nenabled = false\n"
    async with running_site(tmp_path / "closed", shared_nats, extra_toml=closed) as site:
        url = f"http://127.0.0.1:{site.port}{PATH}"
        status, body = await api("GET", url, params={"token": "fBVFdqVE"})
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
