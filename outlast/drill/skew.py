"""The `skew` fault: one site's workers run with their wall clock minutes off.

Linux has no per-process CLOCK_REALTIME, and libfaketime would not reach
nats-server (Go reads the clock without libc), so the offset is an
environment variable outlast/clock.py adds to the host's time; the
supervisor restarts the site's workers with it (`POST /sites/NAME/skew`).

While the clock is off the drill checks, through the sites' own URLs, what a
skewed clock could misjudge: a refreshable access token issued at the skewed
site works at the others and one issued elsewhere works there; a refresh at
one site of a token issued at another works; once the token's lifetime has
passed (when it is short enough to wait for) every site refuses it; and the
skewed site stamps events (``origin_server_ts``, the clock its dashboard
judges report ages by) within CLOCK_BOUND_S of the real time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

from outlast.drill.load import Load

DEFAULT_SKEW_S = 300.0
# How far a skewed site's stamps may be off once it follows the log's clock
# (outlast/clock.py FOLLOW_ABOVE_S plus the time a request takes on a loaded box).
CLOCK_BOUND_S = 5.0
# Wait for a token to expire only when its lifetime is at most this long.
EXPIRY_WAIT_MAX_S = 40.0
WHOAMI = "/_matrix/client/v3/account/whoami"


async def _login(load: Load, base: str, name: str) -> dict[str, Any]:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": name},
        "password": load.password,
        "refresh_token": True,
    }
    status, data, _ = await load.request("POST", "/_matrix/client/v3/login", body, base=base)
    if status != 200 or not isinstance(data, dict):
        raise RuntimeError(f"login at {base}: {status} {data}")
    return data


async def _whoami(load: Load, base: str, token: str, want: int = 200) -> tuple[int, str]:
    """Asked again for up to 5 s while the answer is not ``want``: a token issued
    a moment ago at another site may not be in this site's view yet."""
    deadline = time.monotonic() + 5.0
    while True:
        status, data, _ = await load.request("GET", WHOAMI, None, token, base=base)
        errcode = str(data.get("errcode", "")) if isinstance(data, dict) else ""
        if status == want or time.monotonic() > deadline:
            return status, errcode
        await asyncio.sleep(0.3)


async def check(load: Load, urls: dict[str, str], victim: str) -> dict[str, Any]:
    """Tokens, refresh and stamps across the skewed site and the others."""
    others = [n for n in urls if n != victim]
    name = load.users[-1].name
    checks: list[dict[str, Any]] = []

    def record(what: str, ok: bool, **detail: Any) -> None:
        checks.append({"check": what, "ok": ok, **detail})

    mine = await _login(load, urls[victim], name)
    theirs = await _login(load, urls[others[0]], name)
    for site in others:
        status, err = await _whoami(load, urls[site], mine["access_token"])
        record(f"token from {victim} works at {site}", status == 200, status=status, errcode=err)
    status, err = await _whoami(load, urls[victim], theirs["access_token"])
    record(f"token from {others[0]} works at {victim}", status == 200, status=status, errcode=err)
    # A refresh crosses sites both ways: the new token must work where it did not come from.
    for issued, at, grant in ((victim, others[0], mine), (others[0], victim, theirs)):
        status, data, _ = await load.request(
            "POST",
            "/_matrix/client/v3/refresh",
            {"refresh_token": grant["refresh_token"]},
            base=urls[at],
        )
        ok = status == 200 and isinstance(data, dict) and "access_token" in data
        record(f"refresh of a {issued} token at {at}", ok, status=status)
        if ok:
            grant.update(data)
            back = issued
            st, err = await _whoami(load, urls[back], data["access_token"])
            record(f"token refreshed at {at} works at {back}", st == 200, status=st, errcode=err)
    # The skewed site's stamps: an event sent through it, against the real time.
    room = load.rooms[0]
    sender = load.users[0]
    before = time.time()
    status, data, _ = await load.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{quote(room)}/send/m.room.message/skewcheck{int(before * 1000)}",
        {"msgtype": "m.notice", "body": "skew check"},
        sender.token,
        base=urls[victim],
    )
    stamp_off: float | None = None
    if status == 200 and isinstance(data, dict):
        st, event, _ = await load.request(
            "GET",
            f"/_matrix/client/v3/rooms/{quote(room)}/event/{quote(data['event_id'])}",
            None,
            sender.token,
            base=urls[victim],
        )
        if st == 200 and isinstance(event, dict):
            ts = float(event.get("origin_server_ts", 0)) / 1000
            stamp_off = round(ts - (before + time.time()) / 2, 3)
    record(
        f"{victim} stamps events within {CLOCK_BOUND_S}s of the real time",
        stamp_off is not None and abs(stamp_off) <= CLOCK_BOUND_S,
        off_s=stamp_off,
    )
    # Expiry: once a token's lifetime is over, no site may take it.
    lifetime = min(float(mine.get("expires_in_ms", 0)), float(theirs.get("expires_in_ms", 0)))
    expiry: dict[str, Any] = {"lifetime_s": lifetime / 1000}
    if 0 < lifetime / 1000 <= EXPIRY_WAIT_MAX_S:
        await asyncio.sleep(lifetime / 1000 + CLOCK_BOUND_S)
        for grant, issued in ((mine, others[0]), (theirs, victim)):
            for site in urls:
                st, err = await _whoami(load, urls[site], grant["access_token"], want=401)
                record(
                    f"expired token (refreshed at {issued}) refused at {site}",
                    st == 401,
                    status=st,
                    errcode=err,
                )
    else:
        expiry["skipped"] = f"lifetime over {EXPIRY_WAIT_MAX_S}s: not waited for"
    return {
        "checks": checks,
        "expiry": expiry,
        "failed": [c["check"] for c in checks if not c["ok"]],
        "ok": all(c["ok"] for c in checks),
    }
