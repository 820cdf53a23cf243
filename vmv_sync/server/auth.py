"""Who may come in: the principal a request speaks for, and the access registry.

Every door (the WebSocket upgrade, every HTTP endpoint) asks
:meth:`AccessRegistry.authenticate`: the token's principal (tokens.py signs and
verifies them, external_auth.py checks an embedding application's), unless that
participant was removed. Removing a participant revokes every token it holds: the
registry remembers revoked participant ids per workshop, checked at connect and on
every frame. The registry also keeps each workshop's invite code; both live in the
store (``vmv_sync.storage.Directory``), so every server process on it sees them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from ..errors import Unauthenticated
from ..storage import Directory, open_store

if TYPE_CHECKING:  # tokens.py makes Principals: imported for the annotation only
    from .tokens import TokenIssuer

__all__ = ("Principal", "AccessRegistry", "WorkshopAccess")

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is on the other end, as the token says (``None`` fields with auth off)."""

    participant_id: str | None
    name: str | None = None
    role: str | None = None
    workshop_id: str | None = None
    # Not part of who the principal is (equality): how long the token vouches for it.
    #: the token's ``exp`` claim (unix s); None with auth off
    exp: int | None = field(default=None, compare=False)
    #: when the verifier stops accepting the token: ``exp`` plus the clock skew it allows
    #: (0 for vmv-sync's own tokens, 30 s for external ones). An open connection is
    #: closed then (4401) unless it was handed a fresh token (server/token_refresh.py).
    expires_at: float | None = field(default=None, compare=False)

    @property
    def authenticated(self) -> bool:
        return self.role is not None


@dataclass(frozen=True)
class WorkshopAccess:
    workshop_id: str
    invite_code: str
    facilitator_id: str
    created_at: float


class AccessRegistry:
    """Invite codes and revocations, kept by the store (``vmv_sync.storage.Directory``).

    Every server process on one store sees the same codes and removals. ``where`` is
    the server's open store, or a store URL or path (the CLI): then each call opens
    the store briefly. Revoked participants are cached per process for per-frame checks.
    """

    def __init__(self, where: Directory | str | os.PathLike[str]) -> None:
        self._where = where
        self._revoked: dict[str, set[str]] = {}

    async def _call(self, fn: Callable[[Directory], Awaitable[_T]]) -> _T:
        if isinstance(self._where, Directory):
            return await fn(self._where)
        async with open_store(self._where) as store:
            return await fn(store)

    async def create(self, workshop_id: str, facilitator_id: str) -> WorkshopAccess:
        invite = await self._call(lambda d: d.create_invite(workshop_id, _invite_code(), facilitator_id))
        return WorkshopAccess(invite.workshop_id, invite.code, invite.facilitator_id, invite.created_at)

    async def get(self, workshop_id: str) -> WorkshopAccess | None:
        invite = await self._call(lambda d: d.get_invite(workshop_id))
        return None if invite is None else WorkshopAccess(workshop_id, invite.code, invite.facilitator_id, invite.created_at)

    async def rotate(self, workshop_id: str) -> str | None:
        """Give the workshop a fresh invite code; the old one stops working at once.

        Returns the new code, or ``None`` for a workshop this registry does not know.
        Nothing caches codes, so the next join already compares against the new one.
        """
        code = _invite_code()
        return code if await self._call(lambda d: d.set_invite(workshop_id, code)) else None

    async def revoke(self, workshop_id: str, participant_id: str) -> None:
        await self._call(lambda d: d.revoke(workshop_id, participant_id))
        self._revoked.setdefault(workshop_id, set()).add(participant_id)

    async def load_revoked(self, workshop_id: str) -> set[str]:
        """Revoked participant ids of a workshop (cached after the first read)."""
        cached = self._revoked.get(workshop_id)
        if cached is not None:
            return cached
        revoked = set(await self._call(lambda d: d.revoked(workshop_id)))
        self._revoked[workshop_id] = revoked
        return revoked

    def is_revoked(self, workshop_id: str, participant_id: str | None) -> bool:
        return participant_id is not None and participant_id in self._revoked.get(workshop_id, ())

    async def authenticate(self, tokens: TokenIssuer, token: str | None, workshop_id: str) -> Principal:
        """The token's principal for ``workshop_id``, unless it is invalid or revoked (4401/4403).

        The one check behind every door: the WebSocket upgrade and every HTTP endpoint.
        """
        external = tokens.external
        if token and external is not None and external.accepts(token):
            principal = await external.verify(token, workshop_id)
        else:
            principal = tokens.verify(token, workshop_id)
        await self.load_revoked(workshop_id)
        if self.is_revoked(workshop_id, principal.participant_id):
            raise Unauthenticated("this participant was removed from the workshop")
        return principal


def _invite_code() -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
    return "".join(secrets.choice(alphabet) for _ in range(8))
