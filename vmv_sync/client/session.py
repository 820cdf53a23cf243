"""One connection of a :class:`~vmv_sync.client.WorkshopClient` to the server.

A session opens the socket, sends sync step 1 (our state vector) and our
awareness state, answers the server's step 1 with step 2 (exactly what the
server's state vector lacks), applies and persists what the server sends, and
counts the frames the server will acknowledge with ``saved``:

* every non-empty sync step 2 or update we send is one counted frame;
* step 2 carries every pending local edit (all of them, in one frame), so local
  edits made while connecting are not sent separately; edits made after step 2 go
  one per frame;
* a ``saved N`` message confirms the local edits carried by frames 1..N.

Frames leave through one writer task reading a bounded queue, in order; a queue
overflow drops the connection (the pending edits travel again in the next step 2).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio
import websockets
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from pycrdt import merge_updates
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from ..errors import MalformedMessage
from ..protocol import (
    Awareness,
    QueryAwareness,
    Saved,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode_awareness_update,
    encode_sync_step1,
    encode_sync_step2,
    encode_sync_update,
    parse_message,
)
from .backoff import is_permanent_close

if TYPE_CHECKING:
    from .client import WorkshopClient

__all__ = ("Session", "run_session")

logger = logging.getLogger(__name__)

_EMPTY_UPDATE = b"\x00\x00"
_QUEUE_SIZE = 8192


class Session:
    """Per-connection state: the socket, the send queue and the saved bookkeeping."""

    def __init__(self, client: WorkshopClient) -> None:
        self.client = client
        self.ws: websockets.ClientConnection | None = None
        #: the server's step 2 arrived: we are in sync and live
        self.synced = False
        #: our step 2 is queued: later local edits go one per frame
        self.step2_sent = False
        #: local outbox seqs carried by each counted frame, in send order
        self.frames: list[list[int]] = []
        #: how many counted frames the server confirmed
        self.confirmed_frames = 0
        self.closing = False
        self._out: MemoryObjectSendStream[bytes]
        self._in: MemoryObjectReceiveStream[bytes]
        self._out, self._in = anyio.create_memory_object_stream[bytes](_QUEUE_SIZE)

    # -- sending (never awaits the socket) --------------------------------------------

    def _enqueue(self, frame: bytes) -> None:
        if self.closing:
            return
        try:
            self._out.send_nowait(frame)
        except anyio.WouldBlock:
            logger.warning(
                "workshop=%s send queue full; dropping the connection to resync",
                self.client.workshop_id,
            )
            self.closing = True
            self._out.close()
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    def send_local(self, seq: int, update: bytes) -> None:
        """Send a committed local edit, unless step 2 will (or did) carry it."""
        if not self.step2_sent or self.closing:
            return
        self.frames.append([seq])
        self._enqueue(encode_sync_update(update))

    def send_awareness(self, frame: bytes) -> None:
        self._enqueue(frame)

    def _answer_step1(self, state_vector: bytes) -> None:
        replica = self.client._replica
        pending = replica.pending()
        diff = self.client.doc.get_update(state_vector)
        if diff == _EMPTY_UPDATE and pending:
            # The server already has every pending edit, but only a counted frame
            # gets a "saved" (its commit may still be in flight): send them again.
            updates = [u for _, u in pending]
            diff = updates[0] if len(updates) == 1 else merge_updates(*updates)
        if diff != _EMPTY_UPDATE:
            self.frames.append([seq for seq, _ in pending])
        self._enqueue(encode_sync_step2(diff))
        self.step2_sent = True

    def _confirm(self, count: int) -> list[int]:
        if count <= self.confirmed_frames:
            return []
        seqs = [s for frame in self.frames[self.confirmed_frames : count] for s in frame]
        self.confirmed_frames = min(count, len(self.frames))
        return seqs

    # -- tasks ------------------------------------------------------------------------

    async def _writer(self) -> None:
        assert self.ws is not None
        async with self._in:
            try:
                async for frame in self._in:
                    await self.ws.send(frame)
            except ConnectionClosed:
                return
        # The queue was closed (overflow): end the connection.
        await self.ws.close(1000, "client send queue overflow")

    async def _heartbeat(self) -> None:
        while True:
            await anyio.sleep(self.client.heartbeat)
            self._enqueue(self.client._me.renew())

    async def _reader(self) -> None:
        assert self.ws is not None
        client = self.client
        try:
            async for frame in self.ws:
                if isinstance(frame, str):
                    raise MalformedMessage("the server sent a text frame")
                message = parse_message(frame)
                if isinstance(message, SyncStep1):
                    self._answer_step1(message.state_vector)
                elif isinstance(message, (SyncStep2, SyncUpdate)):
                    await client._apply_remote(message.update)
                    if isinstance(message, SyncStep2) and not self.synced:
                        self.synced = True
                        client._session_synced()
                elif isinstance(message, Awareness):
                    entries = decode_awareness_update(message.update)
                    client._presence_changed(lambda: client._awareness.apply(entries))  # noqa: B023 (called at once)
                elif isinstance(message, QueryAwareness):
                    self._enqueue(client._me.frame())
                elif isinstance(message, Saved):
                    seqs = self._confirm(message.count)
                    if client._replica.confirm(seqs):
                        client._notify("saved")
                        # Shielded: closing right after wait_saved() must not leave
                        # confirmed edits counted pending in the store.
                        with anyio.CancelScope(shield=True):
                            await client._replica.persist_confirmed(client.doc.get_update)
        except ConnectionClosed:
            return
        except MalformedMessage as exc:
            logger.error("workshop=%s bad frame from the server: %s", client.workshop_id, exc)
            client._session_failed(f"the server sent a bad frame: {exc}", None, False)
            await self.ws.close(4400, "malformed message")

    # -- closing ----------------------------------------------------------------------

    async def close_cleanly(self, goodbye: bytes) -> None:
        """Say our awareness state is gone, then close with 1000."""
        ws = self.ws
        if ws is None or self.closing:
            return
        self.closing = True
        try:
            await ws.send(goodbye)
            await ws.close(1000, "client closed")
        except ConnectionClosed:
            pass

    async def abort_quietly(self) -> None:
        """Close with 1000 so the connector opens a fresh connection."""
        ws = self.ws
        if ws is not None:
            self.closing = True
            try:
                await ws.close(1000, "client reconnecting")
            except ConnectionClosed:
                pass


async def run_session(session: Session, url: str, open_timeout: float) -> None:
    """Connect, run the session until the socket closes, and report how it ended."""
    client = session.client
    try:
        ws = await websockets.connect(
            url, max_size=None, open_timeout=open_timeout, close_timeout=2
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        client._session_failed(
            f"the server refused the connection with HTTP {status}", None, status in (401, 403)
        )
        return
    except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
        client._session_failed(f"cannot connect: {exc or type(exc).__name__}", None, False)
        return
    session.ws = ws
    client._session_open(session)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(session._writer)
            tg.start_soon(session._heartbeat)
            session._enqueue(encode_sync_step1(client.doc.get_state()))
            session._enqueue(client._announce_frame())
            await session._reader()
            tg.cancel_scope.cancel()
    finally:
        session.closing = True
        with anyio.CancelScope(shield=True), anyio.move_on_after(2):
            await ws.close()
    code = ws.close_code
    rcvd = ws.protocol.close_rcvd
    if rcvd is not None and rcvd.code != 1000:
        reason = rcvd.reason or "no reason given"
        client._session_failed(
            f"the server closed the connection ({rcvd.code}: {reason})",
            rcvd.code,
            is_permanent_close(rcvd.code),
        )
    elif rcvd is None and code == 1006:
        client._session_failed("the connection was lost (1006)", 1006, False)
