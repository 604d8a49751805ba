"""Warnings that can come once per message, said at most once a minute.

Some faults are per message by nature: a push delivered while its work queue's
leader moved away cannot confirm its ack, and under load or a leader election
that is every message in flight. One line per message buries the log (a
maintenance drill wrote thousands) without saying more than one line with a
count does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

INTERVAL_S = 60.0


class Throttled:
    """Logs the first warning, then at most one per ``interval`` with how many were held back."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = INTERVAL_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.monotonic = monotonic
        self.held = 0
        self._last: float | None = None

    def warning(self, msg: str, *args: Any) -> bool:
        """Log this warning unless one went out less than ``interval`` ago; True if logged."""
        now = self.monotonic()
        if self._last is not None and now - self._last < self.interval:
            self.held += 1
            return False
        if self.held:
            msg += " (and %d more like it in the last %.0f s)"
            args = (*args, self.held, now - self._last if self._last is not None else 0.0)
        self.logger.warning(msg, *args)
        self._last, self.held = now, 0
        return True
