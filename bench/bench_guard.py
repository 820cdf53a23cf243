"""The write guard's cost on the update path.

Applies a stream of realistic workshop updates (messages, value toggles, votes,
ratings, draft edits) from several participants to a room-like document, once
without the guard and once through it, and reports the median per-update time.
Writes bench/results/guard.json.

    .venv/bin/python bench/bench_guard.py [--updates 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from pycrdt import Doc

from vmv_sync import schema
from vmv_sync.server.connection import Principal
from vmv_sync.server.guard import WriteGuard

RESULTS = Path(__file__).parent / "results" / "guard.json"


def make_updates(n: int, participants: int = 25) -> tuple[bytes, list[tuple[str, bytes]]]:
    source = Doc()
    schema.new_workshop(source, title="Bench", facilitator_id="f", facilitator_name="F", values=[f"v{i}" for i in range(20)])
    for p in range(participants):
        schema.add_participant(source, f"p{p}", f"P{p}", "participant")
    schema.open_ballot(source, "b1", "Q", ["a", "b", "c"], stage="values-select")
    base = source.get_update()
    updates: list[tuple[str, bytes]] = []
    captured: list[bytes] = []
    # what a real client sends: the update of each transaction, not a state diff
    subscription = source.observe(lambda event: captured.append(event.update))
    for i in range(n):
        pid = f"p{i % participants}"
        captured.clear()
        kind = i % 5
        if kind == 0:
            schema.post_message(source, pid, f"message {i}")
        elif kind == 1:
            schema.toggle_value(source, pid, f"v{i % 20}")
        elif kind == 2:
            schema.cast_vote(source, "b1", pid, "abc"[i % 3])
        elif kind == 3:
            schema.rate_value(source, pid, f"v{i % 20}", 1 + i % 5, 1 + (i // 5) % 5)
        else:
            schema.edit_draft(source, pid, 0, insert="x")
        updates.append((pid, captured[0]))
    source.unobserve(subscription)
    return base, updates


def run(base: bytes, updates: list[tuple[str, bytes]], guarded: bool) -> float:
    doc = Doc()
    doc.apply_update(base)
    guard = WriteGuard(doc) if guarded else None
    started = time.perf_counter()
    for pid, update in updates:
        if guard is not None:
            guard.check(update, Principal(pid, f"P{pid[1:]}", "participant", "w"))
        doc.apply_update(update)
    return (time.perf_counter() - started) / len(updates) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    base, updates = make_updates(args.updates)
    plain = [run(base, updates, False) for _ in range(args.rounds)]
    guarded = [run(base, updates, True) for _ in range(args.rounds)]
    result = {
        "updates": args.updates,
        "rounds": args.rounds,
        "apply_us_median": round(statistics.median(plain), 1),
        "guarded_apply_us_median": round(statistics.median(guarded), 1),
        "guard_cost_us_median": round(statistics.median(guarded) - statistics.median(plain), 1),
    }
    print(f"apply only:        {result['apply_us_median']:8.1f} us/update (median of {args.rounds})")
    print(f"guard + apply:     {result['guarded_apply_us_median']:8.1f} us/update")
    print(f"cost of the guard: {result['guard_cost_us_median']:8.1f} us/update")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
