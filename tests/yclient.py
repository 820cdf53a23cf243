"""A minimal y-websocket peer for tests: a pycrdt Doc over a real WebSocket.

Tests of the server use it to speak the protocol exactly as a stock provider does
(sync step 1 on open, step 2 replies, updates as they happen, awareness), and to
send raw frames when they need to misbehave.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import websockets
from pycrdt import Doc

from vmv_sync.protocol import (
    Awareness,
    Saved,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    TokenRefreshed,
    decode_awareness_update,
    encode_awareness,
    encode_awareness_update,
    encode_sync_step1,
    encode_sync_step2,
    encode_sync_update,
    parse_message,
)


class YClient:
    def __init__(self, url: str, doc: Doc | None = None, *, saved: bool = False, client_id: int | None = None) -> None:
        self.url = url + (("&" if "?" in url else "?") + "saved=1" if saved else "")
        self.doc = doc or Doc()
        self.client_id = client_id if client_id is not None else self.doc.client_id
        self.ws: Any = None
        self.synced = anyio.Event()
        self.saved_count = 0
        self.sent_updates = 0
        self.awareness: dict[int, dict[str, Any] | None] = {}
        self.awareness_clock = 0
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.closed = anyio.Event()
        self.received_updates = 0
        #: the ``exp`` of every token refresh the server accepted (extension 101), in order
        self.refreshed: list[int] = []
        self._remote = False
        self._changed = anyio.Event()
        self._tg: Any = None
        self._sub: Any = None
        self._out_send, self._out_recv = anyio.create_memory_object_stream[bytes](100_000)
        self._flushed = anyio.Event()

    async def __aenter__(self) -> YClient:
        self.ws = await websockets.connect(self.url, max_size=None, open_timeout=10)
        self._sub = self.doc.observe(self._on_update)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._reader)
        self._tg.start_soon(self._writer)
        try:
            await self.ws.send(encode_sync_step1(self.doc.get_state()))
        except websockets.ConnectionClosed:
            pass  # refused at connect: the reader records the close code
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Flush every queued update to the socket (as a real provider's send does), then close."""
        self.doc.unobserve(self._sub)
        self._out_send.close()
        with anyio.move_on_after(10):
            await self._flushed.wait()
        await self.ws.close()
        self._tg.cancel_scope.cancel()
        await self._tg.__aexit__(None, None, None)

    def _on_update(self, event: Any) -> None:
        if self._remote or self.ws is None or self.closed.is_set():
            return
        self.sent_updates += 1
        self._out_send.send_nowait(encode_sync_update(event.update))

    async def _writer(self) -> None:
        try:
            async with self._out_recv:
                async for frame in self._out_recv:
                    await self.ws.send(frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            self._flushed.set()

    async def send_raw(self, frame: bytes) -> None:
        await self.ws.send(frame)

    async def set_awareness(self, state: dict[str, Any] | None, client_id: int | None = None) -> None:
        self.awareness_clock += 1
        cid = self.client_id if client_id is None else client_id
        payload = encode_awareness_update([(cid, self.awareness_clock, json.dumps(state))])
        await self.ws.send(encode_awareness(payload))

    async def _reader(self) -> None:
        try:
            async for frame in self.ws:
                message = parse_message(frame, from_server=True)
                if isinstance(message, SyncStep1):
                    await self.ws.send(encode_sync_step2(self.doc.get_update(message.state_vector)))
                elif isinstance(message, (SyncStep2, SyncUpdate)):
                    self._remote = True
                    try:
                        self.doc.apply_update(message.update)
                    finally:
                        self._remote = False
                    self.received_updates += 1
                    if isinstance(message, SyncStep2):
                        self.synced.set()
                elif isinstance(message, Awareness):
                    for entry in decode_awareness_update(message.update):
                        self.awareness[entry.client_id] = entry.state
                elif isinstance(message, Saved):
                    self.saved_count = message.count
                elif isinstance(message, TokenRefreshed):
                    self.refreshed.append(message.exp)
                self._changed.set()
                self._changed = anyio.Event()
        except websockets.ConnectionClosed:
            pass
        finally:
            if self.ws.close_code is not None:
                self.close_code = self.ws.close_code
                self.close_reason = self.ws.close_reason
            self.closed.set()
            self._changed.set()

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` is true, woken by every received message."""
        with anyio.fail_after(timeout):
            while not predicate():
                event = self._changed
                await event.wait()

    async def wait_closed(self, timeout: float = 10.0) -> int | None:
        with anyio.fail_after(timeout):
            await self.closed.wait()
        return self.close_code


async def connect_slow(url: str) -> Any:
    """A raw WebSocket whose receive buffer is tiny and that reads only when told.

    The server's writes to it stall after a few frames, as with a peer on a slow link:
    what a test needs to see the server's backpressure (queueing, then 4409).
    """
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((parts.hostname, parts.port))  # loopback: immediate
    sock.setblocking(False)
    return websockets.connect(url, sock=sock, max_size=None, max_queue=1, compression=None, open_timeout=10)


def big_updates(count: int, size: int = 60_000) -> list[bytes]:
    """``count`` updates, each appending a ``size``-character string to ``messages``."""
    from pycrdt import Array

    doc = Doc()
    updates: list[bytes] = []
    sub = doc.observe(lambda event: updates.append(event.update))
    messages = doc.get("messages", type=Array)
    for i in range(count):
        messages.append(f"{i:06d}" + "x" * size)
    doc.unobserve(sub)
    return updates
