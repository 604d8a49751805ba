"""Sync and pagination tokens.

A sync token (``s…``) lists one applied sequence per stream, in the fixed
order of :meth:`outlast.log.names.Names.streams`. Stream sequences are the same
at every site, so a token issued by one site is valid at any other.

A pagination token (``t<seq>_<idx>``) is a boundary in one room's order: the
point just before the event at position (seq, idx). A sync token can stand in
for it: the boundary just after everything its partition had applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from outlast.core.errors import MatrixError

Position = tuple[int, int]


def _digits(value: str, max_len: int) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts e.g. "²", which ``int`` rejects."""
    return 0 < len(value) < max_len and value.isascii() and value.isdigit()


def _invalid(token: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", f"invalid token {token[:64]!r}")


@dataclass(frozen=True)
class SyncToken:
    """Log positions, plus a counter for ephemeral data (typing) held in memory.

    The ephemeral counter belongs to one worker; a token carried to another
    worker or site simply makes that worker send its current typing state.
    """

    positions: tuple[int, ...]
    ephemeral: int = 0

    def encode(self) -> str:
        base = "s" + "_".join(str(p) for p in self.positions)
        return f"{base}.{self.ephemeral}" if self.ephemeral else base

    def get(self, streams: Sequence[str], stream: str) -> int:
        return self.positions[list(streams).index(stream)]


def parse_sync_token(token: str, stream_count: int) -> SyncToken:
    if not token.startswith("s") or len(token) > 2048:
        raise _invalid(token)
    body, _, ephemeral = token[1:].partition(".")
    if ephemeral and not _digits(ephemeral, 20):
        raise _invalid(token)
    parts = body.split("_")
    if len(parts) != stream_count or not all(_digits(p, 20) for p in parts):
        raise _invalid(token)
    return SyncToken(tuple(int(p) for p in parts), int(ephemeral) if ephemeral else 0)


def encode_boundary(position: Position) -> str:
    return f"t{position[0]}_{position[1]}"


def parse_boundary(token: str, sync_position: int | None = None) -> Position:
    """Parse ``t…``; for an ``s…`` token, pass the room partition's sequence from it."""
    if token.startswith("t"):
        seq, _, idx = token[1:].partition("_")
        if _digits(seq, 20) and _digits(idx, 10):
            return int(seq), int(idx)
        raise _invalid(token)
    if sync_position is not None:
        return sync_position + 1, 0
    raise _invalid(token)
