"""Time from reconnect to converged: 1,000 pending offline edits vs 10,000 stored updates.

Setup (not timed): a temp SQLite database is seeded through ``SQLiteStore`` with one
workshop per round, each holding 10,000 stored updates (a workshop, 20
participants, and 10,000 chat messages / value toggles / draft edits, one update
each); the real server then starts as a subprocess on a free port (``--no-auth``).
Per round, client A syncs the workshop, goes offline, and makes 1,000 edits (each
committed to its local replica); an observer B stays online.

Timed, from ``A.reconnect()``:
  * ``synced``: A is connected and has received the server's state (sync step 2);
  * ``saved``: the server confirmed all 1,000 edits as committed (A.pending_count == 0);
  * ``observer``: B has received all 1,000 edits (converged on both sides).

B reads its ``messages`` view before the timed part, as a UI showing the chat
would: the view is then kept current incrementally (its first read of a large
workshop is a full read, ~0.1 ms per message).

Prints the medians and writes bench/results/reconnect.json.

    python bench/bench_reconnect.py [--rounds 5] [--stored 10000] [--pending 1000]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import anyio
from pycrdt import Doc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vmv_sync import schema  # noqa: E402
from vmv_sync.client import Backoff, WorkshopClient  # noqa: E402
from vmv_sync.storage import SQLiteStore  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "reconnect.json"


def seed_updates(count: int) -> list[bytes]:
    """``count`` Yjs updates of a realistic workshop, one per action."""
    doc: Doc[Any] = Doc()
    updates: list[bytes] = []
    sub = doc.observe(lambda event: updates.append(event.update))
    schema.new_workshop(doc, title="Bench", facilitator_id="f", facilitator_name="Fay",
                        values=[f"Value {i}" for i in range(30)])
    pids = [f"p{i}" for i in range(20)]
    for pid in pids:
        schema.add_participant(doc, pid, pid.upper())
    i = 0
    while len(updates) < count:
        pid = pids[i % len(pids)]
        kind = i % 4
        if kind == 0 or kind == 1:
            schema.post_message(doc, pid, f"message {i} from {pid}")
        elif kind == 2:
            schema.toggle_value(doc, pid, f"Value {i % 30}")
        else:
            schema.edit_draft(doc, pid, 0, insert=f"{i} ")
        i += 1
    doc.unobserve(sub)
    return updates[:count]


async def seed(db: Path, workshops: list[str], updates: list[bytes]) -> None:
    async with SQLiteStore(db) as store:
        for wid in workshops:
            await store.append(wid, updates)


def start_server(db: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "server.py"), "--port", "0", "--db", str(db), "--no-auth"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the server exited before listening")
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            # Keep draining its log so the pipe never fills up.
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
            return proc, match.group(1)
    raise RuntimeError("the server did not start within 30 s")


async def one_round(url: str, wid: str, tmp: Path, pending: int, stored: int) -> dict[str, float]:
    fast = Backoff(base=0.05, cap=0.5)
    async with WorkshopClient(url, wid, store_path=tmp / f"{wid}-b.sqlite3",
                              participant_id="p1", backoff=fast) as b, \
            WorkshopClient(url, wid, store_path=tmp / f"{wid}-a.sqlite3",
                           participant_id="p0", backoff=fast) as a:
        await a.wait_connected(60)
        await b.wait_connected(60)
        base = len(a.messages)
        assert len(b.messages) == base  # B shows the chat, as a UI would (see the docstring)
        await a.disconnect()
        for i in range(pending):
            await a.post_message(f"offline edit {i}")
        assert a.pending_count == pending
        target = base + pending
        started = time.perf_counter()
        a.reconnect()
        await a.wait_connected(60)
        synced = time.perf_counter() - started
        await a.wait_saved(60)
        saved = time.perf_counter() - started
        await b.wait_for(lambda: len(b.messages) == target, 60)
        observer = time.perf_counter() - started
        await a.wait_for(lambda: a.data == b.data, 60)
    return {"synced_s": synced, "saved_s": saved, "observer_s": observer}


async def main_async(rounds: int, stored: int, pending: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vmv-bench-reconnect-") as tmp_name:
        tmp = Path(tmp_name)
        db = tmp / "server.sqlite3"
        workshops = [f"bench-{i}" for i in range(rounds)]
        t0 = time.perf_counter()
        await seed(db, workshops, seed_updates(stored))
        print(f"seeded {rounds} workshops x {stored} updates in {time.perf_counter() - t0:.1f} s")
        proc, http_url = start_server(db)
        url = http_url.replace("http://", "ws://")
        try:
            results = []
            for wid in workshops:
                r = await one_round(url, wid, tmp, pending, stored)
                print(f"{wid}: synced {r['synced_s'] * 1000:.0f} ms, saved {r['saved_s'] * 1000:.0f} ms, "
                      f"observer {r['observer_s'] * 1000:.0f} ms")
                results.append(r)
        finally:
            proc.terminate()
            proc.wait(30)
    medians = {k: statistics.median(r[k] for r in results) for k in results[0]}
    return {
        "benchmark": "reconnect to converged",
        "stored_updates": stored,
        "pending_offline_edits": pending,
        "rounds": rounds,
        "median": {k: round(v, 4) for k, v in medians.items()},
        "all": [{k: round(v, 4) for k, v in r.items()} for r in results],
        "python": platform.python_version(),
        "machine": platform.machine(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="reconnect-to-converged benchmark")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stored", type=int, default=10_000)
    parser.add_argument("--pending", type=int, default=1_000)
    parser.add_argument("--no-write", action="store_true", help="do not write the results file")
    args = parser.parse_args()
    report = anyio.run(main_async, args.rounds, args.stored, args.pending)
    m = report["median"]
    print(
        f"median of {args.rounds}: synced {m['synced_s'] * 1000:.0f} ms, "
        f"saved {m['saved_s'] * 1000:.0f} ms, observer converged {m['observer_s'] * 1000:.0f} ms"
    )
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
