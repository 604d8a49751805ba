"""What ``GET /_matrix/client/versions`` claims, derived from the route table.

Clients switch features on from this answer (matrix-js-sdk: threads at v1.3
or the MSC3440/3856/3715 ``.stable`` flags), so a claim whose endpoint
answers 404 breaks them. The pure rule is :mod:`outlast.core.spec_versions`;
this module supplies what the site serves: its routes, the behaviours it
declares done (no route table shows those), and the endpoints it knowingly
does not serve, each with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from aiohttp import web

from outlast.core import spec_versions
from outlast.core.spec_versions import Endpoint
from outlast.http.routing import Routes

# The computed answer, stored on the application when it is built (outlast/http/app.py).
VERSIONS_KEY: Final = web.AppKey("versions", dict[str, Any])

# The legacy version every client accepts; v1.x follow from the routes.
BASELINE: Final = ("r0.6.1",)

# Behaviours a version or flag promises beyond its endpoints, and where they live.
DONE: Final[frozenset[str]] = frozenset(
    {
        "unsigned_prev_content",  # prev_content in unsigned on state events (rooms/writer.py)
        "knocking",  # auth step 4.7 (core/auth.py), POST /knock, rooms.knock (sync/service.py)
        "restricted_joins",  # join_authorised_via_users_server filled in (core/restricted.py)
        "intentional_mentions",  # .m.rule.is_user_mention / is_room_mention (core/pushrules.py)
        "bundled_aggregations",  # m.replace, m.thread, m.reference (rooms/bundles.py)
        "relations_recursion",  # /relations?recurse=true, three levels (rooms/relations.py)
        "threaded_receipts",  # receipts keep one position per thread_id (receipts/tables.py)
        "thread_notifications",  # unread_thread_notifications in /sync (receipts/service.py)
    }
)

_SSO = "no identity provider can be configured: password login only"
WAIVED: Final[Mapping[Endpoint, str]] = {
    ("GET", "/_matrix/client/v3/login/sso/redirect"): _SSO,
    ("GET", "/_matrix/client/v3/login/sso/redirect/{idpId}"): _SSO,
    ("POST", "/_matrix/client/v1/appservice/{appserviceId}/ping"): (
        "no application services can be registered"
    ),
    ("POST", "/_matrix/client/v1/login/get_token"): (
        "the m.get_login_token capability is off, which tells clients not to call it"
    ),
}


def endpoints(groups: Iterable[Routes]) -> list[Endpoint]:
    """Every (method, full path) the application mounts."""
    return [
        (method, prefix + path)
        for group in groups
        for method, path, _, prefixes in group.entries
        for prefix in prefixes
    ]


def body(
    groups: Iterable[Routes],
    done: Iterable[str] = DONE,
    waived: Mapping[Endpoint, str] = WAIVED,
) -> dict[str, Any]:
    """The ``/versions`` answer for a site that mounts ``groups``."""
    routes = endpoints(groups)
    finished = frozenset(done)
    return {
        "versions": [*BASELINE, *spec_versions.advertised(routes, finished, waived)],
        "unstable_features": spec_versions.unstable_features(routes, finished),
    }
