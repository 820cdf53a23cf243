"""Tokens signed by the embedding application: its own login, checked with its public keys.

An application that already has users (Supabase Auth, Auth0, Keycloak, its own
login) signs a JWT with its private key and hands it to the browser or the Python
client; vmv-sync checks it with the public key and never holds a secret of the
application. These tokens are accepted beside vmv-sync's own HS256 tokens (auth.py):
a token whose header names an asymmetric algorithm configured here comes to this
module, every other token goes to the HS256 check. So a token signed with HS256
using the public key as the secret (the classic algorithm confusion) is judged by
the HS256 secret and fails, and ``alg: none`` fails both.

Keys come from one source (docs/auth.md):

- a PEM public key file, or a JWKS file: read again whenever the file changes, so a
  key rotation is a file replacement (``mv new.jwks keys.jwks``), no restart;
- a JWKS URL: fetched in a worker thread, kept for ``auth_jwks_refresh`` seconds, and
  fetched again early when a token names a key id (``kid``) it does not have, at most
  every ten seconds (a flood of made-up ids cannot hammer the identity provider).

Claims are mapped by dotted paths (``app_metadata.vmv_role``): participant id
(``sub``), display name, role, and workshop, which may be one id or a list of the
ids the token opens. ``iss`` and ``aud`` are checked when configured, ``exp`` always.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import jwt
from jwt import PyJWKSet

from ..config import Settings
from ..errors import ConfigError, Forbidden, Unauthenticated
from ..ids import WORKSHOP_ID_RE
from ..schema import ROLES
from .auth import Principal

__all__ = ("ExternalTokens", "ASYMMETRIC_ALGORITHMS")

logger = logging.getLogger(__name__)

#: algorithms a public key can check; a symmetric one here would need a shared secret
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
#: a token naming an unknown key id fetches the JWKS URL again at most this often
_REFETCH_SECONDS = 10.0
_FETCH_TIMEOUT = 5.0
_MAX_JWKS_BYTES = 1024 * 1024
#: seconds of clock skew allowed on ``exp`` (an open connection lasts until exp + this)
_LEEWAY = 30


@dataclass(frozen=True)
class _Keys:
    """One loaded key set: keys by id, and the keys without an id (tried in turn)."""

    by_kid: dict[str, Any]
    anonymous: tuple[Any, ...]

    def find(self, kid: str | None) -> list[Any]:
        if kid is not None and kid in self.by_kid:
            return [self.by_kid[kid]]
        return list(self.anonymous) if kid is None or not self.by_kid else []


def _parse_jwks(data: bytes | str) -> _Keys:
    try:
        document = json.loads(data)
        keys = [document] if isinstance(document, dict) and "kty" in document else document.get("keys", [])
        parsed = PyJWKSet([k for k in keys if k.get("use", "sig") == "sig"]).keys if keys else []
    except (ValueError, AttributeError, jwt.PyJWTError) as exc:
        raise ConfigError(f"the JWKS is not valid: {exc}") from exc
    by_kid = {k.key_id: k.key for k in parsed if k.key_id}
    return _Keys(by_kid, tuple(k.key for k in parsed if not k.key_id))


def _parse_pem(data: bytes) -> _Keys:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        return _Keys({}, (load_pem_public_key(data),))
    except ValueError as exc:
        raise ConfigError(f"the public key is not a PEM public key: {exc}") from exc


class _FileSource:
    """A PEM or JWKS file, read again when its size or modification time changes."""

    def __init__(self, path: Path, parse: Callable[[bytes], _Keys]) -> None:
        self.path, self._parse = path, parse
        self._stamp: tuple[int, int] | None = None
        self._keys = self._load()

    def _load(self) -> _Keys:
        try:
            stat = os.stat(self.path)
            keys = self._parse(self.path.read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read the key file {self.path}: {exc.strerror}") from exc
        self._stamp = (stat.st_mtime_ns, stat.st_size)
        return keys

    async def keys(self, kid: str | None) -> list[Any]:
        try:
            stat = os.stat(self.path)
            if (stat.st_mtime_ns, stat.st_size) != self._stamp:
                self._keys = self._load()
                logger.info("auth: reloaded the keys of %s (%d with an id)", self.path, len(self._keys.by_kid))
        except (OSError, ConfigError) as exc:  # a rotation half done: keep the keys we have
            logger.warning("auth: keeping the previous keys of %s: %s", self.path, exc)
        return self._keys.find(kid)


class _UrlSource:
    """A JWKS URL, cached for ``refresh`` seconds and fetched early for an unknown key id."""

    def __init__(self, url: str, refresh: float) -> None:
        self.url, self.refresh = url, refresh
        self._keys: _Keys | None = None
        self._fetched = -float("inf")
        self._lock = anyio.Lock()

    def _fetch(self) -> _Keys:
        request = urllib.request.Request(self.url, headers={"accept": "application/json"})
        with urllib.request.urlopen(request, timeout=_FETCH_TIMEOUT) as response:  # noqa: S310 (configured URL)
            return _parse_jwks(response.read(_MAX_JWKS_BYTES))

    async def keys(self, kid: str | None) -> list[Any]:
        async with self._lock:
            age = time.monotonic() - self._fetched
            stale = self._keys is None or age > self.refresh
            unknown = self._keys is not None and not self._keys.find(kid) and age > min(_REFETCH_SECONDS, self.refresh)
            if stale or unknown:
                try:
                    self._keys = await anyio.to_thread.run_sync(self._fetch)
                    self._fetched = time.monotonic()
                    logger.info("auth: fetched the JWKS from %s (%d keys with an id)", self.url, len(self._keys.by_kid))
                except (OSError, ConfigError) as exc:
                    logger.warning("auth: could not fetch the JWKS from %s: %s", self.url, exc)
                    self._fetched = time.monotonic() - self.refresh + _REFETCH_SECONDS  # retry soon, not per token
            return self._keys.find(kid) if self._keys is not None else []


def _fits(key: Any, alg: str) -> bool:
    """Whether ``key`` is of the family ``alg`` signs with (an RSA key never checks ES256)."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    if alg.startswith(("RS", "PS")):
        return isinstance(key, rsa.RSAPublicKey)
    if alg.startswith("ES"):
        return isinstance(key, ec.EllipticCurvePublicKey)
    return isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey))


def _claim(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


class ExternalTokens:
    """Checks tokens signed by the embedding application (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        algorithms = set(settings.auth_algorithms)
        if not algorithms or not algorithms <= ASYMMETRIC_ALGORITHMS:
            bad = ", ".join(sorted(algorithms - ASYMMETRIC_ALGORITHMS)) or "none given"
            raise ConfigError(f"auth_algorithms: only public-key algorithms are accepted ({bad})")
        if settings.auth_default_role and settings.auth_default_role not in ROLES:
            raise ConfigError(f"auth_default_role={settings.auth_default_role!r}: expected one of {', '.join(ROLES)}")
        self.settings = settings
        self.algorithms = sorted(algorithms)
        self._source: _FileSource | _UrlSource
        if settings.auth_jwks and settings.auth_public_key:
            raise ConfigError("give auth_jwks or auth_public_key, not both")
        if settings.auth_public_key is not None:
            self._source = _FileSource(settings.auth_public_key, _parse_pem)
        elif settings.auth_jwks and settings.auth_jwks.startswith(("http://", "https://")):
            self._source = _UrlSource(settings.auth_jwks, settings.auth_jwks_refresh)
        elif settings.auth_jwks:
            self._source = _FileSource(Path(settings.auth_jwks), _parse_jwks)
        else:
            raise ConfigError("no auth_jwks or auth_public_key configured")

    @classmethod
    def from_settings(cls, settings: Settings) -> ExternalTokens | None:
        """The checker the settings ask for, or ``None`` when no key source is set."""
        if not (settings.auth_jwks or settings.auth_public_key):
            return None
        return cls(settings)

    def accepts(self, token: str) -> bool:
        """Whether ``token`` is for this checker: its header names a configured algorithm."""
        try:
            return jwt.get_unverified_header(token).get("alg") in self.algorithms
        except jwt.PyJWTError:
            return False

    async def verify(self, token: str, workshop_id: str) -> Principal:
        """The principal the token names for ``workshop_id``: 4401 if invalid, 4403 for another workshop."""
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        keys = await self._source.keys(kid if isinstance(kid, str) else None)
        if not keys:
            raise Unauthenticated("the token's signing key is not known to this server")
        settings = self.settings
        claims: dict[str, Any] | None = None
        for key in (k for k in keys if _fits(k, header["alg"])):
            try:
                claims = jwt.decode(
                    token, key, algorithms=[header["alg"]],
                    audience=settings.auth_audience, issuer=settings.auth_issuer,
                    options={"require": ["exp"], "verify_aud": settings.auth_audience is not None},
                    leeway=_LEEWAY,
                )  # fmt: skip
                break
            except jwt.ExpiredSignatureError as exc:
                raise Unauthenticated("the token has expired; get a fresh one from the application") from exc
            except (jwt.InvalidAudienceError, jwt.InvalidIssuerError) as exc:
                raise Unauthenticated(f"the token is not for this server: {exc}") from exc
            except jwt.PyJWTError:
                continue
        if claims is None:
            raise Unauthenticated("the token is not valid")
        return self._principal(claims, workshop_id)

    def _principal(self, claims: dict[str, Any], workshop_id: str) -> Principal:
        settings = self.settings
        participant = _claim(claims, settings.auth_claim_participant)
        if not isinstance(participant, str) or not WORKSHOP_ID_RE.fullmatch(participant):
            raise Unauthenticated(f"the token's {settings.auth_claim_participant!r} claim is not a valid participant id")
        role = _claim(claims, settings.auth_claim_role)
        if role not in ROLES:
            if not settings.auth_default_role:
                raise Unauthenticated(f"the token's {settings.auth_claim_role!r} claim is not a vmv-sync role")
            role = settings.auth_default_role
        opens = _claim(claims, settings.auth_claim_workshop)
        if not (opens == workshop_id or (isinstance(opens, list) and workshop_id in opens)):
            raise Forbidden("this token opens another workshop")
        name = _claim(claims, settings.auth_claim_name)
        exp = int(claims["exp"])
        return Principal(
            participant, name if isinstance(name, str) and name else participant, str(role), workshop_id,
            exp, float(exp + _LEEWAY),
        )  # fmt: skip
