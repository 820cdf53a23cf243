"""Building a room's document from what the store holds, without holding up other rooms."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import anyio
from pycrdt import Doc

__all__ = ("integrate",)

#: seconds of integration between two yields to the event loop
LOAD_SLICE = 0.02


async def integrate(
    snapshot: bytes | None, updates: Sequence[bytes], doc: Doc[Any] | None = None
) -> tuple[Doc[Any], float]:
    """``doc`` (a new one by default) with ``snapshot`` then ``updates`` applied, and the
    seconds the updates took to integrate.

    One transaction, one update at a time: merge_updates over a long tail is far
    slower (quadratic) than integrating the updates one by one. The document is
    private until returned, so the loop is given back every :data:`LOAD_SLICE`
    seconds: a workshop that is costly to load delays its own clients, not other
    workshops (issue 19). The seconds tell the compactor whether the log is costly.
    """
    doc = Doc() if doc is None else doc
    work = 0.0
    with doc.transaction():
        if snapshot:
            doc.apply_update(snapshot)
        slice_start = time.perf_counter()
        for update in updates:
            applied = time.perf_counter()
            doc.apply_update(update)
            now = time.perf_counter()
            work += now - applied
            if now - slice_start > LOAD_SLICE:
                await anyio.sleep(0)
                slice_start = time.perf_counter()
    return doc, work
