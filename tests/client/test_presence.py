"""The client's awareness table applies y-protocols' clock rule, the one in vmv_sync.presence."""

from __future__ import annotations

import json

from vmv_sync.client.presence import AwarenessTable
from vmv_sync.presence import supersedes
from vmv_sync.protocol import AwarenessEntry


def _entry(client_id: int, clock: int, state: dict[str, object] | None) -> AwarenessEntry:
    return AwarenessEntry(client_id, clock, state, json.dumps(state) if state is not None else "null")


ANN = {"user": {"id": "pa", "name": "Ann"}}


def test_the_clock_rule() -> None:
    assert supersedes(None, 0, removal=False, live=False)  # never seen
    assert supersedes(1, 2, removal=False, live=True)  # newer
    assert not supersedes(2, 2, removal=False, live=True)  # an echo
    assert not supersedes(3, 2, removal=True, live=True)  # older, even a removal
    assert supersedes(2, 2, removal=True, live=True)  # the server's removal at the known clock
    assert not supersedes(2, 2, removal=True, live=False)  # ... of a state already gone


def test_the_table_follows_the_rule() -> None:
    table = AwarenessTable()
    assert table.apply([_entry(7, 1, ANN)])
    assert not table.apply([_entry(7, 1, ANN)])  # echo
    assert not table.apply([_entry(7, 0, None)])  # stale removal
    assert table.apply([_entry(7, 1, None)])  # removal at the same clock
    assert 7 not in table.states
    assert not table.apply([_entry(7, 1, ANN)])  # the removed state cannot come back at its clock
    assert table.apply([_entry(7, 2, ANN)]) and table.online().keys() == {"pa"}
    assert table.clear() and not table.apply([_entry(7, 2, ANN)])  # clocks survive going offline
