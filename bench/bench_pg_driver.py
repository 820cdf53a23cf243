"""Which PostgreSQL driver for the store's group commit: asyncpg or psycopg 3?

Measures the real thing: :class:`~vmv_sync.storage.groupcommit.GroupCommit` over one
connection, each batch ONE call of the store's ``vmv_commit_batch`` function (one
round trip), in a fresh database on loopback that is dropped at the end. Two loads:

* ``single``: one task, one 60-byte update per append (latency-bound: one round trip
  and one commit per append);
* ``grouped``: 100 tasks appending at once (batches grow while a commit is in flight);
  this is the server's load under many rooms.

Each driver runs twice, alternating, and the better round is kept (the machine is
shared). Prints a table and writes ``bench/results/pg_driver.json``.

    .venv/bin/python -m bench.bench_pg_driver [--url postgresql://127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio

from vmv_sync.errors import StorageError
from vmv_sync.storage.groupcommit import GroupCommit, PendingAppend
from vmv_sync.storage.postgres.schema import COMMIT_BATCH_SQL, MIGRATIONS

logger = logging.getLogger("bench.pg_driver")

RESULTS = Path(__file__).parent / "results" / "pg_driver.json"
UPDATE = bytes(range(60))
SINGLE_APPENDS = 1000
TASKS, PER_TASK = 100, 50


def batch_args(batch: list[PendingAppend]) -> list[Any]:
    claims = [(i, cid, owner) for i, r in enumerate(batch, 1) for cid, owner in (r.claims or {}).items()]
    return [
        [r.workshop_id for r in batch],
        [len(r.updates) for r in batch],
        [r.epoch for r in batch],
        [u for r in batch for u in r.updates],
        [c[0] for c in claims],
        [c[1] for c in claims],
        [c[2] for c in claims],
        time.time(),
    ]


async def asyncpg_committer(url: str) -> tuple[Callable[[list[PendingAppend]], Awaitable[Sequence[int | StorageError]]], Callable[[], Awaitable[None]]]:
    import asyncpg

    conn = await asyncpg.connect(url)

    async def commit(batch: list[PendingAppend]) -> list[int | StorageError]:
        rows = await conn.fetch(COMMIT_BATCH_SQL, *batch_args(batch))
        return [int(row[0]) for row in rows]

    return commit, conn.close


async def psycopg_committer(url: str) -> tuple[Callable[[list[PendingAppend]], Awaitable[Sequence[int | StorageError]]], Callable[[], Awaitable[None]]]:
    import psycopg

    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    sql = re.sub(r"\$\d+", "%s", COMMIT_BATCH_SQL)

    async def commit(batch: list[PendingAppend]) -> list[int | StorageError]:
        cursor = await conn.execute(sql, batch_args(batch), binary=True)
        return [int(row[0]) for row in await cursor.fetchall()]

    return commit, conn.close


async def run_load(commit: Callable[[list[PendingAppend]], Awaitable[Sequence[int | StorageError]]], tasks: int, per_task: int, tag: str) -> dict[str, float]:
    group = GroupCommit(commit, name=tag)
    latencies: list[float] = []

    async def writer(n: int) -> None:
        for _ in range(per_task):
            started = time.perf_counter()
            await group.append(f"{tag}-{n % 20}", [UPDATE], None)
            latencies.append(time.perf_counter() - started)

    async with anyio.create_task_group() as tg:
        await tg.start(group.run)
        started = time.perf_counter()
        async with anyio.create_task_group() as writers:
            for n in range(tasks):
                writers.start_soon(writer, n)
        elapsed = time.perf_counter() - started
        await group.aclose()
    latencies.sort()
    return {
        "appends_per_s": round(tasks * per_task / elapsed),
        "mean_batch": round(group.appends / group.commits, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 3),
    }


async def main(url: str) -> dict[str, Any]:
    import asyncpg

    admin = await asyncpg.connect(url)
    name = f"vmv_bench_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    db_url = re.sub(r"/[^/?]*(\?|$)", f"/{name}\\1", url.split("://", 1)[1], count=1)
    db_url = url.split("://", 1)[0] + "://" + db_url
    try:
        setup = await asyncpg.connect(db_url)
        for statement in MIGRATIONS[0]:
            await setup.execute(statement)
        await setup.close()
        makers = {"asyncpg": asyncpg_committer, "psycopg": psycopg_committer}
        results: dict[str, dict[str, dict[str, float]]] = {d: {} for d in makers}
        for round_ in range(2):
            for driver, make in makers.items():
                commit, close = await make(db_url)
                try:
                    for load, (tasks, per_task) in {"single": (1, SINGLE_APPENDS), "grouped": (TASKS, PER_TASK)}.items():
                        figures = await run_load(commit, tasks, per_task, f"{driver}{round_}{load}")
                        best = results[driver].get(load)
                        if best is None or figures["appends_per_s"] > best["appends_per_s"]:
                            results[driver][load] = figures
                finally:
                    await close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return results


def report(results: dict[str, Any]) -> str:
    lines = ["| driver | load | appends/s | mean batch | p50 ms | p99 ms |", "| --- | --- | --- | --- | --- | --- |"]
    for driver, loads in results.items():
        for load, f in loads.items():
            lines.append(f"| {driver} | {load} | {f['appends_per_s']:,} | {f['mean_batch']} | {f['p50_ms']} | {f['p99_ms']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import asyncpg
    import psycopg

    figures = asyncio.run(main(args.url))
    versions = {"asyncpg": asyncpg.__version__, "psycopg": psycopg.__version__}
    RESULTS.write_text(json.dumps({"versions": versions, "results": figures}, indent=2) + "\n")
    logger.info("%s\n%s\nwritten to %s", versions, report(figures), RESULTS)
