"""Tokens, the secret, and the access registry (invite codes, revocations).

A token is a JWT signed with HS256 (contract section 6): ``sub`` participant id,
``name``, ``role``, ``wid`` workshop id, ``exp``, ``iat``. Only HS256 is accepted,
so an ``alg: none`` or RS/HS confusion token fails verification. Removing a
participant revokes every token it holds: the registry remembers revoked
participant ids per workshop, checked at connect and on every frame.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import jwt

from ..errors import Forbidden, Unauthenticated
from ..schema import ROLES
from ..storage import Directory, open_store

__all__ = ("Principal", "TokenIssuer", "AccessRegistry", "load_secret", "WorkshopAccess", "new_id")

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_ALGORITHM = "HS256"
#: a participant token lasts a workshop and a follow-up: 30 days
DEFAULT_TTL = 30 * 24 * 3600.0


def load_secret(secret: str | None, data_dir: Path) -> str:
    """The configured secret, or the one kept in ``data_dir/secret.key`` (made once, 0600)."""
    if secret:
        return secret
    path = data_dir / "secret.key"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    logger.info("generated a new token secret in %s", path)
    return value


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is on the other end, as the token says (``None`` fields with auth off)."""

    participant_id: str | None
    name: str | None = None
    role: str | None = None
    workshop_id: str | None = None

    @property
    def authenticated(self) -> bool:
        return self.role is not None


class ExternalVerifier(Protocol):
    """Tokens signed by the embedding application (external_auth.py, docs/auth.md)."""

    def accepts(self, token: str) -> bool: ...

    async def verify(self, token: str, workshop_id: str) -> Principal: ...


class TokenIssuer:
    """Signs and verifies workshop tokens with one HS256 secret.

    ``external`` also accepts tokens signed by the embedding application: those its
    ``accepts`` claims (by their header's algorithm) are checked by it instead.
    """

    def __init__(self, secret: str, *, ttl: float = DEFAULT_TTL, external: ExternalVerifier | None = None) -> None:
        if len(secret) < 16:
            raise ValueError("the token secret must be at least 16 characters")
        self._secret = secret
        self.ttl = ttl
        self.external = external

    def issue(self, workshop_id: str, participant_id: str, name: str, role: str, *, ttl: float | None = None) -> str:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        now = int(time.time())
        claims = {
            "sub": participant_id,
            "name": name,
            "role": role,
            "wid": workshop_id,
            "iat": now,
            "exp": now + int(self.ttl if ttl is None else ttl),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    def verify(self, token: str | None, workshop_id: str) -> Principal:
        """The principal a token names; 4401 if it is not valid, 4403 for another workshop."""
        if not token:
            raise Unauthenticated("a token is required: pass it as the 'token' query parameter")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                options={"require": ["sub", "role", "wid", "exp", "iat"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("the token has expired; ask the facilitator for a new link") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated("the token is not valid") from exc
        role = claims.get("role")
        sub = claims.get("sub")
        if role not in ROLES or not isinstance(sub, str) or not sub:
            raise Unauthenticated("the token's role or subject is not valid")
        if claims.get("wid") != workshop_id:
            raise Forbidden("this token opens another workshop")
        name = claims.get("name")
        return Principal(sub, name if isinstance(name, str) else sub, role, workshop_id)


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


def new_id(prefix: str = "") -> str:
    """A random workshop or participant id within the contract's ``[A-Za-z0-9_-]``."""
    return prefix + secrets.token_urlsafe(9).replace("-", "x").replace("_", "y")


def _invite_code() -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
    return "".join(secrets.choice(alphabet) for _ in range(8))
