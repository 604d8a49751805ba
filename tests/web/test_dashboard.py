"""The site dashboard in a real browser (Playwright + Debian's Chromium) on a real
three-site cluster: three healthy sites, stream leaders and a real drill's chart;
then site c burns and the dashboard served by site a shows c down while a and b
stay healthy, and the web chat (through the front door) keeps working meanwhile.

Screenshots: dashboard.png (healthy) and dashboard-site-down.png (site c burned),
in a temporary directory; ``./run screenshots`` refreshes docs/screenshots.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.harness import Cluster, start_cluster
from tests.servers import http_json
from tests.web.conftest import csp_violations, new_page, problems

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery"
V3 = "/_matrix/client/v3"
SITE_DOWN_WITHIN = 25.0  # seconds: a report is stale after 5 s, plus a health-stream election
CHAT_WITHIN = 60.0  # seconds for a chat message to cross sites while a leader is re-elected
CLI_TIMEOUT = 60
DRILL_TIMEOUT = 300


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = start_cluster(tmp_path / "cluster")
    try:
        yield c
    finally:
        c.down()


def wait_until(what: str, probe: Any, timeout: float, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (OSError, ValueError) as exc:  # a site mid-failure: try again
            last = exc
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout}s (last {last!r})")


def register(url: str, name: str) -> dict[str, Any]:
    status, body = http_json(
        "POST",
        url + V3 + "/register",
        {"username": name, "password": PASSWORD, "auth": {"type": "m.login.dummy"}},
    )
    assert status == 200, body
    return dict(body)


def room_path(room_id: str) -> str:
    return f"{V3}/rooms/{urllib.parse.quote(room_id, safe='')}"


def bodies(url: str, token: str, room_id: str) -> list[str]:
    status, body = http_json(
        "GET", url + room_path(room_id) + "/messages?dir=b&limit=100", token=token
    )
    if status != 200:
        return []
    return [
        e["content"].get("body", "") for e in body["chunk"] if e.get("type") == "m.room.message"
    ]


def all_healthy(cluster: Cluster) -> bool:
    for name in cluster.names:
        try:
            status, _ = http_json("GET", cluster.site_url(name) + "/_outlast/health", timeout=3)
        except OSError:
            return False
        if status != 200:
            return False
    return True


def run_drill(cluster: Cluster, out: Path) -> dict[str, Any]:
    """A short real fire drill (a freeze of the busiest site) so the history has a record."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "outlast",
            "drill",
            "fire",
            "--cluster",
            str(cluster.dir / "cluster.json"),
            "--users",
            "4",
            "--rooms",
            "2",
            "--rate",
            "20",
            "--duration",
            "12",
            "--at",
            "3",
            "--fault",
            "freeze",
            "--heal-after",
            "3",
            "--quiet",
            "--json-out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=DRILL_TIMEOUT,
    )
    assert out.exists(), f"drill wrote no report ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def page_exists(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return bool(resp.status == 200 and b"<html" in resp.read())
    except OSError:
        return False


def site_states(page: Any) -> dict[str, str]:
    states: dict[str, str] = page.eval_on_selector_all(
        "#sites li[data-site]",
        "cards => Object.fromEntries(cards.map(c => [c.dataset.site, c.dataset.state]))",
    )
    return states


def test_dashboard_shows_sites_leaders_drills_and_a_burned_site(
    browser: Any, cluster: Cluster, tmp_path: Path, screenshots: Path
) -> None:
    a, b = cluster.site_url("a"), cluster.site_url("b")

    # An administrator, granted through the CLI with the cluster file.
    register(a, "ops")
    granted = subprocess.run(
        [
            sys.executable,
            "-m",
            "outlast",
            "admin",
            "grant",
            "@ops:localhost",
            "--cluster",
            str(cluster.dir / "cluster.json"),
        ],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )
    assert granted.returncode == 0, granted.stderr

    report = run_drill(cluster, tmp_path / "drill.json")
    wait_until("every site healthy after the drill", lambda: all_healthy(cluster), 120)

    dash = new_page(browser, viewport={"width": 1280, "height": 900})
    chat = new_page(browser, viewport={"width": 1100, "height": 760})
    try:
        # --- the dashboard of site a, three healthy sites --------------------------------
        dash.goto(a + "/_outlast/dashboard")
        dash.get_by_label("User", exact=True).fill("@ops:localhost")
        dash.get_by_label("Password", exact=True).fill(PASSWORD)
        dash.get_by_role("button", name="Sign in").click()
        dash.wait_for_selector("#board:not([hidden])")
        wait_until(
            "three healthy sites",
            lambda: site_states(dash) == {"a": "healthy", "b": "healthy", "c": "healthy"},
            30,
        )
        assert dash.locator("#served-by").inner_text() == "served by site a"
        assert "3 of 3 sites healthy" in dash.locator("#summary").inner_text()

        # Stream leaders: every stream led, by one of the three sites.
        dash.wait_for_selector('#streams tr[data-stream="OUTLAST_USERS"]')
        leaders = dash.eval_on_selector_all(
            "#streams tr[data-stream]",
            "rows => Object.fromEntries(rows.map(r => [r.dataset.stream, r.dataset.leaderSite]))",
        )
        assert {
            "OUTLAST_USERS",
            "OUTLAST_DIRECTORY",
            "OUTLAST_ROOMS_0",
            "OUTLAST_ROOMS_1",
            "OUTLAST_HEALTH",
            "OUTLAST_DRILLS",
        } <= set(leaders)
        assert set(leaders.values()) <= {"a", "b", "c"} and all(leaders.values()), leaders
        nodes = dash.eval_on_selector_all(
            "#nodes tr[data-node]", "rows => rows.map(r => r.dataset.node)"
        )
        assert sorted(nodes) == ["a-1", "b-1", "c-1"]

        # The drill, drawn as inline SVG from its record on the log.
        drill = dash.locator(f'article.drill[data-drill="{report["id"]}"]')
        drill.wait_for()
        assert drill.locator("svg.chart rect").count() > 5
        assert drill.locator("svg.chart line.mark-fault").count() == 1
        assert drill.locator("svg.chart line.mark-recovery").count() == 1
        assert "PASS" in drill.locator(".drill-head").inner_text()
        assert dash.locator("#metrics a").count() == 3
        dash.screenshot(path=str(screenshots / "dashboard.png"), full_page=True)

        # --- a chat through the front door, with bob reading at site b -----------------
        bob = register(b, "bob")
        chat_url = cluster.front_door + "/"
        chat_ui = page_exists(chat_url)
        room_id = start_chat(chat, chat_url, b, bob) if chat_ui else None

        # --- burn site c ------------------------------------------------------------------
        burned_at = time.monotonic()
        cluster.burn("c")
        wait_until(
            "site c down while a and b are healthy",
            lambda: (
                (s := site_states(dash)).get("c") == "down"
                and s.get("a") == "healthy"
                and s.get("b") == "healthy"
            ),
            SITE_DOWN_WITHIN,
        )
        took = time.monotonic() - burned_at
        print(f"dashboard showed site c down after {took:.1f}s")
        assert "2 of 3 sites healthy" in dash.locator("#summary").inner_text()
        reason = dash.locator('#sites li[data-site="c"] [data-field="reason"]').inner_text()
        assert "no report for" in reason

        # Meanwhile the chat keeps working: alice sends, bob (site b) receives, and back.
        if room_id is not None:
            send_in_chat(chat, "after the fire")
            wait_until(
                "bob reads alice's message sent after the fire",
                lambda: "after the fire" in bodies(b, bob["access_token"], room_id),
                CHAT_WITHIN,
            )
            status, body = http_json(
                "PUT",
                b + room_path(room_id) + "/send/m.room.message/reply-1",
                {"msgtype": "m.text", "body": "bob answers from site b"},
                token=bob["access_token"],
            )
            assert status == 200, body
            chat.locator("#messages").get_by_text("bob answers from site b").wait_for(
                timeout=CHAT_WITHIN * 1000
            )
            assert chat.locator("#messages").get_by_text("after the fire").count() == 1
        else:
            pytest.fail("no web chat at / to prove the chat keeps working")

        # The streams c led elect new leaders at a or b, and their leaders lose c's node.
        wait_until(
            "every stream led by a or b",
            lambda: all(
                v in ("a", "b")
                for v in dash.eval_on_selector_all(
                    "#streams tr[data-stream]", "rows => rows.map(r => r.dataset.leaderSite)"
                )
            ),
            30,
        )
        dash.locator('#nodes tr[data-node="c-1"]').get_by_text("Offline").wait_for(timeout=30_000)
        dash.screenshot(path=str(screenshots / "dashboard-site-down.png"), full_page=True)

        assert csp_violations(dash) == [] and csp_violations(chat) == []
        # A burned site's in-flight requests may log network errors in the chat's console.
        assert problems(dash) == [], problems(dash)
    finally:
        dash.context.close()
        chat.context.close()


def start_chat(chat: Any, url: str, b: str, bob: dict[str, Any]) -> str:
    """Alice registers in the web chat, creates a room with bob, and they talk."""
    chat.goto(url)
    chat.locator("#auth-switch").click()
    chat.locator("#auth-username").fill("alice")
    chat.locator("#auth-password").fill(PASSWORD)
    chat.locator("#auth-submit").click()
    chat.wait_for_selector("#app:not([hidden])")
    chat.locator("#btn-new-group").click()
    chat.locator("#group-name").fill("Control tower")
    chat.locator("#group-invite").fill(bob["user_id"])
    chat.locator("#form-group button[type=submit]").click()
    chat.wait_for_selector("#chat-room:not([hidden])")

    def invited() -> str:
        status, body = http_json("GET", b + V3 + "/sync?timeout=0", token=bob["access_token"])
        rooms = list(((body or {}).get("rooms") or {}).get("invite", {})) if status == 200 else []
        return rooms[0] if rooms else ""

    room_id = str(wait_until("bob's invite reaches site b", invited, 30))
    status, body = http_json(
        "POST", b + room_path(room_id) + "/join", {}, token=bob["access_token"]
    )
    assert status == 200, body
    send_in_chat(chat, "before the fire")
    wait_until(
        "bob reads alice's first message",
        lambda: "before the fire" in bodies(b, bob["access_token"], room_id),
        30,
    )
    return room_id


def send_in_chat(chat: Any, text: str) -> None:
    box = chat.locator("#composer-input")
    box.fill(text)
    box.press("Enter")
    chat.locator("#messages").get_by_text(text).wait_for()
