"""A small route table that mounts each client endpoint under v3 and its legacy r0 twin."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CLIENT_PREFIXES = ("/_matrix/client/v3", "/_matrix/client/r0")


@dataclass
class Routes:
    entries: list[tuple[str, str, Handler, tuple[str, ...]]] = field(default_factory=list)

    def _add(
        self, method: str, path: str, prefixes: tuple[str, ...]
    ) -> Callable[[Handler], Handler]:
        def decorator(handler: Handler) -> Handler:
            self.entries.append((method, path, handler, prefixes))
            return handler

        return decorator

    def get(
        self, path: str, prefixes: tuple[str, ...] = CLIENT_PREFIXES
    ) -> Callable[[Handler], Handler]:
        return self._add("GET", path, prefixes)

    def post(
        self, path: str, prefixes: tuple[str, ...] = CLIENT_PREFIXES
    ) -> Callable[[Handler], Handler]:
        return self._add("POST", path, prefixes)

    def put(
        self, path: str, prefixes: tuple[str, ...] = CLIENT_PREFIXES
    ) -> Callable[[Handler], Handler]:
        return self._add("PUT", path, prefixes)

    def delete(
        self, path: str, prefixes: tuple[str, ...] = CLIENT_PREFIXES
    ) -> Callable[[Handler], Handler]:
        return self._add("DELETE", path, prefixes)

    def mount(self, router: web.UrlDispatcher, paths: Callable[[str], bool] | None = None) -> None:
        """Add the routes (only those whose path ``paths`` accepts, if given)."""
        for method, path, handler, prefixes in self.entries:
            if paths is not None and not paths(path):
                continue
            for prefix in prefixes:
                router.add_route(method, prefix + path, handler)
