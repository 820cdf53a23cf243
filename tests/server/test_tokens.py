"""Workshop tokens (server/tokens.py): what a token says, and what is refused."""

from __future__ import annotations

import jwt
import pytest

from vmv_sync.errors import Forbidden, Unauthenticated
from vmv_sync.server.auth import Principal
from vmv_sync.server.tokens import TokenIssuer

SECRET = "a-secret-of-enough-characters-for-hs256"


def test_a_token_names_its_participant_for_its_workshop_only() -> None:
    tokens = TokenIssuer(SECRET)
    token = tokens.issue("w1", "p-1", "Ann", "observer")
    assert tokens.verify(token, "w1") == Principal("p-1", "Ann", "observer", "w1")
    with pytest.raises(Forbidden):
        tokens.verify(token, "w2")


def test_expired_foreign_unsigned_and_unknown_roles_are_refused() -> None:
    tokens = TokenIssuer(SECRET)
    with pytest.raises(Unauthenticated, match="expired"):
        tokens.verify(tokens.issue("w1", "p-1", "Ann", "participant", ttl=-10), "w1")
    with pytest.raises(Unauthenticated, match="not valid"):
        tokens.verify(TokenIssuer("another-secret-of-enough-characters-too").issue("w1", "p-1", "Ann", "participant"), "w1")
    claims = {"sub": "p-1", "role": "facilitator", "wid": "w1", "exp": 2**40, "iat": 0}
    with pytest.raises(Unauthenticated):
        tokens.verify(jwt.encode(claims, None, algorithm="none"), "w1")
    with pytest.raises(ValueError):
        tokens.issue("w1", "p-1", "Ann", "admin")
    with pytest.raises(ValueError):
        TokenIssuer("short")
