"""A star network: pycrdt replicas around the REAL server room, with an adversary.

Why: the mesh model (:mod:`tests.properties.network`) checks that honest replicas
converge; it cannot check what the server admits. Here every replica talks to one
:class:`vmv_sync.server.rooms.Room` (authentication on, a real store), driven in
process through an anyio blocking portal, so every update goes through the room's
real admission path (``check_integrable``, ``ClientIds``, ``WriteGuard``,
``missing_containers``), its commit and its relay, and every ``saved`` comes from
the room itself.

Each link is one WebSocket: frames are FIFO and never lost while it is up; a
disconnect loses what was in flight both ways (the network faults of a real
connection; the mesh model covers reordering and duplication of CRDT traffic).

Honest replicas behave like the fixed client (vmv_sync/client/):

- they never create a participant's ``selections``/``matrix``/``drafts`` container
  nor a ballot's ``votes`` Map: an action whose container is absent is held as an
  intent (durable: it survives a crash) and applied once the container arrives;
- they send local updates only after their sync step 2 (what is made before is in
  the step 2), so the server never sees a gap from an honest client;
- every edit is recorded with its intent until acknowledged; a ``client id taken:``
  refusal (4403) makes the replica start again from an empty document under a fresh
  client id, re-making its unacknowledged edits as intents once synced.

The adversary is a participant that crafts updates (:meth:`StarNetwork.attack`).
"""

from __future__ import annotations

import random
import shutil
import tempfile
import types
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from unittest import mock

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal
from pycrdt import Doc, Map, Subscription, Text, TransactionEvent

import vmv_sync.schema as schema
from vmv_sync.config import Settings
from vmv_sync.errors import CLIENT_ID_TAKEN_PREFIX, CloseError, GoingAway
from vmv_sync.protocol import (
    EMPTY_UPDATE,
    Saved,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode_state_vector,
    encode_awareness,
    encode_awareness_update,
    encode_sync_step1,
    encode_sync_step2,
    encode_sync_update,
    parse_message,
)
from vmv_sync.protocol import Awareness as AwarenessMessage
from vmv_sync.protocol.varint import write_var_uint
from vmv_sync.schema import ROOTS, InvalidAction, Roots, bind_roots, normalize_value_name
from vmv_sync.server import clientids
from vmv_sync.server.auth import Principal
from vmv_sync.server.connection import Connection
from vmv_sync.server.containers import ensure_for
from vmv_sync.server.rooms import Room
from vmv_sync.storage import MemoryStore, SQLiteStore, Store

__all__ = ("Edit", "Intent", "HonestReplica", "StarNetwork", "ATTACKS", "content_of", "crafted_deletes")

WORKSHOP = "w-star"
ADVERSARY = "x"


def content_of(doc: Doc[Any]) -> dict[str, Any]:
    roots = bind_roots(doc)
    return {name: roots.by_name()[name].to_py() for name in ROOTS}


def crafted_deletes(client: int, clock: int, length: int) -> bytes:
    """An update with no structs and one delete range ``[clock, clock + length)`` of ``client``."""
    return write_var_uint(0) + write_var_uint(1) + write_var_uint(client) + write_var_uint(1) + \
        write_var_uint(clock) + write_var_uint(length)  # fmt: skip


# -- the model's records ---------------------------------------------------------------
@dataclass(eq=False)
class Edit:
    """One honest action that produced an update (like the mesh model's ``Write``)."""

    id: int
    replica: int
    pid: str
    #: (kind, pid, key): kind in message | selection | rating | vote | progress | other
    key: tuple[str, str, str]
    value: Any
    client: int
    c0: int
    c1: int
    before: dict[int, int]
    seen: frozenset[int]
    intent: Intent | None
    acked: bool = False

    def integrated(self, vector: dict[int, int], seen: set[int] | frozenset[int]) -> bool:
        if self.c1 > self.c0:
            return vector.get(self.client, 0) >= self.c1
        return self.id in seen and all(vector.get(c, 0) >= k for c, k in self.before.items())

    def happened_before(self, other: Edit) -> bool:
        return self is not other and self.integrated(other.before, other.seen)


@dataclass(frozen=True)
class Intent:
    """What the user meant: an action, the container it needs, and the model key."""

    name: str
    action: Callable[[Roots], Any]
    key: tuple[str, str, str]
    value: Any
    #: (root, key, type) of the nested container the action writes into, or None
    container: tuple[str, str, type] | None = None
    #: a message id (re-made only if the document does not have it yet)
    message_id: str | None = None
    #: re-made after a recovery (others, e.g. mission edits at an index, are not)
    remakeable: bool = True

    def ready(self, roots: Roots) -> bool:
        if self.container is None:
            return True
        root, key, kind = self.container
        return isinstance(roots.by_name()[root].get(key), kind)


# -- the server side -------------------------------------------------------------------
class MemoryChannel:
    """The socket of one connection, as the room sees it: frames land in a list."""

    def __init__(self, net: StarNetwork) -> None:
        self.net = net
        self.frames: list[tuple[bytes, frozenset[int]]] = []

    async def send(self, frame: bytes) -> None:
        self.send_nowait(frame)

    def send_nowait(self, frame: bytes) -> bool:
        # Tagged with what the server holds (model bookkeeping for delete-only edits).
        self.frames.append((frame, frozenset(self.net.server_seen)))
        return True


class ServerNode:
    """The real Room in a portal's event loop, with a barrier after every input."""

    def __init__(self, portal: BlockingPortal, store: Store, settings: Settings) -> None:
        self.portal = portal
        self.store = store
        self.settings = settings
        self.room: Room | None = None
        self.starts = 0

    def start(self) -> None:
        room = Room(WORKSHOP, self.store, self.settings)
        self.portal.start_task(room.run)
        assert room.load_error is None, room.load_error
        self.room = room
        self.starts += 1

    def stop(self) -> None:
        room = self._room()
        room.fail_all(GoingAway("the server is shutting down"))
        self.portal.call(room.stop)
        assert room.failure is None, room.failure
        self.room = None

    def _room(self) -> Room:
        assert self.room is not None
        return self.room

    def call(self, func: Callable[..., Any], *args: Any) -> Any:
        return self.portal.call(func, *args)

    async def _barrier(self) -> None:
        # A server edit that writes nothing: processed after everything queued before it.
        await self._room().edit(lambda doc: None, reason="barrier")

    def edit(self, func: Callable[[Doc[Any]], Any]) -> None:
        async def run() -> None:
            await self._room().edit(func)

        self.call(run)

    def connect(self, conn_args: dict[str, Any], channel: MemoryChannel) -> Connection:
        async def run() -> Connection:
            room = self._room()
            conn = Connection(WORKSHOP, channel, wants_saved=True, **conn_args)
            principal = conn.principal
            pid = principal.participant_id
            if principal.role != "observer" and pid is not None:
                if schema.participant_entries_missing(bind_roots(room.doc), pid):
                    await room.edit(ensure_for(pid), reason="containers")  # as app.py does
            room.add(conn)
            return conn

        return self.call(run)  # type: ignore[no-any-return]

    def receive(self, conn: Connection, frame: bytes) -> None:
        async def run() -> None:
            try:
                await self._room().receive(conn, frame)
            except CloseError as exc:  # what app._read does
                conn.fail(exc)
            await self._barrier()
            room = self._room()
            assert room.failure is None, room.failure

        self.call(run)

    def remove(self, conn: Connection) -> None:
        self.call(self._room().remove, conn)

    def state(self) -> tuple[dict[int, int], bytes]:
        def read() -> tuple[dict[int, int], bytes]:
            doc = self._room().doc
            return decode_state_vector(doc.get_state()), doc.get_update()

        return self.call(read)  # type: ignore[no-any-return]

    def snapshot(self) -> tuple[dict[int, int], dict[str, Any]]:
        sv, update = self.state()
        doc: Doc[Any] = Doc()
        doc.apply_update(update)
        return sv, content_of(doc)

    def owners(self) -> dict[int, str | None]:
        def read() -> dict[int, str | None]:
            room = self._room()
            return {c: room.client_ids.owner(c) for c in decode_state_vector(room.doc.get_state())}

        return self.call(read)  # type: ignore[no-any-return]


# -- the replicas ----------------------------------------------------------------------
class HonestReplica:
    """One device of one participant: a Doc, a local store, a connection, intents."""

    def __init__(self, net: StarNetwork, index: int, pid: str, role: str) -> None:
        self.net = net
        self.index = index
        self.pid = pid
        self.role = role
        self.joined = False  # has a token: its participant joined (server side)
        self.online = False
        self.awareness_clock = 0
        self.persisted: list[bytes] = []
        self.persisted_edits: set[int] = set()
        self.held: list[Intent] = []
        #: own edits this replica's document holds (acknowledged or not)
        self.own: dict[int, Edit] = {}
        self.seen: set[int] = set()
        self.incarnation = 0
        self.recoveries = 0
        self.after_recovery = False
        #: the fixed client's check (off: a stock Yjs client, which cannot tell)
        self.detect_foreign = True
        self._new_doc(None)

    # -- document ------------------------------------------------------------------
    def _new_doc(self, updates: list[bytes] | None) -> None:
        self.doc: Doc[Any] = Doc(client_id=self.net.new_client_id())
        self.roots = bind_roots(self.doc)
        for update in updates or ():
            self.doc.apply_update(update)
        self.pending: list[tuple[bytes, frozenset[int]]] = []
        self._remote = False
        self._tag: int | None = None
        self.local_updates = 0
        self._subscription: Subscription | None = self.doc.observe(self._on_update)
        self.conn: Connection | None = None
        self.channel: MemoryChannel | None = None
        self.up: list[tuple[bytes, frozenset[int]]] = []
        self.step2_sent = False
        self.synced = False
        self.counted: list[frozenset[int]] = []

    def _close_doc(self) -> None:
        if self._subscription is not None:
            self.doc.unobserve(self._subscription)
            self._subscription = None

    @property
    def client_id(self) -> int:
        return int(self.doc.client_id)

    def state_vector(self) -> dict[int, int]:
        return decode_state_vector(self.doc.get_state())

    def _on_update(self, event: TransactionEvent) -> None:
        update = bytes(event.update)
        if update == EMPTY_UPDATE:
            return
        tags = frozenset(() if self._remote or self._tag is None else (self._tag,))
        self.pending.append((update, tags))
        if self._remote:
            return
        self.local_updates += 1
        if self.conn is not None and self.step2_sent:
            self.up.append((encode_sync_update(update), tags))

    # -- actions -------------------------------------------------------------------
    def act(self, intent: Intent) -> None:
        """Apply now if the container is there and nothing before it waits; else hold."""
        blocked = any(held.container == intent.container for held in self.held)
        if intent.ready(self.roots) and not blocked:
            self._apply(intent)
        else:
            self.held.append(intent)
            self.net.counts["intents_held"] += 1

    def _apply(self, intent: Intent) -> Edit | None:
        if intent.message_id is not None and any(
            isinstance(m, Map) and m.get("id") == intent.message_id for m in self.roots.messages
        ):
            self.net.counts["intents_already_there"] += 1
            return None
        before = self.state_vector()
        seen = frozenset(self.seen)
        updates = self.local_updates
        edit_id = len(self.net.edits)
        self._tag = edit_id
        try:
            intent.action(self.roots)
        except InvalidAction:
            self.net.counts["actions_refused"] += 1
            return None
        finally:
            self._tag = None
        if self.local_updates == updates:
            self.net.counts["actions_noop"] += 1
            return None
        assert self.local_updates == updates + 1, "one action must be one update"
        client = self.client_id
        edit = Edit(edit_id, self.index, self.pid, intent.key, intent.value, client,
                    before.get(client, 0), self.state_vector().get(client, 0), before, seen,
                    intent)  # fmt: skip
        self.net.edits.append(edit)
        self.own[edit.id] = edit
        self.seen.add(edit.id)
        self.net.counts["edits"] += 1
        return edit

    def flush_intents(self) -> None:
        if not self.held or not self.synced_once:
            return
        if self.synced:
            # A vote for a ballot the server does not have (its opening was lost in a
            # crash) can never apply: the fixed client drops it (and says so).
            for intent in list(self.held):
                if intent.container and intent.container[0] == "votes" and intent.container[1] not in self.roots.ballots:
                    self.held.remove(intent)
                    self.net.counts["intents_dropped_no_ballot"] += 1
        progress = True
        while progress:
            progress = False
            for intent in list(self.held):
                earlier = self.held[: self.held.index(intent)]
                if intent.ready(self.roots) and not any(e.container == intent.container for e in earlier):
                    self.held.remove(intent)
                    self._apply(intent)
                    self.net.counts["intents_applied_later"] += 1
                    progress = True

    @property
    def synced_once(self) -> bool:
        # re-made intents wait for the first sync after a recovery
        return self.synced or not self.after_recovery

    # -- persistence -------------------------------------------------------------------
    def flush(self) -> None:
        for update, tags in self.pending:
            self.persisted.append(update)
            self.persisted_edits |= tags
        self.pending = []

    # -- wire --------------------------------------------------------------------------
    def receive(self, frame: bytes, tags: frozenset[int]) -> None:
        message = parse_message(frame)
        if isinstance(message, SyncStep1):
            server_clock = decode_state_vector(message.state_vector).get(self.client_id, 0)
            if self.detect_foreign and server_clock > self.state_vector().get(self.client_id, 0):
                # The server has clocks under our current id that we never wrote:
                # someone claimed it first (see docs/testing.md). Start again.
                self.net.counts["foreign_writes_detected"] += 1
                self.net.disconnect(self)
                self.net.recover(self)
                return
            # What the server's state vector covers is saved (a "saved" lost with a
            # dropped connection): the fixed client confirms those edits this way.
            server_sv = decode_state_vector(message.state_vector)
            for edit in self.own.values():
                if not edit.acked and edit.c1 > edit.c0 and server_sv.get(edit.client, 0) >= edit.c1:
                    edit.acked = True
                    self.net.counts["edits_acked_by_state_vector"] += 1
            diff = self.doc.get_update(message.state_vector)
            carried = frozenset(self.own)
            self.up.append((encode_sync_step2(diff), carried))
            self.step2_sent = True
        elif isinstance(message, (SyncStep2, SyncUpdate)):
            self._remote = True
            try:
                self.doc.apply_update(message.update)
            finally:
                self._remote = False
            self.seen |= tags
            if isinstance(message, SyncStep2):
                self.synced = True
                self.after_recovery = False
            self.flush_intents()
        elif isinstance(message, Saved):
            for carried in self.counted[: message.count]:
                for edit_id in carried:
                    edit = self.net.edits[edit_id]
                    if not edit.acked:
                        edit.acked = True
                        self.net.counts["edits_acked"] += 1
                        self.net.on_ack(edit)

    def close(self) -> None:
        self._close_doc()


ATTACKS = (
    "squat", "squat_gap", "squat_server", "collision", "delete_range", "delete_future",
    "huge_clock", "missing_dependency", "others_entry", "replace_container", "squat_unpublished",
)  # fmt: skip


@dataclass
class StarNetwork:
    """Replicas <-> the real room. Every choice comes from the caller (hypothesis)."""

    server: ServerNode
    rng: random.Random
    replicas: list[HonestReplica] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    server_seen: set[int] = field(default_factory=set)
    used_ids: set[int] = field(default_factory=set)
    #: the adversary's connection (one page per attack)
    on_ack: Callable[[Edit], None] = lambda edit: None
    unpublished_squats: bool = True
    #: client ids honest devices announced in awareness (what a page can learn before a write)
    announced: set[int] = field(default_factory=set)

    def new_client_id(self) -> int:
        while True:
            cid = self.rng.randrange(1, 2**32)
            if cid not in self.used_ids:
                self.used_ids.add(cid)
                return cid

    # -- connections -----------------------------------------------------------------
    def _principal(self, pid: str, role: str) -> Principal:
        return Principal(pid, pid.upper(), role, WORKSHOP)

    def go_online(self, r: HonestReplica) -> None:
        r.online = True
        if r.conn is None and r.joined:
            r.channel = MemoryChannel(self)
            r.conn = self.server.connect({"principal": self._principal(r.pid, r.role)}, r.channel)
            # like a y-websocket provider: sync step 1, then the awareness state under the doc's id
            r.awareness_clock += 1
            hello = encode_awareness(encode_awareness_update([(r.client_id, r.awareness_clock, "{}")]))
            r.up = [(encode_sync_step1(r.doc.get_state()), frozenset()), (hello, frozenset())]
            r.step2_sent = False
            r.synced = False
            r.counted = []
            self.counts["connects"] += 1

    def disconnect(self, r: HonestReplica) -> None:
        if r.conn is not None:
            self.counts["frames_lost_on_disconnect"] += len(r.up) + len(r.channel.frames if r.channel else ())
            self.server.remove(r.conn)
        r.conn = None
        r.channel = None
        r.up = []
        r.step2_sent = False
        r.synced = False
        r.counted = []

    def go_offline(self, r: HonestReplica) -> None:
        self.disconnect(r)
        r.online = False

    def deliver_up(self, r: HonestReplica, count: int) -> int:
        done = 0
        while r.conn is not None and r.up and done < count:
            frame, carried = r.up.pop(0)
            message = parse_message(frame)
            if isinstance(message, (SyncStep2, SyncUpdate)) and message.update != EMPTY_UPDATE:
                r.counted.append(carried)
            elif isinstance(message, AwarenessMessage):
                self.announced.add(r.client_id)
            added = carried - self.server_seen
            self.server_seen |= carried
            self.server.receive(r.conn, frame)
            done += 1
            self.counts["frames_up"] += 1
            if r.conn.closed:
                self.server_seen -= added
                self._refused(r)
        return done

    def deliver_down(self, r: HonestReplica, count: int) -> int:
        done = 0
        while r.conn is not None and r.channel is not None and r.channel.frames and done < count:
            frame, tags = r.channel.frames.pop(0)
            r.receive(frame, tags)
            done += 1
            self.counts["frames_down"] += 1
        return done

    def _refused(self, r: HonestReplica) -> None:
        assert r.conn is not None and r.conn.close_error is not None
        error = r.conn.close_error
        reason = error.reason if hasattr(error, "reason") else str(error)
        self.disconnect(r)
        assert error.code == 4403 and str(reason).startswith(CLIENT_ID_TAKEN_PREFIX), (
            f"honest replica {r.index} ({r.pid}) refused: {error.code} {reason}"
        )
        self.recover(r)

    def recover(self, r: HonestReplica) -> None:
        """A fresh client id on an empty document; unacknowledged edits re-made as intents.

        The old edits may still be on the server (committed, their ``saved`` lost):
        each is re-made once, after the first sync (a message only if its id is not
        there yet; the other actions are idempotent or a plain newer write).
        """
        remade: list[Intent] = []
        for edit in self.edits:
            if edit.replica == r.index and not edit.acked and edit.intent is not None:
                if edit.intent.remakeable and edit.intent not in remade:
                    remade.append(edit.intent)
                edit.intent = None
        r.close()
        r._new_doc(None)
        r.persisted = []
        r.persisted_edits = set()
        r.own = {}
        r.seen = set()
        r.held = remade + r.held
        r.after_recovery = True
        r.recoveries += 1
        r.incarnation += 1
        self.counts["recoveries"] += 1
        self.counts["intents_remade"] += len(remade)
        if r.online:
            self.go_online(r)

    def crash(self, r: HonestReplica, graceful: bool) -> None:
        """Stop and reload from the local store under a new client id (a page reload)."""
        if graceful:
            r.flush()
        self.disconnect(r)
        lost = len(r.pending)
        r.close()
        r._new_doc(list(r.persisted))
        r.own = {k: e for k, e in r.own.items() if k in r.persisted_edits}
        r.seen = {s for s in r.seen if s in r.persisted_edits or s in self.server_seen}
        r.incarnation += 1
        self.counts["restarts" if graceful else "crashes"] += 1
        self.counts["updates_lost_in_crash"] += 0 if graceful else lost
        if r.online:
            self.go_online(r)

    def restart_server(self) -> None:
        """Stop the room gracefully (everyone disconnects), reload it from the store."""
        before = self.server.snapshot()
        for r in self.replicas:
            self.disconnect(r)
        self.server.stop()
        self.server.start()
        after = self.server.snapshot()
        assert before == after, "the store reloaded a different document"
        self.counts["server_restarts"] += 1
        for r in self.replicas:
            if r.online:
                self.go_online(r)

    # -- healing ----------------------------------------------------------------------
    def heal(self, max_rounds: int = 20) -> None:
        for r in self.replicas:
            if r.joined:
                self.go_online(r)
        for _ in range(max_rounds):
            moved = 0
            for r in self.replicas:
                moved += self.deliver_up(r, 10_000)
                moved += self.deliver_down(r, 10_000)
            if not moved:
                return
        raise AssertionError(f"the star did not quiesce in {max_rounds} rounds")

    # -- the adversary -------------------------------------------------------------------
    def attack(self, kind: str, pick: int, size: int) -> str:
        """One crafted update from the adversary's fresh, fully synced page.

        Returns the outcome (``refused_<code>`` or ``accepted``). A refused update must
        leave the server's document exactly as it was.
        """
        channel = MemoryChannel(self)
        conn = self.server.connect({"principal": self._principal(ADVERSARY, "participant")}, channel)
        doc: Doc[Any] = Doc(client_id=self.new_client_id())
        self.server.receive(conn, encode_sync_step1(doc.get_state()))
        for frame, _ in channel.frames:
            message = parse_message(frame)
            if isinstance(message, (SyncStep2, SyncUpdate)):
                doc.apply_update(message.update)
        server_sv = decode_state_vector(doc.get_state())
        update = self._craft(kind, doc, server_sv, pick, size)
        if update is None:
            self.server.remove(conn)
            return "skipped"
        before = self.server.snapshot()
        self.server.receive(conn, encode_sync_update(update))
        outcome = f"refused_{conn.close_error.code}" if conn.close_error is not None else "accepted"
        if conn.close_error is not None:
            assert self.server.snapshot() == before, f"a refused {kind} changed the server's document"
        self.server.remove(conn)
        self.counts[f"adversary_{kind}_{outcome}"] += 1
        return outcome

    def _craft(self, kind: str, doc: Doc[Any], sv: dict[int, int], pick: int, size: int) -> bytes | None:
        from ..server.craft import deleted_struct

        lengths = (1, 10, 1000, 1 << 24, (1 << 24) + 1, 2**40)
        length = lengths[size % len(lengths)]
        owners = self.server.owners()
        victims = sorted(c for c, o in owners.items() if o is not None and o != ADVERSARY)
        servers = sorted(c for c, o in owners.items() if o == "@server")
        participants = sorted(c for c in victims if c not in servers)
        if kind == "squat":
            if not participants:
                return None
            victim = participants[pick % len(participants)]
            return deleted_struct(victim, sv[victim], length)
        if kind == "squat_server":
            victim = servers[pick % len(servers)]
            return deleted_struct(victim, sv[victim], length)
        if kind == "squat_gap":
            victim = victims[pick % len(victims)]
            return deleted_struct(victim, sv[victim] + 1 + size % 5, 3)
        if kind == "squat_unpublished":
            # An honest device's id the server has not seen an update under yet, learned
            # from its awareness (an id never sent anywhere cannot be known: 53 random bits).
            if not self.unpublished_squats:
                return None
            fresh = sorted(r.client_id for r in self.replicas if r.client_id not in sv and r.client_id in self.announced)
            if not fresh:
                return None
            return deleted_struct(fresh[pick % len(fresh)], 0, length)
        if kind == "collision":
            victim = victims[pick % len(victims)]
            twin: Doc[Any] = Doc(client_id=victim)
            twin.apply_update(doc.get_update())
            state = twin.get_state()
            roots = bind_roots(twin)
            if size % 2:
                roots.mission.insert(0, "x")
            else:
                roots.drafts[ADVERSARY] = Map({"x": 1})
            return twin.get_update(state)
        if kind == "delete_range":
            victim = victims[pick % len(victims)]
            return crafted_deletes(victim, 0, sv[victim])
        if kind == "delete_future":
            victim = victims[pick % len(victims)]
            return crafted_deletes(victim, sv[victim], 1 + size % 50)
        if kind == "huge_clock":
            return deleted_struct(doc.client_id, 0, (1 << 24) + 1 + size)
        if kind == "missing_dependency":
            hidden: Doc[Any] = Doc(client_id=self.new_client_id())
            hidden.apply_update(doc.get_update())
            h_state = hidden.get_state()
            bind_roots(hidden).mission.insert(0, "hidden")
            doc.apply_update(hidden.get_update(h_state))
            state = doc.get_state()
            bind_roots(doc).mission.insert(3, "dep")
            return doc.get_update(state)
        state = doc.get_state()
        roots = bind_roots(doc)
        targets = sorted(p for p in roots.participants.keys() if p != ADVERSARY)
        if not targets:
            return None
        victim_pid = targets[pick % len(targets)]
        if kind == "others_entry":
            choice = size % 4
            if choice == 0 and isinstance(roots.selections.get(victim_pid), Map):
                roots.selections[victim_pid]["Honesty"] = 1.0
            elif choice == 1:
                schema.post_message(roots, victim_pid, "forged", message_id="forged")
            elif choice == 2 and isinstance(roots.matrix.get(victim_pid), Map):
                roots.matrix[victim_pid]["Trust"] = {"importance": 1, "practice": 1}
            else:
                roots.participants[victim_pid]["name"] = "pwned"
        elif kind == "replace_container":
            which = size % 3
            if which == 0:
                roots.selections[victim_pid] = Map()
            elif which == 1:
                roots.matrix[victim_pid] = Map()
            else:
                roots.drafts[victim_pid] = Text()
        else:  # pragma: no cover
            raise AssertionError(kind)
        return doc.get_update(state)


class StarHarness:
    """Portal + store + room + network for one machine run; a context manager."""

    def __init__(self, seed: int, store: Literal["sqlite", "memory"] = "memory") -> None:
        self._stack = ExitStack()
        self.kind = store
        self.seed = seed

    def __enter__(self) -> StarNetwork:
        try:
            portal = self._stack.enter_context(start_blocking_portal("asyncio"))
            if self.kind == "sqlite":
                folder = Path(tempfile.mkdtemp(prefix="vmv-star-"))
                self._stack.callback(shutil.rmtree, folder, True)
                store: Store = SQLiteStore(folder / "star.sqlite3", synchronous="NORMAL")
            else:
                store = MemoryStore()
            store = self._stack.enter_context(portal.wrap_async_context_manager(store))
            # The room draws its own client id from SystemRandom; Yjs breaks ties by client
            # id, so a run replays (and shrinks) only if that id comes from the seed too.
            server_ids = random.Random(self.seed ^ 0x5EED)
            shim = types.SimpleNamespace(SystemRandom=lambda: server_ids)
            self._stack.enter_context(mock.patch.object(clientids, "random", shim))
            settings = Settings(auth=True, compact_updates=25, awareness_timeout=30.0)
            server = ServerNode(portal, store, settings)
            server.start()
            self.server = server
            self._stack.callback(self._stop)
            self.net = StarNetwork(server=server, rng=random.Random(self.seed))
        except BaseException:
            self._stack.close()
            raise
        return self.net

    def _stop(self) -> None:
        if self.server.room is not None:
            self.server.stop()

    def __exit__(self, *exc_info: object) -> None:
        for r in getattr(self, "net", StarNetwork(server=None, rng=random.Random())).replicas:  # type: ignore[arg-type]
            r.close()
        self._stack.close()


def selected(roots: Roots, pid: str, key: str) -> bool:
    inner = roots.selections.get(pid)
    return isinstance(inner, Map) and any(normalize_value_name(k) == key for k in inner.keys())


_ = anyio  # the portal's backend
