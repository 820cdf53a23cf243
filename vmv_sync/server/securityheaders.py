"""The headers every HTTP response carries (docs/security.md, Security headers).

The Content-Security-Policy allows scripts only from ``/static/`` of this host (no
inline script, no eval), the page's WebSocket on the same host, images from itself
and ``data:``, a service worker and a manifest from the same origin, and no framing.
API answers also get ``cache-control: no-store``: they carry tokens and invite codes.
The HTTP guard (httpguard.py) wraps every response's ``send`` with :func:`with_headers`.
"""

from __future__ import annotations

import re

from starlette.types import Message, Send

__all__ = ("security_headers", "with_headers")

#: a Host header that can be quoted in a policy as is (no spaces, quotes or ';')
_HOST = re.compile(r"(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")


def security_headers(host: str | None) -> list[tuple[bytes, bytes]]:
    """The security headers for a request to ``host``.

    Without a usable Host header the policy's sources fall back to ``'self'``.
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


def with_headers(send: Send, host: str | None, path: str) -> Send:
    """A ``send`` that adds the security headers the response did not set itself
    (and ``cache-control: no-store`` under ``/api/``)."""
    extra = security_headers(host)
    if path.startswith("/api/"):
        extra.append((b"cache-control", b"no-store"))

    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {name.lower() for name, _ in headers}
            headers += [(name, value) for name, value in extra if name not in present]
            message = {**message, "headers": headers}
        await send(message)

    return sender
