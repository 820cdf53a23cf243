"""The cost oracle (issue 19): legal-but-adversarial updates must cost the server time in
proportion to their size, never more.

Every limit of the server bounds an input's size or rate; what it must also bound is
the *work* an input causes. This generator builds updates a participant may send (the
author is the sender, so the write rules pass) in the shapes whose integration cost
can grow with the document or with the update itself:

- ``fresh_ids``: messages from many new devices at once (each placed from the head);
- ``prepend``: messages inserted one by one at the head of the list;
- ``siblings``: many items anchored on the same existing item;
- ``deletes``: a long delete set over the sender's own earlier text;
- ``nested``: a message whose fields nest maps and arrays deeply;
- ``text_run``: a long mission text typed at many places.

Each goes through a real :class:`~vmv_sync.server.rooms.Room` (authentication on, its
guard, its store) over a document already grown with honest chat; the oracle times the
room from frame to committed answer and flags an input whose time passes
``BASE_SECONDS + SECONDS_PER_BYTE * len(update)``, whether the room admitted it or
refused it (a refusal must be cheap too).

    .venv/bin/python -m tests.fuzz cost --inputs 300 [--seed N] [--size 5000]
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
from pycrdt import Array, Doc, Map, Text, merge_updates

from vmv_sync.config import Settings
from vmv_sync.protocol import encode_sync_update
from vmv_sync.server.auth import Principal
from vmv_sync.storage import MemoryStore

__all__ = ("SHAPES", "CostReport", "adversarial_update", "run_cost_oracle")

#: the time any input may take, plus ...
BASE_SECONDS = 0.05
#: ... this per byte: 5-6x what an honest 1 MB update of chat costs (~0.17 us per byte,
#: docs/benchmarks.md), far under what a quadratic placement costs (seconds to minutes)
SECONDS_PER_BYTE = 1e-6

WID = "cost"
AUTHOR = "p1"


def _message(i: int, text: str = "x" * 40) -> Map[Any]:
    return Map({"id": f"c{i}-{random.random()}", "author": AUTHOR, "text": text, "sent_at": 1.0, "stage": "values-select"})


def _fork(base: Doc[Any]) -> Doc[Any]:
    fork: Doc[Any] = Doc(client_id=random.randrange(1, 2**32))
    fork.apply_update(base.get_update())
    return fork


def _fresh_ids(base: Doc[Any], n: int) -> bytes:
    updates = []
    for i in range(n):
        doc: Doc[Any] = Doc(client_id=random.randrange(1, 2**32))
        doc.get("messages", type=Array).append(_message(i))
        updates.append(doc.get_update())
    return merge_updates(*updates)


def _prepend(base: Doc[Any], n: int) -> bytes:
    doc: Doc[Any] = Doc(client_id=random.randrange(1, 2**32))
    messages = doc.get("messages", type=Array)
    with doc.transaction():
        for i in range(n):
            messages.insert(0, _message(i))
    return doc.get_update()


def _siblings(base: Doc[Any], n: int) -> bytes:
    before = base.get_state()
    updates = []
    for i in range(n):
        fork = _fork(base)
        fork.get("messages", type=Array).append(_message(i))
        updates.append(fork.get_update(before))
    return merge_updates(*updates)


def _deletes(base: Doc[Any], n: int) -> bytes:
    fork = _fork(base)
    draft = fork.get("drafts", type=Map).get(AUTHOR)
    if not isinstance(draft, Text):
        return EMPTY
    with fork.transaction():
        for i in range(n):
            draft.insert(0, f"{i % 10}")
    written = fork.get_update(base.get_state())
    before = fork.get_state()
    with fork.transaction():
        for i in range(n // 2):  # every other character: one range each
            del draft[i : i + 1]
    return merge_updates(written, fork.get_update(before))


def _nested(base: Doc[Any], n: int) -> bytes:
    fork = _fork(base)
    before = fork.get_state()
    inner: Any = "leaf"
    for depth in range(min(n, 200)):
        inner = Map({"d": inner}) if depth % 2 else Array([inner])
    fork.get("messages", type=Array).append(
        Map({"id": f"n{random.random()}", "author": AUTHOR, "text": "x", "sent_at": 1.0, "stage": "values-select", "x": inner})
    )
    return fork.get_update(before)


def _text_run(base: Doc[Any], n: int) -> bytes:
    fork = _fork(base)
    before = fork.get_state()
    draft = fork.get("drafts", type=Map).get(AUTHOR)
    if not isinstance(draft, Text):
        return EMPTY
    length = len(str(draft))
    with fork.transaction():
        for _ in range(n):
            draft.insert(random.randrange(length + 1), "ab")
            length += 2
    return fork.get_update(before)


EMPTY = b"\x00\x00"

SHAPES: dict[str, Callable[[Doc[Any], int], bytes]] = {
    "fresh_ids": _fresh_ids,
    "prepend": _prepend,
    "siblings": _siblings,
    "deletes": _deletes,
    "nested": _nested,
    "text_run": _text_run,
}


def adversarial_update(base: Doc[Any], rng: random.Random, max_n: int = 2000) -> tuple[str, int, bytes]:
    """One adversarial update over ``base``: (shape, size parameter, update)."""
    shape = rng.choice(sorted(SHAPES))
    n = min(max_n, rng.choice([1, 10, 100, 500, 2000]))
    if shape in ("siblings",):
        n = min(n, 100)  # building each sibling forks the document
    random.seed(rng.random())
    return shape, n, SHAPES[shape](base, n)


@dataclass
class CostReport:
    inputs: int = 0
    refused: int = 0
    worst_ratio: float = 0.0
    flagged: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.inputs} inputs, {self.refused} refused, worst {self.worst_ratio:.2f} of the bound, "
            f"{len(self.flagged)} flagged"
        )


async def run_cost_oracle(
    inputs: int, seed: int, size: int = 3000, max_update_work: int | None = None, max_n: int = 2000
) -> CostReport:
    """Send ``inputs`` adversarial updates to a room grown to ``size`` messages; time each."""
    from tests.server.test_room import Peer, Room, running, seed_workshop, settle

    rng = random.Random(seed)
    report = CostReport()
    store = MemoryStore()
    await seed_workshop(store, WID, participants=(AUTHOR,))
    settings = Settings(auth=True, workshop_quota_bytes=0)
    if max_update_work is not None:  # lifted: what main did before issue 19
        settings = settings.with_overrides(max_update_work=max_update_work)
    room = Room(WID, store, settings)
    principal = Principal(AUTHOR, "P1", "participant", WID)
    async with running(room):
        grower = Peer(room, principal)
        await grower.join()
        for start in range(0, size, 250):
            grower.catch_up()
            before = grower.doc.get_state()
            with grower.doc.transaction():
                for i in range(start, min(size, start + 250)):
                    grower.doc.get("messages", type=Array).append(_message(i))
            await grower.send(encode_sync_update(grower.doc.get_update(before)))
        await settle(room)
        for _ in range(inputs):
            base: Doc[Any] = Doc()
            base.apply_update(room.doc.get_update())
            shape, n, update = adversarial_update(base, rng, max_n)
            if update == EMPTY:
                continue
            peer = Peer(room, principal)
            await peer.join()
            started = time.perf_counter()
            await peer.send(encode_sync_update(update))
            await settle(room)
            spent = time.perf_counter() - started
            bound = BASE_SECONDS + SECONDS_PER_BYTE * len(update)
            report.inputs += 1
            report.refused += peer.code is not None
            report.worst_ratio = max(report.worst_ratio, spent / bound)
            if spent > bound:
                report.flagged.append(
                    f"{shape} n={n}: {len(update)} bytes took {spent * 1000:.0f} ms "
                    f"(bound {bound * 1000:.0f} ms; {'refused ' + str(peer.code) if peer.code else 'admitted'})"
                )
            room.remove(peer.conn)
    return report


def shapes_cycle(seed: int) -> Iterator[str]:  # pragma: no cover - for interactive use
    rng = random.Random(seed)
    while True:
        yield rng.choice(sorted(SHAPES))


def main(inputs: int, seed: int, size: int) -> int:
    report = anyio.run(run_cost_oracle, inputs, seed, size)
    print("cost oracle:", report.summary())
    for line in report.flagged:
        print("FLAGGED", line)
    return 1 if report.flagged else 0
