"""Who projects a PostgreSQL view: its advisory lock (outlast.view.pg.lock)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

from outlast.view.pg.lock import AdvisoryLock

# A process that takes the lock, says so, and keeps it until it is killed.
HOLDER = """
import sys, time
from outlast.view.pg.lock import AdvisoryLock
lock = AdvisoryLock(sys.argv[1])
print("held" if lock.try_acquire() else "refused", flush=True)
time.sleep(120)
"""


def start_holder(dsn: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, dsn], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


def test_one_session_holds_it_and_names_its_process(pg_dsn: str) -> None:
    first, second = AdvisoryLock(pg_dsn), AdvisoryLock(pg_dsn)
    try:
        assert first.holder() is None
        assert first.try_acquire() and first.held
        assert first.try_acquire()  # again: ours already
        assert not second.try_acquire() and not second.held
        assert second.holder() == os.getpid()
        first.release()
        assert not first.held
        assert second.try_acquire()
    finally:
        first.release()
        second.release()


def test_a_killed_holder_hands_the_lock_to_the_waiting_worker(pg_dsn: str) -> None:
    holder = start_holder(pg_dsn)
    waiter = AdvisoryLock(pg_dsn)
    try:
        assert waiter.holder() == holder.pid
        assert not waiter.try_acquire()

        async def scenario() -> None:
            waiting = asyncio.create_task(waiter.acquire())
            await asyncio.sleep(0.5)
            assert not waiting.done()  # blocked in the server while the holder lives
            os.kill(holder.pid, signal.SIGKILL)
            await asyncio.wait_for(waiting, 20)
            assert await waiter.alive()

        asyncio.run(scenario())
        assert waiter.held
        assert waiter.holder() == os.getpid()
    finally:
        waiter.release()
        stop(holder)


def test_a_cancelled_wait_leaves_the_queue(pg_dsn: str) -> None:
    holder = start_holder(pg_dsn)
    gave_up, later = AdvisoryLock(pg_dsn), AdvisoryLock(pg_dsn)
    try:

        async def scenario() -> None:
            waiting = asyncio.create_task(gave_up.acquire())
            await asyncio.sleep(0.5)
            waiting.cancel()
            await asyncio.wait({waiting}, timeout=10)
            assert not gave_up.held
            stop(holder)

            async def taken() -> None:
                while not later.try_acquire():
                    await asyncio.sleep(0.1)

            await asyncio.wait_for(taken(), 20)

        asyncio.run(scenario())
        assert later.held and not gave_up.held
    finally:
        later.release()
        gave_up.release()
        stop(holder)


def test_the_identity_is_the_databases_not_the_dsns(pg_dsn: str) -> None:
    same = pg_dsn.replace("127.0.0.1", "localhost")
    assert AdvisoryLock(pg_dsn).identity() == AdvisoryLock(same).identity()
