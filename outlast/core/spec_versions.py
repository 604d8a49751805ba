"""Which spec versions and unstable features ``/versions`` may claim, from what is served.

Clients turn features on from ``/versions``: matrix-js-sdk enables threads at
v1.3, the thread list and per-thread notifications at v1.4, intentional
mentions at v1.7, relation recursion at v1.10 and authenticated media at
v1.11. Claiming a version whose endpoints answer 404 breaks them, so the
claim is derived: a version is advertised only when every endpoint it added
is routed (or knowingly waived, with a reason) and every behaviour clients
infer from it is declared done. Versions are cumulative: a gap stops the list.

The endpoint table is the spec's ``x-addedInMatrixVersion`` per operation,
plus the modules whose "added-in" sits on the section (``/relations`` 1.3);
v1.0 endpoints are the baseline and not listed.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Final

Endpoint = tuple[str, str]  # (method, path), path parameters written {name}

_C3, _C1 = "/_matrix/client/v3", "/_matrix/client/v1"
_KEYS = f"{_C3}/room_keys"
_RELATIONS = f"{_C1}/rooms/{{roomId}}/relations/{{eventId}}"
_RELATION_ROUTES: tuple[Endpoint, ...] = tuple(
    ("GET", f"{_RELATIONS}{tail}") for tail in ("", "/{relType}", "/{relType}/{eventType}")
)

ADDED: Final[Mapping[str, tuple[Endpoint, ...]]] = {
    "v1.1": (
        ("POST", f"{_C3}/keys/device_signing/upload"),
        ("POST", f"{_C3}/keys/signatures/upload"),
        ("POST", f"{_KEYS}/version"),
        ("GET", f"{_KEYS}/version"),
        *((m, f"{_KEYS}/version/{{version}}") for m in ("GET", "PUT", "DELETE")),
        *(
            (m, f"{_KEYS}/keys{tail}")
            for m in ("GET", "PUT", "DELETE")
            for tail in ("", "/{roomId}", "/{roomId}/{sessionId}")
        ),
        ("POST", f"{_C3}/knock/{{roomIdOrAlias}}"),
        ("GET", f"{_C3}/login/sso/redirect"),
        ("GET", f"{_C3}/login/sso/redirect/{{idpId}}"),
    ),
    "v1.2": (
        ("GET", f"{_C1}/register/m.login.registration_token/validity"),
        ("GET", f"{_C1}/rooms/{{roomId}}/hierarchy"),
    ),
    "v1.3": (
        ("POST", f"{_C3}/refresh"),
        *_RELATION_ROUTES,
    ),
    "v1.4": (("GET", f"{_C1}/rooms/{{roomId}}/threads"),),
    "v1.6": (("GET", f"{_C1}/rooms/{{roomId}}/timestamp_to_event"),),
    "v1.7": (
        ("POST", f"{_C1}/appservice/{{appserviceId}}/ping"),
        ("PUT", "/_matrix/media/v3/upload/{serverName}/{mediaId}"),
        ("POST", "/_matrix/media/v1/create"),
        ("POST", f"{_C1}/login/get_token"),
    ),
    "v1.10": (("GET", "/.well-known/matrix/support"),),
    "v1.11": (
        ("GET", f"{_C1}/media/download/{{serverName}}/{{mediaId}}"),
        ("GET", f"{_C1}/media/download/{{serverName}}/{{mediaId}}/{{fileName}}"),
        ("GET", f"{_C1}/media/thumbnail/{{serverName}}/{{mediaId}}"),
        ("GET", f"{_C1}/media/preview_url"),
        ("GET", f"{_C1}/media/config"),
    ),
}
ORDER: Final = tuple(f"v1.{n}" for n in range(1, 12))

# Behaviours clients infer from a version, which no route table shows.
# v1.1 added knocking (auth rules, ``rooms.knock`` in /sync) beside ``/knock``; v1.2
# restricted rooms (the resident server vouches for joins) and moved ``prev_content``
# into ``unsigned`` (a breaking change for clients that read it there).
BEHAVIOURS: Final[Mapping[str, tuple[str, ...]]] = {
    "v1.1": ("knocking",),
    "v1.2": ("restricted_joins", "unsigned_prev_content"),
    "v1.3": ("bundled_aggregations",),
    "v1.4": ("threaded_receipts", "thread_notifications"),
    "v1.7": ("intentional_mentions",),
    "v1.10": ("relations_recursion",),
}

# Unstable feature flags: the endpoints and behaviours each one promises.
# matrix-js-sdk turns threads on from the ``.stable`` flags of MSC3440 (threads),
# MSC3856 (the thread list) and MSC3715 (relations paged forwards) without v1.4,
# and asks for ``recurse`` under MSC3981; a server may thus offer threads
# honestly before it serves every endpoint of v1.1-v1.4.
UNSTABLE: Final[Mapping[str, tuple[tuple[Endpoint, ...], tuple[str, ...]]]] = {
    "org.matrix.simplified_msc3575": (
        (("POST", "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"),),
        (),
    ),
    "org.matrix.msc3440.stable": (_RELATION_ROUTES, ("bundled_aggregations",)),
    "org.matrix.msc3856.stable": ((("GET", f"{_C1}/rooms/{{roomId}}/threads"),), ()),
    "org.matrix.msc3715.stable": (_RELATION_ROUTES, ()),
    "org.matrix.msc3981": (_RELATION_ROUTES, ("relations_recursion",)),
    "org.matrix.msc3771": ((), ("threaded_receipts",)),
    "org.matrix.msc3773": ((), ("thread_notifications",)),
}

_PARAM = re.compile(r"\{[^}]*\}")


def shape(endpoint: Endpoint) -> Endpoint:
    """Path parameters compare by position, not by name."""
    return endpoint[0].upper(), _PARAM.sub("{}", endpoint[1])


def advertised(
    routes: Collection[Endpoint],
    behaviours: Collection[str] = (),
    waived: Mapping[Endpoint, str] | None = None,
) -> list[str]:
    """The ``versions`` list: each version whose additions are all served, in order.

    ``waived`` maps endpoints a version added that Outlast deliberately does
    not serve to the reason (for example SSO redirects without an identity
    provider); a waiver must be written down, never inferred.
    """
    have = {shape(r) for r in routes} | {shape(w) for w in (waived or {})}
    out: list[str] = []
    for version in ORDER:
        needed = {shape(e) for e in ADDED.get(version, ())}
        if not needed <= have or not set(BEHAVIOURS.get(version, ())) <= set(behaviours):
            break
        out.append(version)
    return out


def unstable_features(
    routes: Collection[Endpoint], behaviours: Collection[str] = ()
) -> dict[str, bool]:
    """``unstable_features``: true exactly for the features whose endpoints are routed
    and whose behaviours are declared done."""
    have = {shape(r) for r in routes}
    return {
        name: {shape(e) for e in needed} <= have and set(done) <= set(behaviours)
        for name, (needed, done) in UNSTABLE.items()
    }


def missing(routes: Collection[Endpoint], version: str) -> list[Endpoint]:
    """What stands between the route table and ``version`` (for the test's message)."""
    have = {shape(r) for r in routes}
    upto = ORDER[: ORDER.index(version) + 1]
    return [e for v in upto for e in ADDED.get(v, ()) if shape(e) not in have]
