"""Globs and exact values of push conditions, from the spec's examples."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from outlast.core.push_match import compile_glob, is_simple, same_value


@pytest.mark.parametrize(
    ("value", "matches"),
    [("Lunch plans", True), ("LUNCH", True), (" lunch", False), ("lunc", False)],
)
def test_spec_topic_example_matches_whole_values(value: str, matches: bool) -> None:
    assert compile_glob("lunc?*").fullmatch(value) is matches


@pytest.mark.parametrize(
    ("body", "matches"),
    [
        ("An example event.", True),
        ("exple", True),  # at the start and end of the body
        ("An exciting triple-whammy", True),  # spans words; '-' is a boundary
        ("examples", False),  # ends inside a word
        ("an_example", False),  # '_' is a word character
        ("textexple", False),  # starts inside a word
    ],
)
def test_spec_body_example_matches_word_bounded_substrings(body: str, matches: bool) -> None:
    assert compile_glob("ex*ple").search_words(body) is matches


def test_word_search_details() -> None:
    room = compile_glob("@room")
    assert room.search_words("hey @room, lunch")
    assert room.search_words("hi@room")  # the pattern starts on a boundary character itself
    assert not room.search_words("@roomy")
    assert compile_glob("alice").search_words("ALICE: hi")
    assert compile_glob("alice").search_words("héllo alice")
    assert compile_glob("café").search_words("un CAFÉ noir")
    assert not compile_glob("alice").search_words("malice")
    assert compile_glob("a?c").search_words("x abc y") and not compile_glob("a?c").search_words(
        "ac"
    )
    assert compile_glob("").fullmatch("") and not compile_glob("").fullmatch("x")
    assert compile_glob("*").fullmatch("") and compile_glob("**").fullmatch("anything")


def test_literal_mode_treats_wildcards_as_characters() -> None:
    name = compile_glob("B*b?", wildcards=False)
    assert name.search_words("hello b*b? there")
    assert not name.search_words("hello bob! there")


def test_glob_agrees_with_a_reference_regex() -> None:
    patterns = ["a*b", "?b*", "*a?a*", "ab", "a**b", "*", "?", "x*y*z"]
    texts = ["", "a", "ab", "aab", "abb", "xayaz", "b", "aba", "AB", "xyz", "a\nb"]
    for pattern in patterns:
        regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
        for text in texts:
            expected = re.fullmatch(regex, text, re.IGNORECASE | re.DOTALL) is not None
            assert compile_glob(pattern).fullmatch(text) is expected, (pattern, text)


def test_hostile_pattern_stays_linear() -> None:
    # A backtracking regex would take polynomial time here; the NFA is linear.
    text = "a" * 20_000
    assert not compile_glob("*a*a*a*a*a*a*a*a*b").search_words(text)
    assert not compile_glob("*a*a*a*a*a*a*a*a*b").fullmatch(text)
    assert compile_glob("*a*a*a*a*a*a*a*a*").fullmatch(text)


def test_exact_values_do_not_cast() -> None:
    assert same_value(True, True) and same_value(None, None) and same_value("x", "x")
    assert not same_value(True, 1) and not same_value(1, True) and not same_value("true", True)
    assert not same_value(1.0, 1) and not same_value([1], [1]) and not same_value({}, {})
    assert is_simple(2**53 - 1) and not is_simple(2**53) and not is_simple(-(2**53))


def test_literal_fast_path_agrees_with_the_nfa() -> None:
    texts = [
        "",
        "alice",
        "Alice!",
        "malice",
        "alice_x",
        "x alice",
        "alicealice",
        "@alice:x",
        "é alice é",
    ]
    for pattern in ("alice", "", "@alice", "alice:x", "e a"):
        fast = compile_glob(pattern)
        assert fast.literal is not None
        nfa = replace(fast, literal=None)
        for text in texts:
            assert fast.fullmatch(text) is nfa.fullmatch(text), (pattern, text)
            assert fast.search_words(text) is nfa.search_words(text), (pattern, text)
    assert compile_glob("a*").literal is None and compile_glob("a?").literal is None
