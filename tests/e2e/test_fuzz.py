"""The short fuzzing stage: generated requests to every endpoint of a real server.

The long run is ``python -m bench.fuzz --requests 10000`` (bench/RESULTS.md);
this one is derandomized (the same requests every run, so it cannot flake)
and takes well under a minute.
"""

from __future__ import annotations

from pathlib import Path

from bench.fuzz.engine import Fuzzer, endpoints
from tests.servers import start_outlast

REQUESTS = 1100  # ten per endpoint


def test_fuzzing_every_endpoint_finds_no_500_and_no_hang_and_loses_nothing(
    tmp_path: Path,
) -> None:
    proc = start_outlast(tmp_path / "fuzzed", log_extra="\n[sync]\nmax_timeout_ms = 2000\n")
    try:
        fuzzer = Fuzzer(proc.url, request_timeout=30.0)
        fuzzer.seed()
        report = fuzzer.run(REQUESTS, seed=0)
        assert report.requests == REQUESTS
        assert len(report.endpoints) == len(endpoints()) >= 100
        assert report.failures == {}, report.failures
        assert not any(status >= 500 for status in report.statuses), report.statuses
        assert fuzzer.verify() == []  # still serving, and the victim's data is unchanged
        proc.restart()
        fuzzer.reconnect()
        assert fuzzer.verify() == []  # and so after a restart
        assert "Traceback" not in proc.log_path.read_text(errors="replace")
    finally:
        proc.stop()
