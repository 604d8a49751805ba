"""The ``membership`` / ``not_membership`` query of GET /rooms/{roomId}/members.

The spec words the two together as an "or"; Synapse applies both, an "and", and
so do we (clients are written against it): ``membership=join&not_membership=leave``
answers the joined members, not everyone but the departed.
"""

from __future__ import annotations

from dataclasses import dataclass

from outlast.core.errors import invalid_param

# The enum of both parameters (spec: GET /rooms/{roomId}/members).
MEMBERSHIPS = ("join", "invite", "knock", "leave", "ban")


@dataclass(frozen=True)
class MemberFilter:
    membership: str | None = None
    not_membership: str | None = None

    def keeps(self, membership: object) -> bool:
        if self.membership and membership != self.membership:
            return False
        return not (self.not_membership and membership == self.not_membership)


def member_filter(membership: str | None, not_membership: str | None) -> MemberFilter:
    """The query's filter; a value outside the enum is 400 ``M_INVALID_PARAM``."""
    for name, value in (("membership", membership), ("not_membership", not_membership)):
        if value is not None and value not in MEMBERSHIPS:
            raise invalid_param(f"{name} must be one of {', '.join(MEMBERSHIPS)}")
    return MemberFilter(membership or None, not_membership or None)
