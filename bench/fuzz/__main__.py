"""``python -m bench.fuzz``: start a server, seed it, fuzz it, check it, report."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench.fuzz.engine import Fuzzer, endpoints
from bench.run import Embedded

# Long-polls bounded at 2 s, so a fuzzed /sync?timeout=... costs seconds, not minutes.
FUZZ_TOML = "\n[sync]\nmax_timeout_ms = 2000\n"


def main() -> int:
    parser = argparse.ArgumentParser(description="Fuzz every endpoint of a real outlast serve")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=None, help="replay a run (derandomized)")
    parser.add_argument("--no-restart", action="store_true", help="skip the restart re-check")
    parser.add_argument("--json-out", default="bench/results/fuzz.json")
    args = parser.parse_args()
    server = Embedded(workers=1, extra_toml=FUZZ_TOML)
    try:
        fuzzer = Fuzzer(server.url)
        fuzzer.seed()
        print(f"fuzzing {len(endpoints())} endpoints with {args.requests} requests", flush=True)
        report = fuzzer.run(args.requests, seed=args.seed)
        problems = fuzzer.verify()
        if not args.no_restart:
            server.restart()
            fuzzer.reconnect()
            problems += [f"after a restart: {p}" for p in fuzzer.verify()]
    finally:
        server.stop()
    summary = {**report.summary(), "data_problems": problems, "when": time.strftime("%F %T")}
    print(json.dumps(summary, indent=2))
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if not report.failures and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
