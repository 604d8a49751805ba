"""What every fact is: a frozen dataclass with an op name, and how one is read off the wire.

On the log a fact is a JSON object ``{"op": <op>, ...fields}``; this is the
wire format logs in the field already hold, so it never changes shape: a new
field is optional when read, and a fact written by an older version must
still decode. Decoding checks only what the projector relies on (the types of
the fields); rules about the values stay with the code that applies them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Self


class DecodeError(ValueError):
    """The message is not a well-formed fact of its kind (it is skipped, never applied)."""


class UnknownFact(DecodeError):
    """The op is not one this version knows (written by a newer version: skipped)."""


@dataclass(frozen=True)
class Fact:
    """One durable fact. Subclasses set ``OP`` and define ``fields`` and ``read``."""

    OP: ClassVar[str] = ""

    def fields(self) -> dict[str, Any]:
        """The fact's fields as JSON values, in wire order (the dataclass's), without
        ``op``. A kind whose wire form leaves fields out, or spells them otherwise,
        overrides this."""
        return {f.name: _wire(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def read(cls, d: Fields) -> Self:
        """The fact from its wire fields (DecodeError if they do not fit)."""
        raise NotImplementedError

    def encode(self) -> dict[str, Any]:
        return {"op": self.OP, **self.fields()}


def _wire(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    encode = getattr(value, "encode", None)
    return encode() if callable(encode) and not isinstance(value, str) else value


class Fields:
    """Typed access to a wire object's fields; a wrong type is a DecodeError."""

    def __init__(self, op: str, data: dict[str, Any]) -> None:
        self.op = op
        self.data = data

    def _bad(self, key: str, what: str) -> DecodeError:
        return DecodeError(f"{self.op}: {key} must be {what}")

    def text(self, key: str) -> str:
        value = self.data.get(key)
        if not isinstance(value, str):
            raise self._bad(key, "a string")
        return value

    def opt_text(self, key: str) -> str | None:
        """A string or null (or absent)."""
        value = self.data.get(key)
        if value is not None and not isinstance(value, str):
            raise self._bad(key, "a string or null")
        return value

    def text_or_none(self, key: str) -> str | None:
        """A string; anything else reads as None (a field that never stopped a fact)."""
        value = self.data.get(key)
        return value if isinstance(value, str) else None

    def integer(self, key: str, default: int | None = None) -> int:
        value = self.data.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._bad(key, "an integer")
        return value

    def int_or(self, key: str, default: int) -> int:
        """An integer; anything else reads as ``default``."""
        value = self.data.get(key, default)
        return value if isinstance(value, int) and not isinstance(value, bool) else default

    def flag(self, key: str) -> bool:
        """Truthiness, as the field was always read (absent: false)."""
        return bool(self.data.get(key, False))

    def obj(self, key: str) -> dict[str, Any]:
        value = self.data.get(key)
        if not isinstance(value, dict):
            raise self._bad(key, "an object")
        return value

    def opt_obj(self, key: str) -> dict[str, Any] | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, dict):
            raise self._bad(key, "an object or null")
        return value

    def items(self, key: str) -> list[Any]:
        value = self.data.get(key)
        if not isinstance(value, list):
            raise self._bad(key, "a list")
        return value

    def texts(self, key: str) -> list[str]:
        value = self.items(key)
        if not all(isinstance(v, str) for v in value):
            raise self._bad(key, "a list of strings")
        return value

    def value(self, key: str) -> Any:
        return self.data.get(key)

    def has(self, key: str) -> bool:
        return key in self.data
