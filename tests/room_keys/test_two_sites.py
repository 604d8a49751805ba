"""Key backup across two sites of one log: any site serves a backup another wrote, and
concurrent uploads of one session end in the same, better key everywhere."""

from __future__ import annotations

import asyncio
from pathlib import Path

from outlast.core.key_backup import MEGOLM_BACKUP_V1
from tests.room_keys.test_room_keys import AUTH, ROOM, Client, key, register
from tests.testrig import new_prefix, running_site


async def test_two_sites_serve_and_converge(shared_nats: str, tmp_path: Path) -> None:
    prefix = new_prefix()
    async with (
        running_site(tmp_path / "a", shared_nats, prefix=prefix) as site_a,
        running_site(tmp_path / "b", shared_nats, prefix=prefix) as site_b,
    ):
        at_a = await register(site_a, "alice")
        at_b = Client(site_b, at_a.token)  # one session, valid at both sites
        status, body = await at_a.call(
            "POST", "/room_keys/version", {"algorithm": MEGOLM_BACKUP_V1, "auth_data": AUTH}
        )
        assert status == 200, body
        version = body["version"]
        assert (await at_b.call("GET", "/room_keys/version"))[1]["version"] == version

        worse, better = key(3, tag="from a"), key(3, verified=True, tag="from b")
        answers = await asyncio.gather(
            at_a.call("PUT", f"/room_keys/keys/{ROOM}/s", worse, version=version),
            at_b.call("PUT", f"/room_keys/keys/{ROOM}/s", better, version=version),
        )
        assert [a[0] for a in answers] == [200, 200], answers
        # Each site's answer is read after its own upload applied; once both have
        # applied both, they agree on the key and the counters.
        await at_a.call("PUT", f"/room_keys/keys/{ROOM}/t", key(), version=version)
        await at_b.call("PUT", f"/room_keys/keys/{ROOM}/u", key(), version=version)
        seen = [
            await c.call("GET", f"/room_keys/keys/{ROOM}/s", version=version) for c in (at_a, at_b)
        ]
        assert seen == [(200, better), (200, better)]
        infos = [(await c.call("GET", "/room_keys/version"))[1] for c in (at_a, at_b)]
        assert infos[0] == infos[1]
        assert infos[0]["count"] == 3
