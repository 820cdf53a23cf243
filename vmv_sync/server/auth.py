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
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import anyio
import jwt

from ..errors import Forbidden, Unauthenticated
from ..schema import ROLES

__all__ = ("Principal", "TokenIssuer", "AccessRegistry", "load_secret", "WorkshopAccess", "new_id")

logger = logging.getLogger(__name__)

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


_SCHEMA = """
CREATE TABLE IF NOT EXISTS workshop_access (
    workshop_id TEXT PRIMARY KEY,
    invite_code TEXT NOT NULL,
    facilitator_id TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked_participants (
    workshop_id TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    revoked_at REAL NOT NULL,
    PRIMARY KEY (workshop_id, participant_id)
);
"""


class AccessRegistry:
    """Invite codes and revocations, in the server's SQLite file (tables of their own).

    Small and rarely written, so each call opens a short connection in a worker
    thread; the set of revoked participants is cached in memory for per-frame checks.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._revoked: dict[str, set[str]] = {}
        self._lock = anyio.Lock()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10)
        conn.executescript(_SCHEMA)
        return conn

    async def _run(self, fn: Any) -> Any:
        def run() -> Any:
            conn = self._connect()
            try:
                with conn:
                    return fn(conn)
            finally:
                conn.close()

        async with self._lock:
            return await anyio.to_thread.run_sync(run)

    async def create(self, workshop_id: str, facilitator_id: str) -> WorkshopAccess:
        access = WorkshopAccess(workshop_id, _invite_code(), facilitator_id, time.time())
        await self._run(
            lambda c: c.execute(
                "INSERT INTO workshop_access VALUES (?, ?, ?, ?)",
                (access.workshop_id, access.invite_code, access.facilitator_id, access.created_at),
            )
        )
        return access

    async def get(self, workshop_id: str) -> WorkshopAccess | None:
        row = await self._run(
            lambda c: c.execute(
                "SELECT workshop_id, invite_code, facilitator_id, created_at FROM workshop_access WHERE workshop_id = ?",
                (workshop_id,),
            ).fetchone()
        )
        return WorkshopAccess(*row) if row else None

    async def rotate(self, workshop_id: str) -> str | None:
        """Give the workshop a fresh invite code; the old one stops working at once.

        Returns the new code, or ``None`` for a workshop this registry does not know.
        Nothing caches codes, so the next join already compares against the new one.
        """
        code = _invite_code()
        changed = await self._run(
            lambda c: c.execute(
                "UPDATE workshop_access SET invite_code = ? WHERE workshop_id = ?", (code, workshop_id)
            ).rowcount
        )
        return code if changed else None

    async def revoke(self, workshop_id: str, participant_id: str) -> None:
        await self._run(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO revoked_participants VALUES (?, ?, ?)",
                (workshop_id, participant_id, time.time()),
            )
        )
        self._revoked.setdefault(workshop_id, set()).add(participant_id)

    async def load_revoked(self, workshop_id: str) -> set[str]:
        """Revoked participant ids of a workshop (cached after the first read)."""
        cached = self._revoked.get(workshop_id)
        if cached is not None:
            return cached
        rows = await self._run(
            lambda c: c.execute(
                "SELECT participant_id FROM revoked_participants WHERE workshop_id = ?", (workshop_id,)
            ).fetchall()
        )
        revoked = {row[0] for row in rows}
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
