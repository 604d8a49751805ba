import logging

import pytest

from outlast.ops.throttle import Throttled


def test_the_first_warning_goes_out_then_one_per_interval_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    throttled = Throttled(logging.getLogger("t"), interval=60.0, monotonic=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="t"):
        assert throttled.warning("push of %s unconfirmed", "a:1")
        for seq in range(2, 6):
            now[0] += 1.0
            assert not throttled.warning("push of %s unconfirmed", f"a:{seq}")
        now[0] = 161.0
        assert throttled.warning("push of %s unconfirmed", "a:6")
        now[0] = 300.0
        assert throttled.warning("push of %s unconfirmed", "a:7")
    assert [r.getMessage() for r in caplog.records] == [
        "push of a:1 unconfirmed",
        "push of a:6 unconfirmed (and 4 more like it in the last 61 s)",
        "push of a:7 unconfirmed",
    ]
