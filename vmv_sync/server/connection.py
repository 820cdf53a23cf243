"""One WebSocket in one room: its send queue, its writer task and its close code.

Fan-out never awaits a socket: the room encodes a frame once and calls
:meth:`Connection.enqueue` for each peer, which writes it at once or appends it to a
bounded queue that a single writer task drains. A peer whose queue overflows is a
slow consumer: it is closed with 4409 and resyncs when it reconnects, so memory stays
bounded.

This is the hottest code of the server (every frame to every peer passes here):

- when nothing is queued or being written, a channel that can write without waiting
  (``send_nowait``) gets the frame at once, in the caller's turn of the event loop:
  a relay to 50 peers is 50 writes, not 50 task switches;
- otherwise the frame joins a plain deque with one reusable wake-up event (not a
  memory object stream): the writer is woken once per burst and drains everything
  queued by then, so order is kept and a stalled peer never blocks the caller.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

import anyio

from ..errors import CloseError, SlowConsumer
from ..protocol import (
    MSG_AWARENESS,
    MSG_SYNC,
    SYNC_UPDATE,
    SyncUpdate,
    encode_awareness,
    encode_sync_update,
    merge_awareness_payloads,
    parse_message,
)
from ..protocol import Awareness as AwarenessMessage
from .auth import Principal
from .budgets import Budget

__all__ = ("Channel", "Connection", "coalesce_frames")

logger = logging.getLogger(__name__)
_ids = itertools.count(1)


class Channel(Protocol):
    """What a connection needs of a socket; the app adapts the ASGI channel to it."""

    async def send(self, frame: bytes) -> None: ...

    def send_nowait(self, frame: bytes) -> bool:
        """Write ``frame`` now if that needs no waiting; False (nothing written) if not."""
        ...


class Connection:
    """A peer of a room. Created by the app, registered with a room while it lives.

    ``on_sent`` is told of every run of frames once they are handed to the socket
    (the app counts them for ``/metrics``).
    """

    #: a client of another server process, seen by the workshop's owner (cluster/owner.py)
    remote = False

    def __init__(
        self,
        workshop_id: str,
        channel: Channel,
        *,
        principal: Principal | None = None,
        queue_size: int = 4096,
        queue_bytes: int = 64 * 1024 * 1024,
        wants_saved: bool = False,
        on_sent: Callable[[Sequence[bytes]], None] | None = None,
    ) -> None:
        self.id = next(_ids)
        self.workshop_id = workshop_id
        self.principal = principal or Principal(None)
        self.wants_saved = wants_saved
        self._channel = channel
        self._writing = False  # the writer task has frames in hand (maybe mid-send)
        self._on_sent = on_sent
        self._queue: deque[bytes] = deque()
        self._queue_size = queue_size
        self._queue_bytes = queue_bytes
        self._queued = 0  # bytes in the queue
        self._wakeup = asyncio.Event()
        self._writer_gone = False
        #: awareness client ids this connection has announced
        self.awareness_ids: set[int] = set()
        #: whether the room has answered this peer's sync step 1 (relays start then)
        self.synced = False
        #: whether an awareness frame has come in yet (a reconnect's first one reclaims)
        self.awareness_seen = False
        #: number of non-empty updates this connection sent to the room
        self.updates_received = 0
        #: the budgets this connection's input is charged to (its participant's; set by
        #: the endpoint; None in tests that build connections by hand)
        self.budget: Budget | None = None
        self.last_seen = time.monotonic()
        self.close_error: CloseError | None = None
        self._cancel: anyio.CancelScope | None = None

    @property
    def closed(self) -> bool:
        return self.close_error is not None

    def enqueue(self, frame: bytes) -> None:
        """Write ``frame`` now if nothing is pending for this peer, else queue it.

        Never waits. A full queue (in frames or in bytes) closes the peer (4409).
        """
        if self.close_error is not None or self._writer_gone:
            return
        if not self._queue and not self._writing:
            try:
                sent = self._channel.send_nowait(frame)
            except Exception as exc:  # the socket is gone; the reader sees the disconnect
                logger.debug("workshop=%s conn=%d send failed: %r", self.workshop_id, self.id, exc)
                self._writer_gone = True
                return
            if sent:
                if self._on_sent is not None:
                    self._on_sent((frame,))
                return
        if len(self._queue) >= self._queue_size or (self._queue and self._queued + len(frame) > self._queue_bytes):
            self.fail(SlowConsumer("the connection fell too far behind; reconnect to resync"))
            return
        self._queue.append(frame)
        self._queued += len(frame)
        self._wakeup.set()

    def fail(self, error: CloseError) -> None:
        """End this connection with ``error``'s close code, from any task."""
        if self.close_error is not None:
            return
        self.close_error = error
        logger.info(
            "workshop=%s conn=%d closing code=%d reason=%s",
            self.workshop_id,
            self.id,
            error.code,
            error.reason,
        )
        self._queue.clear()
        self._queued = 0
        self._wakeup.set()
        if self._cancel is not None:
            self._cancel.cancel()

    def attach(self, scope: anyio.CancelScope) -> None:
        """The scope cancelled when the connection fails (its reader and writer)."""
        self._cancel = scope
        if self.close_error is not None:
            scope.cancel()

    async def run_writer(self) -> None:
        """Drain the send queue into the socket, in order, until the connection fails.

        When frames have piled up (the peer or the machine is slower than the
        room), consecutive document updates are merged into one update and
        consecutive awareness frames into one carrying each client's latest state:
        the peer ends in the same state with fewer, cheaper sends.
        """
        queue = self._queue
        send = self._channel.send
        try:
            while self.close_error is None:
                if not queue:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                frames = list(queue)
                queue.clear()
                self._queued = 0
                if len(frames) > 1:
                    frames = coalesce_frames(frames)
                self._writing = True
                for frame in frames:
                    await send(frame)
                self._writing = False
                if self._on_sent is not None:
                    self._on_sent(frames)
        finally:  # the socket is gone or the connection failed: queue nothing more
            self._writer_gone = True
            queue.clear()
            self._queued = 0


# every message type below 128 is a one-byte var-uint: a frame starts with its type bytes
_UPDATE_PREFIX = bytes((MSG_SYNC, SYNC_UPDATE))
_AWARENESS_PREFIX = bytes((MSG_AWARENESS,))


def coalesce_frames(frames: list[bytes]) -> list[bytes]:
    """Merge runs of consecutive update frames and of awareness frames; keep the order."""
    from pycrdt import merge_updates

    out: list[bytes] = []
    run: list[bytes] = []
    run_kind = b""

    def flush() -> None:
        if not run:
            return
        if len(run) == 1:
            out.append(run[0])
        elif run_kind == _UPDATE_PREFIX:
            updates = [m.update for m in map(parse_message, run) if isinstance(m, SyncUpdate)]
            out.append(encode_sync_update(merge_updates(*updates)))
        else:
            payloads = [m.update for m in map(parse_message, run) if isinstance(m, AwarenessMessage)]
            out.append(encode_awareness(merge_awareness_payloads(payloads)))
        run.clear()

    for frame in frames:
        if frame.startswith(_UPDATE_PREFIX):
            kind = _UPDATE_PREFIX
        elif frame.startswith(_AWARENESS_PREFIX):
            kind = _AWARENESS_PREFIX
        else:
            kind = b""
        if kind and kind == run_kind:
            run.append(frame)
            continue
        flush()
        if kind:
            run_kind = kind
            run.append(frame)
        else:
            run_kind = b""
            out.append(frame)
    flush()
    return out
