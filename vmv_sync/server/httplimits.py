"""HTTP limits: body size, content type, Origin, per-address rate limits, security headers.

Every HTTP request passes :class:`HttpGuard` (a pure ASGI middleware) before any
route sees it. For a request that may change something (POST, PUT, PATCH,
DELETE) it refuses, in this order and before any work is done:

- a browser ``Origin`` that is neither the server's own nor in
  ``settings.allowed_origins`` (403): the same rule as the WebSocket upgrade;
- a POST/PUT/PATCH whose ``content-type`` is not ``application/json`` (415):
  a cross-site page can send ``text/plain`` or form bodies without asking, but
  not JSON, which needs a CORS preflight this server never grants;
- a body over ``settings.max_body_bytes`` (413): ``Content-Length`` is judged
  first, then the chunks are counted as they arrive; the answer closes the
  connection, so the rest of a 150 MB body is never read.

The rate limits (:class:`HttpLimits`) are token buckets per client address and
per workshop, taken by the API's handlers. Refusals are answered by
:func:`~vmv_sync.server.httperrors.error_response`. Every response gets the
security headers of :func:`security_headers`.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import anyio
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import Settings
from ..errors import Forbidden, VmvSyncError
from .clientaddr import address_key
from .httperrors import BadRequest, BodyTimeout, PayloadTooLarge, RateLimited, UnsupportedMediaType, error_response

__all__ = (
    "HttpGuard",
    "HttpLimits",
    "Buckets",
    "http_limits",
    "client_key",
    "origin_allowed",
    "security_headers",
    "BODY_TIMEOUT",
    "http_middleware",
)

logger = logging.getLogger(__name__)

#: a request body must arrive within this many seconds (408 otherwise)
BODY_TIMEOUT = 30.0
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
#: a Host header that can be quoted in a policy as is (no spaces, quotes or ';')
_HOST = re.compile(r"(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")


# -- rate limits -----------------------------------------------------------------------


class _Bucket:
    __slots__ = ("tokens", "stamp")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class Buckets:
    """Token buckets by key (a client address, a workshop id), bounded in number.

    ``per_minute`` tokens come back per minute up to ``burst``; 0 means no limit.
    At most ``max_keys`` buckets are kept: past it, buckets that have filled up
    again (they hold nothing a fresh one would not) go first, then the least
    recently used, so memory stays bounded however many addresses come by.

    Example:
        >>> b = Buckets(60, 2, "requests", clock=lambda: 0.0)
        >>> b.take("a"); b.take("a")
        >>> b.take("a")
        Traceback (most recent call last):
        ...
        vmv_sync.server.httperrors.RateLimited: too many requests; try again in 1 s
    """

    def __init__(
        self,
        per_minute: float,
        burst: int,
        what: str,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.what = what
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _refill(self, key: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, now)
            self._evict()
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
            self._buckets.move_to_end(key)
        return bucket

    def _evict(self) -> None:
        if len(self._buckets) <= self.max_keys:
            return
        now = self._clock()
        full = [
            key
            for key, b in list(self._buckets.items())[:64]
            if b.tokens + (now - b.stamp) * self.rate >= self.burst
        ]
        for key in full or [next(iter(self._buckets))]:
            del self._buckets[key]

    def take(self, key: str) -> None:
        """Spend one token of ``key``'s bucket; :class:`RateLimited` if there is none."""
        if self.rate <= 0:
            return
        bucket = self._refill(key)
        if bucket.tokens < 1.0:
            raise RateLimited(self.what, (1.0 - bucket.tokens) / self.rate)
        bucket.tokens -= 1.0

    def spent(self, key: str) -> bool:
        """Whether ``key`` has used any of its bucket that has not come back yet."""
        if self.rate <= 0 or key not in self._buckets:
            return False
        return self._refill(key).tokens < self.burst

    def refund(self, key: str) -> None:
        """Give back a token taken for a request that turned out not to count."""
        if self.rate <= 0:
            return
        bucket = self._refill(key)
        bucket.tokens = min(self.burst, bucket.tokens + 1.0)


class HttpLimits:
    """The API's rate limits, built from the settings (docs/security.md, HTTP limits)."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.create = Buckets(
            settings.workshop_create_rate, settings.workshop_create_burst,
            "workshops created from your address", clock=clock,
        )  # fmt: skip
        self.join = Buckets(settings.join_rate, settings.join_burst, "join attempts from your address", clock=clock)
        self.guesses = Buckets(
            settings.invite_guess_rate, settings.invite_guess_burst,
            "wrong invite codes for this workshop", clock=clock,
        )  # fmt: skip
        #: wrong codes per (workshop, address): one address's guesses never use up the
        #: workshop's budget for the others (issue 19, finding 6)
        self.address_guesses = Buckets(
            settings.invite_guess_rate, settings.invite_guess_burst,
            "wrong invite codes for this workshop from your address", clock=clock,
        )  # fmt: skip


def http_limits(app: Any) -> HttpLimits:
    """The app's :class:`HttpLimits`, made from ``app.state.settings`` at first use."""
    limits: HttpLimits | None = getattr(app.state, "http_limits", None)
    if limits is None:
        limits = HttpLimits(app.state.settings)
        app.state.http_limits = limits
    return limits


def client_key(scope: Scope) -> str:
    """Whom a rate limit counts: the client's IPv4 address, or its IPv6 /64 network.

    The client is the TCP peer, or, behind a trusted proxy (``forwarded_allow_ips``),
    the address the proxy forwarded; the rule is :func:`~vmv_sync.server.clientaddr.address_key`.
    """
    client = scope.get("client")
    return address_key(client[0] if client else None)


# -- the middleware --------------------------------------------------------------------


def origin_allowed(headers: Headers, settings: Settings) -> bool:
    """A browser's ``Origin`` must be this server's own or allowed (like the WebSocket's).

    Clients that send no Origin (curl, Python, Node) are judged by their token alone.
    """
    origin = headers.get("origin")
    if origin is None:
        return True
    if origin in settings.allowed_origins or "*" in settings.allowed_origins:
        return True
    host = headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


def security_headers(host: str | None) -> list[tuple[bytes, bytes]]:
    """The headers every response carries (docs/security.md, Security headers).

    The policy allows scripts only from ``/static/`` of this host (no inline script,
    no eval), the page's WebSocket on the same host, images from itself and
    ``data:``, a service worker and a manifest from the same origin, and no framing.
    Without a usable Host header the sources fall back to ``'self'``.
    """
    if host and _HOST.fullmatch(host):
        scripts = f"http://{host}/static/ https://{host}/static/"
        sockets = f"'self' ws://{host} wss://{host}"
    else:
        scripts, sockets = "'self'", "'self'"
    policy = (
        "default-src 'self'; "
        f"script-src {scripts}; "
        "style-src 'self'; "
        "img-src 'self' data:; "
        "font-src 'self'; "
        f"connect-src {sockets}; "
        "worker-src 'self'; "
        "manifest-src 'self'; "
        "object-src 'none'; "
        "base-uri 'none'; "
        "form-action 'self'; "
        "frame-ancestors 'none'"
    )
    return [
        (b"content-security-policy", policy.encode("latin-1")),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    ]


class HttpGuard:
    """ASGI middleware: Origin, content type and body size, then security headers.

    A pure ASGI middleware rather than Starlette's ``BaseHTTPMiddleware``: it must
    see the body as it streams in (to stop reading at the limit), and it leaves
    WebSocket and lifespan traffic untouched.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        send = _with_headers(send, security_headers(headers.get("host")), str(scope.get("path", "")))
        try:
            receive = await self._admit(scope, headers, receive)
        except _ClientGone:
            return
        except VmvSyncError as exc:
            logger.info("http %s %s refused: %s", scope.get("method"), scope.get("path"), exc)
            await error_response(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _admit(self, scope: Scope, headers: Headers, receive: Receive) -> Receive:
        """Judge the request before the app sees it; returns the ``receive`` to pass on."""
        method = scope.get("method", "GET")
        limit = self.settings.max_body_bytes
        if method in _UNSAFE and not origin_allowed(headers, self.settings):
            raise Forbidden("this Origin may not use this server's API (see VMV_ALLOWED_ORIGINS)")
        if method in _WITH_BODY:
            media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media != "application/json":
                raise UnsupportedMediaType("send the body as JSON with 'content-type: application/json'")
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise BadRequest("the Content-Length header is not a number")
            if int(length) > limit:
                raise PayloadTooLarge(limit)
        if method not in _UNSAFE:
            return receive
        body = await _read_body(receive, limit)
        return _replay(body, receive)


class _ClientGone(Exception):
    """The client disconnected while its body was read: nobody to answer."""


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The whole body, counted chunk by chunk: :class:`PayloadTooLarge` past ``limit``."""
    chunks: list[bytes] = []
    size = 0
    try:
        with anyio.fail_after(BODY_TIMEOUT):
            while True:  # bounded: every chunk adds to ``size`` or ends the body
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _ClientGone
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(limit)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError as exc:
        raise BodyTimeout(f"the request body did not arrive within {BODY_TIMEOUT:g} s") from exc


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then the real channel."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _with_headers(send: Send, extra: list[tuple[bytes, bytes]], path: str) -> Send:
    """A ``send`` that adds ``extra`` headers (those the response did not set itself).

    API answers also get ``cache-control: no-store``: they carry tokens and invite codes.
    """
    if path.startswith("/api/"):
        extra = [*extra, (b"cache-control", b"no-store")]

    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {name.lower() for name, _ in headers}
            headers += [(name, value) for name, value in extra if name not in present]
            message = {**message, "headers": headers}
        await send(message)

    return sender


def http_middleware(settings: Settings) -> list[Middleware]:
    """The middleware list for the app's ``Starlette(middleware=...)``."""
    return [Middleware(HttpGuard, settings=settings)]
