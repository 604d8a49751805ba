"""The supervisor starts a dead worker again in a living site, and only there."""

from __future__ import annotations

from outlast.cluster.revive import Revival


def test_a_worker_gone_past_the_grace_is_started_again() -> None:
    r = Revival(grace=3.0)
    assert r.due("a", [1], rest_alive=True, now=0.0) == []  # first seen gone
    assert r.due("a", [1], rest_alive=True, now=2.0) == []  # within the grace
    assert r.due("a", [1], rest_alive=True, now=3.5) == [1]
    assert r.due("a", [], rest_alive=True, now=4.0) == []
    assert r.restarts == 1


def test_a_dead_site_is_not_revived_worker_by_worker() -> None:
    r = Revival(grace=1.0)
    assert r.due("a", [0], rest_alive=True, now=0.0) == []  # the fire kills the worker...
    assert r.due("a", [0, 1], rest_alive=False, now=5.0) == []  # ...and the node
    assert r.due("a", [0, 1], rest_alive=False, now=50.0) == []
    # After a power-on the slot starts afresh: a new grace, not an immediate start.
    assert r.due("a", [0], rest_alive=True, now=60.0) == []
    assert r.due("a", [0], rest_alive=True, now=61.5) == [0]


def test_a_crash_loop_is_given_up_and_a_site_action_forgives_it() -> None:
    r = Revival(grace=0.0, max_exits=3, window=60.0)
    started = []
    now = 0.0
    for _ in range(10):
        r.due("b", [0], rest_alive=True, now=now)  # seen gone
        started += r.due("b", [0], rest_alive=True, now=now + 0.1)
        now += 1.0
    assert started == [0, 0, 0]
    assert r.given_up("b") == [0]
    r.forget("b")  # a restart or rebuild of the site
    assert r.given_up("b") == []
    r.due("b", [0], rest_alive=True, now=now)
    assert r.due("b", [0], rest_alive=True, now=now + 0.1) == [0]


def test_sites_are_counted_apart() -> None:
    r = Revival(grace=0.0)
    r.due("a", [0], rest_alive=True, now=0.0)
    r.due("b", [0], rest_alive=True, now=0.0)
    assert r.due("a", [0], rest_alive=True, now=1.0) == [0]
    assert r.due("b", [0], rest_alive=True, now=1.0) == [0]
