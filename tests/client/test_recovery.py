"""client/recovery.py in process: which set-aside rows the server already holds."""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, Text

from vmv_sync.client.recovery import integrated_prefix
from vmv_sync.client.replica import Row


def _row(seq: int, update: bytes) -> Row:
    return Row(seq=seq, intent_id=None, intent=None, update=update)


def test_rows_the_document_holds_form_the_prefix() -> None:
    mine: Doc[Any] = Doc()
    text = mine.get("mission", type=Text)
    text += "a"
    first = mine.get_update()
    before = mine.get_state()
    text += "b"
    second = mine.get_update(before)
    server: Doc[Any] = Doc()
    server.apply_update(first)
    assert integrated_prefix(server, [_row(1, first), _row(2, second)]) == 1
    server.apply_update(second)
    assert integrated_prefix(server, [_row(1, first), _row(2, second)]) == 2


def test_a_row_parked_as_pending_is_not_taken_for_integrated() -> None:
    """A row whose dependency the server lacks changes nothing when applied (yrs parks it):
    counting it as held confirmed it locally, and every later update of that client then
    depended on it (4400 on every reconnect; found by the issue-19 refusal test)."""
    mine: Doc[Any] = Doc()
    text = mine.get("mission", type=Text)
    text += "a"
    missing = mine.get_update()
    before = mine.get_state()
    text += "b"
    dependent = mine.get_update(before)
    server: Doc[Any] = Doc()  # has neither
    assert integrated_prefix(server, [_row(2, dependent)]) == 0
    assert integrated_prefix(server, [_row(1, missing), _row(2, dependent)]) == 0
