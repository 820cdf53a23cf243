"""The WebSocket channel: a session's link to a vmv-sync server over ``websockets``.

The only module of the client that imports ``websockets`` (the ``client`` extra),
and only when a connection is first opened, so the rest of the client (the local
replica, the actions, the session over other channels) works without it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

from .channel import LOST, Channel, ChannelClosed, ChannelFactory, ChannelRefused, CloseInfo

if TYPE_CHECKING:
    import websockets

__all__ = ("WebSocketChannel", "websocket_channels")


class WebSocketChannel:
    """A :class:`~vmv_sync.client.channel.Channel` over an open client WebSocket."""

    def __init__(self, ws: websockets.ClientConnection, path: str) -> None:
        self._ws = ws
        self._path = path

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self) -> WebSocketChannel:
        return self

    async def __anext__(self) -> bytes:
        from websockets.exceptions import ConnectionClosed

        try:
            frame = await self._ws.recv()
        except ConnectionClosed:
            raise StopAsyncIteration from None
        if isinstance(frame, str):
            from ..errors import MalformedMessage

            raise MalformedMessage("the server sent a text frame")
        return frame

    async def send(self, message: bytes) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            await self._ws.send(message)
        except ConnectionClosed as exc:
            raise ChannelClosed() from exc

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            await self._ws.close(code, reason)
        except ConnectionClosed:
            pass

    @property
    def closed_by_peer(self) -> CloseInfo | None:
        received = self._ws.protocol.close_rcvd
        if received is not None:
            return CloseInfo(received.code, received.reason)
        if self._ws.close_code == LOST:
            return CloseInfo(LOST)
        return None


def websocket_channels(url: str, open_timeout: float = 10.0) -> ChannelFactory:
    """A factory of WebSocket channels to ``url``, one per connection attempt.

    Opening raises :class:`~vmv_sync.client.channel.ChannelRefused` (permanent on
    HTTP 401/403); leaving the context closes the socket (at most 2 s, shielded).
    """

    @asynccontextmanager
    async def open_channel() -> AsyncIterator[Channel]:
        try:
            import websockets
            from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise ImportError("the WebSocket client needs the client extra: pip install 'vmv-sync[client]'") from exc
        try:
            ws = await websockets.connect(url, max_size=None, open_timeout=open_timeout, close_timeout=2)
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise ChannelRefused(
                f"the server refused the connection with HTTP {status}", permanent=status in (401, 403)
            ) from exc
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise ChannelRefused(f"cannot connect: {exc or type(exc).__name__}") from exc
        try:
            yield WebSocketChannel(ws, url.split("?")[0])
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await ws.close()

    return open_channel
