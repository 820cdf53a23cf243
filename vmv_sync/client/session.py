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

Like pycrdt's ``Provider(doc, channel)``, a session is given what it works on (the
document, the local replica, this client's awareness, the URL) and reports back
through the small :class:`SessionHost` protocol; it knows nothing else of the client.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import websockets
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from pycrdt import Doc, merge_updates
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from ..errors import MalformedMessage
from ..protocol import (
    EMPTY_UPDATE,
    Awareness,
    AwarenessEntry,
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
from .outbox import LocalReplica
from .presence import LocalAwareness

__all__ = ("Session", "SessionHost", "Failure", "run_session")

logger = logging.getLogger(__name__)

_QUEUE_SIZE = 8192


@dataclass(frozen=True)
class Failure:
    """How a connection ended badly: a sentence, the close code and reason if any."""

    message: str
    code: int | None = None
    reason: str = ""
    #: the close code (or HTTP status) says retrying cannot help
    permanent: bool = False


class SessionHost(Protocol):
    """What a :class:`Session` reports to (the client implements it)."""

    def on_open(self, session: Session) -> None:
        """The socket is open; the handshake starts."""

    async def on_remote_update(self, update: bytes) -> None:
        """Apply and persist an update from the server (step 2 or live)."""

    async def on_synced(self, session: Session) -> None:
        """The server's step 2 was applied: both sides are in sync."""

    def on_awareness(self, entries: list[AwarenessEntry]) -> None:
        """Awareness states relayed by the server."""

    async def on_saved(self, seqs: list[int]) -> None:
        """The server committed the pending rows ``seqs``."""

    def on_failed(self, session: Session, failure: Failure) -> None:
        """The connection failed or was closed by the server with an error."""


class Session:
    """Per-connection state: the socket, the send queue and the saved bookkeeping."""

    def __init__(
        self,
        doc: Doc[Any],
        replica: LocalReplica,
        awareness: LocalAwareness,
        host: SessionHost,
        *,
        heartbeat: float = 15.0,
        label: str = "",
    ) -> None:
        self.doc = doc
        self.replica = replica
        self.awareness = awareness
        self.host = host
        self.heartbeat = heartbeat
        self.label = label
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
        #: this session follows a rebuild after a refusal (its re-made rows go one per frame)
        self.recovery = False
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
            logger.warning("workshop=%s send queue full; dropping the connection to resync", self.label)
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
        pending = self.replica.pending()
        diff = self.doc.get_update(state_vector)
        if diff == EMPTY_UPDATE and pending:
            # The server already has every pending edit, but only a counted frame
            # gets a "saved" (its commit may still be in flight): send them again.
            updates = [u for _, u in pending]
            diff = updates[0] if len(updates) == 1 else merge_updates(*updates)
        if diff != EMPTY_UPDATE:
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
            await anyio.sleep(self.heartbeat)
            self._enqueue(self.awareness.renew())

    async def _reader(self) -> None:
        assert self.ws is not None
        host = self.host
        try:
            async for frame in self.ws:
                if isinstance(frame, str):
                    raise MalformedMessage("the server sent a text frame")
                message = parse_message(frame)
                if isinstance(message, SyncStep1):
                    self._answer_step1(message.state_vector)
                elif isinstance(message, (SyncStep2, SyncUpdate)):
                    await host.on_remote_update(message.update)
                    if isinstance(message, SyncStep2) and not self.synced:
                        self.synced = True
                        await host.on_synced(self)
                elif isinstance(message, Awareness):
                    host.on_awareness(list(decode_awareness_update(message.update)))
                elif isinstance(message, QueryAwareness):
                    self._enqueue(self.awareness.frame())
                elif isinstance(message, Saved):
                    seqs = self._confirm(message.count)
                    if seqs:
                        await host.on_saved(seqs)
        except ConnectionClosed:
            return
        except MalformedMessage as exc:
            logger.error("workshop=%s bad frame from the server: %s", self.label, exc)
            host.on_failed(self, Failure(f"the server sent a bad frame: {exc}"))
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
    try:
        await _run_session(session, url, open_timeout)
    finally:  # the send queue lives as long as the session, however it ends
        session.closing = True
        session._out.close()
        session._in.close()


async def _run_session(session: Session, url: str, open_timeout: float) -> None:
    host = session.host
    try:
        ws = await websockets.connect(
            url, max_size=None, open_timeout=open_timeout, close_timeout=2
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        host.on_failed(
            session, Failure(f"the server refused the connection with HTTP {status}", permanent=status in (401, 403))
        )
        return
    except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
        host.on_failed(session, Failure(f"cannot connect: {exc or type(exc).__name__}"))
        return
    session.ws = ws
    host.on_open(session)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(session._writer)
            tg.start_soon(session._heartbeat)
            session._enqueue(encode_sync_step1(session.doc.get_state()))
            session._enqueue(session.awareness.announce())
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
        host.on_failed(
            session,
            Failure(
                f"the server closed the connection ({rcvd.code}: {reason})",
                rcvd.code,
                rcvd.reason,
                is_permanent_close(rcvd.code),
            ),
        )
    elif rcvd is None and code == 1006:
        host.on_failed(session, Failure("the connection was lost (1006)", 1006))
