"""Real clients other than matrix-nio: the matrix-commander CLI and matrix-js-sdk (node)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from nio import MemoryDownloadResponse, RoomCreateResponse, RoomSendResponse
from nio.crypto.attachments import decrypt_attachment

from tests.e2e.helpers import all_messages, close_all, eventually, expect, register, text
from tests.servers import OutlastProcess

ROOT = Path(__file__).resolve().parents[2]
JS_DIR = ROOT / "tests" / "js"
COMMANDER = Path(sys.executable).parent / "matrix-commander"


# --- matrix-commander -------------------------------------------------------------


def commander(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI with its credentials and store in ``tmp_path``; fail with its output."""
    cmd = [
        str(COMMANDER),
        "--credentials",
        str(tmp_path / "credentials.json"),
        "--store",
        str(tmp_path / "store"),
        *args,
    ]
    result = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(tmp_path)},
        cwd=tmp_path,
    )
    assert result.returncode == 0, f"{args}: {result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result


def json_lines(output: str) -> list[dict[str, Any]]:
    events = []
    for line in output.splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    return events


@pytest.mark.skipif(
    not COMMANDER.exists(),
    reason="matrix-commander is not installed "
    "(it is in the project's test extra: pip install -e '.[test]')",
)
async def test_matrix_commander_logs_in_sends_and_receives(
    server: OutlastProcess, tmp_path: Path
) -> None:
    alice = await register(server.url, "alice")
    carl = await register(server.url, "carl", "pw-carl")
    try:
        room_id = expect(
            await alice.room_create(invite=["@carl:localhost"]), RoomCreateResponse
        ).room_id
        await carl.join(room_id)
        await close_all(carl)
        # Log in the way a user does: password flow, writes the credentials file.
        commander(
            tmp_path,
            "--login",
            "password",
            "--user-login",
            "@carl:localhost",
            "--password",
            "pw-carl",
            "--homeserver",
            server.url,
            "--device",
            "commander",
            "--room-default",
            room_id,
        )
        creds = json.loads((tmp_path / "credentials.json").read_text())
        assert creds["user_id"] == "@carl:localhost" and creds["room_id"] == room_id

        # Send a text and a file; alice (nio) sees both, and the file's bytes.
        commander(tmp_path, "-m", "hello from matrix-commander")
        attachment = tmp_path / "notes.txt"
        attachment.write_bytes(b"commander attachment\n" * 100)
        commander(tmp_path, "-f", str(attachment))

        async def arrived() -> list[dict[str, Any]]:
            events = await all_messages(alice, room_id)
            got = [
                e
                for e in events
                if e["sender"] == "@carl:localhost" and e["type"] == "m.room.message"
            ]
            return got if len(got) >= 2 else []

        messages = await eventually(arrived)
        assert messages[0]["content"]["body"] == "hello from matrix-commander"
        file_event = messages[1]["content"]
        assert file_event["msgtype"] == "m.file" and file_event["body"] == "notes.txt"
        # matrix-commander encrypts attachments even in unencrypted rooms (content.file).
        encrypted = file_event.get("file")
        url = encrypted["url"] if encrypted else file_event["url"]
        got = expect(await alice.download(url), MemoryDownloadResponse)
        body = got.body
        if encrypted:
            body = decrypt_attachment(
                got.body, encrypted["key"]["k"], encrypted["hashes"]["sha256"], encrypted["iv"]
            )
        assert body == attachment.read_bytes()

        # Receive: alice writes, matrix-commander prints it.
        expect(
            await alice.room_send(room_id, "m.room.message", text("hello, commander")),
            RoomSendResponse,
        )
        result = commander(tmp_path, "--tail", "10", "--output", "json")
        bodies = [
            (e["source"]["sender"], e["source"]["content"].get("body"))
            for e in json_lines(result.stdout)
            if "source" in e
        ]
        assert ("@alice:localhost", "hello, commander") in bodies, result.stdout[-3000:]
    finally:
        await close_all(alice)


# --- matrix-js-sdk ----------------------------------------------------------------


def js_packages() -> None:
    """Install tests/js's locked packages if ``./run test`` has not done it yet."""
    if not (JS_DIR / "node_modules" / "matrix-js-sdk").exists():
        subprocess.run([str(ROOT / "scripts" / "js-deps.sh")], check=True, timeout=300)


def run_js(script: str, url: str, *more: str) -> dict[str, Any]:
    """Run a tests/js script against ``url`` (and any further arguments); its
    "RESULT {json}" line, checked to be ok."""
    js_packages()
    result = subprocess.run(
        ["node", str(JS_DIR / script), url, *more],
        capture_output=True,
        text=True,
        timeout=150,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"no result line:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    outcome: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    assert result.returncode == 0 and outcome["ok"], (outcome, result.stderr[-3000:])
    return outcome


NO_NODE = shutil.which("node") is None or shutil.which("npm") is None
needs_node = pytest.mark.skipif(
    NO_NODE, reason="Node.js (node and npm) is not installed; matrix-js-sdk needs it"
)


@needs_node
def test_matrix_js_sdk_logs_in_syncs_sends_and_receives(server: OutlastProcess) -> None:
    outcome = run_js("chat.mjs", server.url)
    assert outcome["bob_received"]["body"] == "hello from alice"
    assert outcome["bob_received"]["sender"].startswith("@jsalice")
    assert outcome["alice_received"]["body"] == "hello from bob"
    assert outcome["media"] == {
        **outcome["media"],
        "status": 200,
        "same_bytes": True,
        "content_type": "application/x-test",
    }
    assert outcome["push_rule_kinds"] == ["content", "override", "room", "sender", "underride"]
    # Nothing the SDK asked for on the way was answered with an error.
    assert outcome["failures"] == []
