"""One WebSocket in one room: its send queue, its writer task and its close code.

Fan-out never awaits a socket: the room encodes a frame once and calls
:meth:`Connection.enqueue` for each peer, which puts it on a bounded queue that a
single writer task drains. A peer whose queue overflows is a slow consumer: it is
closed with 4408 and resyncs when it reconnects, so memory stays bounded.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..errors import CloseError, SlowConsumer
from ..protocol import Awareness as AwarenessMessage
from ..protocol import SyncUpdate, encode_awareness, encode_sync_update, merge_awareness_payloads, parse_message

__all__ = ("Channel", "Connection", "Principal", "coalesce_frames")

logger = logging.getLogger(__name__)
_ids = itertools.count(1)


class Channel(Protocol):
    """What a room needs of a socket; the app adapts Starlette's WebSocket to it."""

    async def send(self, frame: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is on the other end, as the token says (``None`` fields with auth off)."""

    participant_id: str | None
    name: str | None = None
    role: str | None = None
    workshop_id: str | None = None

    @property
    def authenticated(self) -> bool:
        return self.role is not None


class Connection:
    """A peer of a room. Created by the app, registered with a room while it lives."""

    def __init__(
        self,
        workshop_id: str,
        send: Callable[[bytes], Awaitable[None]],
        *,
        principal: Principal | None = None,
        queue_size: int = 4096,
        wants_saved: bool = False,
    ) -> None:
        self.id = next(_ids)
        self.workshop_id = workshop_id
        self.principal = principal or Principal(None)
        self.wants_saved = wants_saved
        self._send_frame = send
        self._out: MemoryObjectSendStream[bytes]
        self._in: MemoryObjectReceiveStream[bytes]
        self._out, self._in = anyio.create_memory_object_stream[bytes](queue_size)
        #: awareness client ids this connection has announced
        self.awareness_ids: set[int] = set()
        #: whether the room has answered this peer's sync step 1 (relays start then)
        self.synced = False
        #: whether an awareness frame has come in yet (a reconnect's first one reclaims)
        self.awareness_seen = False
        #: number of non-empty updates this connection sent to the room
        self.updates_received = 0
        self.last_seen = time.monotonic()
        self.close_error: CloseError | None = None
        self._cancel: anyio.CancelScope | None = None
        self.bytes_out = 0

    @property
    def closed(self) -> bool:
        return self.close_error is not None

    def enqueue(self, frame: bytes) -> None:
        """Queue a frame for this peer without waiting; overflow closes it (4408)."""
        if self.close_error is not None:
            return
        try:
            self._out.send_nowait(frame)
        except anyio.WouldBlock:
            self.fail(SlowConsumer("the connection fell too far behind; reconnect to resync"))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

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
        self._out.close()
        if self._cancel is not None:
            self._cancel.cancel()

    def attach(self, scope: anyio.CancelScope) -> None:
        """The scope cancelled when the connection fails (its reader and writer)."""
        self._cancel = scope
        if self.close_error is not None:
            scope.cancel()

    async def run_writer(self) -> None:
        """Drain the send queue into the socket, in order.

        When frames have piled up (the peer or the machine is slower than the
        room), consecutive document updates are merged into one update and
        consecutive awareness frames into one carrying each client's latest state:
        the peer ends in the same state with fewer, cheaper sends.
        """
        async with self._in:
            async for frame in self._in:
                queued = [frame]
                while True:
                    try:
                        queued.append(self._in.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                for out in coalesce_frames(queued) if len(queued) > 1 else queued:
                    await self._send_frame(out)
                    self.bytes_out += len(out)



_UPDATE_PREFIX = b"\x00\x02"
_AWARENESS_PREFIX = b"\x01"


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
