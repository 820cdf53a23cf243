"""A simulated network of pycrdt replicas (documents + awareness) driven by a test.

Why: the convergence property must hold whatever the network does, so the network
here does everything a real one can and more: per-link FIFO queues that the test
delivers from in any interleaving, reorders inside a link, duplicates, drops,
partitions, replicas going offline, and replicas restarting from what they
persisted (gracefully, or crashing and losing what was not yet persisted).

Every replica talks to every other one directly (a full mesh, like Yjs' own
``TestConnector``); nothing is relayed, so a peer learns a third replica's edits only
from that replica or from a sync step 2 that contains them. The wire is the
y-websocket protocol in spirit: a local update goes to every connected peer; a new
connection starts with sync step 1 from both sides, answered by step 2; awareness
states travel on the same links and are removed when a link goes down.

Persistence goes through a real :class:`vmv_sync.storage.Store` (a SQLite file in a
temporary folder by default) driven from this synchronous code through an anyio
blocking portal. A replica persists every update it applies (its own and its
peers') into ``pending`` and commits them on :meth:`Network.flush`; a crash loses
``pending``.
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from anyio.from_thread import BlockingPortal, start_blocking_portal
from pycrdt import Awareness, Doc, Subscription, TransactionEvent

from vmv_sync.derived import DerivedTracker
from vmv_sync.protocol import decode_state_vector
from vmv_sync.protocol.varint import Reader
from vmv_sync.schema import Roots, bind_roots
from vmv_sync.storage import MemoryStore, SQLiteStore, Store

__all__ = (
    "Frame", "FrameKind", "Network", "Replica", "StoreBridge", "CrashReport", "update_start",
)  # fmt: skip

logger = logging.getLogger(__name__)

FrameKind = Literal["update", "step1", "step2", "awareness"]


@dataclass(frozen=True)
class Frame:
    """One message in flight on a link."""

    kind: FrameKind
    payload: bytes
    #: ids of the test's writes this frame carries (model bookkeeping, not wire data)
    writes: frozenset[int] = frozenset()


def update_start(update: bytes) -> tuple[int, int] | None:
    """``(client, first clock)`` of a single-client update (one local transaction).

    None for an update with no structs or several clients (a sync step 2 is a diff
    from the receiver's state vector, so it never starts past what it holds).
    """
    reader = Reader(update)
    if reader.read_var_uint() != 1:
        return None
    reader.read_var_uint()  # number of structs
    return reader.read_var_uint(), reader.read_var_uint()


class StoreBridge:
    """A real async :class:`Store` used from synchronous test code through a portal.

    Use as a context manager; ``kind`` is ``"sqlite"`` (a file in a temporary folder,
    removed on exit) or ``"memory"``.
    """

    def __init__(self, kind: Literal["sqlite", "memory"] = "sqlite") -> None:
        self.kind = kind
        self._stack = ExitStack()
        self._portal: BlockingPortal | None = None
        self._store: Store | None = None
        self._folder: Path | None = None

    def __enter__(self) -> StoreBridge:
        try:
            self._portal = self._stack.enter_context(start_blocking_portal("asyncio"))
            if self.kind == "sqlite":
                self._folder = Path(tempfile.mkdtemp(prefix="vmv-convergence-"))
                self._stack.callback(shutil.rmtree, self._folder, True)
                store: Store = SQLiteStore(self._folder / "replicas.sqlite3")
            else:
                store = MemoryStore()
            self._store = self._stack.enter_context(self._portal.wrap_async_context_manager(store))
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def _call(self, func: Any, *args: Any) -> Any:
        assert self._portal is not None and self._store is not None, "StoreBridge not entered"
        return self._portal.call(func, *args)

    def append(self, key: str, updates: list[bytes]) -> int:
        assert self._store is not None
        return int(self._call(self._store.append, key, updates))

    def load(self, key: str) -> tuple[bytes | None, tuple[bytes, ...], int]:
        assert self._store is not None
        stored = self._call(self._store.load, key)
        return stored.snapshot, stored.updates, stored.last_seq

    def compact(self, key: str, snapshot: bytes, upto_seq: int) -> None:
        assert self._store is not None
        self._call(self._store.compact, key, snapshot, upto_seq)


class Replica:
    """One device: a pycrdt Doc with its awareness, derived-state tracker and outbox.

    ``pending`` holds every update applied since the last flush, in order (local
    and remote): a crash loses exactly those.
    """

    def __init__(self, net: Network, index: int, doc: Doc[Any], incarnation: int) -> None:
        self.net = net
        #: updates held back because they start past this doc's clock for their
        #: client (see :meth:`receive_update`)
        self.held: list[tuple[bytes, frozenset[int]]] = []
        self.index = index
        self.incarnation = incarnation
        self.doc = doc
        self.roots: Roots = bind_roots(doc)
        self.awareness = Awareness(doc)
        self.awareness.set_local_state(
            {
                "user": {"id": f"device-{index}", "name": f"Device {index}", "color": "#000",
                         "role": "participant"},
                "stage": "values-select",
                "online_at": 0.0,
                "typing": False,
                "typing_at": None,
                "cursor": None,
            }
        )  # fmt: skip
        self.tracker = DerivedTracker(self.roots)
        self.pending: list[tuple[bytes, frozenset[int]]] = []
        self.persisted_clock = self.own_clock()
        #: write ids (assigned by the test) this replica has received or made, and
        #: those of them its store holds; ``tag`` labels the next local update.
        self.seen: set[int] = set()
        self.persisted_seen: set[int] = set()
        self.tag: int | None = None
        self.local_updates = 0
        self.online = True
        #: while applying a peer's frame: the write ids it carries
        self._remote: frozenset[int] | None = None
        self._subscription: Subscription | None = doc.observe(self._on_update)

    @property
    def client_id(self) -> int:
        return int(self.doc.client_id)

    def state_vector(self) -> dict[int, int]:
        return decode_state_vector(self.doc.get_state())

    def own_clock(self) -> int:
        return self.state_vector().get(self.client_id, 0)

    def _on_update(self, event: TransactionEvent) -> None:
        update = bytes(event.update)
        if update == b"\x00\x00":
            return
        if self._remote is not None:
            self.pending.append((update, self._remote))
            return
        tags = frozenset(() if self.tag is None else (self.tag,))
        self.seen |= tags
        self.local_updates += 1
        self.pending.append((update, tags))
        self.net.broadcast(self.index, Frame("update", update, tags))

    def receive_update(self, update: bytes, writes: frozenset[int]) -> None:
        """Apply a peer's update, holding it back while it would leave a clock gap.

        Why: yrs integrates an update that starts past the doc's clock for its client
        (leaving a gap, its state vector unchanged), and later edits inside types it
        created that way fire no observer event at all (pycrdt 0.14.13), so an
        observer-driven DerivedTracker goes stale. Yjs keeps such structs pending
        instead; this peer does the same, retrying held updates after every apply.
        ``Network.gap_guard = False`` turns this off to show the bug.
        """
        if self.net.gap_guard and self._has_gap(update):
            self.held.append((update, writes))
            self.net.counts["updates_held_for_gap"] += 1
            return
        self.apply_remote(update, writes)
        progress = True
        while progress and self.held:
            progress = False
            for item in list(self.held):
                if not self._has_gap(item[0]):
                    self.held.remove(item)
                    self.apply_remote(*item)
                    progress = True

    def _has_gap(self, update: bytes) -> bool:
        start = update_start(update)
        return start is not None and start[1] > self.state_vector().get(start[0], 0)

    def apply_remote(self, update: bytes, writes: frozenset[int] = frozenset()) -> None:
        self._remote = writes
        self.seen |= writes
        try:
            self.doc.apply_update(update)
        finally:
            self._remote = None

    def close(self) -> None:
        if self._subscription is not None:
            self.doc.unobserve(self._subscription)
            self._subscription = None
        self.tracker.close()


@dataclass
class CrashReport:
    """What a crash put at risk: the old client's clocks not yet persisted."""

    old_client: int
    persisted_clock: int
    #: the highest clock of the old client integrated by any other replica
    peer_clock: int


@dataclass
class Network:
    """N replicas in a full mesh with per-link queues, partitions and a store.

    All methods are deterministic: every choice comes from the caller (hypothesis).
    """

    store: StoreBridge
    replicas: list[Replica] = field(default_factory=list)
    queues: dict[tuple[int, int], list[Frame]] = field(default_factory=dict)
    group: list[int] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    #: hold back updates that would leave a clock gap (see Replica.receive_update)
    gap_guard: bool = True
    used_ids: set[int] = field(default_factory=set)

    @classmethod
    def create(cls, store: StoreBridge, n: int, seed: int = 0) -> Network:
        """``seed`` picks the client ids: Yjs breaks ties by client id, so a run is
        reproducible (and shrinkable) only if the ids are."""
        net = cls(store=store, rng=random.Random(seed))
        net.group = [0] * n
        net.queues = {(a, b): [] for a in range(n) for b in range(n) if a != b}
        for i in range(n):
            net.replicas.append(Replica(net, i, Doc(client_id=net.new_client_id()), 0))
        return net

    def new_client_id(self) -> int:
        while True:
            cid = self.rng.randrange(1, 2**32)
            if cid not in self.used_ids:
                self.used_ids.add(cid)
                return cid

    # -- topology ----------------------------------------------------------------
    @property
    def n(self) -> int:
        return len(self.replicas)

    def link_up(self, a: int, b: int) -> bool:
        ra, rb = self.replicas[a], self.replicas[b]
        return a != b and ra.online and rb.online and self.group[a] == self.group[b]

    def links(self) -> Iterator[tuple[int, int]]:
        return iter(self.queues)

    def busy_links(self) -> list[tuple[int, int]]:
        return [link for link, q in self.queues.items() if q]

    def _snapshot_up(self) -> set[tuple[int, int]]:
        return {(a, b) for a, b in self.queues if a < b and self.link_up(a, b)}

    def _apply_topology(self, before: set[tuple[int, int]]) -> None:
        """Disconnect links that went down and handshake links that came up."""
        after = self._snapshot_up()
        for a, b in sorted(before - after):
            self._disconnect(a, b)
        for a, b in sorted(after - before):
            self._connect(a, b)

    def _disconnect(self, a: int, b: int) -> None:
        # A closed connection loses whatever was in flight, both ways (as in Yjs tests).
        self.counts["frames_lost_on_disconnect"] += len(self.queues[a, b]) + len(self.queues[b, a])
        self.queues[a, b].clear()
        self.queues[b, a].clear()
        ra, rb = self.replicas[a], self.replicas[b]
        ra.awareness.remove_awareness_states([rb.client_id], "disconnect")
        rb.awareness.remove_awareness_states([ra.client_id], "disconnect")

    def _connect(self, a: int, b: int) -> None:
        for src, dst in ((a, b), (b, a)):
            replica = self.replicas[src]
            self.queues[src, dst].append(Frame("step1", replica.doc.get_state()))
            # Renew (clock + 1) before announcing: the peer may have removed this state
            # at the old clock, and y-protocols ignores a re-sent state at that clock.
            replica.awareness.set_local_state(replica.awareness.get_local_state())
            self.queues[src, dst].append(Frame("awareness", self._own_awareness(replica)))

    def partition(self, groups: list[int]) -> None:
        before = self._snapshot_up()
        self.group = list(groups)
        self._apply_topology(before)

    def set_online(self, index: int, online: bool) -> None:
        before = self._snapshot_up()
        self.replicas[index].online = online
        self._apply_topology(before)

    # -- traffic -------------------------------------------------------------------
    def broadcast(self, src: int, frame: Frame) -> None:
        for dst in range(self.n):
            if self.link_up(src, dst):
                self.queues[src, dst].append(frame)

    def _own_awareness(self, replica: Replica) -> bytes:
        return replica.awareness.encode_awareness_update([replica.client_id])

    def set_awareness(self, index: int, **fields: Any) -> None:
        replica = self.replicas[index]
        state = dict(replica.awareness.get_local_state() or {})
        state.update(fields)
        replica.awareness.set_local_state(state)
        self.broadcast(index, Frame("awareness", self._own_awareness(replica)))

    def deliver(self, link: tuple[int, int], count: int = 1) -> int:
        """Deliver up to ``count`` frames of ``link`` in FIFO order; returns how many."""
        src, dst = link
        queue = self.queues[link]
        done = 0
        while queue and done < count:
            frame = queue.pop(0)
            self._receive(src, dst, frame)
            done += 1
        self.counts["frames_delivered"] += done
        return done

    def _receive(self, src: int, dst: int, frame: Frame) -> None:
        replica = self.replicas[dst]
        if frame.kind == "step1":
            reply = replica.doc.get_update(frame.payload)
            self.queues[dst, src].append(Frame("step2", reply, frozenset(replica.seen)))
        elif frame.kind in ("update", "step2"):
            replica.receive_update(frame.payload, frame.writes)
        else:
            replica.awareness.apply_awareness_update(frame.payload, f"link-{src}")

    def reorder(self, link: tuple[int, int], i: int, j: int) -> bool:
        queue = self.queues[link]
        if len(queue) < 2:
            return False
        i, j = i % len(queue), j % len(queue)
        queue[i], queue[j] = queue[j], queue[i]
        self.counts["frames_reordered"] += 1
        return True

    def duplicate(self, link: tuple[int, int], i: int, at: int) -> bool:
        queue = self.queues[link]
        if not queue:
            return False
        frame = queue[i % len(queue)]
        queue.insert(at % (len(queue) + 1), frame)
        self.counts["frames_duplicated"] += 1
        return True

    def drop(self, link: tuple[int, int], i: int) -> bool:
        queue = self.queues[link]
        if not queue:
            return False
        del queue[i % len(queue)]
        self.counts["frames_dropped"] += 1
        return True

    def resync(self, a: int, b: int) -> bool:
        """A sync step 1 both ways and a fresh awareness announce on an up link.

        This is how drops are repaired: y-websocket's ``resyncInterval``, or the
        handshake of the next connection.
        """
        if not self.link_up(a, b):
            return False
        for src, dst in ((a, b), (b, a)):
            replica = self.replicas[src]
            self.queues[src, dst].append(Frame("step1", replica.doc.get_state()))
            self.queues[src, dst].append(Frame("awareness", self._own_awareness(replica)))
        self.counts["resyncs"] += 1
        return True

    # -- persistence ---------------------------------------------------------------
    def _key(self, index: int) -> str:
        return f"replica-{index}"

    def flush(self, index: int) -> int:
        replica = self.replicas[index]
        count = len(replica.pending)
        if count:
            self.store.append(self._key(index), [update for update, _ in replica.pending])
            for _, tags in replica.pending:
                replica.persisted_seen |= tags
            replica.pending = []
        replica.persisted_clock = replica.own_clock()
        self.counts["flushes"] += 1
        return count

    def compact(self, index: int) -> None:
        """Flush, then replace the replica's stored log by one snapshot of its doc."""
        self.flush(index)
        replica = self.replicas[index]
        _, _, last_seq = self.store.load(self._key(index))
        if last_seq:
            self.store.compact(self._key(index), replica.doc.get_update(), last_seq)
            self.counts["compactions"] += 1

    def restart(self, index: int, *, crash: bool, keep_client_id: bool = False) -> CrashReport:
        """Stop replica ``index`` and start it again from its store.

        A graceful stop flushes first; a crash loses ``pending``. The process goes
        away, so its connections drop (peers remove its awareness state) and it comes
        back online with a new awareness. A crashed replica always takes a new client
        id: reusing one whose later clocks peers may have seen would corrupt the doc.
        """
        old = self.replicas[index]
        if not crash:
            self.flush(index)
        report = CrashReport(
            old_client=old.client_id,
            persisted_clock=old.persisted_clock,
            peer_clock=max(
                (r.state_vector().get(old.client_id, 0) for r in self.replicas if r is not old),
                default=0,
            ),
        )
        was_online = old.online
        if was_online:
            self.set_online(index, False)
        lost = len(old.pending)
        old.close()
        snapshot, updates, _ = self.store.load(self._key(index))
        cid = old.client_id if keep_client_id and not crash else self.new_client_id()
        doc: Doc[Any] = Doc(client_id=cid)
        bind_roots(doc)
        if snapshot is not None:
            doc.apply_update(snapshot)
        for update in updates:
            doc.apply_update(update)
        replica = Replica(self, index, doc, old.incarnation + 1)
        replica.seen = set(old.persisted_seen)
        replica.persisted_seen = set(old.persisted_seen)
        if keep_client_id and not crash:
            # A client that keeps its id must keep its awareness clock too: peers hold
            # the old clock for this id and ignore any state at or below it (the
            # y-protocols rule), so a reset clock would hide the replica's presence.
            clock = old.awareness.meta[old.client_id]["clock"]
            replica.awareness.meta[replica.client_id]["clock"] = clock
            replica.awareness.set_local_state(replica.awareness.get_local_state())
        replica.online = False
        self.replicas[index] = replica
        if was_online:
            self.set_online(index, True)
        self.counts["crashes" if crash else "restarts"] += 1
        self.counts["updates_lost_in_crash"] += lost if crash else 0
        return report

    # -- full repair ---------------------------------------------------------------
    def heal_and_sync(self, max_rounds: int = 8) -> int:
        """Everyone online, no partition, then sync rounds until nothing moves.

        Returns the number of rounds used; raises AssertionError if the network has
        not quiesced with equal state vectors within ``max_rounds``.
        """
        before = self._snapshot_up()
        self.group = [0] * self.n
        for replica in self.replicas:
            replica.online = True
        self._apply_topology(before)
        for rounds in range(1, max_rounds + 1):
            self._drain()
            for a in range(self.n):
                for b in range(a + 1, self.n):
                    self.resync(a, b)
            self._drain()
            vectors = [r.state_vector() for r in self.replicas]
            if all(v == vectors[0] for v in vectors):
                return rounds
        raise AssertionError(f"state vectors still differ after {max_rounds} sync rounds")

    def _drain(self, limit: int = 100_000) -> None:
        """Deliver every queued frame, links in a fixed order, FIFO within each."""
        delivered = 0
        while delivered < limit:
            busy = self.busy_links()
            if not busy:
                return
            for link in busy:
                delivered += self.deliver(link, len(self.queues[link]))
        raise AssertionError(f"network did not quiesce after {limit} frames")

    def close(self) -> None:
        for replica in self.replicas:
            replica.close()
