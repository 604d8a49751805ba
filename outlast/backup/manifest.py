"""The manifest of a backup, its record format, and the point-in-time cut: plain data.

Each stream is one file of JSON lines, one stored message per line, in
sequence order: ``{"seq", "t" (ns since the epoch), "s" (subject), "h"
(headers, when any), "d" (payload, base64)}``. Text rather than a binary
format, so a backup can be inspected with ``head`` and ``jq``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

FORMAT = "outlast-backup/1"


@dataclass(frozen=True)
class Deployment:
    """What defines the deployment the streams belong to: restored as its configuration."""

    server_name: str
    prefix: str
    partitions: int
    media_bucket: str


@dataclass(frozen=True)
class StreamEntry:
    """One stream in a backup: the bounds captured, what was read, and the file's checksum."""

    name: str
    role: str  # "log" (in sync tokens), "control" (drills) or "media" (the object store)
    file: str
    first_seq: int
    last_seq: int  # the stream's last sequence at the backup point
    messages: int  # messages written to the file (all those at or below last_seq)
    bytes: int
    sha256: str
    first_time_ns: int
    last_time_ns: int
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    format: str
    created: str
    source: str
    deployment: Deployment
    streams: tuple[StreamEntry, ...]
    duration_seconds: float

    @property
    def total_bytes(self) -> int:
        return sum(s.bytes for s in self.streams)

    @property
    def total_messages(self) -> int:
        return sum(s.messages for s in self.streams)

    def stream(self, name: str) -> StreamEntry:
        for entry in self.streams:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def encode(self) -> bytes:
        raw = asdict(self)
        raw["total_bytes"] = self.total_bytes
        raw["total_messages"] = self.total_messages
        return (json.dumps(raw, indent=2, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def decode(cls, data: bytes) -> Manifest:
        raw = json.loads(data)
        if raw.get("format") != FORMAT:
            raise ValueError(f"not an {FORMAT} manifest (format {raw.get('format')!r})")
        return cls(
            format=raw["format"],
            created=str(raw["created"]),
            source=str(raw.get("source", "")),
            deployment=Deployment(**raw["deployment"]),
            streams=tuple(StreamEntry(**s) for s in raw["streams"]),
            duration_seconds=float(raw.get("duration_seconds", 0.0)),
        )


def encode_record(
    seq: int, time_ns: int, subject: str, data: bytes, headers: dict[str, str]
) -> bytes:
    raw: dict[str, Any] = {"seq": seq, "t": time_ns, "s": subject}
    if headers:
        raw["h"] = headers
    raw["d"] = base64.b64encode(data).decode("ascii")
    return (json.dumps(raw, separators=(",", ":")) + "\n").encode("utf-8")


@dataclass(frozen=True)
class Record:
    seq: int
    time_ns: int
    subject: str
    data: bytes
    headers: dict[str, str]


def decode_record(line: bytes) -> Record:
    raw = json.loads(line)
    return Record(
        seq=int(raw["seq"]),
        time_ns=int(raw["t"]),
        subject=str(raw["s"]),
        data=base64.b64decode(raw["d"]),
        headers={str(k): str(v) for k, v in (raw.get("h") or {}).items()},
    )


def record_seq(line: bytes) -> int:
    """A record's sequence, checking that the line is a whole record (without decoding its
    payload: verification reads every line)."""
    raw = json.loads(line)
    if not isinstance(raw.get("d"), str) or not isinstance(raw.get("s"), str):
        raise ValueError("record without subject or payload")
    return int(raw["seq"])


# --- the point-in-time cut ------------------------------------------------------------


@dataclass(frozen=True)
class Cut:
    """Which messages a restore applies: all, those up to a time, or up to per-stream sequences
    (streams not named are restored whole)."""

    until_ns: int | None = None
    until_seq: dict[str, int] = field(default_factory=dict)

    def keeps(self, stream: str, seq: int, time_ns: int) -> bool:
        if self.until_ns is not None and time_ns > self.until_ns:
            return False
        limit = self.until_seq.get(stream)
        return limit is None or seq <= limit

    def end(self, entry: StreamEntry, last_kept: int, dropped: bool) -> int:
        """The restored stream's last sequence: the backup's, unless the cut ends it sooner."""
        if self.until_ns is not None and dropped:
            return last_kept
        limit = self.until_seq.get(entry.name)
        return entry.last_seq if limit is None else min(limit, entry.last_seq)


def parse_time(text: str) -> int:
    """``--until``: ISO 8601 (naive means UTC) or seconds since the epoch, as ns."""
    text = text.strip()
    try:
        return int(float(text) * 1_000_000) * 1000
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"--until {text!r}: not an ISO 8601 time or epoch seconds") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1_000_000) * 1000


def parse_until_seq(text: str, known: list[str]) -> dict[str, int]:
    """``--until-seq STREAM=SEQ,...`` against the backup's stream names."""
    cut: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, seq = part.partition("=")
        if not sep or not seq.strip().isdigit():
            raise ValueError(f"--until-seq {part!r}: expected STREAM=SEQ")
        if name.strip() not in known:
            raise ValueError(
                f"--until-seq: no stream {name.strip()!r} in the backup ({', '.join(known)})"
            )
        cut[name.strip()] = int(seq)
    if not cut:
        raise ValueError("--until-seq: expected STREAM=SEQ,...")
    return cut
