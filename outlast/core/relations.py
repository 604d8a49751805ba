"""Event relationships: which relations count, and the bundled aggregations.

A child event names its parent in the cleartext ``content["m.relates_to"]``
("Forming relationships between events"); a relation that breaks its type's
rules is ignored, never an error. When an event is served, the server
bundles what it knows about its children under ``unsigned["m.relations"]``:

- ``m.replace``: the most recent valid edit, whole (largest
  ``origin_server_ts``, then largest ``event_id``); the original's content
  stays as it is, since clients apply the edit (v1.7 onwards), and nothing
  is bundled once the original is redacted;
- ``m.thread``: ``latest_event``, ``count`` and ``current_user_participated``;
- ``m.reference``: a ``chunk`` of ``{event_id}``.

``m.annotation`` (reactions) is deliberately not bundled: the spec leaves
counting to clients; :func:`count_annotations` is the same count for anyone
who needs it (the web chat), and :func:`check_new_annotation` is the
server's ``M_DUPLICATE_ANNOTATION`` rule.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from outlast.core.errors import MatrixError

REPLACE: Final = "m.replace"
THREAD: Final = "m.thread"
REFERENCE: Final = "m.reference"
ANNOTATION: Final = "m.annotation"
ENCRYPTED: Final = "m.room.encrypted"

Event = Mapping[str, Any]


@dataclass(frozen=True)
class Relation:
    rel_type: str
    event_id: str
    key: str | None = None


def relation_of(event: Event) -> Relation | None:
    """The event's cleartext relation, if well formed (a plain reply has no ``rel_type``)."""
    content = event.get("content")
    relates = content.get("m.relates_to") if isinstance(content, Mapping) else None
    if not isinstance(relates, Mapping):
        return None
    rel_type, parent, key = relates.get("rel_type"), relates.get("event_id"), relates.get("key")
    if not (isinstance(rel_type, str) and isinstance(parent, str) and parent.startswith("$")):
        return None
    return Relation(rel_type, parent, key if isinstance(key, str) else None)


def is_redacted(event: Event) -> bool:
    unsigned = event.get("unsigned")
    return isinstance(unsigned, Mapping) and "redacted_because" in unsigned


def valid_replacement(original: Event, edit: Event) -> bool:
    """The spec's "Validity of replacement events" (what a server can check).

    The server cannot see ``m.new_content`` inside an encrypted edit, so it
    is only required of cleartext ones.
    """
    rel = relation_of(edit)
    if rel is None or rel.rel_type != REPLACE or rel.event_id != original.get("event_id"):
        return False
    same = all(original.get(k) == edit.get(k) for k in ("room_id", "sender", "type"))
    if not same or "state_key" in original or "state_key" in edit:
        return False
    parent_rel = relation_of(original)
    if parent_rel is not None and parent_rel.rel_type == REPLACE:
        return False  # an edit cannot itself be edited
    if edit.get("type") == ENCRYPTED:
        return True
    return isinstance(edit.get("content", {}).get("m.new_content"), Mapping)


def latest_replacement(original: Event, edits: Iterable[Event]) -> Event | None:
    """The edit to bundle: the most recent valid, unredacted one; none for a redacted original."""
    if is_redacted(original):
        return None
    valid = [e for e in edits if not is_redacted(e) and valid_replacement(original, e)]
    if not valid:
        return None
    return max(valid, key=lambda e: (_ts(e), str(e.get("event_id", ""))))


def apply_replacement(original: Event, edit: Event) -> dict[str, Any]:
    """The original as a client displays it once edited ("Applying m.new_content").

    The content becomes ``m.new_content``, except that the original's own
    ``m.relates_to`` is kept and any in ``m.new_content`` is ignored.
    Servers must not serve this form; it is for rendering (push, web chat).
    """
    out = copy.deepcopy(dict(original))
    new = edit.get("content", {}).get("m.new_content")
    if not isinstance(new, Mapping):
        return out
    content = {k: copy.deepcopy(v) for k, v in new.items() if k != "m.relates_to"}
    relates = original.get("content", {}).get("m.relates_to")
    if relates is not None:
        content["m.relates_to"] = copy.deepcopy(relates)
    out["content"] = content
    return out


def _ts(event: Event) -> int:
    ts = event.get("origin_server_ts")
    return ts if isinstance(ts, int) else 0


def thread_summary(
    root: Event,
    replies: Sequence[Event],
    user_id: str,
    ignored: Collection[str] = (),
) -> dict[str, Any] | None:
    """The ``m.thread`` aggregation; ``replies`` are the thread's events, oldest first.

    ``latest_event`` is served as-is (the caller bundles its own children into
    it first); events from ignored users neither count nor show.
    """
    counted = [
        e
        for e in replies
        if e.get("sender") not in ignored
        and not is_redacted(e)
        and (rel := relation_of(e)) is not None
        and rel.rel_type == THREAD
        and rel.event_id == root.get("event_id")
    ]
    if not counted:
        return None
    participated = root.get("sender") == user_id or any(e.get("sender") == user_id for e in counted)
    return {
        "latest_event": dict(counted[-1]),
        "count": len(counted),
        "current_user_participated": participated,
    }


def reference_chunk(references: Iterable[Event]) -> dict[str, Any] | None:
    ids = [
        {"event_id": e["event_id"]}
        for e in references
        if not is_redacted(e) and isinstance(e.get("event_id"), str)
    ]
    return {"chunk": ids} if ids else None


def bundle(
    event: Event,
    *,
    replacement: Event | None = None,
    thread: Mapping[str, Any] | None = None,
    references: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A copy of ``event`` with ``unsigned["m.relations"]`` set (state events get none)."""
    out = dict(event)
    if "state_key" in event:
        return out
    relations: dict[str, Any] = {}
    if replacement is not None:
        relations[REPLACE] = dict(replacement)
    if thread is not None:
        relations[THREAD] = dict(thread)
    if references is not None:
        relations[REFERENCE] = dict(references)
    if relations:
        unsigned = dict(event.get("unsigned") or {})
        unsigned["m.relations"] = relations
        out["unsigned"] = unsigned
    return out


def _annotation_key(event: Event, target: str | None) -> tuple[str, str] | None:
    rel = relation_of(event)
    if rel is None or rel.rel_type != ANNOTATION or rel.key is None or is_redacted(event):
        return None
    if target is not None and rel.event_id != target:
        return None
    return str(event.get("type", "")), rel.key


def count_annotations(
    target: Event, annotations: Iterable[Event], ignored: Collection[str] = ()
) -> list[dict[str, Any]]:
    """Counted annotations ("Client behaviour" of annotations), most used first.

    One per (sender, type, key); ignored users and redacted annotations do
    not count; a replacement or an annotation cannot be annotated.
    """
    parent = relation_of(target)
    if parent is not None and parent.rel_type in (REPLACE, ANNOTATION):
        return []
    seen: set[tuple[str, str, str]] = set()
    counts: dict[tuple[str, str], int] = {}
    for event in annotations:
        key = _annotation_key(event, target.get("event_id"))
        sender = event.get("sender")
        if key is None or not isinstance(sender, str) or sender in ignored:
            continue
        if (sender, *key) not in seen:
            seen.add((sender, *key))
            counts[key] = counts.get(key, 0) + 1
    ordered = sorted(counts.items(), key=lambda item: -item[1])  # stable: first seen first
    return [{"type": t, "key": k, "count": n} for (t, k), n in ordered]


def check_new_annotation(new: Event, existing: Iterable[Event]) -> None:
    """400 ``M_DUPLICATE_ANNOTATION`` when the sender already made this annotation.

    ``existing`` are the target's annotations; a redacted one no longer counts.
    """
    rel = relation_of(new)
    key = _annotation_key(new, None)
    if rel is None or key is None:
        return
    for event in existing:
        if event.get("sender") == new.get("sender") and _annotation_key(event, rel.event_id) == key:
            raise MatrixError(400, "M_DUPLICATE_ANNOTATION", "you already sent this annotation")


def check_thread_root(parent: Event) -> None:
    """400 ``M_UNKNOWN``: a thread cannot start from an event that is itself a relation."""
    if relation_of(parent) is not None:
        raise MatrixError(400, "M_UNKNOWN", "cannot start a thread from an event with a relation")
