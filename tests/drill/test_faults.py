"""The corrupt fault's damage, done to real files laid out as nats-server lays them out."""

from __future__ import annotations

from pathlib import Path

from outlast.drill.faults import FLIP_BYTES, TRUNCATE_BYTES, corrupt_streams, damage_block


def block(path: Path, size: int) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = bytes(i % 251 for i in range(size))
    path.write_bytes(data)
    return data


def test_damage_block_flips_the_middle_and_cuts_the_tail(tmp_path: Path) -> None:
    original = block(tmp_path / "1.blk", 1000)
    done = damage_block(tmp_path / "1.blk")
    after = (tmp_path / "1.blk").read_bytes()
    assert done == {
        "file": "1.blk",
        "bytes": 1000,
        "flipped_at": 500,
        "flipped": FLIP_BYTES,
        "cut": TRUNCATE_BYTES,
    }
    assert len(after) == 1000 - TRUNCATE_BYTES
    assert after[:500] == original[:500]
    assert after[500 : 500 + FLIP_BYTES] == bytes(
        b ^ 0xFF for b in original[500 : 500 + FLIP_BYTES]
    )
    assert after[500 + FLIP_BYTES :] == original[500 + FLIP_BYTES : 1000 - TRUNCATE_BYTES]


def test_corrupt_streams_damages_each_streams_last_block_only(tmp_path: Path) -> None:
    store = tmp_path / "nats-0" / "jetstream" / "jetstream"  # store_dir, then nats' own
    first = block(store / "APP" / "streams" / "ROOMS_0" / "msgs" / "9.blk", 400)
    block(store / "APP" / "streams" / "ROOMS_0" / "msgs" / "10.blk", 400)  # the last: 10 > 9
    (store / "APP" / "streams" / "EMPTY" / "msgs").mkdir(parents=True)
    block(store / "APP" / "streams" / "USERS" / "msgs" / "1.blk", 200)
    meta = block(store / "$SYS" / "streams" / "X" / "msgs" / "1.blk", 200)
    done = corrupt_streams(tmp_path)
    assert [(d["stream"], d["file"]) for d in done] == [("ROOMS_0", "10.blk"), ("USERS", "1.blk")]
    assert (store / "APP" / "streams" / "ROOMS_0" / "msgs" / "9.blk").read_bytes() == first
    assert (store / "$SYS" / "streams" / "X" / "msgs" / "1.blk").read_bytes() == meta
    assert len((store / "APP" / "streams" / "USERS" / "msgs" / "1.blk").read_bytes()) == 150
