"""Which browser ``Origin`` may use this server: one rule for the API and the WebSocket.

A page on another site can make a browser send requests with the user's cookies or
open a WebSocket to any host (cross-site request forgery, cross-site WebSocket
hijacking). So a request that carries an ``Origin`` is served only when that Origin
is the server's own (the ``Host`` it was asked under, over http or https) or listed
in ``settings.allowed_origins`` (``*`` allows any). Clients that send no Origin
(curl, Python, Node) are judged by their token alone. Used by the HTTP guard
(httpguard.py) for requests that may change something, and by the WebSocket
upgrade (endpoint.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..config import Settings

__all__ = ("origin_allowed",)


def origin_allowed(headers: Mapping[str, str], settings: Settings) -> bool:
    """Whether a request with these ``headers`` may proceed, as far as its Origin goes.

    Example:
        >>> from vmv_sync.config import Settings
        >>> origin_allowed({"origin": "https://ours.example", "host": "ours.example"}, Settings())
        True
        >>> origin_allowed({"origin": "https://evil.example", "host": "ours.example"}, Settings())
        False
    """
    origin = headers.get("origin")
    if origin is None:
        return True
    if origin in settings.allowed_origins or "*" in settings.allowed_origins:
        return True
    host = headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")
