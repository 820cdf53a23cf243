"""Deep fuzz runs (docs/fuzzing.md).

    .venv/bin/python -m tests.fuzz server  --frames 5000000 [--seed N] [--auth]
    .venv/bin/python -m tests.fuzz parsers --frames 2000000 [--seed N]
    .venv/bin/python -m tests.fuzz atheris -max_total_time=3600 [libFuzzer flags, corpus dir]
    .venv/bin/python -m tests.fuzz cost --frames 300 [--seed N] [--size 5000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import anyio


def _parsers(frames: int, seed: int) -> int:
    from .frames import FrameGenerator
    from .oracle import Violation, check_frame

    gen = FrameGenerator(seed)
    results: Counter[str] = Counter()
    started = time.perf_counter()
    for i, frame in enumerate(gen.frames(frames), 1):
        try:
            results[check_frame(frame.data).result] += 1
        except Violation as exc:
            print(f"VIOLATION at frame {i} ({frame.kind}): {exc}")
            return 1
        if i % 100_000 == 0:
            print(f"{i:,} frames, {time.perf_counter() - started:.0f} s, {dict(results)}", flush=True)
    print(f"parsers: {frames:,} frames in {time.perf_counter() - started:.0f} s: {dict(results)}")
    return 0


async def _server(frames: int, seed: int, auth: bool, deadline: float) -> int:
    import httpx

    from tests.conftest import ServerProcess

    from .server_fuzz import FuzzConfig, FuzzReport, Neighbour, fetch_doc, rss_mib, run_server_fuzz, same_document
    from .test_fuzz_server import FUZZ_ENV, SECRET, _settle, _workshop

    env = {**FUZZ_ENV, "VMV_SECRET": SECRET}
    server = ServerProcess(Path(tempfile.mkdtemp(prefix="vmv-fuzz-")) / "fuzz.sqlite3", env, () if auth else ("--no-auth",)).start()
    try:
        if auth:
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                wa, fa, sa = await _workshop(http, "Ann", "Xavier")
                wb, fb, sb = await _workshop(http, "Bob")
            a_f, a_p = f"{server.ws(wa)}?token={fa.token}", f"{server.ws(wa)}?token={sa['Ann'].token}"
            b_f, b_p = f"{server.ws(wb)}?token={fb.token}", f"{server.ws(wb)}?token={sb['Bob'].token}"
            pairs = [(Neighbour(a_f, fa.pid), Neighbour(a_p, sa["Ann"].pid)), (Neighbour(b_f, fb.pid), Neighbour(b_p, sb["Bob"].pid))]
            urls = [f"{server.ws(wa)}?token={sa['Xavier'].token}"] * 8 + [f"{server.ws(wa)}?token=x", f"{server.ws(wa)}?token={sb['Bob'].token}"]
            docs = {"a": a_f, "b": b_f}
        else:
            a, b = server.ws("fuzz-a"), server.ws("fuzz-b")
            pairs = [(Neighbour(a, "na1"), Neighbour(a, "na2")), (Neighbour(b, "nb1"), Neighbour(b, "nb2"))]
            urls, docs = [a], {"a": a, "b": b}
        cfg = FuzzConfig(frames=frames, seed=seed, attack_urls=urls, deadline=deadline, survivable_updates=not auth)
        last = [0.0]

        async def progress(report: FuzzReport) -> None:
            if report.elapsed - last[0] >= 10:
                last[0] = report.elapsed
                print(report.summary(), flush=True)

        report = await run_server_fuzz(server, cfg, pairs, progress=progress)
        print("server fuzz:", report.summary())
        print("close reasons:", dict(report.reasons.most_common(20)))
        problems = report.problems()
        await _settle(server, 0)
        end = rss_mib(server.proc.pid)
        print(f"RSS at the end: {end:.0f} MiB")
        if end > report.rss_baseline + cfg.rss_bound_mib:
            problems.append(f"RSS {report.rss_baseline:.0f} -> {end:.0f} MiB")
        live = {k: await fetch_doc(u) for k, u in docs.items()}
        if server.stop() != 0:
            problems.append("the server did not exit 0 on SIGTERM")
        server.restart()
        for k, u in docs.items():
            differs = same_document(live[k], await fetch_doc(u))
            if differs:
                problems.append(f"workshop {k}: stored != live: {differs}")
        for p in problems:
            print("PROBLEM:", p)
        return 1 if problems else 0
    finally:
        server.kill()


def main(argv: list[str]) -> int:
    if argv[:1] == ["atheris"]:
        from .atheris_parsers import main as atheris_main

        atheris_main([sys.argv[0], *argv[1:]])
        return 0
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", choices=("server", "parsers", "cost"))
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--auth", action="store_true", help="server: attack as a participant with authentication on")
    parser.add_argument("--size", type=int, default=3000, help="cost: messages in the document first")
    parser.add_argument("--deadline", type=float, default=24 * 3600.0, help="server: stop sending after this many seconds")
    args = parser.parse_args(argv)
    print(f"seed {args.seed}", flush=True)
    if args.target == "parsers":
        return _parsers(args.frames, args.seed)
    if args.target == "cost":
        from .cost import main as cost_main

        return cost_main(args.frames, args.seed, args.size)
    return anyio.run(_server, args.frames, args.seed, args.auth, args.deadline)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
