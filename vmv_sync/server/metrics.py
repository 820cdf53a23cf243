"""Prometheus metrics of one server app, served as text by ``GET /metrics``.

Each app owns one :class:`Metrics` with its own ``CollectorRegistry`` (never the
process-global one), so several apps in one test process never collide. The
instrumentation is deliberately at the edges, where it costs one line elsewhere:

- frames in and out are counted at the socket (``received`` in the read loop,
  ``sent_many`` by each connection once it has written them), classified by their first bytes
  without parsing them a second time, in plain integers exported at scrape time;
- commit latency and committed updates where a room's pipeline commits
  (``Room._commit``, :meth:`Metrics.committed`), compactions where its compactor runs
  them (:meth:`Metrics.compacted`): the store is never wrapped;
- gauges (connections, rooms loaded, store transactions) are read from the live
  objects at scrape time, so they can never drift from the truth.

Per-second rates are left to PromQL (``rate(vmv_messages_in_total[1m])``): counters
are the only thing that survives scrape gaps. See docs/operations.md for the list.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..errors import CloseError, SlowConsumer
from ..protocol import MSG_AWARENESS, MSG_QUERY_AWARENESS, MSG_SAVED, MSG_SYNC, SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE

__all__ = ("Metrics", "measured", "frame_kind", "FRAME_KINDS")


#: label values of the ``type`` label of the message counters
FRAME_KINDS: tuple[str, ...] = (
    "sync_step1",
    "sync_step2",
    "update",
    "awareness",
    "query_awareness",
    "saved",
    "other",
)
_SYNC_KINDS = {SYNC_STEP1: "sync_step1", SYNC_STEP2: "sync_step2", SYNC_UPDATE: "update"}
_TOP_KINDS = {MSG_AWARENESS: "awareness", MSG_QUERY_AWARENESS: "query_awareness", MSG_SAVED: "saved"}

#: commit latencies from a fast SSD (sub-ms) to a struggling disk (seconds)
_COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def frame_kind(frame: bytes) -> str:
    """The y-websocket message kind of ``frame`` from its first bytes (no full parse).

    Message types and sync sub-types below 128 are one-byte varints, which covers
    every type the server speaks; anything else is ``"other"``.

    Example:
        >>> frame_kind(b"\\x00\\x02\\x00")
        'update'
    """
    if not frame:
        return "other"
    top = frame[0]
    if top == MSG_SYNC:
        return _SYNC_KINDS.get(frame[1], "other") if len(frame) > 1 else "other"
    return _TOP_KINDS.get(top, "other")


class Metrics:
    """Every metric of one app, in its own registry.

    Example:
        >>> metrics = Metrics()
        >>> metrics.received(b"\\x01\\x00")
        >>> b"vmv_messages_in_total" in metrics.render()
        True
    """

    def __init__(self) -> None:
        # The ``*_created`` timestamp series only double the exposition; the switch is
        # process-wide in prometheus-client, and this process only serves our metrics.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # Frames are counted in plain integers (a labelled Counter takes a lock per
        # call, and this runs for every frame in and out) and exported at scrape time.
        self._in_counts = dict.fromkeys(FRAME_KINDS, 0)
        self._out_counts = dict.fromkeys(FRAME_KINDS, 0)
        self._bytes_in = 0
        self._bytes_out = 0
        self.connections_opened = Counter(
            "vmv_connections_opened", "WebSocket connections admitted to a room.", registry=r
        )
        self.connections_closed = Counter(
            "vmv_connections_closed", "WebSocket connections ended, by close code.", ["code"], registry=r
        )
        self.connections_refused = Counter(
            "vmv_connections_refused",
            "Connections the server refused or cut for breaking a rule "
            "(4400, 4401, 4403, 4413, 4429), by close code.",
            ["code"],
            registry=r,
        )
        self.slow_clients = Counter(
            "vmv_slow_clients_dropped", "Connections closed because their send queue overflowed (4409).", registry=r
        )
        self.commit_seconds = Histogram(
            "vmv_store_commit_seconds",
            "Time from a room's append call to its durable commit (queueing for the group commit included).",
            buckets=_COMMIT_BUCKETS,
            registry=r,
        )
        self.updates_committed = Counter(
            "vmv_updates_committed", "Document updates durably committed to the store.", registry=r
        )
        self.store_errors = Counter(
            "vmv_store_errors", "Store calls that failed, by operation.", ["op"], registry=r
        )
        for op in ("append", "compact"):
            self.store_errors.labels(op)
        self.compactions = Counter("vmv_compactions", "Compactions of a workshop's update log.", registry=r)
        self.compaction_seconds = Histogram(
            "vmv_compaction_seconds", "Duration of one compaction.", registry=r
        )
        self.rooms_loaded = Gauge("vmv_rooms_loaded", "Workshops loaded in memory.", registry=r)
        self.connections = Gauge("vmv_connections", "Open WebSocket connections.", registry=r)
        self._store: Any = None
        r.register(_StoreCollector(self))
        r.register(_TrafficCollector(self))

    # -- exposition ---------------------------------------------------------------------
    def render(self, *, rooms: int = 0, connections: int = 0, store: object | None = None) -> bytes:
        """The Prometheus text exposition; gauges are set from the live values given.

        ``store``'s own counters (``SQLiteStore.commits``, ``max_batch``) are read too.
        """
        self.rooms_loaded.set(rooms)
        self.connections.set(connections)
        self._store = store
        return generate_latest(self.registry)

    # -- traffic -----------------------------------------------------------------------
    def received(self, frame: bytes | str | None) -> None:
        """Count one frame read from a socket, before it is checked or parsed.

        Text frames (not part of the protocol) count as ``other``.
        """
        if isinstance(frame, (bytes, bytearray)):
            self._in_counts[frame_kind(frame)] += 1
            self._bytes_in += len(frame)
        else:
            self._in_counts["other"] += 1
            self._bytes_in += len((frame or "").encode())

    def sent_many(self, frames: Sequence[bytes]) -> None:
        """Count frames handed to a socket (a connection's writer calls this per run)."""
        counts = self._out_counts
        for frame in frames:
            counts[frame_kind(frame)] += 1
            self._bytes_out += len(frame)

    # -- connections ----------------------------------------------------------------------
    def opened(self) -> None:
        """A connection was admitted to a room."""
        self.connections_opened.inc()

    def closed(self, error: CloseError | None) -> None:
        """A connection ended; ``error`` is why the server closed it (None: the peer left)."""
        code = error.code if error is not None else 1000
        self.connections_closed.labels(str(code)).inc()
        if error is not None and error.refuses_input:
            self.connections_refused.labels(str(code)).inc()
        if isinstance(error, SlowConsumer):
            self.slow_clients.inc()

    def refused(self, code: int) -> None:
        """A connection refused before it joined a room (e.g. a bad token)."""
        self.connections_closed.labels(str(code)).inc()
        self.connections_refused.labels(str(code)).inc()

    # -- the store -----------------------------------------------------------------------
    def committed(self, seconds: float, updates: int) -> None:
        """A room's grouped commit of ``updates`` updates took ``seconds`` (queueing included)."""
        self.commit_seconds.observe(seconds)
        self.updates_committed.inc(updates)

    def compacted(self, seconds: float) -> None:
        """A compaction of a workshop's log took ``seconds``."""
        self.compaction_seconds.observe(seconds)
        self.compactions.inc()


@contextmanager
def measured(metrics: Metrics | None, op: Literal["append", "compact"], updates: int = 0) -> Iterator[None]:
    """Time the store call made in the block (a commit of ``updates``, or a compaction).

    A failure counts in ``vmv_store_errors`` by ``op`` and is re-raised; ``None``
    (a room made without metrics, as in tests) measures nothing.
    """
    if metrics is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    except Exception:
        metrics.store_errors.labels(op).inc()
        raise
    if op == "append":
        metrics.committed(time.perf_counter() - started, updates)
    else:
        metrics.compacted(time.perf_counter() - started)


class _StoreCollector(Collector):
    """The store's own counters (``SQLiteStore.commits``), read at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        store = self._metrics._store
        commits = getattr(store, "commits", None)
        if isinstance(commits, int):
            family = CounterMetricFamily(
                "vmv_store_transactions",
                "Write transactions of grouped appends (fewer than appends when grouped).",
            )
            family.add_metric([], commits)
            yield family
        max_batch = getattr(store, "max_batch", None)
        if isinstance(max_batch, int):
            gauge = GaugeMetricFamily(
                "vmv_store_max_batch", "Most append calls committed in one transaction so far."
            )
            gauge.add_metric([], max_batch)
            yield gauge

    def describe(self) -> Iterator[Metric]:
        return iter(())


class _TrafficCollector(Collector):
    """Frames and bytes in and out, from the plain counters of :class:`Metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        m = self._metrics
        for name, doc, counts in (
            ("vmv_messages_in", "WebSocket messages received, by y-websocket type.", m._in_counts),
            ("vmv_messages_out", "WebSocket messages sent, by y-websocket type.", m._out_counts),
        ):
            family = CounterMetricFamily(name, doc, labels=["type"])
            for kind, value in counts.items():
                family.add_metric([kind], value)
            yield family
        for name, doc, value in (
            ("vmv_bytes_in", "Bytes of WebSocket messages received.", m._bytes_in),
            ("vmv_bytes_out", "Bytes of WebSocket messages sent.", m._bytes_out),
        ):
            family = CounterMetricFamily(name, doc)
            family.add_metric([], value)
            yield family

    def describe(self) -> Iterator[Metric]:
        return iter(())
