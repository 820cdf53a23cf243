"""The bench's extras: cold load of a big workshop, reconnect with pending edits, concurrent join.

All three speak the raw y-websocket protocol from this (orchestrator) process to a
server in its own process.

- cold load: a SQLite database seeded through :class:`vmv_sync.storage.SQLiteStore`
  with N real pycrdt updates (25 participants: 75% draft keystrokes, some
  deleted again, 20% value toggles, 5% chat messages), either ``raw`` (every update, no snapshot) or ``compacted`` (a
  snapshot plus a 1,000-update tail, what the server's compaction leaves); then a
  fresh server and a fresh client, timed from WebSocket open to the full sync
  step 2, plus the server's own ``loaded ... in X ms`` log line. Ours only: the Node
  peer runs without persistence, and pycrdt-websocket's store has its own layout.
- reconnect: a client syncs, goes offline, makes 1,000 edits, reconnects; converged
  once it has the server's step 2 and a peer that stayed online holds every edit.
- concurrent join: 100 clients open a brand-new workshop at the same moment; how
  many complete sync within 20 s.
"""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import anyio
import websockets
from pycrdt import Array, Doc, Map, Text, merge_updates

from vmv_sync.protocol import decode_state_vector, encode_sync_step1, encode_sync_step2, encode_sync_update
from vmv_sync.storage import SQLiteStore

from .servers import start_server

__all__ = ("run_all", "seed_updates", "cold_load", "reconnect", "concurrent_join")

_LOADED = re.compile(r"workshop=(\S+) loaded updates=(\d+) .*? in ([\d.]+) ms")
_EMPTY_SV = b"\x00"
_EMPTY_UPDATE = b"\x00\x00"


def seed_updates(n: int, participants: int = 25, seed: int = 5) -> list[bytes]:
    """``n`` real updates from ``participants`` independent docs, one transaction each."""
    rng = random.Random(seed)
    docs = []
    for i in range(participants):
        doc = Doc()
        sink: list[bytes] = []
        doc.observe(lambda event, sink=sink: sink.append(event.update))
        docs.append((f"p{i}", doc, sink, doc.get("messages", type=Array), doc.get("selections", type=Map), doc.get("drafts", type=Map)))
    out: list[bytes] = []
    values = ["Trust", "Courage", "Care", "Openness", "Craft", "Fairness", "Joy"]
    for k in range(n):
        pid, doc, sink, messages, selections, drafts = docs[k % participants]
        roll = rng.random()
        if roll < 0.05:
            messages.append(Map({"id": f"{pid}-{k}", "author": pid, "text": f"message {k} from {pid}", "sent_at": 1.7e9 + k, "stage": "values-select"}))
        elif roll < 0.25:
            with doc.transaction():
                mine = selections.get(pid)
                if mine is None:
                    selections[pid] = Map({rng.choice(values): 1.7e9})
                else:
                    name = rng.choice(values)
                    if name in mine:
                        del mine[name]
                    else:
                        mine[name] = 1.7e9 + k
        else:  # typing in the participant's mission draft: keystrokes, some deleted again
            draft = drafts.get(pid)
            if draft is None:
                drafts[pid] = Text("We ")
            elif len(draft) > 40 and rng.random() < 0.3:
                del draft[len(draft) - 1]
            else:
                draft.insert(len(draft), rng.choice("abcdefgh "))
        out.append(sink.pop())
    return out


async def _seed_ours(db: Path, workshop: str, updates: list[bytes], layout: str) -> None:
    async with SQLiteStore(db) as store:
        for i in range(0, len(updates), 2000):
            await store.append(workshop, updates[i : i + 2000])
        if layout == "compacted":
            cut = len(updates) - 1000
            doc = Doc()
            doc.apply_update(merge_updates(*updates[:cut]))
            await store.compact(workshop, doc.get_update(), cut)


async def _fresh_sync(url: str, timeout: float = 180) -> tuple[float, int]:
    """Open ``url``, send an empty step 1; (ms from open to step 2, step 2 bytes)."""
    with anyio.fail_after(timeout):
        async with websockets.connect(url, max_size=None, ping_interval=None, open_timeout=timeout) as ws:
            opened = time.perf_counter()
            await ws.send(encode_sync_step1(_EMPTY_SV))
            async for frame in ws:
                if frame[0] == 0 and frame[1] == 0:
                    await ws.send(encode_sync_step2(_EMPTY_UPDATE))
                elif frame[0] == 0 and frame[1] == 1:
                    return (time.perf_counter() - opened) * 1000, len(frame)
    raise RuntimeError("the connection closed before sync step 2")


def cold_load(workdir: Path, sizes: tuple[int, ...], rounds: int, ours_root: Path | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in sizes:
        updates = seed_updates(n)
        for layout in ("compacted", "raw"):
            seeded = workdir / f"seed-{n}-{layout}.sqlite3"
            anyio.run(_seed_ours, seeded, f"cold{n}", updates, layout)
            opens, loads, size = [], [], 0
            for rnd in range(rounds):
                db = workdir / f"cold-{n}-{layout}-{rnd}.sqlite3"
                shutil.copy(seeded, db)
                server = start_server("ours", workdir / f"cold-{n}-{layout}-{rnd}", db=db, ours_root=ours_root)
                try:
                    ms, size = anyio.run(_fresh_sync, server.ws_url(f"cold{n}"))
                    opens.append(ms)
                    deadline = time.monotonic() + 5
                    while time.monotonic() < deadline:
                        match = _LOADED.search(server.log_text())
                        if match:
                            loads.append(float(match.group(3)))
                            break
                        time.sleep(0.05)
                finally:
                    server.stop()
            out[f"{n}-{layout}"] = {
                "open_to_step2_ms": statistics.median(opens),
                "server_load_ms": statistics.median(loads) if loads else None,
                "step2_bytes": size,
                "rounds": rounds,
            }
            print(f"   cold load {n} {layout}: {out[f'{n}-{layout}']}", flush=True)
    return out


async def _observer(url: str, target_client: int, target_clock: int, done: anyio.Event, ready: anyio.Event) -> None:
    doc = Doc()
    async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
        await ws.send(encode_sync_step1(_EMPTY_SV))
        async for frame in ws:
            if frame[0] != 0:
                continue
            if frame[1] == 0:
                await ws.send(encode_sync_step2(doc.get_update(_sv_payload(frame))))
                continue
            doc.apply_update(_payload(frame))
            if frame[1] == 1:
                ready.set()
            if decode_state_vector(doc.get_state()).get(target_client, 0) >= target_clock:
                done.set()
                return


def _payload(frame: bytes) -> bytes:
    from vmv_sync.protocol import parse_message

    return parse_message(frame).update  # type: ignore[union-attr]


def _sv_payload(frame: bytes) -> bytes:
    from vmv_sync.protocol import parse_message

    return parse_message(frame).state_vector  # type: ignore[union-attr]


async def _reconnect_once(url: str, mode: str, edits: int) -> float:
    doc = Doc()
    messages = doc.get("messages", type=Array)
    pending: list[bytes] = []
    sub = doc.observe(lambda event: pending.append(event.update))
    # online: sync once (an empty doc), then go offline
    async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
        await ws.send(encode_sync_step1(doc.get_state()))
        async for frame in ws:
            if frame[0] == 0 and frame[1] == 0:
                await ws.send(encode_sync_step2(doc.get_update(_sv_payload(frame))))
            elif frame[0] == 0 and frame[1] == 1:
                break
    for k in range(edits):
        messages.append(Map({"id": f"x-{k}", "author": "x", "text": f"offline edit {k}", "sent_at": 1.7e9 + k, "stage": "vision"}))
    doc.unobserve(sub)
    clock = decode_state_vector(doc.get_state())[doc.client_id]
    done, ready = anyio.Event(), anyio.Event()
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(_observer, url, doc.client_id, clock, done, ready)
            await ready.wait()
            async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
                opened = time.perf_counter()
                await ws.send(encode_sync_step1(doc.get_state()))
                if mode == "outbox":
                    for update in pending:
                        await ws.send(encode_sync_update(update))
                got_step2 = False
                async for frame in ws:
                    if frame[0] == 0 and frame[1] == 0 and mode == "provider":
                        await ws.send(encode_sync_step2(doc.get_update(_sv_payload(frame))))
                    elif frame[0] == 0 and frame[1] == 1:
                        doc.apply_update(_payload(frame))
                        got_step2 = True
                        break
                assert got_step2
                await done.wait()
                return (time.perf_counter() - opened) * 1000


def reconnect(servers: list[str], workdir: Path, rounds: int, ours_root: Path | None, edits: int = 1000) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in servers:
        server = start_server(name, workdir / f"reconnect-{name}", ours_root=ours_root)
        try:
            out[name] = {}
            for mode in ("provider", "outbox"):
                times = [anyio.run(_reconnect_once, server.ws_url(f"rc-{mode}-{r}"), mode, edits) for r in range(rounds)]
                out[name][mode] = {"converged_ms": statistics.median(times), "rounds": rounds}
        except Exception as exc:
            out[name]["error"] = repr(exc)
        finally:
            server.stop()
        print(f"   reconnect {name}: {out[name]}", flush=True)
    return out


async def _join_all(url: str, n: int, timeout: float) -> tuple[int, float | None]:
    synced_at: list[float] = []
    start = time.perf_counter()

    async def one() -> None:
        try:
            with anyio.fail_after(timeout):
                async with websockets.connect(url, max_size=None, ping_interval=None, open_timeout=timeout) as ws:
                    await ws.send(encode_sync_step1(_EMPTY_SV))
                    async for frame in ws:
                        if frame[0] == 0 and frame[1] == 0:
                            await ws.send(encode_sync_step2(_EMPTY_UPDATE))
                        elif frame[0] == 0 and frame[1] == 1:
                            synced_at.append(time.perf_counter() - start)
                            return
        except (TimeoutError, OSError, websockets.WebSocketException):
            return

    await asyncio.gather(*(one() for _ in range(n)))
    return len(synced_at), (max(synced_at) * 1000 if synced_at else None)


def concurrent_join(servers: list[str], workdir: Path, ours_root: Path | None, n: int = 100) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in servers:
        server = start_server(name, workdir / f"join-{name}", ours_root=ours_root)
        try:
            synced, last = asyncio.run(_join_all(server.ws_url("brand-new"), n, 20.0))
            out[name] = {"clients": n, "synced": synced, "all_synced_ms": last if synced == n else None}
        finally:
            server.stop()
        print(f"   concurrent join {name}: {out[name]}", flush=True)
    return out


def run_all(workdir: Path, *, servers: list[str], rounds: int, quick: bool, ours_root: Path | None = None) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    extras: dict[str, Any] = {}
    extras["concurrent_join"] = concurrent_join(servers, workdir, ours_root)
    extras["reconnect"] = reconnect(servers, workdir, rounds, ours_root)
    if "ours" in servers:
        extras["cold_load"] = {"ours": cold_load(workdir, (10_000, 100_000), rounds, ours_root)}
    return extras
