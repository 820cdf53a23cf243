"""Reading a request body bounded in size (server/bodyreader.py), over plain ASGI channels."""

from __future__ import annotations

import pytest
from starlette.types import Message

from vmv_sync.server.bodyreader import ClientGone, read_body, replay
from vmv_sync.server.httperrors import PayloadTooLarge

pytestmark = pytest.mark.anyio


def channel(*messages: Message):  # type: ignore[no-untyped-def]
    queue = list(messages)

    async def receive() -> Message:
        return queue.pop(0)

    return receive


async def test_chunks_are_joined_then_replayed_to_the_app() -> None:
    receive = channel(
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": False},
        {"type": "http.disconnect"},
    )
    body = await read_body(receive, limit=4)
    assert body == b"abcd"
    again = replay(body, receive)
    assert await again() == {"type": "http.request", "body": b"abcd", "more_body": False}
    assert await again() == {"type": "http.disconnect"}  # then the real channel


async def test_over_the_limit_or_gone() -> None:
    with pytest.raises(PayloadTooLarge):
        await read_body(channel({"type": "http.request", "body": b"x" * 5, "more_body": True}), limit=4)
    with pytest.raises(ClientGone):
        await read_body(channel({"type": "http.disconnect"}), limit=4)
