"""A room: one loaded workshop document, its peers, and the durable update path.

Every document update of a room goes through one pipeline task, which reads top to
bottom: take every pending update -> admit it (integrity, client-id ownership,
write rules, quota; a bad one closes its sender and nothing of it is applied) ->
apply to the document -> ``await store.append`` (one grouped commit, with the
client-id claims) -> enqueue to peers, encoded once -> acknowledge "saved" ->
answer pending sync requests. Because sync step 2 answers are produced after the
commit, no peer ever receives an update the store could still lose.

Failure stays inside the room: a bad frame costs its sender's connection; anything
else that goes wrong in the room (a failed commit, a bug) ends this room only,
closing its connections with 1011 so they reconnect, and the next connection loads
the workshop again from the store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Union

import anyio
from anyio.abc import TaskStatus
from pycrdt import Doc

from ..config import Settings
from ..derived import DerivedTracker
from ..errors import CloseError, MalformedMessage, ServerError, StorageError
from ..protocol import (
    EMPTY_UPDATE,
    Awareness,
    QueryAwareness,
    Saved,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode_awareness_update,
    decode_state_vector,
    encode_sync_step1,
    parse_message,
)
from ..protocol.update import UpdateSummary, is_panic
from ..storage import StaleEpoch, Store
from .admission import check_incoming, largest_sequence
from .clientids import ClientIds
from .compaction import Compactor
from .connection import Connection
from .containers import missing_containers
from .fanout import relay
from .guard import WriteGuard
from .loading import integrate
from .metrics import Metrics, measured
from .origins import FromClient, FromServer, Incoming, RoomLink
from .presence_table import RoomAwareness
from .presence_upkeep import PresenceUpkeep
from .serveredits import ServerEdit, apply_server_edit, fail_queued_edits
from .syncanswers import SyncAnswers

__all__ = ("Room",)

logger = logging.getLogger(__name__)

_BATCH_MAX = 512
_INBOX_SIZE = 1024


@dataclass(frozen=True, slots=True)
class _SyncRequest:
    conn: Connection
    state_vector: bytes


@dataclass(frozen=True, slots=True)
class _CommitClaims:
    """Commit the pending client-id claims (announced in awareness), with no update if need be."""


_Item = Union[Incoming, _SyncRequest, ServerEdit, _CommitClaims]


class _Damaged(Exception):
    """The room's document may hold part of a refused update (pycrdt panicked)."""


class Room:
    """One workshop loaded in memory. Runs inside the manager's task group."""

    def __init__(
        self,
        workshop_id: str,
        store: Store,
        settings: Settings,
        metrics: Metrics | None = None,
        on_commit: Callable[[str], None] | None = None,
    ) -> None:
        self.workshop_id = workshop_id
        self.store = store
        self.settings = settings
        #: where commits and compactions are timed (/metrics); None: not measured
        self.metrics = metrics
        #: told the workshop id after each commit (the webhooks' watcher); must not block
        self.on_commit = on_commit
        self.doc: Doc[Any] = Doc()  # replaced at load, under a client id of the server's own
        self.derived = DerivedTracker(self.doc)
        self.client_ids = ClientIds()
        #: bytes of the stored document (snapshot + updates since): the quota's measure
        self.stored_bytes = 0
        self.awareness = RoomAwareness(
            settings.awareness_timeout,
            max_clients_per_connection=settings.max_awareness_clients,
            max_state_bytes=settings.max_awareness_state_bytes,
        )
        self.connections: dict[int, Connection] = {}
        self.refs = 0
        self.last_seq = 0
        self.compactor = Compactor(workshop_id, store, settings, metrics)
        self._batch_bytes = 0
        self._batch_work = 0.0
        self._sync_answers = SyncAnswers()
        self._inbox_send, self._inbox = anyio.create_memory_object_stream[_Item](_INBOX_SIZE)
        self.presence = PresenceUpkeep(self)
        self.ready = anyio.Event()
        self.stopped = anyio.Event()
        self.load_error: BaseException | None = None
        #: what ended the room, if it failed while running (it is then never reused)
        self.failure: BaseException | None = None
        self.closing = False
        self._tg: anyio.abc.TaskGroup | None = None
        self.guard: WriteGuard | None = None
        #: set when other processes share the workshop and this room owns it
        self.link: RoomLink | None = None

    # -- lifecycle -------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            try:
                await self._load()
            except Exception as exc:
                logger.exception("workshop=%s could not be loaded", self.workshop_id)
                self.load_error = exc
                self._inbox_send.close()
                self.ready.set()
                task_status.started()
                return
            self.ready.set()
            task_status.started()
            try:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    tg.start_soon(self.presence.run)
                    if self.link is not None:
                        tg.start_soon(self.link.run)
                    self._maybe_compact()  # a long tail loaded: fold it before the next load
                    await self._pipeline()
                    tg.cancel_scope.cancel()
            except Exception as exc:  # this room only: the manager and other rooms go on
                self._fail(exc)
        finally:
            self._inbox.close()
            self.derived.close()
            self.stopped.set()

    def _fail(self, exc: BaseException) -> None:
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        self.failure = exc
        self.closing = True
        if isinstance(exc, StaleEpoch):  # not a fault: another process took the workshop over
            logger.warning("workshop=%s %s; its connections reconnect", self.workshop_id, exc)
        else:
            logger.error("workshop=%s room failed; its connections reconnect and it loads again", self.workshop_id, exc_info=exc)
        self.fail_all(ServerError("the workshop failed on the server; reconnect"))
        self._inbox_send.close()
        # client updates still queued are dropped unacknowledged (resent after reconnecting)
        fail_queued_edits(self._inbox, lambda: ServerError("the workshop failed on the server; retry"))

    async def _load(self) -> None:
        started = time.perf_counter()
        stored = await self.store.load(self.workshop_id)
        loaded, tail_work = await integrate(stored.snapshot, stored.updates)
        self.client_ids = ClientIds(stored.client_ids)
        # The server's own edits go under an id nobody owns or wrote, claimed for it.
        server_id = self.client_ids.fresh_server_id(decode_state_vector(loaded.get_state()))
        self.doc = Doc(client_id=server_id)
        self.doc.apply_update(loaded.get_update())
        self.derived.close()
        self.derived = DerivedTracker(self.doc)
        self.last_seq = stored.last_seq
        self.stored_bytes = len(stored.snapshot or b"") + stored.update_bytes
        if self.settings.auth:
            self.guard = WriteGuard(self.doc)
        self.compactor.loaded(stored.update_count, stored.update_bytes, tail_work, len(stored.snapshot or b""))
        self.compactor.on_freed = self._freed
        logger.info(
            "workshop=%s loaded updates=%d snapshot=%s in %.1f ms", self.workshop_id, stored.update_count,
            stored.snapshot is not None, (time.perf_counter() - started) * 1000,
        )  # fmt: skip

    async def _rebuild(self, pending: list[bytes]) -> None:
        """Replace a damaged document by the stored one plus ``pending`` (admitted, not yet committed)."""
        stored = await self.store.load(self.workshop_id)
        doc, _ = await integrate(stored.snapshot, [*stored.updates, *pending], Doc(client_id=self.doc.client_id))
        self.doc = doc
        self.derived.close()
        self.derived = DerivedTracker(doc)
        if self.guard is not None:
            self.guard = WriteGuard(doc)
        logger.info("workshop=%s document rebuilt from the store", self.workshop_id)

    async def stop(self) -> None:
        """Finish every queued update (applied, committed, relayed), then stop."""
        self.closing = True
        self._inbox_send.close()
        await self.stopped.wait()

    def end(self, error: CloseError) -> None:
        """Stand down without waiting: close every connection with ``error``, finish what is queued.

        What is still queued is committed if the store accepts it (a cluster owner whose
        lease lapsed: the fence refuses it once a successor has claimed the workshop).
        """
        self.closing = True
        self.fail_all(error)
        self._inbox_send.close()

    # -- peers -----------------------------------------------------------------
    def add(self, conn: Connection) -> None:
        self.connections[conn.id] = conn
        conn.enqueue(encode_sync_step1(self.doc.get_state()))
        for frame in self.awareness.full_frames():
            conn.enqueue(frame)

    def remove(self, conn: Connection) -> None:
        self.connections.pop(conn.id, None)
        self.awareness.remove_connection(conn)
        self.presence.flush()

    async def receive(self, conn: Connection, frame: bytes) -> None:
        """Handle one frame from ``conn``; raises a CloseError for bad input."""
        conn.last_seen = time.monotonic()
        message = parse_message(frame)
        if isinstance(message, (SyncStep2, SyncUpdate)):
            if message.update == EMPTY_UPDATE:
                return
            conn.updates_received += 1
            await self._submit(Incoming(FromClient(conn), message.update, conn.updates_received))
        elif isinstance(message, SyncStep1):
            decode_state_vector(message.state_vector)  # undecodable: 4400 for the sender only
            if conn.budget is not None:
                conn.budget.work.check()  # answers cost the sender's work budget (4429 past it)
            await self._submit(_SyncRequest(conn, message.state_vector))
        elif isinstance(message, Awareness):
            self.awareness.apply(conn, decode_awareness_update(message.update))
            self.presence.changed()
            pid = conn.principal.participant_id
            if conn.principal.authenticated and pid is not None and self.presence.claim_announced(conn, pid):
                # committed with the next batch, or by a claims-only commit if none
                await self._submit(_CommitClaims())
        elif isinstance(message, QueryAwareness):
            for frame_out in self.awareness.full_frames():
                conn.enqueue(frame_out)
        elif isinstance(message, Saved):
            raise MalformedMessage("'saved' messages only travel from server to client")

    async def _submit(self, item: _Item) -> None:
        try:
            await self._inbox_send.send(item)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
            raise ServerError("the workshop is closing; reconnect") from exc

    # -- the update path ---------------------------------------------------------
    async def _pipeline(self) -> None:
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
        applied: list[Incoming] = []
        edits: list[ServerEdit] = []
        containers = False
        self._batch_bytes = 0  # admitted in this batch, not yet committed: counts for the quota
        self._batch_work = 0.0
        sequence_size = largest_sequence(self.doc) if any(isinstance(item, Incoming) for item in batch) else 0
        for item in batch:
            if isinstance(item, Incoming):
                try:
                    summary = self._admit(item, sequence_size)
                except _Damaged:
                    await self._rebuild([a.update for a in applied])
                    continue
                if summary is not None:
                    applied.append(item)
                    self._batch_bytes += len(item.update)
                    containers = containers or bool(summary.roots & {"participants", "ballots"})
            elif isinstance(item, ServerEdit):
                update = self._apply_server_edit(item)
                edits.append(item)
                if update is not None:
                    applied.append(Incoming(FromServer(item.reason), update))
        if containers:
            # A participant entry or a ballot arrived without its containers (authentication
            # off, or a page that wrote them itself): the server creates them, once.
            update = self._apply_server_edit(ServerEdit(missing_containers, anyio.Event(), "containers"))
            if update is not None:
                applied.append(Incoming(FromServer("containers"), update))
        claims_due = any(isinstance(item, _CommitClaims) for item in batch) and bool(self.client_ids.pending)
        if applied or claims_due:
            updates = [item.update for item in applied]
            claims = self.client_ids.take_pending() or None
            try:
                self.last_seq = await self._commit(updates, claims)
            except StorageError as exc:
                for edit in edits:
                    edit.error = edit.error or exc
                    edit.done.set()
                raise  # ends this room only (see run); nothing of the batch was acknowledged
            size = sum(len(u) for u in updates)
            self.compactor.appended(len(updates), size, self._batch_work)
            self.stored_bytes += size
            if applied:
                relay(self.connections.values(), applied)
                if self.link is not None:
                    self.link.committed(self.last_seq, applied)
        for edit in edits:
            edit.done.set()
        for item in batch:
            if isinstance(item, _SyncRequest):
                self._answer_sync(item)
        self._maybe_compact()

    async def _commit(self, updates: list[bytes], claims: dict[int, str] | None) -> int:
        """One grouped commit (fenced by the owner's epoch in a cluster), timed for /metrics."""
        with measured(self.metrics, "append", len(updates)):
            if self.link is None:
                seq = await self.store.append(self.workshop_id, updates, claims=claims)
            else:
                seq = await self.link.append(updates, claims)
        if self.on_commit is not None:
            self.on_commit(self.workshop_id)
        return seq

    def _answer_sync(self, request: _SyncRequest) -> None:
        """Answer a sync step 1 with the step 2 it asks for; its cost is the peer's."""
        conn = request.conn
        if conn.closed:
            return
        if conn.remote:  # its relay answers from its replica once it holds last_seq
            if self.link is not None:
                self.link.sync_answered(conn, self.last_seq)
            return
        self._sync_answers.send(conn, self.doc, request.state_vector)

    def _admit(self, item: Incoming, sequence_size: int) -> UpdateSummary | None:
        """Check (admission.check_incoming), then the write rules, then apply one client
        update; on refusal close its sender and apply nothing."""
        conn = item.conn
        assert conn is not None  # Incoming from the inbox always has FromClient origin
        if conn.close_error is not None and conn.close_error.refuses_input:
            return None  # a connection refused for bad input: drop what it still had queued
        principal, budget = conn.principal, conn.budget
        try:
            summary, claims = check_incoming(
                item.update, conn, decode_state_vector(self.doc.get_state()), settings=self.settings,
                client_ids=self.client_ids, sequence_size=sequence_size,
                stored_total=self.stored_bytes + self._batch_bytes + len(item.update),
            )  # fmt: skip
            started = time.perf_counter()
            try:
                if self.guard is not None and principal.authenticated:
                    self.guard.check(item.update, principal, summary)
                self.doc.apply_update(item.update)
            finally:
                # what the update cost the loop (a refusal's shadow rebuild included) is
                # its sender's: their work budget pays for it
                spent = time.perf_counter() - started
                self._batch_work += spent
                if budget is not None:
                    budget.work.charge(spent)
        except CloseError as exc:
            conn.fail(exc)
            return None
        except Exception as exc:  # pycrdt raises plain exceptions for undecodable updates
            logger.warning(
                "workshop=%s conn=%d sent an update pycrdt cannot apply: %s", self.workshop_id, conn.id, exc
            )
            conn.fail(MalformedMessage("the update could not be applied to the document"))
            return None
        except BaseException as exc:
            if not is_panic(exc):
                raise
            # pycrdt panicked on the room's own document (no guard: authentication off),
            # which may now hold part of the update: the sender is refused and the
            # document is rebuilt from the store, where the update never went.
            logger.warning("workshop=%s conn=%d sent an update pycrdt panicked on", self.workshop_id, conn.id)
            conn.fail(MalformedMessage("the update could not be applied to the document"))
            raise _Damaged() from None
        self.client_ids.claim(claims)
        if budget is not None:
            budget.written += len(item.update)
        return summary

    def _apply_server_edit(self, item: ServerEdit) -> bytes | None:
        update = apply_server_edit(self.doc, item)
        if update is not None and self.guard is not None:
            self.guard.accept(update)
        return update

    async def edit(self, edit: Callable[[Doc[Any]], Any], *, reason: str = "edit") -> None:
        """Run ``edit(doc)`` as the server, through the durable update path.

        Returns once the resulting update is committed and relayed; re-raises what
        ``edit`` raised (nothing of a failed edit is kept only if it wrote nothing).
        """
        if self.closing:
            raise ServerError("the workshop is closing; retry")
        item = ServerEdit(edit, anyio.Event(), reason)
        await self._submit(item)
        await item.done.wait()
        if item.error is not None:
            raise item.error

    def fail_all(self, error: CloseError) -> None:
        """Close every connection of the room with ``error``'s code (shutdown, a failed commit)."""
        for conn in list(self.connections.values()):
            conn.fail(error)

    # -- compaction --------------------------------------------------------------
    def _freed(self, freed: int) -> None:
        """A compaction replaced stored updates by a snapshot: the quota gets the bytes back."""
        self.stored_bytes = max(0, self.stored_bytes - freed)

    def _maybe_compact(self) -> None:
        if self._tg is not None:
            # between two batches: the snapshot holds exactly the updates with seq <= last_seq
            self.compactor.maybe_start(self._tg, self.doc, self.last_seq)
