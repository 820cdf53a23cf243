"""Fuzzing the real server: attack connections beside honest neighbours, with invariants.

One run (:func:`run_server_fuzz`) against a server already started in a subprocess
(tests/conftest.py ``ServerProcess``):

- ``attackers`` tasks connect to workshop A and send generator frames in bulk:
  batches of ``batch - 1`` survivable frames (valid but randomised) and one frame of
  any kind, then a barrier (a sync step 1 with the state vector the server sent on
  open; its step 2 answer comes after everything before it was handled). When the
  server closes the connection, the attacker reconnects.
- two pairs of honest neighbours, one pair in workshop A and one in workshop B, keep
  posting chat messages; each must see its partner's message within ``sync_bound``
  seconds, and every frame they receive must parse.
- ``/healthz`` is polled; the server's RSS is sampled from /proc.

Invariants (a :class:`FuzzReport` lists what broke): every close an attacker sees
uses a contract code (:data:`ALLOWED_CLOSES`), never 1006 or 1011; neighbours keep
syncing and are never closed; /healthz stays 200; after the run the stored document
(after a restart) equals the live one; RSS ends within ``rss_bound_mib`` of the
baseline. A batch that got a forbidden close is replayed frame by frame on fresh
connections to name the frame that does it.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import websockets
from pycrdt import Array, Doc, Map

from vmv_sync import schema
from vmv_sync.errors import VmvSyncError
from vmv_sync.protocol import (
    Awareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode_awareness_update,
    decode_state_vector,
    encode_sync_step1,
    encode_sync_step2,
    encode_sync_update,
    parse_message,
)
from vmv_sync.protocol.varint import Reader

from .frames import Frame, FrameGenerator

__all__ = ("ALLOWED_CLOSES", "FuzzConfig", "FuzzReport", "Neighbour", "run_server_fuzz", "fetch_doc", "same_document", "rss_mib", "frame_hex")

#: close codes an attacker may see: the contract's and the documented extensions
ALLOWED_CLOSES = frozenset({1000, 1001, 4400, 4401, 4403, 4408, 4409, 4413, 4429})


@dataclass
class FuzzConfig:
    frames: int = 100_000
    seed: int = 1
    attackers: int = 3
    batch: int = 48
    #: stop sending at this many seconds even if ``frames`` is not reached
    deadline: float = 150.0
    sync_bound: float = 15.0
    rss_bound_mib: float = 100.0
    #: attack URLs, tried in turn per connection (auth on: some carry bad tokens)
    attack_urls: list[str] = field(default_factory=list)
    #: whether valid corpus updates count as survivable (no: auth on, as a participant)
    survivable_updates: bool = True


@dataclass
class FuzzReport:
    frames_sent: int = 0
    bytes_sent: int = 0
    hostile_sent: int = 0
    batches_survived: int = 0
    connections: int = 0
    closes: Counter[int] = field(default_factory=Counter)
    #: close code and reason (digits blanked) -> count
    reasons: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    bad_closes: list[str] = field(default_factory=list)
    suspects: list[list[Frame]] = field(default_factory=list)
    reproducers: list[str] = field(default_factory=list)
    neighbour_rounds: int = 0
    neighbour_max_latency: float = 0.0
    neighbour_failures: list[str] = field(default_factory=list)
    health_failures: list[str] = field(default_factory=list)
    server_frames_in: int = 0
    rss_baseline: float = 0.0
    rss_peak: float = 0.0
    rss_end: float = 0.0
    elapsed: float = 0.0
    hung: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        out = list(self.bad_closes) + self.hung + self.neighbour_failures + self.health_failures
        out += [f"reproducer: {r}" for r in self.reproducers]
        return out

    def summary(self) -> str:
        rate = self.frames_sent / self.elapsed if self.elapsed else 0.0
        return (
            f"{self.frames_sent:,} frames ({self.bytes_sent / 2**20:.1f} MiB, {self.hostile_sent:,} of any kind) "
            f"in {self.elapsed:.1f} s ({rate:,.0f}/s) over {self.connections:,} connections; "
            f"server read {self.server_frames_in:,}; closes {dict(sorted(self.closes.items()))}; "
            f"neighbour rounds {self.neighbour_rounds} (max latency {self.neighbour_max_latency * 1000:.0f} ms); "
            f"RSS {self.rss_baseline:.0f} -> peak {self.rss_peak:.0f} -> {self.rss_end:.0f} MiB"
        )


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# -- honest neighbours -----------------------------------------------------------------------
class Neighbour:
    """An honest y-websocket peer that posts chat messages as ``author``."""

    def __init__(self, url: str, author: str) -> None:
        self.url = url
        self.author = author
        self.doc: Doc = Doc()
        self.ws: Any = None
        self.synced = anyio.Event()
        self.closed = anyio.Event()
        self.close_code: int | None = None
        self.violations: list[str] = []
        self._changed = anyio.Event()
        self._remote = False
        self._outbox: list[bytes] = []

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        sub = self.doc.observe(self._on_update)
        try:
            async with websockets.connect(self.url, max_size=None, compression=None, open_timeout=10) as ws:
                self.ws = ws
                await ws.send(encode_sync_step1(self.doc.get_state()))
                task_status.started()
                async for frame in ws:
                    await self._handle(frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.doc.unobserve(sub)
            if self.ws is not None:
                self.close_code = self.ws.close_code
            self.closed.set()
            self._changed.set()

    def _on_update(self, event: Any) -> None:
        if not self._remote:
            self._outbox.append(encode_sync_update(event.update))

    async def _handle(self, frame: bytes | str) -> None:
        if isinstance(frame, str):
            self.violations.append(f"text frame from the server: {frame[:80]!r}")
            return
        try:
            message = parse_message(frame)
            if isinstance(message, SyncStep1):
                await self.ws.send(encode_sync_step2(self.doc.get_update(message.state_vector)))
            elif isinstance(message, (SyncStep2, SyncUpdate)):
                self._remote = True
                try:
                    self.doc.apply_update(message.update)
                finally:
                    self._remote = False
                if isinstance(message, SyncStep2):
                    self.synced.set()
            elif isinstance(message, Awareness):
                decode_awareness_update(message.update)
        except VmvSyncError as exc:
            self.violations.append(f"unparsable frame from the server ({exc}): {frame[:120].hex()}")
        except Exception as exc:  # pycrdt refusing what the server relayed
            self.violations.append(f"relayed frame pycrdt refuses ({exc!r}): {frame[:120].hex()}")
        self._changed.set()
        self._changed = anyio.Event()

    async def post(self, message_id: str) -> None:
        schema.post_message(self.doc, self.author, "hi", message_id=message_id, stage="vision", now=1.0)
        outbox, self._outbox = self._outbox, []
        for frame in outbox:
            await self.ws.send(frame)

    def has_message(self, message_id: str) -> bool:
        messages = self.doc.get("messages", type=Array)
        for i in range(len(messages) - 1, -1, -1):
            try:
                item = messages[i]
            except Exception:
                continue
            if isinstance(item, Map) and item.get("id") == message_id:
                return True
        return False

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        with anyio.fail_after(timeout):
            while not predicate():
                if self.closed.is_set():
                    raise ConnectionError(f"neighbour {self.author} was closed with {self.close_code}")
                await self._changed.wait()


async def keep_syncing(pair: tuple[Neighbour, Neighbour], report: FuzzReport, stop: anyio.Event, bound: float, tag: str) -> None:
    """Both neighbours post in turn; each must see the other's message within ``bound``."""
    a, b = pair
    i = 0
    while not stop.is_set():
        for writer, reader in ((a, b), (b, a)):
            mid = f"{tag}-{writer.author}-{i}"
            started = time.monotonic()
            try:
                await writer.post(mid)
                await reader.wait_for(lambda mid=mid, reader=reader: reader.has_message(mid), bound)
            except (TimeoutError, ConnectionError, websockets.ConnectionClosed) as exc:
                report.neighbour_failures.append(f"{tag}: {reader.author} did not get {mid} within {bound} s: {exc!r}")
                stop.set()
                return
            report.neighbour_max_latency = max(report.neighbour_max_latency, time.monotonic() - started)
        report.neighbour_rounds += 1
        i += 1
        with anyio.move_on_after(0.05):  # pace: a round every 50 ms at most
            await stop.wait()


def frame_hex(frame: Frame, limit: int = 300) -> str:
    data = frame.data.encode("utf-8", "surrogatepass") if isinstance(frame.data, str) else frame.data
    text = data[:limit].hex()
    return text + (f"... ({len(data)} bytes)" if len(data) > limit else "") + (" (text frame)" if isinstance(frame.data, str) else "")


# -- attackers -------------------------------------------------------------------------------
class _Conn:
    """An attack connection whose reader keeps draining (a peer that stops reading would
    see the server give up its close handshake: 1006 for the peer's own slowness)."""

    def __init__(self, ws: Any, sv: bytes) -> None:
        self.ws = ws
        self.sv = sv
        self.pending = 0  # sync step 1s sent and not answered yet
        self.answered = anyio.Event()

    async def read(self) -> None:
        try:
            async for frame in self.ws:
                if isinstance(frame, bytes) and frame[:2] == b"\x00\x01":
                    self.pending -= 1
                    if self.pending <= 0:
                        self.answered.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.answered.set()

    async def send_batch(self, frames: list[Frame], report: FuzzReport | None, timeout: float) -> bool:
        """Send ``frames`` and a barrier; True once the server answered every step 1 in them."""
        self.answered = anyio.Event()
        for frame in frames:
            if isinstance(frame.data, bytes) and frame.data[:2] == b"\x00\x00":
                self.pending += 1
            await self.ws.send(frame.data)
            if report is not None:
                report.frames_sent += 1
                report.bytes_sent += frame.size
                report.kinds[frame.kind] += 1
        self.pending += 1
        await self.ws.send(encode_sync_step1(self.sv))
        with anyio.fail_after(timeout):
            await self.answered.wait()
        return self.ws.close_code is None


async def _open(url: str) -> _Conn:
    ws = await websockets.connect(url, max_size=None, compression=None, open_timeout=10, close_timeout=5)
    sv = b"\x00"
    try:
        with anyio.fail_after(10):
            first = await ws.recv()
        if isinstance(first, bytes) and first[:2] == b"\x00\x00":
            message = parse_message(first)
            assert isinstance(message, SyncStep1)
            sv = message.state_vector
    except websockets.ConnectionClosed:
        pass
    return _Conn(ws, sv)


async def attack(index: int, cfg: FuzzConfig, gen: FrameGenerator, report: FuzzReport, stop: anyio.Event) -> None:
    started = time.monotonic()
    n = 0
    while not stop.is_set() and report.frames_sent < cfg.frames and time.monotonic() - started < cfg.deadline:
        url = cfg.attack_urls[(index + n) % len(cfg.attack_urls)]
        n += 1
        report.connections += 1
        batch: list[Frame] = []
        try:
            conn = await _open(url)
        except (OSError, websockets.InvalidHandshake, TimeoutError) as exc:
            report.bad_closes.append(f"attacker {index} could not connect: {exc!r}")
            stop.set()
            return
        ws = conn.ws
        async with anyio.create_task_group() as tg:
            tg.start_soon(conn.read)
            try:
                while not stop.is_set() and report.frames_sent < cfg.frames and time.monotonic() - started < cfg.deadline:
                    batch = [gen.survivable() for _ in range(cfg.batch - 1)] + [gen.frame()]
                    report.hostile_sent += 1
                    if not await conn.send_batch(batch, report, cfg.sync_bound + 15):
                        break
                    report.batches_survived += 1
                else:
                    await ws.close()
            except websockets.ConnectionClosed:
                pass
            except TimeoutError:
                report.hung.append(
                    f"attacker {index}: the server did not answer in time after {[f.kind for f in batch[-3:]]}; "
                    f"last frame {frame_hex(batch[-1]) if batch else ''}"
                )
                stop.set()
            finally:
                with anyio.move_on_after(10):
                    await ws.wait_closed()
                tg.cancel_scope.cancel()
        code = ws.close_code if ws.close_code is not None else 1006
        report.closes[code] += 1
        report.reasons[f"{code} {re.sub(r'[0-9]+', 'N', ws.close_reason or '')[:70]}"] += 1
        if code not in ALLOWED_CLOSES:
            last = batch[-1] if batch else Frame("-", b"")
            report.bad_closes.append(
                f"close {code} ({ws.close_reason!r}) after a batch ending with {last.kind}: {frame_hex(last)}"
            )
            if len(report.suspects) < 3:
                report.suspects.append(list(batch))
            if code in (1006, 1011):
                stop.set()  # the server may be down: stop and find the frame


async def replay(url: str, frames: list[Frame], report: FuzzReport, limit: int = 60) -> None:
    """Send each frame of a suspect batch alone on a fresh connection; name the ones that fail."""
    for frame in list(reversed(frames))[:limit]:  # the batch's last frame (any kind) first
        try:
            conn = await _open(url)
        except (OSError, websockets.InvalidHandshake, TimeoutError) as exc:
            report.reproducers.append(f"the server is unreachable after the batch ({exc!r})")
            return
        async with anyio.create_task_group() as tg:
            tg.start_soon(conn.read)
            try:
                if await conn.send_batch([frame], None, 15):
                    await conn.ws.close()
            except (websockets.ConnectionClosed, TimeoutError):
                pass
            with anyio.move_on_after(10):
                await conn.ws.wait_closed()
            tg.cancel_scope.cancel()
        code = conn.ws.close_code if conn.ws.close_code is not None else 1006
        if code not in ALLOWED_CLOSES:
            report.reproducers.append(f"{frame.kind} -> close {code} ({conn.ws.close_reason!r}): {frame_hex(frame)}")
            return


# -- documents -------------------------------------------------------------------------------
async def fetch_doc(url: str) -> bytes:
    """The server's whole document for a workshop, as a y-websocket peer syncs it."""
    async with websockets.connect(url, max_size=None, compression=None, open_timeout=10) as ws:
        await ws.send(encode_sync_step1(b"\x00"))
        with anyio.fail_after(30):
            async for frame in ws:
                if isinstance(frame, bytes) and frame[:2] == b"\x00\x01":
                    message = parse_message(frame)
                    assert isinstance(message, SyncStep2)
                    return message.update
    raise ConnectionError("closed before the sync step 2")


def _delete_set(update: bytes) -> list[tuple[int, int, int]]:
    doc: Doc = Doc()
    doc.apply_update(update)
    ds = doc.get_update(doc.get_state())  # no structs: 00, then the whole delete set
    reader = Reader(ds)
    assert reader.read_var_uint() == 0
    out = []
    for _ in range(reader.read_var_uint()):
        client = reader.read_var_uint()
        for _ in range(reader.read_var_uint()):
            out.append((client, reader.read_var_uint(), reader.read_var_uint()))
    return sorted(out)


def same_document(a: bytes, b: bytes) -> str | None:
    """None when the two updates hold the same document, else what differs."""
    da: Doc = Doc()
    db: Doc = Doc()
    da.apply_update(a)
    db.apply_update(b)
    sa, sb = decode_state_vector(da.get_state()), decode_state_vector(db.get_state())
    if sa != sb:
        diff = {k: (sa.get(k), sb.get(k)) for k in set(sa) | set(sb) if sa.get(k) != sb.get(k)}
        return f"state vectors differ: {dict(list(diff.items())[:5])}"
    if _delete_set(a) != _delete_set(b):
        return "delete sets differ"
    for name, kind in schema.ROOTS.items():
        if _comparable(da.get(name, type=kind).to_py()) != _comparable(db.get(name, type=kind).to_py()):
            return f"root {name} differs"
    return None


def _comparable(value: Any) -> Any:
    """``to_py`` output with sub-documents (compared by identity) as their guid."""
    if isinstance(value, Doc):
        return ("doc", value.guid)
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, bytearray):
        return bytes(value)
    return value


# -- the run ---------------------------------------------------------------------------------
async def run_server_fuzz(
    server: Any,
    cfg: FuzzConfig,
    pairs: list[tuple[Neighbour, Neighbour]],
    *,
    progress: Callable[[FuzzReport], Awaitable[None]] | None = None,
) -> FuzzReport:
    """Attack ``server`` while ``pairs`` keep syncing; returns the report (not asserted)."""
    report = FuzzReport()
    pid = server.proc.pid
    stop = anyio.Event()
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http, anyio.create_task_group() as tg:
        for pair in pairs:
            for neighbour in pair:
                await tg.start(neighbour.run)
            for neighbour in pair:
                with anyio.fail_after(20):
                    await neighbour.synced.wait()
        report.rss_baseline = report.rss_peak = rss_mib(pid)

        async def watch() -> None:
            while not stop.is_set():
                try:
                    r = await http.get("/healthz")
                    if r.status_code != 200:
                        report.health_failures.append(f"/healthz {r.status_code}: {r.text[:200]}")
                except httpx.HTTPError as exc:
                    report.health_failures.append(f"/healthz failed: {exc!r}")
                    stop.set()
                report.rss_peak = max(report.rss_peak, rss_mib(pid))
                if progress is not None:
                    report.elapsed = time.monotonic() - started
                    await progress(report)
                with anyio.move_on_after(0.5):
                    await stop.wait()

        syncers = anyio.create_task_group()
        async with syncers:
            for k, pair in enumerate(pairs):
                syncers.start_soon(keep_syncing, pair, report, stop, cfg.sync_bound, f"pair{k}")
            syncers.start_soon(watch)
            async with anyio.create_task_group() as attackers:
                for i in range(cfg.attackers):
                    gen = FrameGenerator(cfg.seed * 1000 + i, survivable_updates=cfg.survivable_updates)
                    attackers.start_soon(attack, i, cfg, gen, report, stop)
            report.elapsed = time.monotonic() - started
            stop.set()
        for suspect in report.suspects:
            await replay(cfg.attack_urls[0], suspect, report)
        for pair in pairs:
            for neighbour in pair:
                report.neighbour_failures.extend(f"{neighbour.author}: {v}" for v in neighbour.violations[:5])
                if neighbour.closed.is_set():
                    report.neighbour_failures.append(f"{neighbour.author} was closed with {neighbour.close_code}")
        try:
            text = (await http.get("/metrics")).text
            report.server_frames_in = int(
                sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("vmv_messages_in_total{"))
            )
        except (httpx.HTTPError, ValueError, IndexError):
            pass
        for pair in pairs:
            for neighbour in pair:
                if neighbour.ws is not None:
                    await neighbour.ws.close()
        tg.cancel_scope.cancel()
    return report
