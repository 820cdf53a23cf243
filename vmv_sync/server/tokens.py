"""Workshop tokens: signed and verified with the server's secret.

A token is a JWT signed with HS256 (contract section 6): ``sub`` participant id,
``name``, ``role``, ``wid`` workshop id, ``exp``, ``iat``. Only HS256 is accepted,
so an ``alg: none`` or RS/HS confusion token fails verification. Whether a valid
token's participant may still come in is the access registry's question (auth.py);
where the secret comes from, secret.py's and the store's (``token_secret``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Protocol

import jwt

from ..errors import Forbidden, Unauthenticated
from ..schema import ROLES
from .auth import Principal

__all__ = ("TokenIssuer", "ExternalVerifier", "DEFAULT_TTL")

_ALGORITHM = "HS256"
#: a participant token lasts a workshop and a follow-up: 30 days
DEFAULT_TTL = 30 * 24 * 3600.0


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
        exp = int(claims["exp"])
        return Principal(sub, name if isinstance(name, str) else sub, role, workshop_id, exp, float(exp))
