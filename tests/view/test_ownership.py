"""Who projects a shared view: the flock on its lock file (outlast.view.ownership)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from outlast.view.ownership import ViewLock, held_elsewhere, lock_path

# A process that takes the lock, says so, and keeps it until it is killed.
HOLDER = """
import sys, time
from pathlib import Path
from outlast.view.ownership import ViewLock
lock = ViewLock(Path(sys.argv[1]))
print("held" if lock.try_acquire() else "refused", flush=True)
time.sleep(60)
"""


def start_holder(view: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(view)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


def test_one_holder_at_a_time_and_the_holder_is_named_in_the_file(tmp_path: Path) -> None:
    view = tmp_path / "view.sqlite"
    first, second = ViewLock(view), ViewLock(view)
    assert first.try_acquire() and first.held
    assert first.try_acquire()  # again: still ours, not refused by our own lock
    assert not second.try_acquire() and not second.held
    assert held_elsewhere(view)
    assert lock_path(view).read_text().strip() == str(os.getpid())
    first.release()
    assert not held_elsewhere(view)
    assert second.try_acquire()
    second.release()


def test_no_lock_file_means_nobody_holds_it(tmp_path: Path) -> None:
    assert not held_elsewhere(tmp_path / "view.sqlite")


async def test_a_waiter_takes_over_when_the_holding_process_is_killed(tmp_path: Path) -> None:
    view = tmp_path / "view.sqlite"
    holder = start_holder(view)
    try:
        lock = ViewLock(view)
        assert not lock.try_acquire()
        waiting = asyncio.create_task(lock.acquire())
        await asyncio.sleep(0.3)
        assert not waiting.done()  # held by a live process: no takeover
        killed_at = time.monotonic()
        os.kill(holder.pid, signal.SIGKILL)
        await asyncio.wait_for(waiting, 10)
        # The kernel hands the lock over when the holder dies, with no polling interval.
        assert time.monotonic() - killed_at < 5
        assert lock.held and lock_path(view).read_text().strip() == str(os.getpid())
        lock.release()
    finally:
        stop(holder)


async def test_a_given_up_wait_does_not_keep_the_lock(tmp_path: Path) -> None:
    view = tmp_path / "view.sqlite"
    first = ViewLock(view)
    assert first.try_acquire()
    gave_up = ViewLock(view)
    waiting = asyncio.create_task(gave_up.acquire())
    await asyncio.sleep(0.1)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    first.release()  # the abandoned waiter's thread gets it, and lets it go again
    third = ViewLock(view)
    deadline = time.monotonic() + 10
    while not third.try_acquire():
        assert time.monotonic() < deadline, "the abandoned wait kept the lock"
        await asyncio.sleep(0.05)
    assert not gave_up.held
    third.release()
