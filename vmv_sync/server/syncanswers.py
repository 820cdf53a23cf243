"""Sync step 2 answers: the update a peer's state vector asks for, encoded once per state.

A flood of identical requests (4-byte step 1s against a large document, issue 19)
would otherwise encode the whole document each time: the last answer is kept while
the document is unchanged, and every encoding is charged to the work budget of
whoever asked (so varied requests end in 4429, not a stall). A room answers from its
document, a cluster relay from its replica.
"""

from __future__ import annotations

import time
from typing import Any

from pycrdt import Doc

from ..protocol import encode_sync_step2
from .budgets import WorkMeter
from .connection import Connection

__all__ = ("SyncAnswers",)


class SyncAnswers:
    """The latest step 2 answer of one document, kept while the document is unchanged."""

    def __init__(self) -> None:
        #: (state vector asked, document state, answer) of the latest sync step 2
        self._cache: tuple[bytes, bytes, bytes] | None = None

    def answer(self, doc: Doc[Any], state_vector: bytes, work: WorkMeter | None = None) -> bytes:
        """The step 2 for ``state_vector`` from ``doc``; an encoding is charged to ``work``."""
        state = doc.get_state()
        cached = self._cache
        if cached is not None and cached[0] == state_vector and cached[1] == state:
            return cached[2]
        started = time.perf_counter()
        answer = encode_sync_step2(doc.get_update(state_vector))
        if work is not None:
            work.charge(time.perf_counter() - started)
        self._cache = (state_vector, state, answer)
        return answer

    def send(self, conn: Connection, doc: Doc[Any], state_vector: bytes) -> None:
        """Answer ``conn``'s sync step 1 from ``doc``: its work budget pays the encoding."""
        conn.enqueue(self.answer(doc, state_vector, conn.budget.work if conn.budget is not None else None))
        conn.synced = True
