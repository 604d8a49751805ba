"""The SQL counts in push/tables.py agree with the pure definition in core/push_counts.py."""

from __future__ import annotations

import random
import sqlite3

from outlast.core.push_counts import MAIN, Notification, read_up_to, room_counts
from outlast.core.unread import Position
from outlast.push import tables

USER, ROOM = "@alice:hs", "!room:hs"


def fresh() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.executescript(tables.SCHEMA)
    return conn


def test_sql_counts_match_room_counts_on_random_rooms() -> None:
    rng = random.Random(16)
    for _ in range(300):
        conn = fresh()
        threads = [MAIN, "$t1", "$t2"]
        notes = []
        for seq in range(1, rng.randint(1, 40)):
            if rng.random() < 0.5:
                continue
            note = Notification((seq, 0), rng.choice(threads), rng.random() < 0.3)
            notes.append(note)
            conn.execute(
                "INSERT INTO push_actions (user_id, room_id, stream, seq, idx, event_id,"
                " thread_id, highlight, actions, ts) VALUES (?, ?, 'S', ?, 0, ?, ?, ?, '[]', 0)",
                (USER, ROOM, seq, f"$e{seq}", note.thread_id, int(note.highlight)),
            )
        marks: list[tuple[str, str, Position]] = []
        for _ in range(rng.randint(0, 4)):
            kind = rng.choice(["m.read", "m.read.private", "m.fully_read"])
            thread = rng.choice(["", *threads])
            marks.append((kind, thread, (rng.randint(0, 40), 0)))
        read = read_up_to(marks)
        threaded = rng.random() < 0.5
        expected = room_counts(
            [n for n in notes if read.unthreaded is None or n.position > read.unthreaded],
            read,
            threaded,
        )
        got = tables.unread_counts(conn, USER, ROOM, read, read.unthreaded, threaded)
        assert got == expected, (marks, notes, threaded)
        conn.close()


def test_counts_saturate_at_the_newest_max_counted() -> None:
    conn = fresh()
    conn.executemany(
        "INSERT INTO push_actions (user_id, room_id, stream, seq, idx, event_id, thread_id,"
        " highlight, actions, ts) VALUES (?, ?, 'S', ?, 0, ?, 'main', 0, '[]', 0)",
        [(USER, ROOM, seq, f"$e{seq}") for seq in range(1, tables.MAX_COUNTED + 50)],
    )
    got = tables.unread_counts(conn, USER, ROOM, read_up_to([]), None, False)
    assert got.room.notification_count == tables.MAX_COUNTED
