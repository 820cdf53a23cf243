"""Helpers of the storage suite: a hand-moved clock and real pycrdt documents.

Compaction tests rebuild real documents and compare their CONTENT: a store that
replaced history with an empty update would keep the row counts right and lose the
workshop (the pycrdt-store squash bug).
"""

from __future__ import annotations

import random
from typing import Any

from pycrdt import Array, Doc, Map, Text

from vmv_sync.storage import StoredDoc


class FakeClock:
    """A wall clock the test moves by hand, forwards or backwards."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Editor:
    """A pycrdt Doc whose every transaction's update is collected, like a room's doc."""

    def __init__(self, seed: int = 0) -> None:
        self.doc: Doc = Doc()
        self.doc["m"] = Map()
        self.doc["a"] = Array()
        self.doc["t"] = Text()
        self.pending: list[bytes] = []
        self._sub = self.doc.observe(lambda event: self.pending.append(event.update))
        self.rng = random.Random(seed)

    def edit(self) -> list[bytes]:
        """One random Map/Array/Text edit; return the update(s) it produced."""
        m = self.doc.get("m", type=Map)
        a = self.doc.get("a", type=Array)
        t = self.doc.get("t", type=Text)
        r = self.rng.random()
        if r < 0.3:
            m[f"k{self.rng.randrange(20)}"] = self.rng.randrange(1000)
        elif r < 0.5:
            a.insert(self.rng.randrange(len(a) + 1), self.rng.randrange(1000))
        elif r < 0.6 and len(a):
            del a[self.rng.randrange(len(a))]
        elif r < 0.9 or not len(t):
            t.insert(self.rng.randrange(len(t) + 1), self.rng.choice(["a", "bc", "d e", "xyz"]))
        else:
            start = self.rng.randrange(len(t))
            del t[start : start + 1]
        out, self.pending = self.pending, []
        return out


def content(doc: Doc) -> dict[str, Any]:
    return {
        "m": doc.get("m", type=Map).to_py(),
        "a": doc.get("a", type=Array).to_py(),
        "t": str(doc.get("t", type=Text)),
    }


def rebuild(snapshot: bytes | None, updates: Any) -> Doc:
    doc = Doc()
    doc["m"] = Map()
    doc["a"] = Array()
    doc["t"] = Text()
    if snapshot is not None:
        doc.apply_update(snapshot)
    for update in updates:
        doc.apply_update(update)
    return doc


def reload(stored: StoredDoc) -> dict[str, Any]:
    return content(rebuild(stored.snapshot, stored.updates))
