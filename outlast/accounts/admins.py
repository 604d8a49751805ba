"""Server administrators: a durable flag on accounts, plus a configured list.

``outlast admin grant|revoke USER`` appends the fact ``Admin`` (op ``admin``)
to the user's ``admin`` subject in OUTLAST_USERS; every
site's projector applies it to ``users.admin`` in its view (see
outlast/view/apply.py). ``[admin] users`` in the configuration names more
administrators, checked at request time.
"""

from __future__ import annotations

from outlast.clock import SYSTEM, Clock, now_ms
from outlast.context import SiteContext
from outlast.core.errors import MatrixError
from outlast.log.client import Ack, LogClient
from outlast.log.facts import Admin
from outlast.log.names import Names
from outlast.view import queries


class UnknownUser(LookupError):
    """No account with this user id was ever registered."""


def admin_fact(user_id: str, admin: bool, clock: Clock = SYSTEM) -> Admin:
    return Admin(user_id, bool(admin), now_ms(clock))


async def account_exists(log: LogClient, names: Names, user_id: str) -> bool:
    """Whether the user's account subject holds a fact (0 also without a users stream)."""
    return await log.last_subject_seq(names.users_stream, names.user_account_subject(user_id)) > 0


async def set_admin(log: LogClient, names: Names, user_id: str, admin: bool) -> Ack:
    """Record on the log that ``user_id`` is (or is no longer) a server administrator."""
    if not await account_exists(log, names, user_id):
        raise UnknownUser(user_id)
    return await log.append(names.user_subject(user_id, "admin"), admin_fact(user_id, admin))


class Admins:
    """Who is an administrator, as this site sees it."""

    def __init__(self, ctx: SiteContext) -> None:
        self.ctx = ctx

    def is_admin(self, user_id: str) -> bool:
        if user_id in self.ctx.config.admin.users:
            return True
        row = queries.user(self.ctx.conn, user_id)
        return bool(row is not None and row["admin"] and not row["deactivated"])

    def require(self, user_id: str) -> None:
        if not self.is_admin(user_id):
            raise MatrixError(403, "M_FORBIDDEN", "only server administrators may do this")
