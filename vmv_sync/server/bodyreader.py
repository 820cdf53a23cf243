"""Reading a request body before the app does: bounded in size and in time.

The HTTP guard (httpguard.py) reads the body of every request that may change
something, chunk by chunk, so that a body over ``settings.max_body_bytes`` is
refused (413) as soon as it gets there: the rest of a 150 MB body is never read.
A body that does not arrive within :data:`BODY_TIMEOUT` seconds is refused (408).
The app then gets the body already read through :func:`replay`.
"""

from __future__ import annotations

import anyio
from starlette.types import Message, Receive

from .httperrors import BodyTimeout, PayloadTooLarge

__all__ = ("BODY_TIMEOUT", "ClientGone", "read_body", "replay")

#: a request body must arrive within this many seconds (408 otherwise)
BODY_TIMEOUT = 30.0


class ClientGone(Exception):
    """The client disconnected while its body was read: nobody to answer."""


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole body, counted chunk by chunk: :class:`PayloadTooLarge` past ``limit``."""
    chunks: list[bytes] = []
    size = 0
    try:
        with anyio.fail_after(BODY_TIMEOUT):
            while True:  # bounded: every chunk adds to ``size`` or ends the body
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(limit)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError as exc:
        raise BodyTimeout(f"the request body did not arrive within {BODY_TIMEOUT:g} s") from exc


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then the real channel."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
