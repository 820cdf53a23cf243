"""A room: one loaded workshop document, its peers, and the durable update path.

Every document update of a room goes through one pipeline task, which reads top to
bottom: take every pending update -> apply to the document (a bad one closes its
sender with 4400) -> ``await store.append`` (one grouped commit) -> enqueue to
peers, encoded once -> acknowledge "saved" -> answer pending sync requests.
Because sync step 2 answers are produced after the commit, no peer ever receives
an update the store could still lose.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Union

import anyio
from anyio.abc import TaskStatus
from pycrdt import Doc, merge_updates

from ..derived import DerivedTracker
from ..errors import (
    CloseError,
    MalformedMessage,
    ServerError,
    SilentPeer,
    StorageError,
    VmvSyncError,
)
from ..protocol import (
    Awareness,
    QueryAwareness,
    Saved,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode_awareness_update,
    decode_state_vector,
    encode_saved,
    encode_sync_step1,
    encode_sync_step2,
    encode_sync_update,
    parse_message,
)
from ..protocol.update import summarize_update
from ..storage import Store
from .awareness import RoomAwareness
from .connection import Connection
from .guard import WriteGuard

__all__ = ("Room", "RoomSettings")

logger = logging.getLogger(__name__)

_EMPTY_UPDATE = b"\x00\x00"
_BATCH_MAX = 512


@dataclass(frozen=True)
class RoomSettings:
    awareness_timeout: float = 30.0
    awareness_tick: float = 0.04
    idle_seconds: float = 30.0
    compact_updates: int = 2000
    compact_bytes: int = 8 * 1024 * 1024
    history_seconds: float = 0.0
    inbox_size: int = 1024
    #: check every update against the ownership rules (authentication on)
    enforce_ownership: bool = False


@dataclass(frozen=True, slots=True)
class _Incoming:
    conn: Connection | None  # None: the server's own edit
    update: bytes
    number: int  # the sender's running count, for its "saved" acknowledgement


@dataclass(frozen=True, slots=True)
class _SyncRequest:
    conn: Connection
    state_vector: bytes


@dataclass(slots=True)
class _ServerEdit:
    """An edit made by the server itself (join, create): same path, no guard."""

    edit: Callable[[Doc], Any]
    done: anyio.Event
    error: BaseException | None = None


_Item = Union[_Incoming, _SyncRequest, _ServerEdit]


class Room:
    """One workshop loaded in memory. Runs inside the manager's task group."""

    def __init__(self, workshop_id: str, store: Store, settings: RoomSettings) -> None:
        self.workshop_id = workshop_id
        self.store = store
        self.settings = settings
        self.doc: Doc[Any] = Doc()
        self.derived = DerivedTracker(self.doc)
        self.awareness = RoomAwareness(settings.awareness_timeout)
        self.connections: dict[int, Connection] = {}
        self.refs = 0
        self.last_seq = 0
        self._since_snapshot = 0
        self._bytes_since_snapshot = 0
        self._compacting = False
        self._inbox_send, self._inbox = anyio.create_memory_object_stream[_Item](settings.inbox_size)
        self._awareness_wake = anyio.Event()
        self.ready = anyio.Event()
        self.stopped = anyio.Event()
        self.load_error: BaseException | None = None
        self.closing = False
        self._tg: anyio.abc.TaskGroup | None = None
        self.guard: WriteGuard | None = None

    # -- lifecycle -------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            try:
                await self._load()
            except Exception as exc:
                logger.exception("workshop=%s could not be loaded", self.workshop_id)
                self.load_error = exc
                self.ready.set()
                task_status.started()
                return
            self.ready.set()
            task_status.started()
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._awareness_loop)
                self._maybe_compact()  # a long tail loaded: fold it before the next load
                await self._pipeline()
                tg.cancel_scope.cancel()
        finally:
            self.derived.close()
            self.stopped.set()

    async def _load(self) -> None:
        started = time.perf_counter()
        stored = await self.store.load(self.workshop_id)
        # One transaction, one update at a time: merge_updates over a long tail is
        # far slower (quadratic) than integrating the updates one by one.
        with self.doc.transaction():
            if stored.snapshot:
                self.doc.apply_update(stored.snapshot)
            for update in stored.updates:
                self.doc.apply_update(update)
        self.last_seq = stored.last_seq
        if self.settings.enforce_ownership:
            self.guard = WriteGuard(self.doc)
        self._since_snapshot = stored.update_count
        self._bytes_since_snapshot = stored.update_bytes
        logger.info(
            "workshop=%s loaded updates=%d snapshot=%s in %.1f ms",
            self.workshop_id,
            stored.update_count,
            stored.snapshot is not None,
            (time.perf_counter() - started) * 1000,
        )

    async def stop(self) -> None:
        """Finish every queued update (applied, committed, relayed), then stop."""
        self.closing = True
        self._inbox_send.close()
        await self.stopped.wait()

    # -- peers -----------------------------------------------------------------
    def add(self, conn: Connection) -> None:
        self.connections[conn.id] = conn
        conn.enqueue(encode_sync_step1(self.doc.get_state()))
        frame = self.awareness.full_frame()
        if frame is not None:
            conn.enqueue(frame)

    def remove(self, conn: Connection) -> None:
        self.connections.pop(conn.id, None)
        self.awareness.remove_connection(conn)
        self._flush_awareness()

    async def receive(self, conn: Connection, frame: bytes) -> None:
        """Handle one frame from ``conn``; raises a CloseError for bad input."""
        conn.last_seen = time.monotonic()
        message = parse_message(frame)
        if isinstance(message, (SyncStep2, SyncUpdate)):
            if message.update == _EMPTY_UPDATE:
                return
            conn.updates_received += 1
            await self._inbox_send.send(_Incoming(conn, message.update, conn.updates_received))
        elif isinstance(message, SyncStep1):
            await self._inbox_send.send(_SyncRequest(conn, message.state_vector))
        elif isinstance(message, Awareness):
            self.awareness.apply(conn, decode_awareness_update(message.update))
            self._awareness_wake.set()
        elif isinstance(message, QueryAwareness):
            frame_out = self.awareness.full_frame()
            if frame_out is not None:
                conn.enqueue(frame_out)
        elif isinstance(message, Saved):
            raise MalformedMessage("'saved' messages only travel from server to client")

    # -- the update path ---------------------------------------------------------
    async def _pipeline(self) -> None:
        async with self._inbox:
            while True:
                try:
                    first = await self._inbox.receive()
                except anyio.EndOfStream:
                    return
                batch = [first]
                while len(batch) < _BATCH_MAX:
                    try:
                        batch.append(self._inbox.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                await self._process(batch)

    async def _process(self, batch: list[_Item]) -> None:
        applied: list[_Incoming] = []
        edits: list[_ServerEdit] = []
        for item in batch:
            if isinstance(item, _Incoming):
                if self._apply_incoming(item):
                    applied.append(item)
            elif isinstance(item, _ServerEdit):
                update = self._apply_server_edit(item)
                edits.append(item)
                if update is not None:
                    applied.append(_Incoming(None, update, 0))
        if applied:
            updates = [item.update for item in applied]
            try:
                self.last_seq = await self.store.append(self.workshop_id, updates)
            except StorageError as exc:
                logger.exception("workshop=%s commit failed; closing the room", self.workshop_id)
                self.fail_all(ServerError("the server could not save an update; reconnect"))
                for edit in edits:
                    edit.error = edit.error or exc
                    edit.done.set()
                raise
            self._since_snapshot += len(updates)
            self._bytes_since_snapshot += sum(len(u) for u in updates)
            self._relay(applied)
        for edit in edits:
            edit.done.set()
        for item in batch:
            if isinstance(item, _SyncRequest) and not item.conn.closed:
                item.conn.enqueue(encode_sync_step2(self.doc.get_update(item.state_vector)))
                item.conn.synced = True
        self._maybe_compact()

    def _apply_incoming(self, item: _Incoming) -> bool:
        conn = item.conn
        assert conn is not None
        if conn.close_error is not None and conn.close_error.refuses_input:
            return False  # a connection refused for bad input: drop what it still had queued
        try:
            summary = summarize_update(item.update)
            if summary.structs and summary.skips_ahead_of(decode_state_vector(self.doc.get_state())):
                raise MalformedMessage(
                    "the update skips changes the server does not have yet; reconnect to resync"
                )
            if self.guard is not None and conn.principal.authenticated:
                self.guard.check(item.update, conn.principal, summary)
            self.doc.apply_update(item.update)
        except CloseError as exc:
            conn.fail(exc)
            return False
        except Exception as exc:  # pycrdt raises plain exceptions for undecodable updates
            logger.warning(
                "workshop=%s conn=%d sent an update pycrdt cannot apply: %s", self.workshop_id, conn.id, exc
            )
            conn.fail(MalformedMessage("the update could not be applied to the document"))
            return False
        if self.guard is not None and not conn.principal.authenticated:
            self.guard.accept(item.update)
        return True

    def _apply_server_edit(self, item: _ServerEdit) -> bytes | None:
        captured: list[bytes] = []
        subscription = self.doc.observe(lambda event: captured.append(event.update))
        try:
            with self.doc.transaction():
                item.edit(self.doc)
        except Exception as exc:
            item.error = exc
        finally:
            self.doc.unobserve(subscription)
        if not captured:
            return None
        update = captured[0] if len(captured) == 1 else merge_updates(*captured)
        if self.guard is not None:
            self.guard.accept(update)
        return update

    async def edit(self, edit: Callable[[Doc], Any]) -> None:
        """Run ``edit(doc)`` as the server, through the durable update path.

        Returns once the resulting update is committed and relayed; re-raises what
        ``edit`` raised (nothing of a failed edit is kept only if it wrote nothing).
        """
        item = _ServerEdit(edit, anyio.Event())
        await self._inbox_send.send(item)
        await item.done.wait()
        if item.error is not None:
            raise item.error

    def _relay(self, applied: list[_Incoming]) -> None:
        """Enqueue the batch to every peer, each frame encoded once.

        A peer that sent nothing in this batch gets one frame with all the batch's
        updates merged; a peer that sent some gets the others' updates one by one
        (it must not receive its own back, and merging per peer would cost more).
        """
        # Only peers that have had their sync step 2: until then an update could
        # reach them before the history it builds on (a gap; see protocol/update.py),
        # and their step 2, computed later, holds it anyway.
        peers = [peer for peer in self.connections.values() if peer.synced]
        senders = {id(item.conn) for item in applied if item.conn is not None}
        frames = [encode_sync_update(item.update) for item in applied]
        if len(applied) > 1:
            merged = encode_sync_update(merge_updates(*(item.update for item in applied)))
        else:
            merged = frames[0]
        for peer in peers:
            if id(peer) not in senders:
                peer.enqueue(merged)
                continue
            for item, frame in zip(applied, frames, strict=False):
                if item.conn is not peer:
                    peer.enqueue(frame)
        acked: dict[int, _Incoming] = {}
        for item in applied:
            if item.conn is not None and item.conn.wants_saved:
                acked[item.conn.id] = item
        for item in acked.values():
            assert item.conn is not None
            item.conn.enqueue(encode_saved(item.number))

    def fail_all(self, error: CloseError) -> None:
        """Close every connection of the room with ``error``'s code (shutdown, a failed commit)."""
        for conn in list(self.connections.values()):
            conn.fail(error)

    # -- compaction --------------------------------------------------------------
    def _maybe_compact(self) -> None:
        s = self.settings
        if self._compacting or self._tg is None:
            return
        if self._since_snapshot < s.compact_updates and self._bytes_since_snapshot < s.compact_bytes:
            return
        # Snapshot and sequence number captured together, between two batches: the
        # snapshot holds exactly the updates with seq <= upto.
        snapshot = self.doc.get_update()
        upto = self.last_seq
        self._compacting = True
        self._tg.start_soon(self._compact, snapshot, upto, self._since_snapshot, self._bytes_since_snapshot)

    async def _compact(self, snapshot: bytes, upto: int, count: int, size: int) -> None:
        started = time.perf_counter()
        try:
            await self.store.compact(
                self.workshop_id, snapshot, upto, keep_history_seconds=self.settings.history_seconds
            )
        except VmvSyncError:
            logger.exception("workshop=%s compaction failed; will retry later", self.workshop_id)
            return
        finally:
            self._compacting = False
        self._since_snapshot -= count
        self._bytes_since_snapshot -= size
        logger.info(
            "workshop=%s compacted %d updates into %d bytes in %.1f ms",
            self.workshop_id,
            count,
            len(snapshot),
            (time.perf_counter() - started) * 1000,
        )

    # -- awareness ---------------------------------------------------------------
    async def _awareness_loop(self) -> None:
        tick = self.settings.awareness_tick
        check_every = max(0.5, min(5.0, self.settings.awareness_timeout / 10))
        while True:
            with anyio.move_on_after(check_every):
                await self._awareness_wake.wait()
                await anyio.sleep(tick)  # coalesce changes arriving within one tick
            self._awareness_wake = anyio.Event()
            self._drop_silent()
            self.awareness.expire()
            self._flush_awareness()

    def _flush_awareness(self) -> None:
        frame = self.awareness.take_changes()
        if frame is None:
            return
        # Sent to every peer, the sender included: y-websocket providers count any
        # received message as a sign of life, and a lone client must not time out.
        for peer in list(self.connections.values()):
            peer.enqueue(frame)

    def _drop_silent(self) -> None:
        deadline = time.monotonic() - self.settings.awareness_timeout
        for conn in list(self.connections.values()):
            if conn.last_seen < deadline:
                conn.fail(SilentPeer("no message within the awareness timeout"))
