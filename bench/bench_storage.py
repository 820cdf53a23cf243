"""Benchmark SQLiteStore: append throughput single vs grouped, load time by size.

Run: ``.venv/bin/python bench/bench_storage.py [--quick]``. Prints a table and writes
``bench/results/storage.json``. Updates are ~60-byte blobs, the size of a typical
single-keystroke Yjs update.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vmv_sync.storage import SQLiteStore  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "storage.json"
UPDATE = os.urandom(60)


async def appends_single(path: Path, n: int, synchronous: str) -> float:
    """One task, one update per append: one transaction (and fsync) per update."""
    async with SQLiteStore(path, synchronous=synchronous) as store:  # type: ignore[arg-type]
        start = time.perf_counter()
        for _ in range(n):
            await store.append("w", [UPDATE])
        return n / (time.perf_counter() - start)


async def appends_grouped(path: Path, n: int, tasks: int, synchronous: str) -> dict[str, float]:
    """``tasks`` concurrent rooms, one update per append: group commit batches them."""
    async with SQLiteStore(path, synchronous=synchronous) as store:  # type: ignore[arg-type]
        per_task = n // tasks

        async def room(i: int) -> None:
            for _ in range(per_task):
                await store.append(f"w{i}", [UPDATE])

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(tasks):
                tg.start_soon(room, i)
        elapsed = time.perf_counter() - start
        return {
            "appends_per_s": per_task * tasks / elapsed,
            "commits": store.commits,
            "mean_batch": store.appends / store.commits,
            "max_batch": store.max_batch,
        }


async def load_times(path: Path, n: int) -> dict[str, float]:
    """Load ``n`` stored updates, then the same workshop after compaction."""
    async with SQLiteStore(path) as store:
        for _ in range(n // 1000):
            await store.append("w", [UPDATE] * 1000)
        start = time.perf_counter()
        doc = await store.load("w")
        without = time.perf_counter() - start
        assert doc.update_count == n
        # a realistic snapshot size is unknowable here; use 200 KB
        await store.compact("w", os.urandom(200_000), doc.last_seq)
        await store.append("w", [UPDATE] * 10)
        start = time.perf_counter()
        doc = await store.load("w")
        with_snapshot = time.perf_counter() - start
        assert doc.update_count == 10
    return {"updates": n, "load_s": without, "load_after_compaction_s": with_snapshot}


async def main(quick: bool) -> dict[str, Any]:
    n_single = 300 if quick else 2000
    n_grouped = 2000 if quick else 20000
    sizes = (10_000,) if quick else (10_000, 100_000)
    results: dict[str, Any] = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "machine": platform.machine(),
        "quick": quick,
        "append": {},
        "load": [],
    }
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as tmp:
        d = Path(tmp)
        for sync in ("FULL", "NORMAL"):
            single = await appends_single(d / f"s-{sync}.db", n_single, sync)
            grouped = await appends_grouped(d / f"g-{sync}.db", n_grouped, 100, sync)
            results["append"][sync] = {"single_appends_per_s": single, "grouped_100_tasks": grouped}
            print(
                f"synchronous={sync:6} single: {single:9.0f} appends/s   "
                f"grouped (100 tasks): {grouped['appends_per_s']:9.0f} appends/s "
                f"(mean batch {grouped['mean_batch']:.1f}, max {grouped['max_batch']})"
            )
        for n in sizes:
            row = await load_times(d / f"load-{n}.db", n)
            results["load"].append(row)
            print(
                f"load {n:7d} updates: {row['load_s'] * 1000:8.1f} ms   "
                f"after compaction (200 KB snapshot + 10): {row['load_after_compaction_s'] * 1000:6.1f} ms"
            )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for CI")
    anyio.run(main, parser.parse_args().quick)
