"""One connection of a :class:`~vmv_sync.client.WorkshopClient`, over any channel.

Like pycrdt's ``Provider(doc, channel)``, a session is given what it works on (the
document, the local replica, this client's awareness state, an open
:class:`~vmv_sync.client.channel.Channel`) and reports back through the small
:class:`SessionHost` protocol; it knows nothing else of the client, which is what
lets tests run it over in-memory channels with no server. Its lifecycle is one
``async with``: entering starts its tasks (reader, writer, heartbeat) and sends sync
step 1 (our state vector) and our awareness state; :attr:`Session.ended` is set
when the channel ends; leaving stops every task and closes the send queue.

On the wire it answers the server's step 1 with step 2 (exactly what the server's
state vector lacks), hands what the server sends to the host, and counts the
frames the server will acknowledge with ``saved``:

* every non-empty sync step 2 or update we send is one counted frame;
* step 2 carries every pending local edit (all of them, in one frame), so local
  edits made while connecting are not sent separately; edits made after step 2 go
  one per frame;
* a ``saved N`` message confirms the local edits carried by frames 1..N.

It also hands the server a fresh token in band (extension 101, docs/protocol.md):
:meth:`Session.refresh_token` sends it and waits for the server's answer, the
token's new expiry, or for the close that refuses it.

Frames leave through one writer task reading a bounded queue, in order; a queue
overflow drops the connection (the pending edits travel again in the next step 2).
"""

from __future__ import annotations

import logging
from collections import deque
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import anyio.abc
from pycrdt import Doc, merge_updates

from ..errors import TOKEN_REFRESH_PREFIX, ClientError, MalformedMessage
from ..protocol import (
    EMPTY_UPDATE,
    Awareness,
    AwarenessEntry,
    QueryAwareness,
    Saved,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    TokenRefreshed,
    decode_awareness_update,
    encode_sync_step1,
    encode_sync_step2,
    encode_sync_update,
    encode_token_refresh,
    parse_message,
)
from .backoff import is_permanent_close
from .channel import LOST, Channel, ChannelClosed
from .presence import LocalAwareness
from .replica import LocalReplica

__all__ = ("Session", "SessionHost", "Failure")

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


@dataclass
class _Refresh:
    """One token refresh waiting for the server's answer (answers come in order)."""

    answered: anyio.Event
    exp: int | None = None


class SessionHost(Protocol):
    """What a :class:`Session` reports to (the client implements it)."""

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
    """Per-connection state over one channel: the send queue and the saved bookkeeping.

    Args:
        doc: the live document (read for state vectors and step 2; never written here).
        replica: the local log, read for the pending edits step 2 carries.
        awareness: this client's awareness state (announced, renewed, re-sent).
        channel: an open channel; the session does not close it except to end it.
        host: told about everything the server sends.
        heartbeat: seconds between awareness renewals.
        recovery: this session follows a rebuild after a refusal (client/recovery.py).
        label: the workshop id, for log lines.

    Example:
        >>> async with Session(doc, replica, me, channel, host) as session:  # doctest: +SKIP
        ...     await session.ended.wait()
    """

    def __init__(
        self,
        doc: Doc[Any],
        replica: LocalReplica,
        awareness: LocalAwareness,
        channel: Channel,
        host: SessionHost,
        *,
        heartbeat: float = 15.0,
        recovery: bool = False,
        label: str = "",
    ) -> None:
        self.doc = doc
        self.replica = replica
        self.awareness = awareness
        self.channel = channel
        self.host = host
        self.heartbeat = heartbeat
        self.label = label
        #: the server's step 2 arrived: we are in sync and live
        self.synced = False
        #: set once the channel ended (closed by either side, or lost) and the host was told how
        self.ended = anyio.Event()
        #: our step 2 is queued: later local edits go one per frame
        self.step2_sent = False
        #: local pending-log seqs carried by each counted frame, in send order
        self.frames: list[list[int]] = []
        #: how many counted frames the server confirmed
        self.confirmed_frames = 0
        self.closing = False
        #: this session follows a rebuild after a refusal (its re-made rows go one per frame)
        self.recovery = recovery
        #: how the connection ended badly, once it has (refreshes waiting report it)
        self.failure: Failure | None = None
        self._refreshes: deque[_Refresh] = deque()
        self._out, self._in = anyio.create_memory_object_stream[bytes](_QUEUE_SIZE)
        self._stack = AsyncExitStack()

    # -- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Session:
        async with AsyncExitStack() as stack:
            stack.callback(self._close_queue)  # the queue lives as long as the session
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tg.cancel_scope.cancel)  # runs first: the tasks stop on exit
            tg.start_soon(self._write)
            tg.start_soon(self._renew)
            tg.start_soon(self._read)
            self._enqueue(encode_sync_step1(self.doc.get_state()))
            self._enqueue(self.awareness.announce())
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.closing = True
        await self._stack.aclose()

    def _close_queue(self) -> None:
        self.closing = True
        self._out.close()
        self._in.close()

    # -- sending (never awaits the channel) ---------------------------------------------

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

    async def refresh_token(self, token: str, timeout: float) -> int:
        """Hand the server a fresh token on this connection; the ``exp`` it answers.

        Raises ClientError when the connection ends first (a refusal closes it with
        4401/4403, its reason starting ``token refresh:``) or no answer comes within
        ``timeout`` seconds (an older server closes with 4400 instead).
        """
        if self.closing:
            raise ClientError("the connection is closing; the token was not sent")
        waiter = _Refresh(anyio.Event())
        self._refreshes.append(waiter)
        self._enqueue(encode_token_refresh(token))
        with anyio.move_on_after(timeout):
            await waiter.answered.wait()
        if waiter.exp is not None:
            return waiter.exp
        with_reason = f": {self.failure.message}" if self.failure is not None else ""
        if self.ended.is_set():
            raise ClientError(f"the token refresh was not accepted{with_reason}")
        raise ClientError(f"the server did not answer the token refresh within {timeout:g} s")

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

    # -- tasks (owned by the session's task group) ----------------------------------------

    async def _write(self) -> None:
        async with self._in:
            try:
                async for frame in self._in:
                    await self.channel.send(frame)
            except ChannelClosed:
                return
        # The queue was closed (overflow): end the connection.
        await self.channel.aclose(1000, "client send queue overflow")

    async def _renew(self) -> None:
        while True:
            await anyio.sleep(self.heartbeat)
            self._enqueue(self.awareness.renew())

    async def _read(self) -> None:
        """Hand every frame to the host; once the channel ends, report how (then ``ended``)."""
        try:
            try:
                async for frame in self.channel:
                    await self._handle(frame)
            except MalformedMessage as exc:
                logger.error("workshop=%s bad frame from the server: %s", self.label, exc)
                self._failed(Failure(f"the server sent a bad frame: {exc}"))
                await self.channel.aclose(4400, "malformed message")
            self.closing = True
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await self.channel.aclose()
            self._report_close()
        finally:
            self.closing = True
            self.ended.set()
            while self._refreshes:  # never answered: their callers read self.failure
                self._refreshes.popleft().answered.set()

    async def _handle(self, frame: bytes) -> None:
        host = self.host
        message = parse_message(frame, from_server=True)
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
        elif isinstance(message, TokenRefreshed) and self._refreshes:
            waiter = self._refreshes.popleft()
            waiter.exp = message.exp
            waiter.answered.set()

    def _failed(self, failure: Failure) -> None:
        self.failure = failure
        self.host.on_failed(self, failure)

    def _report_close(self) -> None:
        peer = self.channel.closed_by_peer
        if peer is None or peer.code == 1000:
            return
        if peer.code == LOST and not peer.reason:
            self._failed(Failure(f"the connection was lost ({LOST})", LOST))
            return
        reason = peer.reason or "no reason given"
        self._failed(
            Failure(
                f"the server closed the connection ({peer.code}: {reason})",
                peer.code,
                peer.reason,
                # a refused refresh says nothing of the token we connected with: retry with it
                is_permanent_close(peer.code) and not peer.reason.startswith(TOKEN_REFRESH_PREFIX),
            ),
        )

    # -- closing ------------------------------------------------------------------------

    async def close_cleanly(self, goodbye: bytes) -> None:
        """Say our awareness state is gone, then close with 1000."""
        if self.closing:
            return
        self.closing = True
        try:
            await self.channel.send(goodbye)
        except ChannelClosed:
            return
        await self.channel.aclose(1000, "client closed")

    async def abort_quietly(self) -> None:
        """Close with 1000 so the connector opens a fresh connection."""
        self.closing = True
        await self.channel.aclose(1000, "client reconnecting")
