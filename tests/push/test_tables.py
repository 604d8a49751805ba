"""The SQL counts in push/tables.py agree with the pure definition in core/push_counts.py."""

from __future__ import annotations

import random
import sqlite3

from outlast.core.push_counts import MAIN, Notification, read_up_to, room_counts
from outlast.core.push_prune import PrunePolicy, Stored, doomed
from outlast.core.unread import Position
from outlast.push import tables
from outlast.receipts import tables as receipts

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
                "INSERT INTO push_actions (user_id, room_id, stream, seq, idx,"
                " thread_id, highlight, actions, ts) VALUES (?, ?, 'S', ?, 0, ?, ?, '[]', 0)",
                (USER, ROOM, seq, note.thread_id, int(note.highlight)),
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
        "INSERT INTO push_actions (user_id, room_id, stream, seq, idx, thread_id,"
        " highlight, actions, ts) VALUES (?, ?, 'S', ?, 0, 'main', 0, '[]', 0)",
        [(USER, ROOM, seq) for seq in range(1, tables.MAX_COUNTED + 50)],
    )
    got = tables.unread_counts(conn, USER, ROOM, read_up_to([]), None, False)
    assert got.room.notification_count == tables.MAX_COUNTED


DAY = 86_400_000


def test_sql_pruning_forgets_what_the_pure_rule_does_on_random_rooms() -> None:
    rng = random.Random(1616)
    for _ in range(200):
        conn = fresh()
        conn.executescript(receipts.SCHEMA)
        now = 100 * DAY
        stored = []
        for seq in range(1, rng.randint(2, 40)):
            when = now - rng.randint(0, 40) * DAY
            row = Stored((seq, rng.randint(0, 1)), rng.choice([MAIN, "$t1", "$t2"]), when)
            stored.append(row)
            insert(conn, USER, row)
        insert(conn, "@bob:hs", Stored((1, 0), MAIN, 0))  # someone else's: never touched
        marks: list[tuple[str, str, Position]] = []
        for _ in range(rng.randint(0, 4)):
            kind = rng.choice(["m.read", "m.read.private", "m.fully_read"])
            thread = rng.choice(["", MAIN, "$t1", "$t2"])
            mark = (kind, thread, (rng.randint(0, 40), rng.randint(0, 1)))
            marks.append(mark)
            conn.execute(
                "INSERT OR REPLACE INTO receipts (room_id, user_id, receipt_type, thread_id,"
                " event_id, seq, idx, ts, log_seq) VALUES (?, ?, ?, ?, '$x', ?, ?, 0, 0)",
                (ROOM, USER, kind, thread, *mark[2]),
            )
        policy = PrunePolicy(
            min_age_ms=rng.randint(0, 3) * DAY,
            max_age_ms=rng.randint(3, 35) * DAY,
            keep_read=rng.randint(0, 6),
            keep_unread=rng.randint(1, 6),
        )
        read = read_up_to(receipts.read_marks(conn, ROOM, USER))
        expected = doomed(stored, read, now, policy)
        assert tables.prune(conn, USER, ROOM, now, policy) == len(expected)
        left = {
            (int(r[0]), int(r[1]))
            for r in conn.execute("SELECT seq, idx FROM push_actions WHERE user_id = ?", (USER,))
        }
        assert left == {r.position for r in stored} - expected, (marks, policy)
        assert conn.execute("SELECT COUNT(*) FROM push_actions").fetchone()[0] == len(left) + 1
        conn.close()


def insert(conn: sqlite3.Connection, user_id: str, row: Stored) -> None:
    conn.execute(
        "INSERT INTO push_actions (user_id, room_id, stream, seq, idx, thread_id,"
        " highlight, actions, ts) VALUES (?, ?, 'S', ?, ?, ?, 0, '[]', ?)",
        (user_id, ROOM, *row.position, row.thread_id, row.ts),
    )
