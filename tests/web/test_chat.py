"""The web chat at ``/``, driven in headless Chromium against a real ``outlast serve``.

Each test registers or logs in through the page itself; the page speaks only the
Client-Server API. Helpers in ``tests/web/conftest.py`` bound every wait and
collect console errors, page errors and CSP violations.
"""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.servers import OutlastProcess, eventually, http_json, launch
from tests.web.conftest import PHONE, TIMEOUT_MS, csp_violations, new_page, problems

pytestmark = pytest.mark.slow

EXPECTED_CSP = {
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' blob: data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
}


# --- helpers ---------------------------------------------------------------------------------


def api_register(server: OutlastProcess, username: str) -> dict[str, Any]:
    status, body = http_json(
        "POST",
        server.url + "/_matrix/client/v3/register",
        {
            "username": username,
            "password": "correct horse",
            "auth": {"type": "m.login.dummy"},
        },
    )
    assert status == 200, body
    return dict(body)


def api(server: OutlastProcess, method: str, path: str, token: str, body: Any = None) -> Any:
    status, answer = http_json(method, server.url + "/_matrix/client/v3" + path, body, token)
    assert status == 200, (path, answer)
    return answer


def register(page: Any, server: OutlastProcess, username: str) -> None:
    """Create an account through the page's sign-up form."""
    page.goto(server.url + "/")
    page.get_by_role("button", name="Create an account").click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("correct horse")
    page.get_by_role("button", name="Create account").click()
    page.locator("#me-id").filter(has_text=f"@{username}:").wait_for()
    page.locator("#sidebar-status").wait_for(state="hidden")


def login(page: Any, server: OutlastProcess, username: str) -> None:
    """Sign in through the page's form."""
    page.goto(server.url + "/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("correct horse")
    page.get_by_role("button", name="Sign in").click()
    page.locator("#me-id").filter(has_text=f"@{username}:").wait_for()
    page.locator("#sidebar-status").wait_for(state="hidden")


def room_button(page: Any, name: str) -> Any:
    return page.locator("#room-list button.room", has=page.locator(".room-name", has_text=name))


def open_room(page: Any, name: str) -> None:
    room_button(page, name).click()
    page.locator("#room-name", has_text=name).wait_for()


def send(page: Any, text: str) -> None:
    box = page.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")


def message(page: Any, text: str) -> Any:
    return page.locator("#messages .msg", has=page.locator(".bubble", has_text=text))


def sent_message(page: Any, text: str) -> Any:
    """My message once the server acknowledged it (no longer 'Sending…')."""
    node = message(page, text)
    node.locator("time").wait_for()
    return node


def wait_until(predicate: Any, what: str, timeout: float = TIMEOUT_MS / 1000) -> None:
    eventually(predicate, timeout, what)


def make_png(path: Path, size: tuple[int, int] = (480, 320)) -> Path:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, (59, 108, 246))
    draw = ImageDraw.Draw(image)
    for i in range(0, size[0], 40):
        draw.rectangle([i, 0, i + 19, size[1]], fill=(106, 75, 242))
    w, h = size
    draw.ellipse([w // 3, h // 4, w * 2 // 3, h * 3 // 4], fill=(255, 191, 60))
    image.save(path, "PNG")
    return path


def screenshot(page: Any, directory: Path, name: str) -> None:
    page.screenshot(path=str(directory / name))


# --- the page itself ---------------------------------------------------------------------------


def test_page_and_assets_have_strict_headers(server: OutlastProcess) -> None:
    with urllib.request.urlopen(server.url + "/", timeout=10) as resp:
        html = resp.read().decode()
        assert resp.headers["Content-Type"].startswith("text/html")
        csp = {part.strip() for part in resp.headers["Content-Security-Policy"].split(";")}
        assert csp >= EXPECTED_CSP
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    # No inline script or style, nothing from another origin.
    assert "style=" not in html
    assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", html)
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    for asset, kind in [
        ("app.js", "text/javascript"),
        ("client.js", "text/javascript"),
        ("matrix.js", "text/javascript"),
        ("style.css", "text/css"),
        ("icon.svg", "image/svg+xml"),
    ]:
        with urllib.request.urlopen(f"{server.url}/_outlast/web/chat/{asset}", timeout=10) as resp:
            body = resp.read().decode()
            assert resp.headers["Content-Type"].startswith(kind), asset
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
            assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", body), asset
    for bad in ["../__init__.py", "%2e%2e/__init__.py", "nope.js", ".hidden.js"]:
        status, _ = http_json("GET", f"{server.url}/_outlast/web/chat/{bad}")
        assert status == 404, bad


# --- two people chatting ----------------------------------------------------------------------


def test_two_users_chat(
    server: OutlastProcess, browser: Any, tmp_path: Path, screenshots: Path
) -> None:
    alice = new_page(browser)
    bob = new_page(browser)
    register(alice, server, "alice")
    register(bob, server, "bob")

    # Alice creates a group room and invites bob.
    alice.get_by_role("button", name="New group room").click()
    alice.get_by_label("Room name").fill("Launch plan")
    alice.get_by_label("Invite people").fill("@bob:localhost")
    alice.get_by_role("button", name="Create room").click()
    alice.locator("#room-name", has_text="Launch plan").wait_for()

    # Bob accepts the invite from his room list.
    bob.get_by_role("button", name="Accept invitation to Launch plan").click()
    bob.locator("#room-name", has_text="Launch plan").wait_for()
    alice.locator("#room-sub", has_text="2 members").wait_for()

    send(alice, "Hi Bob! Ready for the launch?")
    message(bob, "Hi Bob! Ready for the launch?").wait_for()
    send(bob, "Almost, finishing the checklist now.")
    message(alice, "Almost, finishing the checklist now.").wait_for()
    assert message(bob, "Hi Bob!").locator(".sender").inner_text() == "alice"

    # Typing: bob types, alice sees it; it stops when he sends.
    bob.get_by_label("Message", exact=True).press_sequentially("Checking", delay=30)
    alice.locator("#typing", has_text="bob is typing").wait_for()
    bob.get_by_label("Message", exact=True).press("Enter")
    message(alice, "Checking").wait_for()
    alice.locator("#typing", has_text="typing").wait_for(state="detached")

    # The unread number: bob looks elsewhere (his own notes room), alice's message shows 1...
    bob.get_by_role("button", name="New group room").click()
    bob.get_by_label("Room name").fill("Bob's notes")
    bob.get_by_role("button", name="Create room").click()
    bob.locator("#room-name", has_text="Bob's notes").wait_for()
    send(alice, "Don't forget the release notes")
    mine = sent_message(alice, "Don't forget the release notes")
    mine.locator(".unread-count", has_text="1").wait_for()
    # ... bob's room list counts it as unread ...
    room_button(bob, "Launch plan").locator(".badge", has_text="1").wait_for()
    # ... and it falls to 0 (the number goes away) once bob opens the room and sees it.
    open_room(bob, "Launch plan")
    message(bob, "Don't forget the release notes").wait_for()
    mine.locator(".unread-count").wait_for(state="detached")
    room_button(bob, "Launch plan").locator(".badge").wait_for(state="detached")

    # Carol joins (through the API) and reads nothing: alice's later messages keep a 1.
    token = alice.evaluate("JSON.parse(localStorage.getItem('outlast.session')).access_token")
    item = alice.locator("#room-list .room-item", has_text="Launch plan")
    room_id = item.get_attribute("data-room-id")
    carol = api_register(server, "carol")
    api(server, "POST", f"/rooms/{room_id}/invite", token, {"user_id": "@carol:localhost"})
    api(server, "POST", f"/join/{room_id}", carol["access_token"], {})
    alice.locator("#room-sub", has_text="3 members").wait_for()
    # ... and she has a room of her own with alice, where a message waits unread.
    drill = api(
        server,
        "POST",
        "/createRoom",
        carol["access_token"],
        {"name": "Fire drill review", "invite": ["@alice:localhost"]},
    )["room_id"]
    api(server, "POST", f"/join/{drill}", token, {})
    api(
        server,
        "PUT",
        f"/rooms/{drill}/send/m.room.message/d1",
        carol["access_token"],
        {"msgtype": "m.text", "body": "The drill report is up: 0 lost, 0 duplicated."},
    )
    room_button(alice, "Fire drill review").locator(".badge", has_text="1").wait_for()

    # An image: alice's upload shows at bob as a thumbnail fetched with his token.
    alice.locator("#file-input").set_input_files(str(make_png(tmp_path / "mockup.png")))
    image = bob.locator("#messages .msg img.thumb[alt='mockup.png']")
    image.wait_for()
    wait_until(
        lambda: image.evaluate(
            "img => img.complete && img.naturalWidth > 0 && img.src.startsWith('blob:')"
        ),
        "bob's thumbnail",
    )
    alice_image = alice.locator("#messages .msg.mine img.thumb[alt='mockup.png']")
    alice_image.wait_for()
    wait_until(lambda: alice_image.evaluate("img => img.naturalWidth > 0"), "alice's preview")
    alice.locator("#messages .msg.mine", has=alice.locator("img.thumb")).locator("time").wait_for()

    # A file: bob downloads it through an authenticated fetch and a blob link.
    notes = tmp_path / "checklist.txt"
    notes.write_text("1. backups\n2. fire drill\n")
    alice.locator("#file-input").set_input_files(str(notes))
    bob_file = bob.locator("#messages .bubble.file", has_text="checklist.txt")
    bob_file.wait_for()
    with bob.expect_download(timeout=TIMEOUT_MS) as download_info:
        bob_file.get_by_role("button", name="Download checklist.txt").click()
    assert Path(download_info.value.path()).read_text() == notes.read_text()

    send(bob, "Looks great. Shipping it!")
    message(alice, "Shipping it").wait_for()
    send(alice, "Thanks! See you at the drill tomorrow.")
    sent_message(alice, "See you at the drill").locator(".unread-count", has_text="1").wait_for()
    alice.wait_for_timeout(500)
    screenshot(alice, screenshots, "chat-desktop.png")

    # Bob on a phone: he signs in again, the list and the chat take turns on the screen.
    phone = new_page(browser, viewport=PHONE, is_mobile=True, has_touch=True)
    login(phone, server, "bob")
    assert phone.locator("#chat").is_hidden()
    open_room(phone, "Launch plan")
    assert phone.locator(".sidebar").is_hidden()
    message(phone, "See you at the drill").wait_for()
    phone.wait_for_timeout(500)
    screenshot(phone, screenshots, "chat-phone.png")
    phone.get_by_role("button", name="Back to conversations").click()
    room_button(phone, "Launch plan").wait_for()

    # Logging out forgets the token; the sign-in form comes back.
    phone.get_by_role("button", name="Your profile and settings").click()
    phone.get_by_role("button", name="Sign out").click()
    phone.get_by_role("button", name="Sign in").wait_for()
    assert phone.evaluate("localStorage.getItem('outlast.session')") is None

    for page in (alice, bob, phone):
        assert problems(page) == []
        page.context.close()


def test_direct_chat_directory_and_profile(
    server: OutlastProcess, browser: Any, tmp_path: Path
) -> None:
    alice = new_page(browser)
    bob = new_page(browser)
    register(alice, server, "alice")
    register(bob, server, "bob")

    # A direct chat by user id: createRoom is_direct + trusted_private_chat.
    alice.get_by_role("button", name="New direct chat").click()
    alice.get_by_label("User id", exact=True).fill("@bob:localhost")
    alice.get_by_role("button", name="Start chat").click()
    alice.locator("#room-sub", has_text="Direct chat").wait_for()
    bob.get_by_role("button", name="Accept invitation to alice").click()
    bob.locator("#room-name", has_text="alice").wait_for()
    send(bob, "hello from a DM")
    message(alice, "hello from a DM").wait_for()
    alice.locator("#room-name", has_text="bob").wait_for()

    # A public room, joined by bob from the directory.
    alice.get_by_role("button", name="New group room").click()
    alice.get_by_label("Room name").fill("Town square")
    alice.get_by_label("List in the public room directory").check()
    alice.get_by_role("button", name="Create room").click()
    alice.locator("#room-name", has_text="Town square").wait_for()
    send(alice, "Welcome, everyone")
    bob.get_by_role("button", name="Browse public rooms").click()
    bob.get_by_role("button", name="Join Town square").click()
    bob.locator("#room-name", has_text="Town square").wait_for()
    message(bob, "Welcome, everyone").wait_for()

    # The room list is ordered by last activity.
    open_room(bob, "alice")
    send(bob, "back to the DM")
    sent_message(bob, "back to the DM")
    wait_until(
        lambda: bob.locator("#room-list .room-name").first.inner_text() == "alice",
        "the DM to move to the top",
    )

    # A display name and a picture: bob sees both beside alice's next message.
    open_room(alice, "bob")
    alice.get_by_role("button", name="Your profile and settings").click()
    alice.get_by_label("Display name").fill("Alice Kim")
    alice.get_by_role("button", name="Save").click()
    alice.locator("#me-name", has_text="Alice Kim").wait_for()
    alice.get_by_role("button", name="Your profile and settings").click()
    alice.locator("#avatar-input").set_input_files(str(make_png(tmp_path / "me.png", (96, 96))))
    alice.locator("#profile-avatar img").wait_for()
    alice.get_by_role("button", name="Close").click()
    send(alice, "new profile picture")
    note = message(bob, "new profile picture")
    note.locator(".sender", has_text="Alice Kim").wait_for()
    picture = note.locator(".avatar img")
    picture.wait_for()
    wait_until(
        lambda: picture.evaluate("img => img.complete && img.naturalWidth > 0"),
        "alice's avatar at bob",
    )
    room_button(bob, "Alice Kim").wait_for()

    for page in (alice, bob):
        assert problems(page) == []
        page.context.close()


def test_back_pagination_by_scrolling_up(server: OutlastProcess, browser: Any) -> None:
    alice = api_register(server, "alice")
    bob = api_register(server, "bob")
    room_id = api(
        server,
        "POST",
        "/createRoom",
        alice["access_token"],
        {"name": "History", "invite": ["@bob:localhost"]},
    )["room_id"]
    api(server, "POST", f"/join/{room_id}", bob["access_token"], {})
    for i in range(60):
        api(
            server,
            "PUT",
            f"/rooms/{room_id}/send/m.room.message/h{i}",
            alice["access_token"],
            {"msgtype": "m.text", "body": f"history message {i:02d}"},
        )

    page = new_page(browser)
    login(page, server, "bob")
    open_room(page, "History")
    message(page, "history message 59").wait_for()
    assert message(page, "history message 00").count() == 0
    beginning = page.locator("#history", has_text="beginning of the conversation")
    for _ in range(30):
        if beginning.count():
            break
        page.locator("#log").evaluate("log => { log.scrollTop = 0; }")
        page.wait_for_timeout(300)
    beginning.wait_for()
    message(page, "history message 00").wait_for()
    bodies = page.locator("#messages .msg .bubble").all_inner_texts()
    history = [b for b in bodies if b.startswith("history message")]
    assert history == [f"history message {i:02d}" for i in range(60)]
    assert problems(page) == []
    page.context.close()


def test_reconnects_after_restart_without_duplicates(server: OutlastProcess, browser: Any) -> None:
    bob = api_register(server, "bob")
    page = new_page(browser)
    register(page, server, "alice")
    room_id = api(
        server,
        "POST",
        "/createRoom",
        bob["access_token"],
        {"name": "Ops", "invite": ["@alice:localhost"]},
    )["room_id"]
    page.get_by_role("button", name="Accept invitation to Ops").click()
    page.locator("#room-name", has_text="Ops").wait_for()
    send(page, "before the outage")
    sent_message(page, "before the outage")

    server.stop()
    page.locator("#banner", has_text="Reconnecting").wait_for()
    # Sent while the server is down: shown as sending, retried with the same txnId.
    send(page, "written during the outage")
    message(page, "written during the outage").locator(".state", has_text="Sending").wait_for()

    fresh = launch(server.data_dir, server.config_path, server.port, server.extra_args)
    server.process = fresh.process
    server.wait_ready()
    page.locator("#banner").wait_for(state="hidden")
    sent_message(page, "written during the outage")
    api(
        server,
        "PUT",
        f"/rooms/{room_id}/send/m.room.message/after1",
        bob["access_token"],
        {"msgtype": "m.text", "body": "bob after the restart"},
    )
    message(page, "bob after the restart").wait_for()
    page.wait_for_timeout(1000)

    for text in ("before the outage", "written during the outage", "bob after the restart"):
        assert message(page, text).count() == 1, text
    event_ids = page.locator("#messages .msg[data-event-id]").evaluate_all(
        "nodes => nodes.map(n => n.dataset.eventId)"
    )
    assert len(event_ids) == len(set(event_ids))
    # The server holds exactly one copy of the message sent during the outage.
    history = api(server, "GET", f"/rooms/{room_id}/messages?dir=b&limit=50", bob["access_token"])
    bodies = [e["content"].get("body") for e in history["chunk"] if e["type"] == "m.room.message"]
    assert bodies.count("written during the outage") == 1

    # A message still unacknowledged when the page reloads is kept (localStorage) and
    # sent again with its original txnId: it appears once.
    page.route("**/send/m.room.message/**", lambda route: route.abort())
    send(page, "queued across a reload")
    message(page, "queued across a reload").locator(".state", has_text="Sending").wait_for()
    page.wait_for_timeout(500)
    page.unroute("**/send/m.room.message/**")
    page.reload()
    page.locator("#room-list .room-name", has_text="Ops").first.wait_for()
    open_room(page, "Ops")
    sent_message(page, "queued across a reload")
    page.wait_for_timeout(1000)
    assert message(page, "queued across a reload").count() == 1
    history = api(server, "GET", f"/rooms/{room_id}/messages?dir=b&limit=50", bob["access_token"])
    bodies = [e["content"].get("body") for e in history["chunk"] if e["type"] == "m.room.message"]
    assert bodies.count("queued across a reload") == 1
    assert page.evaluate("localStorage.getItem('outlast.outbox.@alice:localhost')") is None

    assert csp_violations(page) == []
    # Only the expected network failures while the server was down.
    assert problems(page, ignore=("Failed to load resource", "net::ERR_")) == []
    page.context.close()


# Records every notification the page shows, still showing it through the browser's own
# Notification (granted for the page's origin): what a user would see, observed.
RECORD_NOTIFICATIONS = """
window.__shown = [];
const RealNotification = window.Notification;
class RecordedNotification extends RealNotification {
  constructor(title, options) {
    super(title, options);
    window.__shown.push({ title, body: (options && options.body) || "" });
  }
}
window.Notification = RecordedNotification;
"""


def test_browser_notifications_for_rooms_out_of_view(server: OutlastProcess, browser: Any) -> None:
    bob = new_page(browser, permissions=["notifications"])
    bob.add_init_script(RECORD_NOTIFICATIONS)
    try:
        register(bob, server, "bob")
        alice = api_register(server, "alice")
        room = api(server, "POST", "/createRoom", alice["access_token"], {"name": "Standup"})
        api(
            server,
            "POST",
            f"/rooms/{room['room_id']}/invite",
            alice["access_token"],
            {"user_id": "@bob:localhost"},
        )
        bob.get_by_role("button", name="Accept invitation to Standup").click()
        bob.locator("#room-name", has_text="Standup").wait_for()

        # Bob looks at another room: alice's message in Standup notifies.
        bob.get_by_role("button", name="New group room").click()
        bob.get_by_label("Room name").fill("Elsewhere")
        bob.get_by_role("button", name="Create room").click()
        bob.locator("#room-name", has_text="Elsewhere").wait_for()
        txn = f"/rooms/{room['room_id']}/send/m.room.message/"
        api(
            server,
            "PUT",
            txn + "t1",
            alice["access_token"],
            {"msgtype": "m.text", "body": "stand up!"},
        )
        wait_until(lambda: bob.evaluate("window.__shown.length") >= 1, "a notification")
        assert bob.evaluate("window.__shown") == [{"title": "Standup", "body": "alice: stand up!"}]

        # In the room itself, nothing pops up.
        open_room(bob, "Standup")
        api(server, "PUT", txn + "t2", alice["access_token"], {"msgtype": "m.text", "body": "seen"})
        message(bob, "seen").wait_for()
        assert bob.evaluate("window.__shown.length") == 1

        # The profile dialog says they are on.
        bob.locator("#me-button").click()
        bob.locator("#notifications-status", has_text="Notifications are on").wait_for()
        assert problems(bob) == []
    finally:
        bob.context.close()
