"""The matching primitives of push rules: case-insensitive globs and exact values.

Spec: appendices "Glob-style matching" (``*`` is zero or more characters, ``?``
exactly one); Client-Server API, push conditions ``event_match``,
``event_property_is`` and ``event_property_contains``. Property paths are in
``outlast/core/paths.py``.

Globs are matched by a bit-parallel NFA rather than by translating them to a
regular expression: a user's pattern such as ``*a*a*a*a*b`` would make a
backtracking regex take polynomial time in the message length, on every
message the user receives. Here the cost is linear in the text (times the
pattern length over the machine word), whatever the pattern.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

MAX_SAFE_INT = 2**53 - 1
_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def is_simple(value: Any) -> bool:
    """A non-compound canonical JSON value: string, bool, null, or an int in JSON's safe range."""
    if value is None or isinstance(value, str | bool):
        return True
    return isinstance(value, int) and -MAX_SAFE_INT <= value <= MAX_SAFE_INT


def same_value(a: Any, b: Any) -> bool:
    """Exact equality without casts: ``true`` is not ``1``, ``"1"`` is not ``1``."""
    return is_simple(a) and is_simple(b) and type(a) is type(b) and a == b


def _is_word(char: str) -> bool:
    return char in _WORD


def _boundary(text: str, i: int) -> bool:
    """Is position ``i`` (between ``text[i-1]`` and ``text[i]``) a word boundary?"""
    return i == 0 or i == len(text) or not _is_word(text[i - 1]) or not _is_word(text[i])


@dataclass(frozen=True)
class Glob:
    """A compiled, case-insensitive glob (or a literal, for display names)."""

    length: int  # pattern positions; bit ``length`` set means "matched"
    literal_masks: Mapping[str, int]  # char -> positions that consume it
    any_mask: int  # positions holding ``?``
    star_mask: int  # positions holding ``*``
    needle: str  # the longest wildcard-free run: a cheap "cannot match" test
    literal: str | None  # the whole pattern when it has no wildcards: matched with str methods

    def _closure(self, states: int) -> int:
        # Runs of stars are collapsed when compiling, so one step reaches past a star.
        return states | ((states & self.star_mask) << 1)

    def _step(self, states: int, char: str) -> int:
        consume = self.literal_masks.get(char, 0) | self.any_mask
        return self._closure(((states & consume) << 1) | (states & self.star_mask))

    def fullmatch(self, text: str) -> bool:
        """Does the pattern match the whole of ``text``?"""
        text = text.lower()
        if self.literal is not None:
            return text == self.literal
        if self.needle not in text:
            return False
        states = self._closure(1)
        for char in text:
            states = self._step(states, char)
            if not states:
                return False
        return bool(states >> self.length & 1)

    def search_words(self, text: str) -> bool:
        """Does it match a substring that starts and ends at a word boundary?

        A boundary is the start or end of the text or a character outside
        ``[A-Za-z0-9_]``; the substring may begin or end on such a character
        itself (so ``@room`` is found in ``hi@room``), as Synapse does.
        """
        text = text.lower()
        if self.literal is not None:
            return self._find_literal(text, self.literal)
        if self.needle not in text:
            return False
        accept = 1 << self.length
        start = self._closure(1)
        states = 0
        n = len(text)
        for i in range(n + 1):
            if _boundary(text, i):
                states |= start
                if states & accept:
                    return True
            if i == n:
                return False
            states = self._step(states, text[i])
        return False

    @staticmethod
    def _find_literal(text: str, literal: str) -> bool:
        at = text.find(literal)
        while at != -1:
            if _boundary(text, at) and _boundary(text, at + len(literal)):
                return True
            at = text.find(literal, at + 1)
        return False


@lru_cache(maxsize=4096)
def compile_glob(pattern: str, wildcards: bool = True) -> Glob:
    """Compile ``pattern``; with ``wildcards=False`` every character is literal."""
    chars: list[str] = []
    for char in pattern.lower():
        if wildcards and char == "*" and chars and chars[-1] == "*":
            continue
        chars.append(char)
    masks: dict[str, int] = {}
    any_mask = star_mask = 0
    for position, char in enumerate(chars):
        bit = 1 << position
        if wildcards and char == "*":
            star_mask |= bit
        elif wildcards and char == "?":
            any_mask |= bit
        else:
            masks[char] = masks.get(char, 0) | bit
    runs = [""]
    for char in chars:
        if wildcards and char in "*?":
            runs.append("")
        else:
            runs[-1] += char
    literal = "".join(chars) if not any_mask and not star_mask else None
    return Glob(len(chars), masks, any_mask, star_mask, max(runs, key=len), literal)
