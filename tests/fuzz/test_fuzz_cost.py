"""The cost oracle's short run in the suite (tests/fuzz/cost.py; deep runs: docs/fuzzing.md)."""

from __future__ import annotations

import pytest

from .cost import run_cost_oracle

pytestmark = pytest.mark.anyio


async def test_adversarial_updates_cost_time_in_proportion_to_their_size() -> None:
    report = await run_cost_oracle(inputs=16, seed=2, size=1500, max_n=1000)
    assert report.inputs >= 12
    assert not report.flagged, "\n".join(report.flagged)
