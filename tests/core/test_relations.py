"""Relations: edit validity and choice, thread summaries, references, annotations."""

from __future__ import annotations

from typing import Any

import pytest

from outlast.core.errors import MatrixError
from outlast.core.relations import (
    apply_replacement,
    bundle,
    check_new_annotation,
    check_thread_root,
    count_annotations,
    latest_replacement,
    reference_chunk,
    relation_of,
    thread_summary,
    valid_replacement,
)

ALICE, BOB = "@alice:hs", "@bob:hs"
ROOM = "!r:hs"


def event(event_id: str, sender: str = ALICE, ts: int = 0, **content: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "room_id": ROOM,
        "sender": sender,
        "type": "m.room.message",
        "origin_server_ts": ts,
        "content": content,
    }


def rel(rel_type: str, parent: str, **extra: Any) -> dict[str, Any]:
    return {"rel_type": rel_type, "event_id": parent, **extra}


def relates(rel_type: str, parent: str, **extra: Any) -> dict[str, Any]:
    """Keyword arguments for ``event``: its ``m.relates_to``."""
    return {"m.relates_to": rel(rel_type, parent, **extra)}


ORIGINAL = event("$orig", body="I like cake", formatted_body="cake", msgtype="m.text")


def in_reply_to(parent: str) -> dict[str, Any]:
    return {"m.relates_to": {"m.in_reply_to": {"event_id": parent}}}


def new_content(body: str) -> dict[str, Any]:
    return {"m.new_content": {"body": body, "msgtype": "m.text"}}


def edit(event_id: str, ts: int, body: str, **over: Any) -> dict[str, Any]:
    e = event(
        event_id,
        ts=ts,
        body=f"* {body}",
        **new_content(body),
        **relates("m.replace", "$orig"),
    )
    e.update(over)
    return e


def test_relation_of_needs_rel_type_and_event_id() -> None:
    assert relation_of(event("$a", **relates("m.thread", "$r"))) is not None
    reply = event("$a", **in_reply_to("$r"))
    assert relation_of(reply) is None
    assert relation_of(event("$a", **relates("m.thread", "no-sigil"))) is None
    assert relation_of({"content": "nope"}) is None


def test_validity_of_replacements() -> None:
    assert valid_replacement(ORIGINAL, edit("$e", 1, "x"))
    assert not valid_replacement(ORIGINAL, edit("$e", 1, "x", sender=BOB))
    assert not valid_replacement(ORIGINAL, edit("$e", 1, "x", room_id="!other:hs"))
    assert not valid_replacement(ORIGINAL, edit("$e", 1, "x", type="m.sticker"))
    no_new = edit("$e", 1, "x")
    del no_new["content"]["m.new_content"]
    assert not valid_replacement(ORIGINAL, no_new)
    encrypted_original = dict(ORIGINAL, type="m.room.encrypted")
    encrypted_edit = dict(no_new, type="m.room.encrypted")
    assert valid_replacement(encrypted_original, encrypted_edit)  # cannot see inside
    state = dict(ORIGINAL, state_key="")
    assert not valid_replacement(state, edit("$e", 1, "x"))
    an_edit = edit("$orig", 1, "x")
    assert not valid_replacement(an_edit, dict(edit("$e2", 2, "y")))


def test_latest_edit_wins_by_timestamp_then_event_id() -> None:
    edits = [edit("$b", 5, "second"), edit("$a", 9, "third"), edit("$c", 9, "fourth")]
    chosen = latest_replacement(ORIGINAL, edits + [edit("$z", 99, "mallory", sender=BOB)])
    assert chosen is not None and chosen["event_id"] == "$c"
    redacted = dict(edits[2], unsigned={"redacted_because": {}})
    chosen = latest_replacement(ORIGINAL, [edits[0], edits[1], redacted])
    assert chosen is not None and chosen["event_id"] == "$a"  # reverts to the one before
    gone = dict(ORIGINAL, unsigned={"redacted_because": {}})
    assert latest_replacement(gone, edits) is None
    assert latest_replacement(ORIGINAL, []) is None


def test_applying_new_content_keeps_the_original_relation() -> None:
    reply = event("$orig", body="x", **in_reply_to("$p"))
    applied = apply_replacement(reply, edit("$e", 1, "better", sender=ALICE))
    assert applied["content"] == {
        "body": "better",
        "msgtype": "m.text",
        "m.relates_to": {"m.in_reply_to": {"event_id": "$p"}},
    }
    assert reply["content"]["body"] == "x"  # untouched
    plain = apply_replacement(ORIGINAL, edit("$e", 1, "chocolate"))
    assert "formatted_body" not in plain["content"]


def test_thread_summary() -> None:
    root = event("$root", sender=BOB)
    replies = [
        event("$t1", ALICE, **relates("m.thread", "$root")),
        event("$t2", "@troll:hs", **relates("m.thread", "$root")),
        event("$t3", BOB, **relates("m.thread", "$root")),
        event("$x", BOB, **relates("m.reference", "$root")),
    ]
    summary = thread_summary(root, replies, ALICE, ignored={"@troll:hs"})
    assert summary is not None
    assert summary["count"] == 2 and summary["latest_event"]["event_id"] == "$t3"
    assert summary["current_user_participated"] is True
    other = thread_summary(root, replies[2:], "@carol:hs")
    assert other is not None and other["current_user_participated"] is False
    assert thread_summary(root, [], ALICE) is None


def test_bundle_and_references() -> None:
    refs = reference_chunk([event("$one"), dict(event("$two"), unsigned={"redacted_because": {}})])
    assert refs == {"chunk": [{"event_id": "$one"}]}
    bundled = bundle(
        dict(ORIGINAL, unsigned={"age": 5}), replacement=edit("$e", 1, "x"), references=refs
    )
    assert bundled["unsigned"]["age"] == 5
    assert set(bundled["unsigned"]["m.relations"]) == {"m.replace", "m.reference"}
    assert "unsigned" not in ORIGINAL
    assert "unsigned" not in bundle(dict(ORIGINAL, state_key=""), references=refs)
    assert bundle(ORIGINAL) == ORIGINAL


def react(event_id: str, sender: str, key: str, target: str = "$orig") -> dict[str, Any]:
    return dict(
        event(event_id, sender, **relates("m.annotation", target, key=key)),
        type="m.reaction",
    )


def test_counting_annotations() -> None:
    reactions = [
        react("$1", ALICE, "👍"),
        react("$2", ALICE, "👍"),  # same sender, same key: once
        react("$3", BOB, "👍"),
        react("$4", BOB, "🎉"),
        react("$5", "@troll:hs", "👎"),
        dict(react("$6", "@carol:hs", "🎉"), unsigned={"redacted_because": {}}),
        react("$7", "@carol:hs", "🎉", target="$elsewhere"),
    ]
    assert count_annotations(ORIGINAL, reactions, ignored={"@troll:hs"}) == [
        {"type": "m.reaction", "key": "👍", "count": 2},
        {"type": "m.reaction", "key": "🎉", "count": 1},
    ]
    assert count_annotations(edit("$e", 1, "x"), [react("$8", BOB, "👍", target="$e")]) == []


def test_duplicate_annotations_are_refused() -> None:
    existing = [
        react("$1", ALICE, "👍"),
        dict(react("$2", BOB, "👍"), unsigned={"redacted_because": {}}),
    ]
    with pytest.raises(MatrixError) as err:
        check_new_annotation(react("$3", ALICE, "👍"), existing)
    assert (err.value.status, err.value.errcode) == (400, "M_DUPLICATE_ANNOTATION")
    check_new_annotation(react("$4", BOB, "👍"), existing)  # the earlier one was redacted
    check_new_annotation(react("$5", ALICE, "🎉"), existing)


def test_threads_cannot_start_from_relations() -> None:
    check_thread_root(ORIGINAL)
    with pytest.raises(MatrixError) as err:
        check_thread_root(event("$t", **relates("m.thread", "$root")))
    assert (err.value.status, err.value.errcode) == (400, "M_UNKNOWN")
