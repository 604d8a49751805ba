"""Real fire drills through the CLI, against real local three-site clusters.

One cluster takes a power loss, a partition and a freeze, one after another:
each drill must leave it healthy for the next. A fire with --rebuild gets its
own cluster (the burned site comes back with a new identity). Finally a drill
without --cluster starts and stops a cluster of its own, leaving no process.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from outlast.log.engine import nats_server_binary
from tests.cluster.harness import Cluster, start_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

USERS, ROOMS, RATE = 6, 3, 30
DURATION, AT, HEAL_AFTER = 20, 4, 6
DRILL_TIMEOUT = 420  # seconds for one drill subprocess, rebuild included
GAP_BOUND = 60.0  # generous: elections take 4-9 s, a loaded CI box more

# Drill ids per fault, as the drills on the shared cluster ran (for the history test).
SHARED_DRILLS: dict[str, str] = {}


def outlast(
    *args: str, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "outlast", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def fire_drill(
    cluster_file: Path | None,
    fault: str,
    out: Path,
    *extra: str,
    users: int = USERS,
    rooms: int = ROOMS,
    rate: float = RATE,
    duration: float = DURATION,
    at: float = AT,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    args = ["drill", "fire"]
    if cluster_file is not None:
        args += ["--cluster", str(cluster_file)]
    args += [
        "--users",
        str(users),
        "--rooms",
        str(rooms),
        "--rate",
        str(rate),
        "--duration",
        str(duration),
        "--at",
        str(at),
        "--fault",
        fault,
        "--json-out",
        str(out),
        *extra,
    ]
    proc = outlast(*args, timeout=DRILL_TIMEOUT, env=env)
    # The terminal summary is what an operator reads: show it in the test output.
    print(proc.stdout)
    assert out.exists(), (
        f"no JSON report (exit {proc.returncode})\n{tail(proc.stdout)}\n{tail(proc.stderr)}"
    )
    report: dict[str, Any] = json.loads(out.read_text())
    return proc, report


def assert_drill_passed(
    proc: subprocess.CompletedProcess[str], report: dict[str, Any], fault: str, users: int = USERS
) -> None:
    v, gap = report["verdict"], report.get("write_gap") or {}
    context = f"\nverdict {v}\nwrite gap {gap}\n{tail(proc.stdout)}\n{tail(proc.stderr)}"
    assert proc.returncode == 0, f"drill exited {proc.returncode}" + context
    assert report["fault"] == fault
    assert (v["lost"], v["duplicated"], v["reordered"]) == (0, 0, 0), context
    assert v["ok"] is True, context
    assert v["acknowledged"] > 0, context
    assert report["counters"]["acked"] >= v["acknowledged"]
    # The write gap is measured, and every client wrote again after the fault.
    assert gap, "no write gap: no client was acknowledged after the fault" + context
    assert gap["clients"] == users, context
    assert 0 <= gap["min"] <= gap["median"] <= gap["p99"] <= gap["max"] < GAP_BOUND, context
    # Right after the fault each client read its first acknowledged write back at the
    # other survivors: never stale.
    own = report["own_write_reads"]
    assert own["clients"] == users and own["reads"] >= users, own
    assert own["stale"] == 0, own
    assert own["fresh"] + own["unavailable"] == own["reads"], own
    assert "STALE: 0" in proc.stdout
    # The engine the drill ran on is named, and it is the one installed.
    version = report["nats_server_version"]
    assert re.search(r"v\d+\.\d+\.\d+", version), version
    installed = subprocess.run(
        [nats_server_binary(), "--version"], capture_output=True, text=True, timeout=30
    )
    installed_version = re.search(r"v\d+\.\d+\.\d+", installed.stdout + installed.stderr)
    assert installed_version is not None and installed_version.group(0) in version, version
    # The summary printed on stdout carries the same figures.
    assert f"Fire drill {report['id']}" in proc.stdout
    assert "LOST: 0   DUPLICATED: 0   REORDERED: 0" in proc.stdout
    assert "verdict: PASS" in proc.stdout


def health_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url + "/_outlast/health", timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def wait_healthy(cluster: Cluster, timeout: float = 120) -> None:
    """Every site up per the supervisor and answering its health check with 200."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            sites = cluster.status()["sites"]
            last = {s["name"]: (s["status"], health_status(s["url"])) for s in sites}
            if all(state == ("up", 200) for state in last.values()):
                return
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.5)
    raise AssertionError(f"cluster not healthy within {timeout}s: {last}")


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One cluster for the power, partition, freeze and maintenance drills, one after another."""
    cluster = start_cluster(tmp_path_factory.mktemp("drill-shared") / "cluster")
    try:
        yield cluster
    finally:
        cluster.down()


@pytest.fixture
def fresh_cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = start_cluster(tmp_path / "cluster")
    try:
        yield cluster
    finally:
        cluster.down()


@pytest.mark.parametrize("fault", ["power", "partition", "freeze"])
def test_temporary_fault_drill(shared_cluster: Cluster, fault: str, tmp_path: Path) -> None:
    wait_healthy(shared_cluster)  # the previous drill left it healthy (asserted there too)
    extra = ["--heal-after", str(HEAL_AFTER), "--quiet"]
    if fault == "power":
        extra += ["--plot", str(tmp_path / "power.png")]
    proc, report = fire_drill(
        shared_cluster.dir / "cluster.json", fault, tmp_path / f"{fault}.json", *extra
    )
    SHARED_DRILLS[fault] = report["id"]
    assert_drill_passed(proc, report, fault)
    assert report["site"] in shared_cluster.names
    assert report["recovered_at_s"] is not None
    assert report["recovered_at_s"] >= report["fault_at_s"] + HEAL_AFTER - 0.5
    assert "rebuild" not in report
    # A temporary fault is judged at every site, the faulted one included.
    assert f"fault undone at t={report['recovered_at_s']:.1f}s" in proc.stdout
    if fault == "power":
        png = (tmp_path / "power.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    # The drill leaves the cluster as it found it: every site up and healthy.
    wait_healthy(shared_cluster, timeout=60)


def test_history_lists_the_drills_just_run(shared_cluster: Cluster) -> None:
    if len(SHARED_DRILLS) < 3:
        pytest.skip("needs the power, partition and freeze drills of this module")
    cluster_file = str(shared_cluster.dir / "cluster.json")
    listing = outlast("drill", "history", "--cluster", cluster_file, timeout=120)
    assert listing.returncode == 0, listing.stderr
    print(listing.stdout)
    for fault, drill_id in SHARED_DRILLS.items():
        line = next((ln for ln in listing.stdout.splitlines() if drill_id in ln), None)
        assert line is not None, f"{fault} drill {drill_id} not listed:\n{listing.stdout}"
        assert fault in line and "lost 0" in line and "dup 0" in line and "PASS" in line
    assert re.search(r"^\d+ drill\(s\), read through site [a-z]:", listing.stdout, re.M)

    as_json = outlast("drill", "history", "--cluster", cluster_file, "--json", timeout=120)
    assert as_json.returncode == 0, as_json.stderr
    records = json.loads(as_json.stdout)
    assert isinstance(records, list)
    by_id = {r["id"]: r for r in records}
    for fault, drill_id in SHARED_DRILLS.items():
        record = by_id[drill_id]
        assert record["fault"] == fault
        assert record["verdict"]["ok"] is True and record["verdict"]["lost"] == 0
        assert record["write_gap"]["max"] < GAP_BOUND
    # Stored in the order they ran.
    order = [r["id"] for r in records if r["id"] in SHARED_DRILLS.values()]
    assert order == [SHARED_DRILLS[f] for f in ("power", "partition", "freeze")]


def test_maintenance_drill_rolls_every_site_under_load(
    shared_cluster: Cluster, tmp_path: Path
) -> None:
    """Planned work measured like a fault: every site drained and restarted in turn."""
    wait_healthy(shared_cluster)
    before = {name: shared_cluster.site(name)["pids"] for name in shared_cluster.names}
    proc, report = fire_drill(
        shared_cluster.dir / "cluster.json",
        "maintenance",
        tmp_path / "maintenance.json",
        "--quiet",
        duration=30,
    )
    assert_drill_passed(proc, report, "maintenance")
    assert report["site"] == "all"
    roll = report["maintenance"]
    assert [r["site"] for r in roll["sites"]] == shared_cluster.names
    for restarted in roll["sites"]:
        assert restarted["drain"]["site"] == restarted["site"]
    assert report["recovered_at_s"] is not None and report["recovered_at_s"] > report["fault_at_s"]
    assert "rolling restart of every site in" in proc.stdout
    # Every site really restarted (new processes), and all are back and healthy.
    wait_healthy(shared_cluster, timeout=60)
    for name in shared_cluster.names:
        assert set(shared_cluster.site(name)["pids"]).isdisjoint(before[name]), name


def test_fire_with_rebuild(fresh_cluster: Cluster, tmp_path: Path) -> None:
    before = {s["name"]: s["node"] for s in fresh_cluster.description["sites"]}
    proc, report = fire_drill(
        fresh_cluster.dir / "cluster.json", "fire", tmp_path / "fire.json", "--rebuild", "--quiet"
    )
    assert_drill_passed(proc, report, "fire")
    victim = report["site"]
    assert report["recovered_at_s"] is None
    rebuild = report["rebuild"]
    assert rebuild["identical"] is True, rebuild
    assert rebuild["site"] == victim
    assert rebuild["replaced"] == before[victim]
    assert rebuild["node"] != before[victim]  # a new identity, never the burned one's
    assert "timelines through it identical: True" in proc.stdout
    # The rebuilt site, found through the refreshed cluster.json, is healthy.
    site = fresh_cluster.site(victim)
    assert site["node"] == rebuild["node"]
    assert health_status(site["url"]) == 200
    wait_healthy(fresh_cluster, timeout=60)
    # Its record is on the log, readable like any other.
    listing = outlast(
        "drill",
        "history",
        "--cluster",
        str(fresh_cluster.dir / "cluster.json"),
        "--json",
        timeout=120,
    )
    assert listing.returncode == 0, listing.stderr
    ids = [r["id"] for r in json.loads(listing.stdout)]
    assert report["id"] in ids


# -- a drill that brings its own cluster -----------------------------------------------------


def processes_mentioning(text: str) -> dict[int, str]:
    """Live processes whose command line contains ``text`` (zombies excluded)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found[int(entry.name)] = cmdline.strip()
    return found


def test_drill_without_cluster_starts_and_stops_its_own(tmp_path: Path) -> None:
    # The drill makes its cluster directory with tempfile under TMPDIR: point that
    # at this test's directory, so every process of that cluster names it.
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = tmp_path / "own.json"
    env = {**os.environ, "TMPDIR": str(scratch)}
    args = [
        sys.executable,
        "-m",
        "outlast",
        "drill",
        "fire",
        "--users",
        "3",
        "--rooms",
        "2",
        "--rate",
        "10",
        "--duration",
        "10",
        "--at",
        "3",
        "--json-out",
        str(out),
        "--push",  # with a push gateway in the drill, and notifications judged
    ]  # a fire
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    seen: dict[int, str] = {}
    try:
        with open(stdout, "w") as so, open(stderr, "w") as se:
            drill = subprocess.Popen(args, stdout=so, stderr=se, stdin=subprocess.DEVNULL, env=env)
            try:
                deadline = time.monotonic() + DRILL_TIMEOUT
                while drill.poll() is None:
                    seen.update(processes_mentioning(str(scratch)))
                    if time.monotonic() > deadline:
                        raise AssertionError("drill without --cluster did not finish in time")
                    time.sleep(0.5)
            finally:
                if drill.poll() is None:
                    drill.kill()
                    drill.wait()
        err = stderr.read_text()
        print(stdout.read_text())
        assert drill.returncode == 0, (
            f"exit {drill.returncode}\n{tail(stdout.read_text())}\n{tail(err)}"
        )
        # It said where its cluster lived, and that was a fresh directory under TMPDIR.
        said = re.search(r"starting a local 3-site cluster in (\S+)", err)
        assert said, err
        own_dir = Path(said.group(1))
        assert own_dir.parent == scratch and own_dir.name.startswith("outlast-drill-")
        report = json.loads(out.read_text())
        assert report["fault"] == "fire"  # the default
        assert report["verdict"]["ok"] and report["verdict"]["acknowledged"] > 0
        assert report["verdict"]["lost"] == report["verdict"]["duplicated"] == 0
        push = report["push"]
        assert push["ok"] and push["expected"] > 0 and push["delivered"] == push["expected"]
        assert push["lost"] == push["duplicated"] == push["unexpected"] == 0, push
        # The scan is not vacuous: while the drill ran we saw its whole cluster.
        running = " ".join(seen.values())
        assert "nats-server" in running and "haproxy" in running, seen
        assert "outlast serve" in running and "outlast cluster up" in running, seen
        # Afterwards nothing it started is left (give the last exits a moment).
        left: dict[int, str] = {}
        for _ in range(20):
            left = processes_mentioning(str(scratch))
            if not left:
                break
            time.sleep(0.5)
        assert not left, f"processes left behind by the drill: {left}"
        description = json.loads((own_dir / "cluster.json").read_text())
        assert description.get("stopped") is True
    finally:
        # Whatever happened, take down any cluster under the scratch directory and
        # then any process of it still running (by pid, only ours).
        for cluster_json in scratch.glob("*/cluster.json"):
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "outlast",
                    "cluster",
                    "down",
                    "--dir",
                    str(cluster_json.parent),
                ],
                capture_output=True,
                timeout=120,
            )
        for pid in processes_mentioning(str(scratch)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)


def test_power_drill_on_a_tls_cluster(tmp_path: Path) -> None:
    """`cluster up --tls`: the drill's load goes through the HTTPS front door and its
    record is stored and read over TLS, verified against the cluster's CA."""
    cluster = start_cluster(tmp_path / "cluster", tls=True)
    try:
        assert str(cluster.description["front_door"]).startswith("https://")
        cluster_file = cluster.dir / "cluster.json"
        proc, report = fire_drill(
            cluster_file, "power", tmp_path / "power.json", "--heal-after", str(HEAL_AFTER)
        )
        assert_drill_passed(proc, report, "power")
        listing = outlast("drill", "history", "--cluster", str(cluster_file), timeout=120)
        assert listing.returncode == 0, listing.stderr
        assert report["id"] in listing.stdout
    finally:
        cluster.down()
