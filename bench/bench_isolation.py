"""Heavy input in one workshop, latency in another: how far one sender's cost reaches.

A quiet workshop gets one small update (a chat message) every 20 ms from one client,
which times each until its ``saved`` acknowledgement. Authentication and the write
rules are on (the guard's shadow apply is part of an update's cost), both senders
being their workshop's facilitator. Phase 1 measures that alone; phase 2 repeats it
while another connection, in another workshop, sends the heaviest legal input: updates
just under the frame limit (1 MiB) of 4,500 chat messages each (about 0.95 MB), one after another.
Figures: the quiet workshop's saved latency p50/p99/max in both phases, and the
heavy updates' own saved latency. Writes bench/results/isolation.json.

``--attack stall`` (issue 19, finding 1) sends instead, after growing the other
workshop to 4,000 messages, updates of 3,000 messages from new devices each (legal:
the author is the sender), reconnecting after each refusal; ``--attack heavy`` is the
original. Results go to isolation-<attack>.json.

    .venv/bin/python -m bench.bench_isolation [--attack heavy|stall] [--seconds 8] [--heavy 12] [--rounds 3 --before /tmp/old-checkout]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import anyio
import websockets
from pycrdt import Array, Doc, Map

from bench.servers import start_server
from vmv_sync.protocol import Saved, SyncStep1, encode_sync_step1, encode_sync_step2, encode_sync_update, parse_message

RESULTS = Path(__file__).parent / "results" / "isolation.json"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


SECRET = "bench-isolation-secret-" + "x" * 24


async def new_workshop(http_url: str) -> tuple[str, str, str]:
    """(workshop id, facilitator id, token) of a new workshop."""
    import httpx

    async with httpx.AsyncClient(base_url=http_url) as http:
        r = await http.post("/api/workshops", json={"title": "bench", "name": "Fay"})
        r.raise_for_status()
        body = r.json()
    return body["workshop_id"], body["participant_id"], body["token"]


class Sender:
    """One raw y-websocket peer that sends updates and times their ``saved`` acks."""

    def __init__(self, url: str, author: str = "h") -> None:
        self.author = author
        self.url = url + ("&" if "?" in url else "?") + "saved=1"
        self.doc: Doc = Doc()
        self.sent: dict[int, float] = {}
        self.latencies: list[float] = []
        self.count = 0
        self.acked = anyio.Event()

    async def run(self, body) -> None:  # type: ignore[no-untyped-def]
        async with websockets.connect(self.url, max_size=None, compression=None) as ws:
            await ws.send(encode_sync_step1(self.doc.get_state()))
            async with anyio.create_task_group() as tg:

                async def read() -> None:
                    async for frame in ws:
                        message = parse_message(frame)
                        if isinstance(message, SyncStep1):
                            await ws.send(encode_sync_step2(self.doc.get_update(message.state_vector)))
                        elif isinstance(message, Saved):
                            now = time.monotonic()
                            for n in [n for n in self.sent if n <= message.count]:
                                self.latencies.append(now - self.sent.pop(n))
                            self.acked.set()

                tg.start_soon(read)
                await body(ws, self)
                tg.cancel_scope.cancel()

    async def send(self, ws, update: bytes) -> None:  # type: ignore[no-untyped-def]
        self.count += 1
        self.sent[self.count] = time.monotonic()
        await ws.send(encode_sync_update(update))

    async def wait_acked(self, timeout: float = 30) -> None:
        with anyio.fail_after(timeout):
            while self.sent:
                self.acked = anyio.Event()
                await self.acked.wait()


def stall_updates(count: int, per_update: int = 3000, author: str = "h") -> list[bytes]:
    """Updates of ``per_update`` messages, each from a new device's empty replica."""
    import random

    from pycrdt import merge_updates

    out: list[bytes] = []
    for u in range(count):
        parts = []
        for i in range(per_update):
            doc: Doc = Doc(client_id=random.randrange(1, 2**32))
            doc.get("messages", type=Array).append(
                Map({"id": f"s{u}-{i}", "author": author, "text": "hello world", "sent_at": 1.0, "stage": "values-select"})
            )
            parts.append(doc.get_update())
        out.append(merge_updates(*parts))
    return out


def heavy_updates(count: int, per_update: int = 4500, author: str = "h") -> list[bytes]:
    doc: Doc = Doc()
    messages = doc.get("messages", type=Array)
    out: list[bytes] = []
    sub = doc.observe(lambda e: out.append(e.update))
    for u in range(count):
        with doc.transaction():
            for i in range(per_update):
                messages.append(Map({"id": f"{u}-{i}", "author": author, "text": "hello world " * 6, "sent_at": 1.0, "stage": "values-select"}))
    doc.unobserve(sub)
    return out


async def quiet_phase(url: str, seconds: float, author: str) -> list[float]:
    quiet = Sender(url, author)

    async def body(ws, s: Sender) -> None:  # type: ignore[no-untyped-def]
        text = s.doc.get("messages", type=Array)
        captured: list[bytes] = []
        sub = s.doc.observe(lambda e: captured.append(e.update))
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline:
            n += 1
            text.append(Map({"id": f"q{n}", "author": s.author, "text": "q", "sent_at": 1.0, "stage": "values-select"}))
            await s.send(ws, captured.pop())
            await anyio.sleep(0.02)
        s.doc.unobserve(sub)
        await s.wait_acked()

    await quiet.run(body)
    return quiet.latencies


async def main_async(
    seconds: float, heavy_count: int, ours_root: Path | None = None, attack: str = "heavy"
) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server("ours", Path(tmp), ours_root=ours_root, auth=True, env={"VMV_SECRET": SECRET})
        try:
            quiet_a, quiet_b, heavy_w = [await new_workshop(f"http://{server.host}:{server.port}") for _ in range(3)]
            # the sync step 1 travels before the doc is known: a fresh doc syncs first
            alone = await quiet_phase(server.ws_url(quiet_a[0]) + f"?token={quiet_a[2]}", seconds, quiet_a[1])
            heavy_url = server.ws_url(heavy_w[0]) + f"?token={heavy_w[2]}"
            if attack == "stall":
                grow = heavy_updates(1, per_update=4000, author=heavy_w[1])
                grower = Sender(heavy_url, heavy_w[1])

                async def grow_body(ws, s: Sender) -> None:  # type: ignore[no-untyped-def]
                    await s.send(ws, grow[0])
                    await s.wait_acked(120)

                await grower.run(grow_body)
                updates = stall_updates(heavy_count, author=heavy_w[1])
            else:
                updates = heavy_updates(heavy_count, author=heavy_w[1])
            sizes = [len(u) for u in updates]
            heavy = Sender(heavy_url, heavy_w[1])
            during: list[float] = []

            heavy_close: list[object] = []

            pending = list(updates)

            async def heavy_body(ws, s: Sender) -> None:  # type: ignore[no-untyped-def]
                try:
                    while pending:
                        await s.send(ws, pending.pop(0))
                        await s.wait_acked(120)
                except websockets.ConnectionClosed as closed:
                    heavy_close.append(closed.rcvd.code if closed.rcvd else None)

            async def heavy_run() -> None:
                # the stall attacker reconnects after each refusal (a fresh Sender each time)
                nonlocal heavy
                for _ in range(len(updates) if attack == "stall" else 1):
                    try:
                        await heavy.run(heavy_body)
                    except* websockets.ConnectionClosed as group:
                        first = group.exceptions[0]
                        assert isinstance(first, websockets.ConnectionClosed)
                        heavy_close.append(first.rcvd.code if first.rcvd else None)
                    if not pending:
                        break
                    saved = heavy.latencies
                    heavy = Sender(heavy_url, heavy_w[1])
                    heavy.latencies.extend(saved)

            async with anyio.create_task_group() as tg:
                tg.start_soon(heavy_run)
                during = await quiet_phase(server.ws_url(quiet_b[0]) + f"?token={quiet_b[2]}", seconds, quiet_b[1])
                tg.cancel_scope.cancel()
        finally:
            server.stop()
    result = {
        "heavy_update_bytes_median": statistics.median(sizes),
        "heavy_updates_offered": len(updates),
        "heavy_updates_saved": len(heavy.latencies),
        "attack": attack,
        "heavy_closed_with": heavy_close[0] if heavy_close else None,
        "heavy_closes": len(heavy_close),
        "heavy_saved_ms_p50": round(_pct(heavy.latencies, 0.5) * 1000, 1),
        "heavy_saved_ms_max": round(max(heavy.latencies, default=float("nan")) * 1000, 1),
        "quiet_alone_ms": {q: round(_pct(alone, v) * 1000, 2) for q, v in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))},
        "quiet_during_heavy_ms": {q: round(_pct(during, v) * 1000, 2) for q, v in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))},
        "quiet_samples": [len(alone), len(during)],
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attack", choices=("heavy", "stall"), default="heavy")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--heavy", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=1, help="alternate --before and this checkout this many times")
    parser.add_argument("--before", type=Path, default=None, help="another checkout to measure in the same run (e.g. a git worktree of an older commit)")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, object]]] = {"this": [], "before": []}
    for _ in range(args.rounds):
        if args.before is not None:
            runs["before"].append(anyio.run(main_async, args.seconds, args.heavy, args.before, args.attack))
        runs["this"].append(anyio.run(main_async, args.seconds, args.heavy, None, args.attack))
    result: dict[str, object] = {"runs": runs}
    print(json.dumps(result, indent=2))
    path = RESULTS if args.attack == "heavy" else RESULTS.with_name(f"isolation-{args.attack}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
