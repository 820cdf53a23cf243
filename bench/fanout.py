"""The workshop fan-out bench (issue 5): ours against @y/websocket-server and pycrdt-websocket.

Run (after ``bench/setup.sh`` once):

    .venv/bin/python -m bench.fanout --quick      # 1 round, short windows, ~10 min
    .venv/bin/python -m bench.fanout              # 3 rounds, medians, ~40 min

Writes ``bench/results/fanout.json``, ``fanout.md`` and ``fanout.png``. Every server
runs in its own process, started fresh for each scenario and round; the load runs in
2 to 4 other processes (:mod:`bench.loadgen`). See docs/benchmarks.md for what each
figure means.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .servers import ROOT, SERVERS, node_available, sample, start_server

__all__ = ("Scenario", "SCENARIOS", "run_scenario", "main")

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Scenario:
    key: str
    rooms: int
    size: int
    cursor_hz: float

    @property
    def clients(self) -> int:
        return self.rooms * self.size

    @property
    def title(self) -> str:
        return f"{self.key[0]}: {self.rooms} workshop{'s' if self.rooms > 1 else ''} x {self.size}, cursors {self.cursor_hz:g}/s"


SCENARIOS = {
    s.key: s
    for s in (
        Scenario("A10", 1, 50, 10),
        Scenario("A2", 1, 50, 2),
        Scenario("B10", 20, 25, 10),
        Scenario("B2", 20, 25, 2),
        Scenario("C10", 1, 200, 10),
        Scenario("C2", 1, 200, 2),
    )
}


def _now_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def _sleep_until(t_ns: int) -> None:
    delay = (t_ns - _now_ns()) / 1e9
    if delay > 0:
        time.sleep(delay)


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    """One stdout line of ``proc`` within ``timeout`` seconds, or ''."""
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    return box[0] if box else ""


def _py_spy() -> str:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else "py-spy"


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def run_scenario(
    server_name: str,
    scenario: Scenario,
    *,
    warmup: float,
    measure: float,
    drain: float,
    workdir: Path,
    tag: str,
    deflate: bool = True,
    profile: Path | None = None,
    ours_root: Path | None = None,
) -> dict[str, Any]:
    """Start ``server_name`` fresh, drive ``scenario`` against it, return its figures."""
    server = start_server(server_name, workdir, ours_root=ours_root)
    workers: list[subprocess.Popen[str]] = []
    spy: subprocess.Popen[bytes] | None = None
    try:
        n_workers = max(2, min(4, math.ceil(scenario.clients / 70)))
        plans: list[dict[str, Any]] = [
            {
                "clients": [],
                "chat_interval": 2.0,
                "toggle_interval": 5.0,
                "cursor_hz": scenario.cursor_hz,
                "deflate": deflate,
                "seed": hash((tag, i)) & 0xFFFF,
            }
            for i in range(n_workers)
        ]
        gid = 0
        for room in range(scenario.rooms):
            url = server.ws_url(f"{tag}-w{room}")
            for _ in range(scenario.size):
                gid += 1
                plans[gid % n_workers]["clients"].append({"gid": gid, "room": room, "url": url})
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
                raise RuntimeError(f"a load worker did not get ready (server {server_name} alive={server.alive()})")
            ready.append(json.loads(line))
        t0 = _now_ns() + 500_000_000
        ms = t0 + int(warmup * 1e9)
        me = ms + int(measure * 1e9)
        stop = me + int(drain * 1e9)
        for proc in workers:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps({"t0": t0, "measure_start": ms, "measure_end": me, "stop": stop}) + "\n")
            proc.stdin.flush()
        _sleep_until(ms)
        s0 = sample(server.pid)
        if profile is not None:
            spy = subprocess.Popen(
                [_py_spy(), "record", "-p", str(server.pid), "-d", str(int(measure)), "-r", "200", "-f", "raw", "-o", str(profile), "--nonblocking"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        _sleep_until(me)
        s1 = sample(server.pid)
        results = []
        for proc in workers:
            line = _readline(proc, drain + 120)
            if not line:
                raise RuntimeError("a load worker gave no result")
            results.append(json.loads(line))
        hwm_kb = max(s1.hwm_kb, sample(server.pid).hwm_kb) if server.alive() else s1.hwm_kb
        if spy is not None:
            spy.wait(timeout=60)
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        if spy is not None and spy.poll() is None:
            spy.kill()
            spy.wait()
        server.stop()
    return _figures(server_name, scenario, ready, results, s0, s1, hwm_kb, measure)


def _figures(server_name: str, scenario: Scenario, ready: list[dict[str, Any]], results: list[dict[str, Any]], s0: Any, s1: Any, hwm_kb: int, measure: float) -> dict[str, Any]:
    expected_per_msg = scenario.size - 1
    sent_keys = {(g, s) for r in results for g, s, _room in r["sent"]}
    receipts: dict[tuple[int, int], int] = {}
    for r in results:
        for g, s, n in r["receipts"]:
            receipts[(g, s)] = receipts.get((g, s), 0) + n
    delivered = sum(min(receipts.get(k, 0), expected_per_msg) for k in sent_keys)
    expected = len(sent_keys) * expected_per_msg
    lat = sorted(x for r in results for x in r["latencies_ms"])
    window = (s1.at - s0.at)
    return {
        "server": server_name,
        "scenario": scenario.key,
        "clients": scenario.clients,
        "connected": sum(x["ready"] for x in ready),
        "synced": sum(x["synced"] for x in ready),
        "chat_sent": len(sent_keys),
        "delivered_pct": 100.0 * delivered / expected if expected else None,
        "p50_ms": percentile(lat, 0.50),
        "p95_ms": percentile(lat, 0.95),
        "p99_ms": percentile(lat, 0.99),
        "max_ms": lat[-1] if lat else None,
        "doc_msgs_per_s": sum(r["doc_msgs"] for r in results) / measure,
        "awareness_msgs_per_s": sum(r["awareness_msgs"] for r in results) / measure,
        "client_sent_per_s": sum(r["sent_msgs"] for r in results) / (measure + 0.0),
        "server_cpu_pct": 100.0 * (s1.cpu_s - s0.cpu_s) / window,
        "server_peak_rss_mb": hwm_kb / 1024,
        "loadgen_cpu_pct": 100.0 * sum(r["cpu_s"] for r in results) / measure,
        "closed": sum(r["closed"] for r in results),
        "close_codes": _merge_counts(r["close_codes"] for r in results),
    }


def _merge_counts(dicts: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-figure median over rounds (None where a round had no value)."""
    out: dict[str, Any] = {"rounds": len(runs)}
    for key, value in runs[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            vals = [r[key] for r in runs if r.get(key) is not None]
            out[key] = statistics.median(vals) if vals else None
        elif key in ("server", "scenario"):
            out[key] = value
    return out


def _load_avg() -> list[float]:
    return list(os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description="Workshop fan-out bench (issue 5).")
    parser.add_argument("--quick", action="store_true", help="1 round, 5 s warm-up, 10 s measured, fewer extras")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per scenario and server (default 3, 1 with --quick)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds of load before measuring (default 10, 5 quick)")
    parser.add_argument("--measure", type=float, default=None, help="measured seconds (default 20, 10 quick)")
    parser.add_argument("--drain", type=float, default=5.0, help="seconds after the window to still count deliveries")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated, from " + ",".join(SCENARIOS))
    parser.add_argument("--servers", default="ours,node,pycrdt", help="comma-separated from ours,node,pycrdt")
    parser.add_argument("--no-deflate", action="store_true", help="clients do not offer permessage-deflate (browsers do)")
    parser.add_argument("--skip-extras", action="store_true", help="skip cold load, concurrent join and reconnect")
    parser.add_argument("--profile", action="store_true", help="py-spy our server in each scenario's first round (needs py-spy)")
    parser.add_argument("--ours-root", type=Path, default=None, help="run our server.py from this checkout (default: this repo)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    warmup = args.warmup if args.warmup is not None else (5.0 if args.quick else 10.0)
    measure = args.measure if args.measure is not None else (10.0 if args.quick else 20.0)
    servers = [s for s in args.servers.split(",") if s]
    if "node" in servers and not node_available():
        print("note: the Node peer is not installed (run bench/setup.sh); skipping it", file=sys.stderr)
        servers.remove("node")
    scenarios = [SCENARIOS[k] for k in args.scenarios.split(",") if k]
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    load_before = _load_avg()
    with tempfile.TemporaryDirectory(prefix="vmv-bench-") as tmp:
        for rnd in range(1, rounds + 1):
            for scenario in scenarios:
                for name in servers:
                    tag = f"b{scenario.key}r{rnd}{name}"
                    profile = None
                    if args.profile and name == "ours" and rnd == 1:
                        profile = args.out / f"profile-{scenario.key}.txt"
                    print(f"round {rnd}/{rounds} {scenario.key} {SERVERS[name]} ...", file=sys.stderr, flush=True)
                    try:
                        fig = run_scenario(
                            name, scenario, warmup=warmup, measure=measure, drain=args.drain,
                            workdir=Path(tmp) / tag, tag=tag, deflate=not args.no_deflate, profile=profile,
                            ours_root=args.ours_root,
                        )
                    except Exception as exc:  # a peer that falls over is a result too
                        fig = {"server": name, "scenario": scenario.key, "error": repr(exc)}
                    print("   " + json.dumps({k: (round(v, 1) if isinstance(v, float) else v) for k, v in fig.items()}), file=sys.stderr, flush=True)
                    runs.setdefault(scenario.key, {}).setdefault(name, []).append(fig)
        extras: dict[str, Any] = {}
        if not args.skip_extras:
            from . import coldload

            extras = coldload.run_all(Path(tmp) / "extras", servers=servers, rounds=rounds, quick=args.quick, ours_root=args.ours_root)
    medians = {
        key: {name: median_of([r for r in rs if "error" not in r]) if any("error" not in r for r in rs) else {"error": rs[0].get("error")} for name, rs in by_server.items()}
        for key, by_server in runs.items()
    }
    report = {
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "duration_s": round(time.time() - started, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(), "load_avg_before": load_before, "load_avg_after": _load_avg()},
        "settings": {"rounds": rounds, "warmup_s": warmup, "measure_s": measure, "drain_s": args.drain, "deflate_offered": not args.no_deflate, "servers": servers},
        "scenarios": {s.key: {"title": s.title, "rooms": s.rooms, "size": s.size, "cursor_hz": s.cursor_hz} for s in scenarios},
        "medians": medians,
        "runs": runs,
        "extras": extras,
    }
    from . import report as report_mod

    (args.out / "fanout.json").write_text(json.dumps(report, indent=1))  # first: never lose a run
    report["targets"] = report_mod.check_targets(report)
    (args.out / "fanout.json").write_text(json.dumps(report, indent=1))
    md = report_mod.markdown(report)
    (args.out / "fanout.md").write_text(md)
    report_mod.plot(report, args.out / "fanout.png")
    print(md)


if __name__ == "__main__":
    main()
