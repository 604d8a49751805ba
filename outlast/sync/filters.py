"""Stored filters: content-addressed ids, so uploading the same filter twice is one fact."""

from __future__ import annotations

from typing import Any

from outlast.context import SiteContext
from outlast.core.errors import not_found
from outlast.core.filters import SyncFilter, default_sync_filter, filter_id_for, parse_sync_filter
from outlast.log.facts import FilterStored
from outlast.sync import tables


class Filters:
    def __init__(self, ctx: SiteContext) -> None:
        self.ctx = ctx

    async def upload(self, user_id: str, body: dict[str, Any]) -> str:
        parse_sync_filter(body)  # reject malformed filters before they reach the log
        filter_id = filter_id_for(body)
        if tables.stored_filter(self.ctx.conn, user_id, filter_id) is not None:
            return filter_id
        fact = FilterStored(user_id, filter_id, body)
        ack = await self.ctx.log.append(self.ctx.names.user_data_subject(user_id), fact)
        await self.ctx.applied(ack)
        return filter_id

    async def get(self, user_id: str, filter_id: str) -> Any:
        stored = tables.stored_filter(self.ctx.conn, user_id, filter_id)
        if stored is None and await self.ctx.catch_up(self.ctx.names.users_stream):
            stored = tables.stored_filter(self.ctx.conn, user_id, filter_id)
        if stored is None:
            raise not_found("no such filter")
        return stored

    async def resolve(self, user_id: str, param: str | dict[str, Any] | None) -> SyncFilter:
        """A /sync ``filter`` parameter: inline JSON (already parsed) or a filter id."""
        if not param:
            return default_sync_filter()
        if isinstance(param, dict):
            return parse_sync_filter(param)
        return parse_sync_filter(await self.get(user_id, param))
