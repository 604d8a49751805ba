"""SQLite-flavoured view SQL, rewritten for PostgreSQL: the one place the dialects differ.

The view's tables and queries are written once, in the SQLite dialect the
capabilities have always used. A PostgreSQL view runs each statement through
``Dialect.translate`` (cached per statement text, so the rewriting happens once
per distinct statement, not per call):

- ``?`` placeholders become ``%s`` (and a literal ``%`` becomes ``%%``);
- ``INSERT OR IGNORE`` becomes ``ON CONFLICT DO NOTHING``; ``INSERT OR REPLACE``
  becomes ``ON CONFLICT (<primary key>) DO UPDATE`` of every other column (the
  columns the statement leaves out go back to their default, as SQLite's delete
  and re-insert does), the key read from the table's ``CREATE TABLE``;
- ``a IS ?`` / ``a IS NOT ?`` become ``IS [NOT] DISTINCT FROM``;
- ``json_each(?)`` becomes ``json_array_elements_text(?::json)`` (its column is
  ``value`` in both) and ``json_extract(x, '$.a.b')`` becomes ``x::json #>> '{a,b}'``
  (text; compare it with text only);
- in DDL, ``INTEGER`` becomes ``BIGINT`` (timestamps in ms exceed int4),
  ``INTEGER PRIMARY KEY`` an identity column, ``BLOB`` ``BYTEA``;
- ``BEGIN IMMEDIATE`` becomes ``BEGIN``.

PRAGMAs have no PostgreSQL meaning; the connection (outlast/view/pg/connection.py)
answers them itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


class DialectError(ValueError):
    """A statement uses SQLite syntax this translator does not handle."""


@dataclass(frozen=True)
class Table:
    """What an upsert needs to know of a table: its columns and its conflict key."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]


_CREATE_TABLE = re.compile(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)\s*\(", re.I)
_CONSTRAINT = re.compile(r"(PRIMARY\s+KEY|UNIQUE|CHECK|FOREIGN\s+KEY|CONSTRAINT)\b", re.I)


def tables_of(schema: str) -> dict[str, Table]:
    """Every ``CREATE TABLE`` in a schema script: columns and primary key."""
    out: dict[str, Table] = {}
    text = _strip_comments(schema)
    for match in _CREATE_TABLE.finditer(text):
        body = _balanced(text, match.end() - 1)
        columns: list[str] = []
        key: tuple[str, ...] = ()
        for part in _split_top(body):
            part = part.strip()
            if not part:
                continue
            constraint = _CONSTRAINT.match(part)
            if constraint:
                if constraint.group(1).upper().startswith("PRIMARY"):
                    inner = part[part.index("(") + 1 : part.rindex(")")]
                    key = tuple(c.strip() for c in inner.split(","))
                continue
            name = part.split()[0]
            columns.append(name)
            if re.search(r"\bPRIMARY\s+KEY\b", part, re.I):
                key = (name,)
        out[match.group(1)] = Table(match.group(1), tuple(columns), key)
    return out


def _strip_comments(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines())


def _balanced(text: str, open_at: int) -> str:
    """The text inside the parenthesis that opens at ``open_at``."""
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i]
    raise DialectError("unbalanced parentheses in schema")


def _split_top(body: str) -> list[str]:
    """Split at the commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(body):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    parts.append(body[start:])
    return parts


_INSERT_OR = re.compile(r"^\s*INSERT\s+OR\s+(IGNORE|REPLACE)\s+INTO\s+(\w+)\s*(\(([^)]*)\))?", re.I)
_JSON_EXTRACT = re.compile(r"json_extract\(\s*([\w.]+)\s*,\s*'\$\.([\w.]+)'\s*\)", re.I)
_JSON_EACH = re.compile(r"json_each\(\s*\?\s*\)", re.I)
_IS_PARAM = re.compile(r"\bIS\s+(NOT\s+)?\?", re.I)
_INTEGER_PK = re.compile(r"\bINTEGER\s+PRIMARY\s+KEY\b(\s+AUTOINCREMENT)?", re.I)
_INTEGER = re.compile(r"\bINTEGER\b", re.I)
_BLOB = re.compile(r"\bBLOB\b", re.I)
_BEGIN = re.compile(r"^\s*BEGIN\s+(IMMEDIATE|DEFERRED|EXCLUSIVE)\b", re.I)
_DDL = re.compile(r"^\s*(CREATE|ALTER)\b", re.I)


class Dialect:
    """Translates statements for one schema (the tables ``INSERT OR REPLACE`` targets)."""

    def __init__(self, schemas: Iterable[str]) -> None:
        self.tables: dict[str, Table] = {}
        for schema in schemas:
            self.tables.update(tables_of(schema))
        self._cache: dict[str, str] = {}

    def translate(self, sql: str) -> str:
        """The PostgreSQL text of one SQLite-flavoured statement (cached)."""
        done = self._cache.get(sql)
        if done is None:
            done = self._translate(sql)
            self._cache[sql] = done
        return done

    def script(self, sql: str) -> str:
        """A DDL script (several statements, no parameters)."""
        return self.translate(sql).replace("%%", "%")

    def _translate(self, sql: str) -> str:
        out = sql
        if _DDL.match(_strip_comments(out).lstrip()):
            out = _INTEGER_PK.sub("BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", out)
            out = _BLOB.sub("BYTEA", out)
        out = _INTEGER.sub("BIGINT", out)
        out = _BEGIN.sub("BEGIN", out)
        out = _JSON_EACH.sub("json_array_elements_text(?::json)", out)
        out = _JSON_EXTRACT.sub(_json_path, out)
        out = _IS_PARAM.sub(
            lambda m: "IS DISTINCT FROM ?" if m.group(1) else "IS NOT DISTINCT FROM ?", out
        )
        out = self._insert_or(out)
        return _placeholders(out)

    def _insert_or(self, sql: str) -> str:
        match = _INSERT_OR.match(sql)
        if match is None:
            return sql
        verb, table = match.group(1).upper(), match.group(2)
        rest = sql[match.end() :].rstrip().rstrip(";")
        head = f"INSERT INTO {table}" + (f" ({match.group(4)})" if match.group(3) else "")
        if verb == "IGNORE":
            return f"{head}{rest} ON CONFLICT DO NOTHING"
        info = self.tables.get(table)
        if info is None or not info.key:
            raise DialectError(f"INSERT OR REPLACE into {table}: no primary key known")
        named = (
            [c.strip() for c in match.group(4).split(",")] if match.group(3) else list(info.columns)
        )
        sets = [
            f"{c} = excluded.{c}" if c in named else f"{c} = DEFAULT"
            for c in info.columns
            if c not in info.key
        ]
        action = "DO UPDATE SET " + ", ".join(sets) if sets else "DO NOTHING"
        return f"{head}{rest} ON CONFLICT ({', '.join(info.key)}) {action}"


def _json_path(match: re.Match[str]) -> str:
    path = ",".join(match.group(2).split("."))
    return f"({match.group(1)}::json #>> '{{{path}}}')"


def _placeholders(sql: str) -> str:
    """``?`` to ``%s`` and ``%`` to ``%%``, outside quoted strings and identifiers."""
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote is not None:
            if ch == quote:
                quote = None
            out.append("%%" if ch == "%" else ch)
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)
