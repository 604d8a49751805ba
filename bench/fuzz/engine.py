"""The fuzzer: generated requests to every route of a running server, and the checks.

Every endpoint of Outlast's own route table (``outlast.http.app.ROUTE_GROUPS``)
is visited in turn; Hypothesis draws its path parameters (real ids of seeded
rooms, users, events and media, or arbitrary text), query parameters, token
(valid, missing, made-up, non-ASCII), headers (odd content types, gzip bodies
good and corrupt) and body (from ``schemas.BODIES`` when there is one,
arbitrary JSON, or bytes). A request fails the run if it answers 5xx (bar
the spec's ``504 M_NOT_YET_UPLOADED``), an error without Matrix JSON, or no
answer within the bound. Before the run a victim account stores data the
fuzzing account may not touch; afterwards it must read back unchanged.
"""

from __future__ import annotations

import gzip
import http.client
import json
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as replay_with
from hypothesis import strategies as st

from bench.fuzz.schemas import BODIES, strategy
from bench.fuzz.seed import image, seed_site, victim_state
from outlast.http.app import ROUTE_GROUPS

PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")
TEXT = st.text(max_size=24)
JSON_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**60), 2**60), st.floats(allow_nan=False), TEXT
)
ANY_JSON = st.recursive(
    JSON_LEAF,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)
# What a header value may hold at all (no CR, LF or other control characters).
HEADER_TEXT = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), max_codepoint=0x2FFFF),
    min_size=1,
    max_size=40,
)
QUERY_NAMES = [
    "since", "timeout", "filter", "limit", "from", "to", "dir", "full_state", "set_presence",
    "width", "height", "method", "timeout_ms", "allow_remote", "allow_redirect", "filename",
    "kind", "username", "access_token", "membership", "not_membership", "at", "server",
    "only", "via", "server_name", "ts",
]  # fmt: skip
# Ids of the right shape in the wrong places, and shapes no id has.
ODD_IDS = ["@a:localhost:8448", "@:localhost", "!:localhost", "$", "#:", "@fuzz:localhost/x",
           "!x:localhost\x00", "..", "%2F", "\u0000", "@" + "u" * 300 + ":localhost"]  # fmt: skip
# JSON that parses into values a server must refuse or handle with care.
RAW_BODIES = [b"", b"null", b"[]", b'"x"', b"[" * 500, b'{"a":' * 120 + b"1" + b"}" * 120,
              b'{"body": "\\ud800", "msgtype": "m.text"}', b'{"n": 1e400}', b'{"n": NaN}',
              b'{"n": 18446744073709551616}', b'{"a": 1, "a": 2}', b"\xef\xbb\xbf{}",
              b'{"msgtype": "m.text", "body": "' + b"x" * 70000 + b'"}']  # fmt: skip
CONTENT_TYPES = ["application/json", "text/plain", "image/png", "image/jpeg", "image/webp",
                 "image/gif", "application/octet-stream", "x/\u00e9", ""]  # fmt: skip


@dataclass
class Endpoint:
    method: str
    prefix: str
    path: str  # as in the route table, with its {name:regex} parameters

    @property
    def name(self) -> str:
        return f"{self.method} {self.prefix}{self.path}"

    @property
    def params(self) -> list[str]:
        return PARAM.findall(self.path)


def endpoints() -> list[Endpoint]:
    """Every implemented endpoint once (under its first prefix: r0 twins are the same code)."""
    found = []
    for group in ROUTE_GROUPS:
        for method, path, _, prefixes in group.entries:
            found.append(Endpoint(method, prefixes[0], path))
    return found


@dataclass
class Report:
    requests: int = 0
    endpoints: set[str] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)  # distinct failure -> an example
    failure_count: int = 0
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "endpoints": len(self.endpoints),
            "statuses": dict(sorted(self.statuses.items())),
            "server_errors": sum(n for s, n in self.statuses.items() if s >= 500),
            "failures": self.failure_count,
            "distinct_failures": self.failures,
            "seconds": round(self.seconds, 1),
        }


def _swap(value: Any, which: int, replacement: Any) -> Any:
    """``value`` with its ``which``-th key (modulo their number) set to ``replacement``."""
    if not isinstance(value, dict) or not value:
        return replacement
    keys = sorted(value)
    return {**value, keys[which % len(keys)]: replacement}


class Fuzzer:
    def __init__(self, base_url: str, request_timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = request_timeout
        self.conn: http.client.HTTPConnection | None = None
        self.password = "fuzz-" + secrets.token_hex(8)
        self.token = ""
        self.pools: dict[str, list[str]] = {}
        self.snapshot: dict[str, Any] = {}
        self.report = Report()

    # --- plain HTTP -------------------------------------------------------------

    def send(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        """One request on a kept-alive connection (a fresh one after any error)."""
        for attempt in (1, 2):
            conn = self.conn or http.client.HTTPConnection(
                self.host, self.port, timeout=self.timeout
            )
            self.conn = conn
            try:
                conn.request(method, target, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    self.conn = None
                return resp.status, data
            except (ConnectionError, http.client.HTTPException, OSError):
                conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        raw = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        status, data = self.send(method, path, raw, headers)
        if status != 200:
            raise RuntimeError(f"{method} {path}: {status} {data[:300]!r}")
        return json.loads(data) if data else None

    # --- seeding and checking ---------------------------------------------------------

    def seed(self) -> None:
        """A victim's data the fuzzing account may not touch, and the ids to draw from."""
        self.token, self.pools, self.snapshot = seed_site(self, self.password)

    def verify(self) -> list[str]:
        """What changed in the victim's data, and whether the server still serves."""
        problems = []
        status, _ = self.send("GET", "/_outlast/health", None, {})
        if status != 200:
            problems.append(f"health answered {status}")
        now = victim_state(self, self.snapshot)
        for key, before in self.snapshot["state"].items():
            if now[key] != before:
                problems.append(f"victim's {key} changed")
        return problems

    def reconnect(self) -> None:
        """Forget the kept-alive connection (after the server restarted)."""
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    # --- generation ---------------------------------------------------------------

    def _param(self, name: str) -> st.SearchStrategy[str]:
        pool = self.pools.get(name, [])
        fresh = st.one_of(
            st.text(min_size=1, max_size=30),
            st.sampled_from(ODD_IDS),
            st.integers(200, 5000).map(lambda n: "x" * n),  # past every length limit
        )
        drawn = st.one_of(st.sampled_from(pool), fresh) if pool else fresh
        if name == "txn_id":
            drawn = st.one_of(st.uuids().map(str), fresh)
        return drawn.map(lambda v: quote(v, safe="") or "x")

    def _query(self) -> st.SearchStrategy[dict[str, str]]:
        special = st.sampled_from(
            [*self.pools.get("since", []), "s0_0_0_0_0_0", "t1_0", "0", "-1", "1e999", "99999999",
             "true", "b", "f", json.dumps({"room": {"timeline": {"limit": 1}}}), "{", "[[[[",
             "\u00e9", "%00", '{"room":' * 300 + "{}" + "}" * 300, "[" * 2000,
             '{"limit": 1e400}', '{"types": ["\\ud800"]}', "s" + "9" * 19 + "_0" * 5,
             "t9223372036854775807_0", "s1_1_1_1_1_1.99999999999"]
        )  # fmt: skip
        values = st.one_of(special, st.integers(-10, 5000).map(str), TEXT)
        return st.dictionaries(st.sampled_from(QUERY_NAMES), values, max_size=4).map(
            lambda q: {k: v[:20] if k == "timeout_ms" else v for k, v in q.items()}
        )

    def _body(self, endpoint: Endpoint) -> st.SearchStrategy[bytes | None]:
        if endpoint.method not in ("PUT", "POST", "DELETE"):
            return st.one_of(st.none(), st.just(b"{}"))
        if "upload" in endpoint.path:
            return st.one_of(
                st.sampled_from([image(f) for f in ("PNG", "JPEG", "GIF", "WEBP")]),
                st.binary(max_size=3000),
            )
        encoded = st.one_of(ANY_JSON, st.dictionaries(TEXT, ANY_JSON, max_size=5)).map(
            lambda v: json.dumps(v).encode()
        )
        junk = st.one_of(st.binary(max_size=200), st.sampled_from(RAW_BODIES))
        schema = BODIES.get((endpoint.method, endpoint.path))
        if schema is None:
            return st.one_of(encoded, encoded, junk)
        valid = strategy(schema)
        # A well-shaped body with one field's value swapped for anything at all.
        mutated = st.tuples(valid, st.integers(0, 50), ANY_JSON).map(
            lambda t: _swap(t[0], t[1], t[2])
        )
        return st.one_of(
            *[valid.map(lambda v: json.dumps(v).encode())] * 3,
            mutated.map(lambda v: json.dumps(v).encode()),
            encoded,
            junk,
        )

    def request(
        self, endpoint: Endpoint
    ) -> st.SearchStrategy[tuple[str, bytes | None, dict[str, str]]]:
        @st.composite
        def build(draw: Callable[[Any], Any]) -> tuple[str, bytes | None, dict[str, str]]:
            path = endpoint.prefix + endpoint.path
            for name in endpoint.params:
                value: str = draw(self._param(name))
                slot = PARAM.search(path)
                assert slot is not None
                path = path[: slot.start()] + value + path[slot.end() :]
            query = draw(self._query())
            headers: dict[str, str] = {}
            auth = draw(st.sampled_from(["token"] * 6 + ["query", "none", "bogus", "utf8"]))
            if auth == "token":
                headers["Authorization"] = f"Bearer {self.token}"
            elif auth == "query":
                query["access_token"] = self.token
            elif auth == "bogus":
                headers["Authorization"] = "Bearer " + draw(HEADER_TEXT)
            elif auth == "utf8":
                headers["Authorization"] = "Bearer \u00e9\u00e9" + self.token
            body = draw(self._body(endpoint))
            headers["Content-Type"] = draw(st.sampled_from(CONTENT_TYPES))
            encoding = draw(st.sampled_from([None] * 8 + ["gzip", "corrupt-gzip", "deflate"]))
            if body is not None and encoding == "gzip":
                body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
            elif body is not None and encoding is not None:
                headers["Content-Encoding"] = encoding.removeprefix("corrupt-")
                body = gzip.compress(body)[:-6] + b"broken"
            target = path + ("?" + urlencode(query) if query else "")
            return target, body, headers

        return build()

    # --- the run --------------------------------------------------------------------

    def run(self, requests: int, seed: int | None = None) -> Report:
        """About ``requests`` requests, spread evenly over every endpoint (one Hypothesis
        run per endpoint, so each strategy stays the same shape from example to example)."""
        routes = endpoints()
        started = time.monotonic()
        for index, endpoint in enumerate(routes):
            share = requests // len(routes) + (1 if index < requests % len(routes) else 0)
            if share:
                self._fuzz(endpoint, share, seed)
        self.report.seconds = time.monotonic() - started
        return self.report

    def _fuzz(self, endpoint: Endpoint, examples: int, seed: int | None) -> None:
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(self.request(endpoint))
        def one(drawn: tuple[str, bytes | None, dict[str, str]]) -> None:
            self._one(endpoint, *drawn)

        if seed is not None:  # the same requests again, for replaying a run
            one = replay_with(seed)(one)
        one()

    def _one(
        self, endpoint: Endpoint, target: str, body: bytes | None, headers: dict[str, str]
    ) -> None:
        report = self.report
        report.requests += 1
        report.endpoints.add(endpoint.name)
        sent = time.monotonic()
        try:
            status, data = self.send(
                endpoint.method, _latin1(target), body, _latin1_headers(headers)
            )
        except TimeoutError:
            self._fail(endpoint, "hang", f"no answer in {self.timeout}s: {target[:200]}")
            return
        except (ConnectionError, http.client.HTTPException, OSError) as exc:
            self._fail(endpoint, "dropped", f"{type(exc).__name__}: {target[:200]}")
            return
        report.statuses[status] += 1
        if time.monotonic() - sent > self.timeout:
            self._fail(endpoint, "slow", target[:200])
        try:
            answer = json.loads(data) if data else None
        except ValueError:
            answer = None
        errcode = answer.get("errcode") if isinstance(answer, dict) else None
        if status >= 500 and not (status == 504 and errcode == "M_NOT_YET_UPLOADED"):
            self._fail(endpoint, str(status), f"{target[:200]} -> {data[:200]!r}")
        elif status >= 400 and not (isinstance(errcode, str) and errcode.startswith("M_")):
            self._fail(
                endpoint, f"{status} without Matrix JSON", f"{target[:200]} -> {data[:200]!r}"
            )
        if (
            status == 401
            and errcode == "M_UNKNOWN_TOKEN"
            and self.token in (headers.get("Authorization", "") + target)
        ):
            self._login_again()

    def _fail(self, endpoint: Endpoint, kind: str, example: str) -> None:
        self.report.failure_count += 1
        self.report.failures.setdefault(f"{endpoint.name}: {kind}", example)

    def _login_again(self) -> None:
        """The fuzzer logged itself out (POST /logout is an endpoint too): a new token."""
        body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "fuzz"},
                "password": self.password}  # fmt: skip
        self.token = self.api("POST", "/_matrix/client/v3/login", body)["access_token"]


def _latin1(text: str) -> str:
    """http.client sends the request line as latin-1: anything else goes percent-encoded."""
    return (
        text.encode("latin-1", "ignore").decode("latin-1")
        if text.isascii()
        else quote(text, safe="/?&=%:@!$'()*+,;~-._")
    )


def _latin1_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v.encode("utf-8").decode("latin-1") for k, v in headers.items()}
