"""A relay room: a workshop whose owner is another process.

Its clients' frames (with their connection key and, at open, their principal) go to
the owner's ``in`` stream, in order, from one sender task; the owner judges them with
its room (the only admission path). The relay keeps a replica of the *committed*
document, fed in sequence order from the owner's ``out`` stream: it relays each batch
to its own clients (not back to the batch's senders), passes ``saved`` counts to the
senders, and answers its clients' sync step 1 from the replica once it holds the
sequence number the owner gives for that request (so the answer holds every update
the client sent before it, as on the owner). A gap in the sequence (a missed entry,
Redis restarted) is filled from the store, never skipped; clients whose ``saved``
may have been in what was missed are closed (1012) so they resend.

A token refresh (extension 101) and the token's expiry are the endpoint's business,
in the process holding the socket (server/token_refresh.py): neither reaches this
room, so neither is forwarded to the owner, which keeps the principal it was sent
at open (a refresh keeps the participant and role).

A relay never writes to the store. It stands down (its clients reconnect with 1012)
when the owner changes or disappears, so they meet the new owner from scratch:
frames forwarded to a dead owner and never acknowledged are re-sent by the clients.

It subclasses :class:`~vmv_sync.server.rooms.Room` because the manager, ``/state``,
exports and webhooks read every room's ``doc``, ``derived``, ``last_seq`` and
``connections`` the same way; the update pipeline it inherits is never started.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskStatus
from pycrdt import Doc, merge_updates

from ...derived import DerivedTracker
from ...errors import CloseError, ServerError
from ...protocol import (
    EMPTY_UPDATE,
    MSG_QUERY_AWARENESS,
    MSG_SYNC,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    encode_saved,
    encode_sync_step1,
    encode_sync_update,
    parse_message,
)
from ..connection import Connection
from ..loading import integrate
from ..rooms import Room
from .bus import REDIS_ERRORS
from .errors import Moved, RemoteClose
from .mirror import AwarenessMirror
from .owner import principal_json

if TYPE_CHECKING:
    from .node import Cluster

__all__ = ("RelayRoom",)

logger = logging.getLogger(__name__)

_OUTBOX_SIZE = 1024
#: a sync answer waiting this long for the replica to reach its seq is filled from the store
_SYNC_PATIENCE = 0.5
#: seconds an edit forwarded to the owner may take
_EDIT_TIMEOUT = 10.0


class RelayRoom(Room):
    """One workshop served here and owned by ``owner`` (another node)."""

    def __init__(self, workshop_id: str, cluster: Cluster, owner: str) -> None:
        super().__init__(workshop_id, cluster.store, cluster.settings)
        self.cluster = cluster
        self.owner = owner
        self.mirror = AwarenessMirror()
        #: conn id -> its sync step 1s waiting, in order: [state vector, the seq the owner
        #: answered with (None: not yet), since]; each is answered (y-websocket peers count them)
        self._syncs: dict[int, list[list[Any]]] = {}
        #: conn id -> the last ``saved`` count the owner gave it
        self._acked: dict[int, int] = {}
        self._edits: dict[str, list[Any]] = {}
        self._send, self._outbox = anyio.create_memory_object_stream[tuple[bytes, int, bytes]](_OUTBOX_SIZE)
        self._stop = anyio.Event()
        self._sent_all = anyio.Event()
        bus = cluster.bus
        self._in_key = bus.key("in", workshop_id)
        self._out_key = bus.key("out", workshop_id)

    # -- lifecycle -------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            try:
                # the stream position first: whatever is committed after the load is read from it
                after = await self.cluster.bus.last_id(self._out_key)
                stored = await self.store.load(self.workshop_id)
                self.doc, _ = await integrate(stored.snapshot, stored.updates)
                self.derived.close()
                self.derived = DerivedTracker(self.doc)
                self.last_seq = stored.last_seq
            except Exception as exc:
                logger.exception("workshop=%s relay could not be loaded", self.workshop_id)
                self.load_error = exc
                self.ready.set()
                task_status.started()
                return
            logger.info(
                "workshop=%s relayed here, owned by node %s (seq %d)", self.workshop_id, self.owner, self.last_seq
            )
            self.ready.set()
            task_status.started()
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._sender)
                    tg.start_soon(self._patience)
                    tg.start_soon(
                        lambda: self.cluster.streams.consume(
                            self._out_key, after, self._on_out, what=f"workshop={self.workshop_id} out"
                        )
                    )
                    await self._stop.wait()
                    with anyio.move_on_after(1.0):  # the closes of our clients reach the owner
                        await self._sent_all.wait()
                    tg.cancel_scope.cancel()
            except Exception as exc:
                self._fail(exc)
        finally:
            self.derived.close()
            self.stopped.set()

    def stand_down(self, error: CloseError) -> None:
        """Close every client (they reconnect and find the current owner) and stop."""
        if self.closing:
            return
        logger.info("workshop=%s relay stands down: %s", self.workshop_id, error.reason)
        self.fail_all(error)
        self._finish()

    async def stop(self) -> None:
        self._finish()
        await self.stopped.wait()

    def _finish(self) -> None:
        """Tell the owner every client here is gone (presence leaves at once), then stop."""
        self.closing = True
        for conn in list(self.connections.values()):
            self._forward(conn, b"x", b"")
        self._send.close()  # the sender sends what is queued, then ends
        self._stop.set()

    # -- peers -----------------------------------------------------------------
    def add(self, conn: Connection) -> None:
        self.connections[conn.id] = conn
        principal = principal_json(conn.principal).encode()
        self._forward(conn, b"o", principal)
        conn.enqueue(encode_sync_step1(self.doc.get_state()))
        frame = self.mirror.full_frame()
        if frame is not None:
            conn.enqueue(frame)

    def remove(self, conn: Connection) -> None:
        if self.connections.pop(conn.id, None) is not None:
            self._forward(conn, b"x", b"")
        self._syncs.pop(conn.id, None)
        self._acked.pop(conn.id, None)

    def _forward(self, conn: Connection, kind: bytes, data: bytes) -> None:
        try:
            self._send.send_nowait((kind, conn.id, data))
        except anyio.WouldBlock:
            conn.fail(ServerError("the workshop's owner is too far behind; reconnect"))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    async def receive(self, conn: Connection, frame: bytes) -> None:
        conn.last_seen = time.monotonic()
        if frame[:1] == bytes((MSG_QUERY_AWARENESS,)):  # query awareness: answered from the mirror
            full = self.mirror.full_frame()
            if full is not None:
                conn.enqueue(full)
            return
        if frame[:1] == bytes((MSG_SYNC,)):
            message = parse_message(frame)  # a malformed one is the owner's to refuse, but 4400 here is the same
            if isinstance(message, SyncStep1):
                # the owner checks the asker's work budget and names the seq to answer at
                self._syncs.setdefault(conn.id, []).append([message.state_vector, None, time.monotonic()])
            elif isinstance(message, (SyncStep2, SyncUpdate)):
                if message.update == EMPTY_UPDATE:
                    return
                conn.updates_received += 1
        try:
            await self._send.send((b"f", conn.id, frame))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
            raise Moved("the workshop is moving; reconnect") from exc

    async def edit(self, edit: Callable[[Doc[Any]], Any], *, reason: str = "edit") -> None:
        """Make a server edit (a join) through the owner.

        The update is computed here on a copy of the replica and applied by the owner
        as its own edit. A participant's containers are the exception: the owner
        creates them itself when the connection opens there (it alone knows whether
        they exist), so ``reason="containers"`` does nothing here.
        """
        if reason == "containers":
            return
        if self.closing:
            raise ServerError("the workshop is moving; retry")
        doc: Doc[Any] = Doc()
        doc.apply_update(self.doc.get_update())
        captured: list[bytes] = []
        subscription = doc.observe(lambda event: captured.append(event.update))
        try:
            with doc.transaction():
                edit(doc)
        finally:
            doc.unobserve(subscription)
        if not captured:
            return
        update = captured[0] if len(captured) == 1 else merge_updates(*captured)
        request = uuid.uuid4().hex
        waiter: list[Any] = [anyio.Event(), None]
        self._edits[request] = waiter
        try:
            fields: dict[bytes | str, bytes | str | int] = {
                b"k": b"e",
                b"n": self.cluster.bus.node,
                b"r": request,
                b"why": reason,
                b"d": update,
            }
            await self.cluster.bus.add([(self._in_key, fields)])
            with anyio.fail_after(_EDIT_TIMEOUT):
                await waiter[0].wait()
        except TimeoutError as exc:
            raise ServerError("the workshop's owner did not answer; retry") from exc
        except REDIS_ERRORS as exc:
            raise ServerError("the cluster's Redis does not answer; retry") from exc
        finally:
            self._edits.pop(request, None)
        if waiter[1]:
            raise ServerError(f"the edit failed on the workshop's owner: {waiter[1]}")

    # -- from the owner, through the node's ``to`` stream ---------------------------
    def sync_marker(self, conn_id: int, seq: int) -> None:
        """The owner's answer to the oldest unanswered sync step 1 of ``conn_id`` (in order)."""
        for pending in self._syncs.get(conn_id, ()):
            if pending[1] is None:
                pending[1] = seq
                self._answer_syncs()
                return

    def remote_close(self, conn_id: int, code: int, reason: str) -> None:
        conn = self.connections.get(conn_id)
        if conn is not None:
            conn.fail(RemoteClose(code, reason))

    def edit_replied(self, request: str, error: str) -> None:
        waiter = self._edits.get(request)
        if waiter is not None:
            waiter[1] = error
            waiter[0].set()

    # -- tasks -----------------------------------------------------------------
    async def _sender(self) -> None:
        """Everything for the owner, in order, several entries per round trip."""
        bus = self.cluster.bus
        node = bus.node
        while True:
            try:
                batch = [await self._outbox.receive()]
            except anyio.EndOfStream:
                self._sent_all.set()
                return
            while len(batch) < 256:
                try:
                    batch.append(self._outbox.receive_nowait())
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
            entries = []
            for kind, conn_id, data in batch:
                fields: dict[bytes | str, bytes | str | int] = {b"k": kind, b"n": node, b"c": conn_id}
                if kind == b"o":
                    fields[b"p"] = data
                elif kind == b"f":
                    fields[b"d"] = data
                entries.append((self._in_key, fields))
            try:
                try:
                    await bus.add(entries)
                except REDIS_ERRORS:
                    await anyio.sleep(0.05)  # once more: a pooled connection may predate a Redis restart
                    await bus.add(entries)
            except REDIS_ERRORS as exc:
                # frames that may never reach the owner: their senders must resend them
                self.stand_down(Moved(f"lost the way to the workshop's owner ({type(exc).__name__}); reconnect"))
                return

    async def _patience(self) -> None:
        """Sync answers stuck behind a missed batch are filled from the store."""
        while True:
            await anyio.sleep(_SYNC_PATIENCE / 5)
            now = time.monotonic()
            if any(
                s[1] is not None and s[1] > self.last_seq and now - s[2] > _SYNC_PATIENCE
                for waiting in self._syncs.values()
                for s in waiting
            ):
                await self._fill_from_store(resend=False)

    def awareness_frames(self, fields: dict[bytes, bytes]) -> None:
        """Awareness from the owner (its changes, or all of it): mirrored and sent to every client."""
        data, offset = fields[b"d"], 0
        for size in json.loads(fields[b"h"]):
            frame = data[offset : offset + size]
            offset += size
            self.mirror.apply(frame)
            for conn in list(self.connections.values()):
                conn.enqueue(frame)

    async def _on_out(self, fields: dict[bytes, bytes]) -> None:
        kind = fields[b"k"]
        if kind == b"a":
            self.awareness_frames(fields)
            return
        if kind == b"r":
            # the owner published nothing up to this seq (no client was elsewhere): catch
            # up from the store; nobody here was waiting for a "saved" from that stretch
            if int(fields[b"l"]) > self.last_seq:
                await self._fill_from_store(resend=False)
            return
        if kind != b"b":
            return
        data = fields[b"d"]
        header = json.loads(fields[b"h"])
        first, last = header["f"], header["l"]
        if first > self.last_seq + 1:
            logger.info(
                "workshop=%s relay missed seqs %d..%d: filling from the store",
                self.workshop_id,
                self.last_seq + 1,
                first - 1,
            )
            await self._fill_from_store(resend=True)
        if last > self.last_seq:
            updates, origins, offset = [], [], 0
            skip = self.last_seq - first + 1  # already in the replica (a fill overlapped)
            for index, (size, origin) in enumerate(zip(header["n"], header["o"], strict=True)):
                if index >= skip:
                    updates.append(data[offset : offset + size])
                    origins.append(origin)
                offset += size
            for update in updates:
                self.doc.apply_update(update)
            self.last_seq = last
            self._relay(updates, origins)
        node = self.cluster.bus.node
        for ack_node, conn_id, count in header["a"]:
            if ack_node == node:
                self._ack(conn_id, count)
        self._answer_syncs()

    def _relay(self, updates: list[bytes], origins: list[list[Any] | None]) -> None:
        """Like fanout.relay: each synced peer gets the batch, without its own updates."""
        if not updates:
            return
        node = self.cluster.bus.node
        senders = {o[1] for o in origins if o is not None and o[0] == node}
        merged = encode_sync_update(updates[0] if len(updates) == 1 else merge_updates(*updates))
        for conn in list(self.connections.values()):
            if not conn.synced:
                continue
            if conn.id not in senders:
                conn.enqueue(merged)
                continue
            for update, origin in zip(updates, origins, strict=True):
                if origin is None or origin[0] != node or origin[1] != conn.id:
                    conn.enqueue(encode_sync_update(update))

    def _ack(self, conn_id: int, count: int) -> None:
        conn = self.connections.get(conn_id)
        if conn is None:
            return
        self._acked[conn_id] = max(count, self._acked.get(conn_id, 0))
        if conn.wants_saved:
            conn.enqueue(encode_saved(count))

    def _answer_syncs(self) -> None:
        for conn_id, waiting in list(self._syncs.items()):
            conn = self.connections.get(conn_id)
            while waiting and waiting[0][1] is not None and waiting[0][1] <= self.last_seq:
                state_vector = waiting.pop(0)[0]
                if conn is not None and not conn.closed:
                    conn.enqueue(self._sync_answers.answer(self.doc, state_vector))  # encoded once per replica state
                    conn.synced = True
            if not waiting:
                del self._syncs[conn_id]

    async def _fill_from_store(self, *, resend: bool) -> None:
        """Catch up from the store: every committed update, relayed as one.

        ``resend``: batches were missed, and with them maybe ``saved`` counts: the
        clients still waiting for one are closed (1012) and resend on reconnecting.
        """
        stored = await self.store.load(self.workshop_id)
        if stored.last_seq <= self.last_seq:
            return
        before = self.doc.get_state()
        with self.doc.transaction():
            if stored.snapshot:
                self.doc.apply_update(stored.snapshot)
            for update in stored.updates:
                self.doc.apply_update(update)
        self.last_seq = max(self.last_seq, stored.last_seq)
        diff = self.doc.get_update(before)
        if diff != EMPTY_UPDATE:
            self._relay([diff], [None])
        for conn in list(self.connections.values()) if resend else ():
            if conn.updates_received > self._acked.get(conn.id, 0):
                conn.fail(Moved("some acknowledgements were missed; reconnect to resend"))
        self._answer_syncs()
