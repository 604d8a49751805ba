"""Wake parked /sync long-polls when the projector applies something they can see."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


class Notifier:
    """Per-user wake-ups. Cost of a wake is proportional to the users affected,
    not to the number of parked connections."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self.closed = False

    def close(self) -> None:
        """Shutting down: release every parked long-poll now, and park no more."""
        self.closed = True
        for bucket in self._waiters.values():
            for event in bucket:
                event.set()

    def waiting(self) -> int:
        return sum(len(v) for v in self._waiters.values())

    def notify(self, user_ids: Iterable[str]) -> None:
        for user_id in user_ids:
            for event in self._waiters.get(user_id, ()):
                event.set()

    def notify_all(self) -> None:
        """Wake every parked long-poll (who is concerned is unknown): each answers or re-parks."""
        for bucket in self._waiters.values():
            for event in bucket:
                event.set()

    async def wait(self, user_id: str, timeout: float) -> bool:
        """Park until ``notify`` names this user or ``timeout`` passes."""
        if timeout <= 0 or self.closed:
            return False
        event = asyncio.Event()
        bucket = self._waiters.setdefault(user_id, set())
        bucket.add(event)
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            bucket.discard(event)
            if not bucket:
                self._waiters.pop(user_id, None)
