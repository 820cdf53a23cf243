"""Several processes (issue 20): one process on SQLite vs on PostgreSQL + Redis vs two processes.

Run (PostgreSQL and Redis on loopback: scripts/services):

    .venv/bin/python -m bench.bench_cluster            # ~3 min: four setups, then a failover
    .venv/bin/python -m bench.bench_cluster --quick    # ~1.5 min, shorter windows

Setups, each started fresh (real ``server.py`` processes, ``--no-auth`` like bench.fanout;
each PostgreSQL run on a database of its own, each Redis run under a key prefix of its own):

- ``sqlite-1``: one process on SQLite (today's default);
- ``pg-1``: one process on PostgreSQL + Redis (a one-node cluster);
- ``pg-2-routed``: two processes, each workshop's clients all on one process (a balancer
  routing by workshop id): every workshop is served by its owner, nothing is relayed;
- ``pg-2-spread``: two processes, each workshop's clients split evenly over both: half
  the clients of every workshop go through a relay.

Load: :mod:`bench.loadgen` (the fan-out bench's generator): W workshops x S participants,
a chat message every 2 s, a value toggle every 5 s and cursor updates at ``--cursor-hz``
per participant. Figures: delivered % of chat messages (to every other participant of
the workshop), chat latency p50/p99 (send -> receipt at another participant), server CPU
summed over the processes, the load generators' CPU, Redis commands per second.

Failover: two processes, one workshop with clients on both; the owner is killed (-9);
the figure is the time from the kill until a message posted by a survivor right after
the kill is committed and seen by every surviving client.

Writes ``bench/results/cluster.json``. On this 2-core machine the load generator shares
the cores with the servers (its CPU is reported).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import redis

from .fanout import _now_ns, _readline, _sleep_until, percentile
from .servers import ROOT, sample

RESULTS = Path(__file__).resolve().parent / "results"
PG = os.environ.get("VMV_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS = os.environ.get("VMV_BENCH_REDIS", "redis://127.0.0.1:6379/0")
_LISTENING = re.compile(r"listening on http://[^:]+:(\d+)")


class Node:
    """One ``server.py`` process."""

    def __init__(self, db: str, workdir: Path, name: str, redis_url: str | None, prefix: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "VMV_ROOM_IDLE_SECONDS": "60"}
        cmd = [sys.executable, str(ROOT / "server.py"), "--no-auth", "--port", "0", "--db", db,
               "--data-dir", str(workdir / name)]  # fmt: skip
        if redis_url:
            cmd += ["--redis", redis_url, "--node-id", name]
            env["VMV_CLUSTER_PREFIX"] = prefix
        self.log = open(workdir / f"{name}.log", "w+")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while True:
            self.log.seek(0)
            found = _LISTENING.search(self.log.read())
            if found:
                self.port = int(found.group(1))
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                raise RuntimeError(f"{name} did not start:\n{self.log.read()[-2000:]}")
            time.sleep(0.05)

    def ws(self, workshop_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/workshops/{workshop_id}"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


async def _create_db() -> str:
    name = f"vmv_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(f"{PG}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    finally:
        await admin.close()
    return name


async def _drop_db(name: str) -> None:
    admin = await asyncpg.connect(f"{PG}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _redis_commands() -> int:
    client = redis.Redis.from_url(REDIS)
    try:
        return int(client.info("stats")["total_commands_processed"])
    finally:
        client.close()


def _clean_redis(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS)
    try:
        keys = list(client.scan_iter(f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


class Setup:
    """Databases, Redis prefix and processes of one run."""

    def __init__(self, key: str, workdir: Path) -> None:
        self.key = key
        self.workdir = workdir / key
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.prefix = f"vmvbench{uuid.uuid4().hex[:8]}"
        self.db_name: str | None = None
        self.nodes: list[Node] = []

    def start(self, db_name: str | None = None) -> list[Node]:
        if self.key == "sqlite-1":
            self.nodes = [Node(str(self.workdir / "vmv.sqlite3"), self.workdir, "n1", None, self.prefix)]
            return self.nodes
        self.db_name = db_name or asyncio.run(_create_db())
        count = 1 if self.key == "pg-1" else 2
        self.nodes = [Node(f"{PG}/{self.db_name}", self.workdir, f"n{i + 1}", REDIS, self.prefix) for i in range(count)]
        return self.nodes

    def stop(self, *, drop: bool = True) -> None:
        for node in self.nodes:
            node.stop()
        if self.db_name and drop:
            asyncio.run(_drop_db(self.db_name))
        _clean_redis(self.prefix)


def run_load(
    key: str,
    workdir: Path,
    *,
    rooms: int,
    size: int,
    cursor_hz: float,
    warmup: float,
    measure: float,
    drain: float,
    measurers: int | None = None,
) -> dict[str, Any]:
    """One setup under load. With ``measurers``, only that many clients per room parse
    what they receive (latency, deliveries); the rest send the same load and drain
    (bench.loadgen's sinks), so the generator's per-frame cost stops setting the ceiling."""
    setup = Setup(key, workdir)
    workers: list[subprocess.Popen[str]] = []
    try:
        nodes = setup.start()
        n_workers = 2
        plans: list[dict[str, Any]] = [
            {
                "clients": [],
                "chat_interval": 2.0,
                "toggle_interval": 5.0,
                "cursor_hz": cursor_hz,
                "deflate": False,
                "seed": i,
            }
            for i in range(n_workers)
        ]
        gid = 0
        for room in range(rooms):
            wid = f"{setup.prefix}-w{room}"
            for member in range(size):
                gid += 1
                if key == "pg-2-spread":
                    node = nodes[member % 2]
                else:
                    node = nodes[room % len(nodes)]
                sink = measurers is not None and member >= measurers
                plans[gid % n_workers]["clients"].append({"gid": gid, "room": room, "url": node.ws(wid), "sink": sink})
        for plan in plans:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.loadgen"],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(plan) + "\n")
            proc.stdin.flush()
            workers.append(proc)
        ready = []
        for proc in workers:
            line = _readline(proc, 120)
            if not line:
                raise RuntimeError(f"{key}: a load worker did not get ready")
            ready.append(json.loads(line))
        t0 = _now_ns() + 500_000_000
        ms, me = t0 + int(warmup * 1e9), t0 + int((warmup + measure) * 1e9)
        stop = me + int(drain * 1e9)
        for proc in workers:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps({"t0": t0, "measure_start": ms, "measure_end": me, "stop": stop}) + "\n")
            proc.stdin.flush()
        _sleep_until(ms)
        s0 = [sample(n.proc.pid) for n in nodes]
        r0 = _redis_commands() if key != "sqlite-1" else 0
        _sleep_until(me)
        s1 = [sample(n.proc.pid) for n in nodes]
        r1 = _redis_commands() if key != "sqlite-1" else 0
        results = []
        for proc in workers:
            line = _readline(proc, drain + 120)
            if not line:
                raise RuntimeError(f"{key}: a load worker gave no result")
            results.append(json.loads(line))
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        setup.stop()
    watching = size if measurers is None else min(measurers, size)  # measuring clients per room

    def expected(gid: int) -> int:  # measuring receivers of a message from gid
        member = (gid - 1) % size
        return watching - (1 if member < watching else 0)

    sent = {(g, s) for r in results for g, s, _room in r["sent"]}
    receipts: dict[tuple[int, int], int] = {}
    for r in results:
        for g, s, n in r["receipts"]:
            receipts[(g, s)] = receipts.get((g, s), 0) + n
    delivered = sum(min(receipts.get(k, 0), expected(k[0])) for k in sent)
    expected_total = sum(expected(g) for g, _s in sent)
    lat = sorted(x for r in results for x in r["latencies_ms"])
    window = s1[0].at - s0[0].at
    return {
        "setup": key,
        "processes": len(s0),
        "clients": rooms * size,
        "connected": sum(x["ready"] for x in ready),
        "chat_sent": len(sent),
        "measuring_clients": watching * rooms,
        "delivered_pct": 100.0 * delivered / expected_total if expected_total else None,
        "p50_ms": percentile(lat, 0.5),
        "p99_ms": percentile(lat, 0.99),
        "server_cpu_pct": 100.0 * sum(b.cpu_s - a.cpu_s for a, b in zip(s0, s1, strict=True)) / window,
        "loadgen_cpu_pct": 100.0 * sum(r["cpu_s"] for r in results) / measure,
        # the load generators' event-loop lag (a 10 ms timer's lateness), worst generator
        "loadgen_lag_p99_ms": max((percentile(r.get("loop_lag_ms", []), 0.99) or 0.0) for r in results),
        "redis_commands_per_s": (r1 - r0) / window,
        "closed": sum(r["closed"] for r in results),
        "close_codes": {c: sum(r["close_codes"].get(c, 0) for r in results) for r in results for c in r["close_codes"]},
        # frames offered per second in the window, against the plan: a generator that
        # falls behind offers less load than planned and flatters the servers
        "offered_per_s": sum(r.get("sent_in_window", 0) for r in results) / measure,
        "planned_per_s": rooms * size * (1 / 2.0 + 1 / 5.0 + cursor_hz),
    }


async def _failover(workdir: Path, clients_per_node: int) -> dict[str, Any]:
    from vmv_sync.client import Backoff, WorkshopClient
    from vmv_sync.storage import MemoryStore

    setup = Setup("pg-2-failover", workdir)
    setup.key = "pg-2"  # two processes
    nodes = setup.start(await _create_db())
    wid = f"{setup.prefix}-fail"
    try:
        owner, survivor = nodes
        async with AsyncExitStack() as stack:
            people: list[Any] = []
            for i in range(2 * clients_per_node):
                node = owner if i < clients_per_node else survivor  # the owner's clients connect first
                person = WorkshopClient(f"ws://127.0.0.1:{node.port}/workshops", wid, participant_id=f"p{i}", name=f"P{i}",
                                        store=MemoryStore(), backoff=Backoff(base=0.1, cap=0.5))  # fmt: skip
                await stack.enter_async_context(person)
                await person.wait_connected(15)
                people.append(person)
            survivors = people[clients_per_node:]
            await survivors[0].post_message("before")
            await survivors[0].wait_saved(15)
            owner.proc.kill()
            killed = time.monotonic()
            await survivors[0].post_message("probe")
            await survivors[0].wait_saved(30)
            saved = time.monotonic() - killed
            for person in survivors:
                await person.wait_for(lambda p=person: any(m.text == "probe" for m in p.messages), 30)
            synced = time.monotonic() - killed
        return {"clients": len(people), "probe_saved_s": saved, "all_synced_s": synced}
    finally:
        setup.stop(drop=False)
        assert setup.db_name is not None
        await _drop_db(setup.db_name)


#: the largest-room target: chat p99 at or under this, everything delivered, nobody closed
ROOM_P99_MS = 100.0


def largest_room(args: argparse.Namespace, warmup: float, measure: float, drain: float) -> None:
    """Grow one room per setup until chat p99 passes ROOM_P99_MS; report the largest that held."""
    setups = (args.setups or "sqlite-1,pg-2-spread").split(",")
    sizes = [int(x) for x in args.sizes.split(",")]
    hz = args.cursor_hz if args.cursor_hz != 5.0 else 10.0  # the 10 cursor updates per second
    measurers = args.measurers if args.measurers is not None else 40
    out: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load": {"rooms": 1, "cursor_hz": hz, "measure_s": measure, "measurers": measurers, "p99_target_ms": ROOM_P99_MS},
        "runs": [],
        "largest": {},
    }
    with tempfile.TemporaryDirectory(prefix="vmv-bench-room-") as tmp:
        for key in setups:
            best = 0
            for size in sizes:
                figures = run_load(key, Path(tmp), rooms=1, size=size, cursor_hz=hz, warmup=warmup, measure=measure,
                                   drain=drain, measurers=measurers)  # fmt: skip
                held = (figures["p99_ms"] is not None and figures["p99_ms"] <= ROOM_P99_MS
                        and figures["delivered_pct"] == 100.0 and figures["closed"] == 0
                        and figures["connected"] == size)  # fmt: skip
                figures["held"] = held
                print(json.dumps(figures), flush=True)
                out["runs"].append(figures)
                if not held:
                    break
                best = size
            out["largest"][key] = best
    if len(setups) >= 2 and out["largest"].get(setups[0]):
        out["ratio"] = out["largest"][setups[-1]] / out["largest"][setups[0]]
    print(json.dumps({"largest": out["largest"], "ratio": out.get("ratio")}), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cluster-largest-room.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS / 'cluster-largest-room.json'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter windows")
    parser.add_argument("--rooms", type=int, default=8)
    parser.add_argument("--size", type=int, default=20)
    parser.add_argument("--cursor-hz", type=float, default=5.0)
    parser.add_argument("--setups", default=None, help="comma-separated setups (default: all four; "
                        "with --largest-room: sqlite-1,pg-2-spread)")  # fmt: skip
    parser.add_argument("--measurers", type=int, default=None,
                        help="clients per room that parse and time what they receive; the rest drain (sinks)")  # fmt: skip
    parser.add_argument("--largest-room", action="store_true",
                        help="one room at --cursor-hz (default 10): the largest size per setup with p99 <= 100 ms")  # fmt: skip
    parser.add_argument("--sizes", default="300,400,500,600,700,800,900", help="room sizes tried by --largest-room")
    args = parser.parse_args()
    warmup, measure, drain = (2.0, 8.0, 3.0) if args.quick else (3.0, 20.0, 4.0)
    if args.largest_room:
        largest_room(args, warmup, measure, drain)
        return
    args.setups = args.setups or "sqlite-1,pg-1,pg-2-routed,pg-2-spread"
    out: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load": {"rooms": args.rooms, "size": args.size, "cursor_hz": args.cursor_hz, "measure_s": measure},
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="vmv-bench-cluster-") as tmp:
        for key in args.setups.split(","):
            figures = run_load(key, Path(tmp), rooms=args.rooms, size=args.size, cursor_hz=args.cursor_hz,
                               warmup=warmup, measure=measure, drain=drain, measurers=args.measurers)  # fmt: skip
            print(json.dumps(figures), flush=True)
            out["runs"].append(figures)
        out["failover"] = anyio.run(_failover, Path(tmp), 5)
        print(json.dumps(out["failover"]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cluster.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS / 'cluster.json'}")


if __name__ == "__main__":
    main()
