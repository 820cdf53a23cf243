"""Who a client is and where it connects: the workshop URL, and identity from a token.

The token is the server's to verify; the client only reads who it says it is, so
that the awareness ``user`` and the author of its actions match what the server
will check (docs/auth.md).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ..errors import ClientError
from ..schema import ROLES

__all__ = ("workshop_url", "token_claims", "identity")


def workshop_url(url_base: str, workshop_id: str, token: str | None) -> str:
    """``ws://HOST:PORT/workshops/ID?saved=1[&token=...]`` from a base URL.

    ``url_base`` may be ``ws://HOST:PORT``, ``ws://HOST:PORT/workshops`` or the
    ``http(s)://`` form of either.
    """
    base = url_base.rstrip("/")
    if base.startswith("http://") or base.startswith("https://"):
        base = "ws" + base[4:]
    if not base.endswith("/workshops"):
        base += "/workshops"
    url = f"{base}/{workshop_id}?saved=1"
    if token:
        url += "&token=" + quote(token, safe="")
    return url


def token_claims(token: str) -> dict[str, Any]:
    """The claims of a workshop token, read without checking the signature.

    The client only needs to know who it is; the server verifies the token.
    """
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError as exc:
        raise ClientError("the token is not a valid JWT") from exc
    return claims if isinstance(claims, dict) else {}


def identity(participant_id: str | None, name: str | None, role: str, token: str | None) -> tuple[str, str, str]:
    """(participant id, name, role) from the arguments, the token filling what is left out.

    Raises ClientError when no participant id results or the role is unknown.
    """
    if participant_id is None and token is not None:
        claims = token_claims(token)
        participant_id = claims.get("sub")
        name = name if name is not None else claims.get("name")
        role = claims.get("role", role)
    if not isinstance(participant_id, str) or not participant_id:
        raise ClientError("participant_id must be a non-empty string (or pass a token)")
    if role not in ROLES:
        raise ClientError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
    return participant_id, name if name is not None else participant_id, role
