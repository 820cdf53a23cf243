"""A sync peer over in-memory channels: just enough of the server for session tests.

It speaks the wire protocol the real server speaks to a client (sync step 1 and 2,
updates, ``saved N`` after each counted frame, awareness relayed back to its
sender), keeps one pycrdt document, and runs nothing else: no store, no rules, no
socket. Acknowledgements can be held back (``ack=False``) and released with
:meth:`MemoryServer.ack`, and every link can be cut as a network loss would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
from pycrdt import Doc

from vmv_sync.client.channel import Channel, MemoryChannel, memory_channel_pair
from vmv_sync.protocol import (
    EMPTY_UPDATE,
    Awareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    encode_saved,
    encode_sync_step1,
    encode_sync_step2,
    parse_message,
)


class _Link:
    """One client's channel end on the server side, with its counted frames."""

    def __init__(self, channel: MemoryChannel) -> None:
        self.channel = channel
        self.counted = 0
        self.acked = 0


class MemoryServer:
    """The server side of any number of in-memory channels; use ``async with``.

    Args:
        ack: acknowledge each counted frame at once (False: only on :meth:`ack`).
        close_with: close every new channel at once with this code (a refusal).
    """

    def __init__(self, *, ack: bool = True, close_with: int | None = None) -> None:
        self.doc: Doc[Any] = Doc()
        self.ack_at_once = ack
        self.close_with = close_with
        #: channels opened so far (one per connection attempt)
        self.opened = 0
        self.links: list[_Link] = []
        self._tg: anyio.abc.TaskGroup | None = None

    async def __aenter__(self) -> MemoryServer:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        assert self._tg is not None
        self.drop_all()
        self._tg.cancel_scope.cancel()
        await self._tg.__aexit__(None, None, None)

    @asynccontextmanager
    async def open_channel(self) -> AsyncIterator[Channel]:
        """The client's channel factory: a fresh pair per attempt, served here."""
        assert self._tg is not None
        client_end, server_end = memory_channel_pair("memory/w")
        self.opened += 1
        link = _Link(server_end)
        self.links.append(link)
        self._tg.start_soon(self._serve, link)
        try:
            yield client_end
        finally:
            client_end.drop()

    async def serve(self, channel: MemoryChannel) -> None:
        """Serve one channel end until it ends (for tests that drive a bare session)."""
        await self._serve(_Link(channel))

    async def _serve(self, link: _Link) -> None:
        channel = link.channel
        if self.close_with is not None:
            await channel.aclose(self.close_with, "refused by the memory server")
            async for _ in channel:
                pass
            return
        await channel.send(encode_sync_step1(self.doc.get_state()))
        async for frame in channel:
            message = parse_message(frame)
            if isinstance(message, SyncStep1):
                await channel.send(encode_sync_step2(self.doc.get_update(message.state_vector)))
            elif isinstance(message, (SyncStep2, SyncUpdate)):
                if isinstance(message, SyncStep2) and message.update == EMPTY_UPDATE:
                    continue  # the client does not count an empty step 2
                self.doc.apply_update(message.update)
                link.counted += 1
                if self.ack_at_once:
                    await self._ack(link)
            elif isinstance(message, Awareness):
                await channel.send(frame)  # relayed to everyone, its sender included

    async def _ack(self, link: _Link) -> None:
        if link.acked < link.counted:
            link.acked = link.counted
            await link.channel.send(encode_saved(link.counted))

    async def ack(self) -> None:
        """Acknowledge every frame received so far on the newest channel."""
        await self._ack(self.links[-1])

    def drop_all(self) -> None:
        """Cut every link without a close frame, as a network loss does."""
        for link in self.links:
            link.channel.drop()
