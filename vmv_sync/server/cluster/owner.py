"""The owner's side: a workshop's :class:`~vmv_sync.server.rooms.Room`, linked to the cluster.

The owner's room stays the only admission path (integrity, client ids, write rules,
containers, quotas, budgets) and the only compactor. This link adds what other
processes need:

- **Fenced commits.** Every append carries the epoch claimed when the lease was
  taken; the store refuses it once a successor claimed a newer one (``StaleEpoch``
  ends the room, its clients reconnect and resync).
- **Remote connections.** A relay's client is a :class:`RemoteConnection` here: a
  real :class:`~vmv_sync.server.connection.Connection` (principal, budget, update
  count, awareness ids) whose frames arrive on the workshop's ``in`` stream and
  whose socket is elsewhere. The room treats it like any peer, except that nothing
  is sent to it directly: relays get the committed batches once per process.
- **Publication after commit.** Each committed batch goes to the ``out`` stream with
  its sequence numbers, each update's origin (node, connection) and the ``saved``
  counts of remote senders; awareness changes follow the same way. Sync answers and
  closes go to the one node concerned (``to`` stream). Only while some client is
  connected through another process: a workshop whose clients all reach its owner
  (a balancer routing by workshop id) costs Redis nothing per update. When the first
  remote client arrives, a ``resume`` entry tells relays up to which seq nothing was
  published (they catch up from the store), and each newly opened remote connection's
  process gets the room's whole awareness.
- **Dead nodes.** Remote connections of a node whose heartbeat stopped are removed
  (their presence leaves at once); a clean close arrives as an entry.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from ...errors import CloseError, MalformedMessage, TooManyMessages, Unauthenticated
from ...schema import bind_roots, participant_entries_missing
from ..auth import Principal
from ..connection import Connection
from ..containers import ensure_for
from ..origins import Incoming
from .bus import REDIS_ERRORS
from .errors import Moved

if TYPE_CHECKING:
    from ..rooms import Room
    from .node import Cluster

__all__ = ("OwnerLink", "RemoteConnection")

logger = logging.getLogger(__name__)

#: seconds between two checks that the nodes of remote connections are alive
_SWEEP_EVERY = 1.0

_Entry = tuple[str, Mapping[bytes | str, bytes | str | int]]


class _Nowhere:
    """A remote connection's channel: what the room sends it reaches its relay another way."""

    async def send(self, frame: bytes) -> None:
        return None

    def send_nowait(self, frame: bytes) -> bool:
        return True


class RemoteConnection(Connection):
    """A client connected to another process, as the owner's room sees it."""

    remote = True

    def __init__(self, link: OwnerLink, node: str, conn_id: int, principal: Principal) -> None:
        super().__init__(link.room.workshop_id, _Nowhere(), principal=principal)
        self.node = node
        self.remote_id = conn_id
        self.counted = False  # holds a reference on the room (manager.release on removal)
        self._link = link

    def fail(self, error: CloseError) -> None:
        if self.close_error is not None:
            return
        super().fail(error)
        self._link.failed(self, error)


def _awareness_fields(frames: Sequence[bytes]) -> Mapping[bytes | str, bytes | str | int]:
    return {b"k": b"a", b"h": json.dumps([len(f) for f in frames]), b"d": b"".join(frames)}


def principal_json(principal: Principal) -> str:
    return json.dumps(
        {"id": principal.participant_id, "name": principal.name, "role": principal.role, "wid": principal.workshop_id}
    )


def principal_from(text: bytes) -> Principal:
    data = json.loads(text)
    return Principal(data.get("id"), data.get("name"), data.get("role"), data.get("wid"))


class OwnerLink:
    """Ties an owner's room to the cluster; its :meth:`run` is a task of the room."""

    def __init__(self, cluster: Cluster, room: Room, epoch: int, in_after: bytes) -> None:
        self.cluster = cluster
        self.room = room
        self.epoch = epoch
        self._in_after = in_after
        self.remotes: dict[tuple[str, int], RemoteConnection] = {}
        #: monotonic time the lease was last known to be ours (taken just before this link)
        self.renewed_at = time.monotonic()
        self._outbox_send, self._outbox = anyio.create_memory_object_stream[_Entry](math.inf)
        bus = cluster.bus
        self._out_key = bus.key("out", room.workshop_id)
        self._in_key = bus.key("in", room.workshop_id)

    # -- hooks called by the room --------------------------------------------------
    async def append(self, updates: Sequence[bytes], claims: Mapping[int, str] | None) -> int:
        """The room's commit, fenced by this owner's epoch (through the manager's store,
        which the webhooks' watcher may wrap: it passes ``epoch`` on; the room times it)."""
        store: Any = self.room.store
        seq: int = await store.append(self.room.workshop_id, updates, claims=claims, epoch=self.epoch)
        return seq

    def committed(self, last_seq: int, applied: Sequence[Incoming]) -> None:
        """Publish a committed batch: its seqs, each update's origin, remote senders' counts."""
        if not self.remotes:
            return  # nobody elsewhere: relays catch up from the store at the next resume
        origins: list[list[Any] | None] = []
        acks: dict[tuple[str, int], int] = {}
        for item in applied:
            conn = item.conn
            if isinstance(conn, RemoteConnection):
                origins.append([conn.node, conn.remote_id])
                acks[(conn.node, conn.remote_id)] = item.number
            else:
                origins.append(None)
        header = {
            "e": self.epoch,
            "f": last_seq - len(applied) + 1,
            "l": last_seq,
            "o": origins,
            "n": [len(item.update) for item in applied],
            "a": [[node, cid, count] for (node, cid), count in acks.items()],
        }
        data = b"".join(item.update for item in applied)
        self._put((self._out_key, {b"k": b"b", b"h": json.dumps(header), b"d": data}))

    def awareness(self, frames: Sequence[bytes]) -> None:
        """Publish the room's coalesced awareness changes to every relay."""
        if self.remotes:
            self._put((self._out_key, _awareness_fields(frames)))

    def sync_answered(self, conn: Connection, seq: int) -> None:
        """A remote peer's sync step 1 is answered by its relay once it holds ``seq``."""
        assert isinstance(conn, RemoteConnection)
        self._direct(conn.node, {b"k": b"s", b"c": conn.remote_id, b"q": seq})

    def failed(self, conn: RemoteConnection, error: CloseError) -> None:
        """The room (or this link) closed a remote connection: tell its relay, drop it."""
        self._direct(conn.node, {b"k": b"x", b"c": conn.remote_id, b"code": error.code, b"why": error.reason[:120]})
        self._drop(conn)

    # -- plumbing ------------------------------------------------------------------
    def _put(self, entry: _Entry) -> None:
        try:
            self._outbox_send.send_nowait(entry)
        except anyio.ClosedResourceError:
            pass  # the link has stopped: the relays learn it from the lease

    def _direct(self, node: str, fields: dict[bytes | str, bytes | str | int]) -> None:
        fields[b"w"] = self.room.workshop_id
        self._put((self.cluster.bus.key("to", node), fields))

    def _drop(self, conn: RemoteConnection) -> None:
        key = (conn.node, conn.remote_id)
        if self.remotes.get(key) is conn:
            del self.remotes[key]
        self.room.remove(conn)
        if conn.counted:
            conn.counted = False
            self.cluster.manager.release(self.room)

    async def run(self) -> None:
        """Publish, read the ``in`` stream and sweep dead nodes until the room ends."""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._publish)
                tg.start_soon(self._sweep)
                await self.cluster.streams.consume(
                    self._in_key, self._in_after, self._handle, what=f"workshop={self.room.workshop_id} in"
                )
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                await self._flush()  # closes queued for relays (a stand-down, a shutdown)
                try:
                    await self.cluster.leases.release(self.room.workshop_id)
                except REDIS_ERRORS:
                    pass  # it lapses by itself

    async def _flush(self) -> None:
        entries: list[_Entry] = []
        while True:
            try:
                entries.append(self._outbox.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                break
        self._outbox_send.close()
        if entries:
            try:
                await self.cluster.bus.add(entries)
            except REDIS_ERRORS:
                pass

    async def _publish(self) -> None:
        """One task writes everything, in order; what is waiting goes in one round trip."""
        pause = 0.05
        while True:
            entries = [await self._outbox.receive()]
            while len(entries) < 512:
                try:
                    entries.append(self._outbox.receive_nowait())
                except anyio.WouldBlock:
                    break
            while True:
                try:
                    await self.cluster.bus.add(entries)
                    pause = 0.05
                    break
                except REDIS_ERRORS as exc:
                    # kept in order and retried: if Redis stays away, the lease lapses and
                    # the room stands down; a relay that missed a batch fills it from the store
                    logger.warning("workshop=%s publish failed (%s); retrying", self.room.workshop_id, exc)
                    await anyio.sleep(pause)
                    pause = min(1.0, pause * 2)

    async def _sweep(self) -> None:
        while True:
            await anyio.sleep(_SWEEP_EVERY)
            nodes = sorted({node for node, _ in self.remotes})
            if not nodes:
                continue
            try:
                alive = await self.cluster.leases.alive(nodes)
            except REDIS_ERRORS:
                continue  # no news is not death: the lease decides what happens to us
            for node, up in alive.items():
                if up:
                    continue
                gone = [c for (n, _), c in self.remotes.items() if n == node]
                logger.info(
                    "workshop=%s node %s is gone: %d of its connections leave", self.room.workshop_id, node, len(gone)
                )
                for conn in gone:
                    self._drop(conn)

    # -- the in stream -------------------------------------------------------------
    async def _handle(self, fields: dict[bytes, bytes]) -> None:
        kind = fields[b"k"]
        node = fields[b"n"].decode()
        if kind == b"e":
            await self._edit(node, fields)
            return
        key = (node, int(fields[b"c"]))
        conn = self.remotes.get(key)
        if kind == b"f":
            if conn is None:
                # a frame meant for a previous owner, or for a connection we dropped
                self._direct(node, {b"k": b"x", b"c": key[1], b"code": Moved.code, b"why": "reconnect"})
            elif not conn.closed:
                await self._receive(conn, fields[b"d"])
        elif kind == b"o":
            if conn is not None:
                self._drop(conn)
            await self._open(node, key[1], principal_from(fields[b"p"]))
        elif kind == b"x" and conn is not None:
            self._drop(conn)

    async def _receive(self, conn: RemoteConnection, frame: bytes) -> None:
        registry = self.cluster.registry
        budget = conn.budget
        try:
            if budget is not None:
                # the participant's rates over every process: the owner's budgets count the
                # frames of all its connections (the relay counted them for its own too)
                budget.messages.hit()
                budget.bytes.hit(len(frame), "bytes")
            if registry is not None and registry.is_revoked(conn.workshop_id, conn.principal.participant_id):
                raise Unauthenticated("you were removed from this workshop")
            await self.room.receive(conn, frame)
        except CloseError as exc:
            conn.fail(exc)
        except Exception as exc:  # a bug met by this frame costs this connection only
            logger.warning(
                "workshop=%s remote conn %s:%d frame failed: %r", conn.workshop_id, conn.node, conn.remote_id, exc
            )
            conn.fail(MalformedMessage("the message could not be handled"))

    async def _open(self, node: str, conn_id: int, principal: Principal) -> None:
        """A relay's new client: the endpoint's admission rules, counted over the whole cluster."""
        room, settings = self.room, self.cluster.settings
        if not self.remotes:
            # publishing starts again: what was committed meanwhile is in the store
            self._put((self._out_key, {b"k": b"r", b"l": room.last_seq}))
        conn = RemoteConnection(self, node, conn_id, principal)
        self.remotes[(node, conn_id)] = conn
        frames = room.awareness.full_frames()
        if frames:  # its process's view of presence may be stale: the whole of it
            self._direct(node, dict(_awareness_fields(frames)))
        pid = principal.participant_id
        conn.budget = self.cluster.manager.budgets.get(room.workshop_id, pid)
        cap = settings.max_connections_per_workshop
        if principal.role != "facilitator":
            cap = max(1, cap - settings.facilitator_connection_reserve)
        if room.closing:
            conn.fail(Moved("the workshop is moving; reconnect"))
            return
        if len(room.connections) >= cap:
            conn.fail(TooManyMessages("this workshop has reached its connection limit"))
            return
        if (
            pid is not None
            and sum(1 for c in room.connections.values() if c.principal.participant_id == pid)
            >= settings.max_connections_per_participant
        ):
            conn.fail(TooManyMessages("you have too many connections open to this workshop; close some"))
            return
        if principal.authenticated and principal.role != "observer" and pid is not None:
            if participant_entries_missing(bind_roots(room.doc), pid):
                try:
                    await room.edit(ensure_for(pid), reason="containers")
                except CloseError as exc:
                    conn.fail(exc)
                    return
        if conn.closed:
            return
        room.refs += 1
        conn.counted = True
        room.add(conn)

    async def _edit(self, node: str, fields: dict[bytes, bytes]) -> None:
        """A server edit computed on a relay (a join through another process): applied here."""
        update = fields[b"d"]
        error = b""
        try:
            await self.room.edit(lambda doc: doc.apply_update(update), reason=fields.get(b"why", b"edit").decode())
        except Exception as exc:
            error = str(exc).encode()[:200] or b"failed"
        self._direct(node, {b"k": b"r", b"r": fields[b"r"], b"err": error})
