"""The sliding sync ``pos`` token: log positions plus a reference to connection state.

``c<ref>-<sync token>``, for example ``c1042-s57_12_9.3``:

- the sync token part is exactly today's ``/sync`` token
  (:class:`outlast.core.tokens.SyncToken`): one applied sequence per stream,
  identical at every site, so "what changed since ``pos``" has the same
  answer at any site; it also serves as a ``from`` token for ``/messages``
  and ``/relations``, as the MSC allows;
- ``ref`` names the stored :class:`~outlast.core.sliding.connection.ConnectionState`
  that was current when the response was made (``0``: none, a new
  connection). Phase 2 stores that state as a fact on the log and uses its
  log sequence as ``ref``, so any site can read it (after waiting for its
  view to reach that sequence) and a repeated or retried request with the
  same ``pos`` finds the same state.

A ``pos`` that cannot be parsed, or whose state is gone, answers
``400 M_UNKNOWN_POS``: the client starts a new connection, which the MSC
defines as always safe.
"""

from __future__ import annotations

from dataclasses import dataclass

from outlast.core.errors import MatrixError
from outlast.core.sliding.connection import unknown_pos
from outlast.core.tokens import SyncToken, parse_sync_token


@dataclass(frozen=True)
class Pos:
    state_ref: int
    sync: SyncToken

    def encode(self) -> str:
        return f"c{self.state_ref}-{self.sync.encode()}"


def parse_pos(token: str, stream_count: int) -> Pos:
    """Parse a ``pos``; any malformed token is ``M_UNKNOWN_POS``, never a 500."""
    head, sep, rest = token.partition("-")
    ref = head[1:]
    if not (sep and head.startswith("c") and ref.isascii() and ref.isdigit() and len(ref) < 20):
        raise unknown_pos()
    try:
        sync = parse_sync_token(rest, stream_count)
    except MatrixError as exc:
        raise unknown_pos() from exc
    return Pos(int(ref), sync)


def sync_part(token: str) -> str:
    """The ``s…`` token inside a ``pos``, for endpoints that take sync tokens."""
    return token.partition("-")[2] if token.startswith("c") else token
