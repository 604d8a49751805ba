"""Room alias grammar and the rules for ``m.room.canonical_alias`` content.

``PUT /rooms/{roomId}/state/m.room.canonical_alias``: aliases the event newly
lists (in ``alias`` or ``alt_aliases``) must be valid (else
``400 M_INVALID_PARAM``) and must point at this room (else
``400 M_BAD_ALIAS``); aliases already in the previous event, or being
removed, are not checked again. Deleting an alias also takes it out of the
room's canonical alias event (:func:`without_alias`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from outlast.core.errors import MatrixError, invalid_param

MAX_ALIAS_BYTES: Final = 255
MAX_ALT_ALIASES: Final = 100

_IPV4: Final = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){3}", re.ASCII)
_IPV6: Final = re.compile(r"\[[0-9A-Fa-f:.]{2,45}\]", re.ASCII)
_DNS: Final = re.compile(r"[A-Za-z0-9.-]{1,255}", re.ASCII)


def valid_server_name(name: str) -> bool:
    """The appendix's ``server_name = hostname [ ":" port ]`` grammar."""
    host, port = name, ""
    if not name.endswith("]") and ":" in name:
        host, _, port = name.rpartition(":")
        if not (port.isascii() and port.isdigit() and 1 <= len(port) <= 5):
            return False
    if _IPV4.fullmatch(host):
        return all(int(part) <= 255 for part in host.split("."))
    return bool(_IPV6.fullmatch(host) or _DNS.fullmatch(host))


def valid_alias(alias: Any) -> bool:
    """``#localpart:server``: no ``:`` or NUL in the localpart, at most 255 bytes."""
    if not isinstance(alias, str) or not alias.startswith("#"):
        return False
    if len(alias.encode("utf-8", "surrogatepass")) > MAX_ALIAS_BYTES:
        return False
    local, sep, server = alias[1:].partition(":")
    if not sep or "\0" in local or any(0xD800 <= ord(c) <= 0xDFFF for c in local):
        return False
    return valid_server_name(server)


def listed(content: Mapping[str, Any] | None) -> set[str]:
    """Every alias a canonical alias content names (malformed parts ignored)."""
    if content is None:
        return set()
    out = set()
    alias = content.get("alias")
    if isinstance(alias, str) and alias:
        out.add(alias)
    alt = content.get("alt_aliases")
    if isinstance(alt, list):
        out.update(a for a in alt if isinstance(a, str))
    return out


def check_canonical_alias(
    content: Mapping[str, Any],
    room_id: str,
    previous: Mapping[str, Any] | None,
    resolve: Callable[[str], str | None],
) -> None:
    """Validate new ``m.room.canonical_alias`` content; ``resolve`` maps an alias
    to its room ID (``None`` when unknown or deleted)."""
    alias = content.get("alias")
    if alias is not None and not isinstance(alias, str):
        raise invalid_param("alias must be a string")
    alt = content.get("alt_aliases")
    if alt is not None and (not isinstance(alt, list) or len(alt) > MAX_ALT_ALIASES):
        raise invalid_param(f"alt_aliases must be a list of at most {MAX_ALT_ALIASES} aliases")
    already = listed(previous)
    new = [a for a in [alias or None, *(alt or [])] if a is not None and a not in already]
    for candidate in new:
        if not valid_alias(candidate):
            raise invalid_param(f"{str(candidate)[:80]!r} is not a valid room alias")
    for candidate in new:
        if resolve(candidate) != room_id:
            raise MatrixError(
                400, "M_BAD_ALIAS", f"the alias {candidate[:80]!r} does not point to this room"
            )


def without_alias(content: Mapping[str, Any], alias: str) -> dict[str, Any] | None:
    """The canonical alias content once ``alias`` is deleted, or ``None`` if it was not listed."""
    if alias not in listed(content):
        return None
    out = dict(content)
    if out.get("alias") == alias:
        del out["alias"]
    alt = out.get("alt_aliases")
    if isinstance(alt, list):
        out["alt_aliases"] = [a for a in alt if a != alias]
        if not out["alt_aliases"]:
            del out["alt_aliases"]
    return out
