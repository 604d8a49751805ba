"""Which of a site's workers projects into their shared view: whoever holds its lock file.

The lock is an exclusive ``flock`` on ``<view>.lock``. The kernel releases
it when the holding process exits, however it exits (SIGKILL included), and
wakes the next waiter at once, so ownership needs no election, no lease
renewal and no clock: a worker waiting for it takes over as soon as the
owner is gone. The lock file's contents (the owner's pid) are only for
operators; the lock is what counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import threading
from pathlib import Path
from typing import Protocol


class Ownership(Protocol):
    """Who projects a shared view: the lock file here, an advisory lock on PostgreSQL
    (outlast/view/pg/lock.py). Held by at most one process; freed when it dies."""

    @property
    def held(self) -> bool: ...

    def try_acquire(self) -> bool: ...

    async def acquire(self) -> None: ...

    def release(self) -> None: ...


def lock_path(view_path: Path) -> Path:
    return view_path.with_name(view_path.name + ".lock")


class ViewLock:
    """The exclusive lock on one view's lock file, held by at most one process."""

    def __init__(self, view_path: Path) -> None:
        self.path = lock_path(view_path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    def _took(self, fd: int) -> None:
        self._fd = fd
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; True if this process holds it now."""
        if self._fd is not None:
            return True
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._took(fd)
        return True

    async def acquire(self) -> None:
        """Wait until this process holds the lock.

        A daemon thread blocks in ``flock`` (the kernel wakes it when the
        holder goes); cancelling this wait leaves that thread blocked until the
        process exits, and a lock it gets after the wait was given up is
        released straight away.
        """
        if self.try_acquire():
            return
        loop = asyncio.get_running_loop()
        got: asyncio.Future[int] = loop.create_future()

        def deliver(fd: int) -> None:
            if got.done():
                os.close(fd)
            else:
                got.set_result(fd)

        def wait() -> None:
            fd = self._open()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                loop.call_soon_threadsafe(deliver, fd)
            except RuntimeError:  # the loop has closed: nobody wants it any more
                os.close(fd)

        threading.Thread(target=wait, name="view-lock", daemon=True).start()
        self._took(await got)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the flock


def held_elsewhere(view_path: Path) -> bool:
    """Whether another process holds the view's lock (a running shared-view worker)."""
    path = lock_path(view_path)
    if not path.exists():
        return False
    probe = ViewLock(view_path)
    if probe.try_acquire():
        probe.release()
        return False
    return True
