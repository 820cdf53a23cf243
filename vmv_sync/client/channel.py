"""The channel a session speaks over: a transport-agnostic stream of binary frames.

Modelled on pycrdt's ``Channel`` (python/pycrdt/_provider.py): a session needs to
send a frame, to iterate the frames received until the link ends, to close it, and,
once it ended, to know how (the peer's close code, or lost). Keeping the transport
behind this seam is what lets a :class:`~vmv_sync.client.session.Session` run over
in-memory streams in tests, with no server and no socket; the WebSocket channel
(client/websocket.py) is one implementation, :func:`memory_channel_pair` another.

A channel is opened by a :data:`ChannelFactory` (an async context manager per
connection attempt): failing to open raises :class:`ChannelRefused`, and leaving
the context closes the channel.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..errors import ClientError

__all__ = (
    "Channel",
    "ChannelFactory",
    "ChannelClosed",
    "ChannelRefused",
    "CloseInfo",
    "MemoryChannel",
    "memory_channel_pair",
)

#: the close code of a link lost without a closing handshake (RFC 6455)
LOST = 1006


@dataclass(frozen=True)
class CloseInfo:
    """How the peer ended a channel: its close code and reason (1006: lost, no close)."""

    code: int
    reason: str = ""


class ChannelClosed(ClientError):
    """A send on a channel that has ended."""

    def __init__(self) -> None:
        super().__init__("the channel is closed")


class ChannelRefused(ClientError):
    """A channel could not be opened.

    ``permanent`` says retrying cannot help (say, HTTP 401 or 403 on the upgrade).
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


class Channel(Protocol):
    """What a session needs of a transport (pycrdt's ``Channel`` plus closing)."""

    @property
    def path(self) -> str:
        """Where the channel leads (for log lines)."""
        ...

    def __aiter__(self) -> AsyncIterator[bytes]:
        """The frames received, in order, until the channel ends (however it ends)."""
        ...

    async def send(self, message: bytes) -> None:
        """Send one frame; raises :class:`ChannelClosed` once the channel ended."""
        ...

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code``; returns once closed. Safe to call more than once."""
        ...

    @property
    def closed_by_peer(self) -> CloseInfo | None:
        """Once received frames ran out: how the peer ended it (None: we closed it)."""
        ...


#: opens one channel per connection attempt; leaving the context closes it
ChannelFactory = Callable[[], AbstractAsyncContextManager[Channel]]


class MemoryChannel:
    """One end of an in-memory channel pair (:func:`memory_channel_pair`).

    Closing one end with a code ends the other end's iteration with that code as
    :attr:`closed_by_peer`; :meth:`drop` ends both as a lost link (1006).
    """

    def __init__(
        self,
        path: str,
        send: MemoryObjectSendStream[bytes | CloseInfo],
        receive: MemoryObjectReceiveStream[bytes | CloseInfo],
    ) -> None:
        self._path = path
        self._send = send
        self._receive = receive
        self._closed = False
        self._peer_close: CloseInfo | None = None

    @property
    def path(self) -> str:
        return self._path

    @property
    def closed_by_peer(self) -> CloseInfo | None:
        return self._peer_close

    def __aiter__(self) -> MemoryChannel:
        return self

    async def __anext__(self) -> bytes:
        try:
            item = await self._receive.receive()
        except anyio.EndOfStream:
            if not self._closed:  # the other end dropped: a lost link
                self._peer_close = CloseInfo(LOST)
            self.drop()
            raise StopAsyncIteration from None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise StopAsyncIteration from None  # dropped on this side
        if isinstance(item, CloseInfo):
            if not self._closed:  # the peer closed first: echo, as WebSockets do
                self._peer_close = item
                await self.aclose(item.code, item.reason)
            self._receive.close()
            raise StopAsyncIteration
        return item

    async def send(self, message: bytes) -> None:
        if self._closed:
            raise ChannelClosed()
        try:
            await self._send.send(message)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise ChannelClosed() from exc

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._send.send_nowait(CloseInfo(code, reason))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.WouldBlock):
            pass
        self._send.close()

    def drop(self) -> None:
        """End the link at once without a close frame, as a network loss does.

        Both ends' iterations end; the other end reports a lost link (1006).
        """
        self._closed = True
        self._send.close()
        self._receive.close()


def memory_channel_pair(path: str = "memory") -> tuple[MemoryChannel, MemoryChannel]:
    """Two connected channel ends over anyio memory object streams (unbounded).

    For tests and in-process peers: what one end sends, the other iterates.
    """
    a_send, b_receive = anyio.create_memory_object_stream[bytes | CloseInfo](math.inf)
    b_send, a_receive = anyio.create_memory_object_stream[bytes | CloseInfo](math.inf)
    return MemoryChannel(path, a_send, a_receive), MemoryChannel(path, b_send, b_receive)
