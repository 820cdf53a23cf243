"""Server alone: updates per second accepted (committed) and relayed to a 25-client room.

One writer sends a burst of real Yjs updates (chat messages) as fast as the socket
takes them, asking for the ``saved`` acknowledgement; 25 readers count what they
receive. Figures: accepted/s (until the last update is acknowledged as committed),
relayed/s (until the last reader holds every update), and fan-out latency p50/p99
(send time embedded in each message -> arrival at each reader). Writes
bench/results/throughput.json.

    .venv/bin/python -m bench.bench_throughput [--updates 2000] [--readers 25] [--rounds 3]
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
from vmv_sync.protocol import (
    Saved,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    encode_sync_step1,
    encode_sync_step2,
    encode_sync_update,
    parse_message,
)

RESULTS = Path(__file__).parent / "results" / "throughput.json"


async def reader(url: str, expected: int, latencies: list[float], ready: anyio.Event, done: list[float]) -> None:
    doc: Doc = Doc()
    messages = doc.get("messages", type=Array)
    seen = 0
    async with websockets.connect(url, max_size=None, compression=None) as ws:
        await ws.send(encode_sync_step1(doc.get_state()))
        ready.set()
        async for frame in ws:
            message = parse_message(frame)
            if isinstance(message, SyncStep1):
                await ws.send(encode_sync_step2(doc.get_update(message.state_vector)))
            elif isinstance(message, (SyncStep2, SyncUpdate)):
                doc.apply_update(message.update)
                now = time.monotonic()
                count = len(messages)
                for i in range(seen, count):
                    latencies.append(now - messages[i]["sent"])
                seen = count
                if seen >= expected:
                    done.append(now)
                    return


async def one_round(url: str, updates: int, readers: int) -> dict[str, float]:
    latencies: list[float] = []
    done: list[float] = []
    async with anyio.create_task_group() as tg:
        events = []
        for _ in range(readers):
            ready = anyio.Event()
            events.append(ready)
            tg.start_soon(reader, url, updates, latencies, ready, done)
        for ready in events:
            await ready.wait()
        await anyio.sleep(0.3)  # let the readers' sync finish
        doc: Doc = Doc()
        outgoing: list[bytes] = []
        doc.observe(lambda event: outgoing.append(event.update))
        messages = doc.get("messages", type=Array)
        async with websockets.connect(url + "?saved=1", max_size=None, compression=None) as ws:
            started = time.monotonic()
            for i in range(updates):
                messages.append(Map({"id": str(i), "text": f"message {i}", "sent": time.monotonic()}))
                await ws.send(encode_sync_update(outgoing.pop()))
            async for frame in ws:
                message = parse_message(frame)
                if isinstance(message, Saved) and message.count >= updates:
                    accepted_at = time.monotonic()
                    break
        with anyio.fail_after(120):
            while len(done) < readers:
                await anyio.sleep(0.01)
    relayed_at = max(done)
    ms = sorted(x * 1000 for x in latencies)
    return {
        "accepted_per_s": updates / (accepted_at - started),
        "relayed_per_s": updates / (relayed_at - started),
        "latency_p50_ms": ms[len(ms) // 2],
        "latency_p99_ms": ms[int(len(ms) * 0.99)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--readers", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        # the burst is far above the default per-connection rate limit (200/s)
        server = start_server("ours", Path(tmp), env={"VMV_RATE_LIMIT": "1000000", "VMV_RATE_BURST": "1000000"})
        try:
            for r in range(args.rounds):
                rounds.append(anyio.run(one_round, server.ws_url(f"tp{r}"), args.updates, args.readers))
                print(f"round {r + 1}: " + ", ".join(f"{k} {v:.1f}" for k, v in rounds[-1].items()))
        finally:
            server.stop()
    result = {"updates": args.updates, "readers": args.readers, "rounds": args.rounds}
    for key in rounds[0]:
        result[key] = round(statistics.median(r[key] for r in rounds), 1)
    print(
        f"median of {args.rounds}: accepted {result['accepted_per_s']:.0f} updates/s, "
        f"relayed to {args.readers} clients {result['relayed_per_s']:.0f} updates/s, "
        f"fan-out p50 {result['latency_p50_ms']:.1f} ms, p99 {result['latency_p99_ms']:.1f} ms"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
