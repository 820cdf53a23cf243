"""One load-generator process: many workshop participants over raw y-websocket.

Started by :mod:`bench.fanout` as ``python -m bench.loadgen``; it reads its plan as
one JSON line on stdin, connects every client, prints ``{"ready": ...}``, reads the
timeline (absolute CLOCK_MONOTONIC seconds, shared by every process of the machine),
runs it, and prints its tallies as one JSON line.

Each participant sends, with a random phase:
- a chat message every ``chat_interval`` s: a real Yjs update made by its own small
  pycrdt Doc (a Map appended to ``messages``) whose ``text`` embeds
  ``bench|<client>|<seq>|<send time ns>|``; receivers find that marker in the update
  bytes with a regex, so they never apply updates they only time;
- a value toggle every ``toggle_interval`` s (its ``selections`` entry);
- an awareness (cursor) update ``cursor_hz`` times a second.

Only sync updates (0/2) count as deliveries; a client's own echo is ignored.

A client whose plan entry says ``"sink": true`` sends the same load but only drains
what it receives (:class:`SinkParticipant`: a raw socket that skips frames by their
headers, answers pings and the server's sync step 1, and parses nothing else). With
most of a large room's clients as sinks, the generator's per-frame cost stops setting
the ceiling; latencies and deliveries come from the other (measuring) clients.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import re
import select
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import uvloop
import websockets
from pycrdt import Array, Doc, Map

from vmv_sync.protocol import (
    encode_awareness,
    encode_awareness_update,
    encode_sync_step1,
    encode_sync_step2,
    encode_sync_update,
)

__all__ = ("main",)

MARKER = re.compile(rb"bench\|(\d+)\|(\d+)\|(\d+)\|")
_EMPTY_SV = b"\x00"
_EMPTY_UPDATE = b"\x00\x00"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def now_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def _cpu_self() -> float:
    with open("/proc/self/stat", "rb") as fh:
        stat = fh.read()
    fields = stat[stat.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


@dataclass
class Tally:
    """What this process saw; window bounds in ns of CLOCK_MONOTONIC."""

    ms: int = 0
    me: int = 0
    stop: int = 2**62
    sent: list[list[int]] = field(default_factory=list)  # [gid, seq, room] sent in the window
    receipts: Counter[tuple[int, int]] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    doc_msgs: int = 0
    awareness_msgs: int = 0
    sent_msgs: int = 0
    #: frames sent (chat, toggles, cursors) whose due time fell in the window: the
    #: load actually offered, which a late generator loop would make smaller than planned
    sent_in_window: int = 0
    closed: int = 0
    close_codes: Counter[int] = field(default_factory=Counter)


class Participant:
    def __init__(self, gid: int, room: int, url: str, plan: dict[str, Any], tally: Tally) -> None:
        self.gid = gid
        self.room = room
        self.url = url
        self.plan = plan
        self.tally = tally
        self.doc = Doc()
        self.messages = self.doc.get("messages", type=Array)
        self.selections = self.doc.get("selections", type=Map)
        self._pending: list[bytes] = []
        self.doc.observe(lambda event: self._pending.append(event.update))
        self.seq = 0
        self.clock = 0
        self.ws: Any = None
        self.synced = asyncio.Event()
        self.pid = f"p{gid}"
        self.values = ["Trust", "Courage", "Care", "Openness", "Craft"]

    async def connect(self) -> None:
        compression = "deflate" if self.plan.get("deflate", True) else None
        self.ws = await websockets.connect(
            self.url, max_size=None, open_timeout=60, ping_interval=None, compression=compression, close_timeout=1
        )
        await self.ws.send(encode_sync_step1(_EMPTY_SV))

    def _take_update(self) -> bytes:
        if len(self._pending) != 1:
            raise RuntimeError(f"expected one update per transaction, got {len(self._pending)}")
        update = self._pending.pop()
        return update

    def chat_frame(self) -> bytes:
        self.seq += 1
        sent = now_ns()
        text = f"bench|{self.gid}|{self.seq}|{sent}| hello from {self.pid}"
        self.messages.append(
            Map({"id": f"{self.gid}-{self.seq}", "author": self.pid, "text": text, "sent_at": time.time(), "stage": "values-select"})
        )
        if self.tally.ms <= sent < self.tally.me:
            self.tally.sent.append([self.gid, self.seq, self.room])
        return encode_sync_update(self._take_update())

    def toggle_frame(self) -> bytes:
        with self.doc.transaction():
            mine = self.selections.get(self.pid)
            if mine is None:
                self.selections[self.pid] = Map({random.choice(self.values): time.time()})
            else:
                name = random.choice(self.values)
                if name in mine:
                    del mine[name]
                else:
                    mine[name] = time.time()
        return encode_sync_update(self._take_update())

    def cursor_frame(self) -> bytes:
        self.clock += 1
        state = {
            "user": {"id": self.pid, "name": f"Participant {self.gid}", "color": "#3366aa", "role": "participant"},
            "stage": "values-select",
            "online_at": 0.0,
            "typing": False,
            "typing_at": None,
            "cursor": {"x": random.random(), "y": random.random(), "stage": "values-select"},
        }
        return encode_awareness(encode_awareness_update([(self.doc.client_id, self.clock, json.dumps(state))]))

    async def reader(self) -> None:
        tally = self.tally
        gid = self.gid
        try:
            async for frame in self.ws:
                t = now_ns()
                kind = frame[0]
                in_window = tally.ms <= t < tally.me
                if kind == 0:
                    if in_window:
                        tally.doc_msgs += 1
                    sub = frame[1]
                    if sub == 0:  # the server's step 1: answer with our (empty) state
                        await self.ws.send(encode_sync_step2(_EMPTY_UPDATE))
                    elif sub == 1:
                        self.synced.set()
                    elif sub == 2 and b"bench|" in frame:
                        for m in MARKER.finditer(frame):
                            sender = int(m.group(1))
                            if sender == gid:
                                continue
                            sent = int(m.group(3))
                            if tally.ms <= sent < tally.me:
                                tally.receipts[(sender, int(m.group(2)))] += 1
                                tally.latencies_ms.append((t - sent) / 1e6)
                elif kind == 1:
                    if in_window:
                        tally.awareness_msgs += 1
                if t >= tally.stop:
                    return
        except websockets.ConnectionClosed as exc:
            tally.closed += 1
            if exc.rcvd is not None:
                tally.close_codes[exc.rcvd.code] += 1

    async def send(self, frame: bytes) -> None:
        await self.ws.send(frame)

    async def sender(self, t0: int, send_stop: int) -> None:
        plan = self.plan
        events = [
            [t0 + int(random.random() * plan["chat_interval"] * 1e9), int(plan["chat_interval"] * 1e9), self.chat_frame],
            [t0 + int(random.random() * plan["toggle_interval"] * 1e9), int(plan["toggle_interval"] * 1e9), self.toggle_frame],
        ]
        if plan["cursor_hz"] > 0:
            period = int(1e9 / plan["cursor_hz"])
            events.append([t0 + int(random.random() * period), period, self.cursor_frame])
        while True:
            ev = min(events, key=lambda e: e[0])
            delay = (ev[0] - now_ns()) / 1e9
            if ev[0] >= send_stop:
                return
            if delay > 0:
                await asyncio.sleep(delay)
            ev[0] += ev[1]
            try:
                await self.send(ev[2]())
            except websockets.ConnectionClosed:
                return
            self.tally.sent_msgs += 1
            if self.tally.ms <= ev[0] - ev[1] < self.tally.me:
                self.tally.sent_in_window += 1


class _SinkProtocol(asyncio.Protocol):
    """Drains a WebSocket without parsing its messages (see :class:`SinkParticipant`)."""

    def __init__(self, owner: SinkParticipant) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.head_done = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self._upgraded = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's TCPTransport

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self._upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            del buf[: end + 4]
            if b" 101 " not in status:
                self.head_done.set_exception(ConnectionError(status.decode(errors="replace")))
                return
            self._upgraded = True
            self.head_done.set_result(None)
        at, size = 0, len(buf)
        owner = self.owner
        while size - at >= 2:
            b0, n = buf[at], buf[at + 1] & 0x7F
            start = at + 2
            if n == 126:
                if size - at < 4:
                    break
                n, start = (buf[at + 2] << 8) | buf[at + 3], at + 4
            elif n == 127:
                if size - at < 10:
                    break
                n, start = int.from_bytes(buf[at + 2 : at + 10], "big"), at + 10
            if size - start < n:
                break
            opcode = b0 & 0x0F
            if opcode == 2 and not owner.synced.is_set() and n >= 2 and buf[start] == 0:
                sub = buf[start + 1]
                if sub == 0:
                    owner.send_frame(encode_sync_step2(_EMPTY_UPDATE))
                elif sub == 1:
                    owner.synced.set()
            elif opcode == 9:  # ping: pong with the same payload
                owner.send_raw(0x8A, bytes(buf[start : start + n]))
            elif opcode == 8 and not self.closed.done():
                code = int.from_bytes(buf[start : start + 2], "big") if n >= 2 else 1005
                self.closed.set_result(code)
            at = start + n
        if at:
            del buf[:at]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.head_done.done():
            self.head_done.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(1006)


class SinkParticipant(Participant):
    """A participant that sends its full load but only drains what it receives.

    Outgoing frames are masked with the all-zero key (legal, RFC 6455 5.3: the server
    unmasks a no-op), so sending costs a header and a write.
    """

    proto: _SinkProtocol

    async def connect(self) -> None:
        parts = urlsplit(self.url)
        loop = asyncio.get_running_loop()
        _, self.proto = await loop.create_connection(lambda: _SinkProtocol(self), parts.hostname, parts.port)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        key = base64.b64encode(os.urandom(16)).decode()
        head = (f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")  # fmt: skip
        assert self.proto.transport is not None
        self.proto.transport.write(head.encode())
        await asyncio.wait_for(self.proto.head_done, 60)
        self.ws = self.proto
        self.send_frame(encode_sync_step1(_EMPTY_SV))

    def send_raw(self, b0: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            head = bytes((b0, 0x80 | n))
        elif n < 65536:
            head = bytes((b0, 0x80 | 126)) + n.to_bytes(2, "big")
        else:
            head = bytes((b0, 0x80 | 127)) + n.to_bytes(8, "big")
        transport = self.proto.transport
        if transport is not None and not transport.is_closing():
            transport.write(head + b"\x00\x00\x00\x00" + payload)

    def send_frame(self, frame: bytes) -> None:
        self.send_raw(0x82, frame)

    async def reader(self) -> None:
        code = await self.proto.closed
        if code is not None:
            self.tally.closed += 1
            self.tally.close_codes[code] += 1

    async def send(self, frame: bytes) -> None:
        if self.proto.closed.done():
            raise websockets.ConnectionClosed(None, None)
        self.send_frame(frame)


async def _run(plan: dict[str, Any]) -> dict[str, Any]:
    tally = Tally()
    people = [(SinkParticipant if c.get("sink") else Participant)(c["gid"], c["room"], c["url"], plan, tally)
              for c in plan["clients"]]  # fmt: skip
    limit = asyncio.Semaphore(plan.get("connect_concurrency", 32))
    failed: list[str] = []

    async def connect(p: Participant) -> None:
        async with limit:
            try:
                await p.connect()
            except Exception as exc:  # a refused or timed-out connection is a figure, not a crash
                failed.append(repr(exc))
                p.ws = None

    await asyncio.gather(*(connect(p) for p in people))
    live = [p for p in people if p.ws is not None]
    readers = [asyncio.create_task(p.reader()) for p in live]
    synced = 0
    try:
        await asyncio.wait_for(asyncio.gather(*(p.synced.wait() for p in live)), timeout=plan.get("sync_timeout", 30))
        synced = len(live)
    except TimeoutError:
        synced = sum(p.synced.is_set() for p in live)
    print(json.dumps({"ready": len(live), "synced": synced, "failed": failed[:5], "n_failed": len(failed)}), flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    timeline = json.loads(line)
    tally.ms, tally.me = timeline["measure_start"], timeline["measure_end"]
    stop = tally.stop = timeline["stop"]
    senders = [asyncio.create_task(p.sender(timeline["t0"], tally.me)) for p in live]
    await asyncio.sleep(max(0.0, (tally.ms - now_ns()) / 1e9))
    cpu_start = _cpu_self()
    lags: list[float] = []

    async def sample_lag() -> None:
        """How late a 10 ms timer fires on this generator's loop: when this grows, the
        figures are bounded by the load generator, not by the servers."""
        while now_ns() < tally.me:
            asked = now_ns()
            await asyncio.sleep(0.01)
            lags.append(max(0.0, (now_ns() - asked) / 1e6 - 10.0))

    lag_task = asyncio.create_task(sample_lag())
    await asyncio.sleep(max(0.0, (tally.me - now_ns()) / 1e9))
    cpu_end = _cpu_self()
    await lag_task
    await asyncio.gather(*senders, return_exceptions=True)
    # Readers return at their first frame after ``stop``; a quiet socket may never
    # see one, so cancel what is left once the drain period is over.
    await asyncio.sleep(max(0.0, (stop - now_ns()) / 1e9))
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    return {
        "clients": len(people),
        "connected": len(live),
        "n_failed": len(failed),
        "sent": tally.sent,
        "receipts": [[g, s, n] for (g, s), n in tally.receipts.items()],
        "latencies_ms": tally.latencies_ms,
        "doc_msgs": tally.doc_msgs,
        "awareness_msgs": tally.awareness_msgs,
        "sent_msgs": tally.sent_msgs,
        "sent_in_window": tally.sent_in_window,
        "closed": tally.closed,
        "close_codes": {str(k): v for k, v in tally.close_codes.items()},
        "cpu_s": cpu_end - cpu_start,
        "loop_lag_ms": sorted(lags),
    }


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data``: after uvloop ran, a pipe write can stop at 64 KiB."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            select.select([], [fd], [], 1.0)


def main() -> None:
    plan = json.loads(sys.stdin.readline())
    random.seed(plan.get("seed", 0))
    # uvloop: the load generator shares the 2 cores with the server under test, and
    # every peer server is driven by the same generator, so a cheaper one is fair to all.
    result = uvloop.run(_run(plan))
    _write_all(sys.stdout.fileno(), (json.dumps(result) + "\n").encode())
    os._exit(0)  # skip closing hundreds of sockets one by one; the server sees resets


if __name__ == "__main__":
    main()
