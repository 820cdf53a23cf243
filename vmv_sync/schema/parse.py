"""Tolerant parsers: one shared-type entry in, a record (or nothing) and a skip count out.

A workshop document is written by browsers, Python clients and old versions, so a
reader must survive any entry of the wrong shape: it leaves the entry out and
counts it, and never raises. The rule, documented in docs/derived-state.md: an
entry is kept iff it has every field of contract section 3 with the contract's
type (Yjs ``Map`` where the contract says Map, plain values where it says plain);
extra fields are ignored. Numbers arrive from Yjs as floats, so an integral float
is accepted where an int is expected; booleans never count as numbers.

Every function here is used both by :func:`vmv_sync.schema.read_workshop` and by
the incremental tracker in :mod:`vmv_sync.derived.state`, so both always agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, TypeVar

from pycrdt import Array, Map, Text

from vmv_sync.schema.names import normalize_value_name
from vmv_sync.schema.records import (
    BALLOT_KINDS,
    ROLES,
    Ballot,
    ChatMessage,
    Choice,
    Participant,
    Progress,
    Rating,
)
from vmv_sync.schema.stages import STAGES, is_stage

__all__ = (
    "as_int",
    "as_float",
    "parse_participant",
    "parse_chat_message",
    "parse_clock",
    "MAX_CLOCK",
    "parse_selection",
    "parse_catalogue",
    "parse_ballot",
    "parse_ballot_votes",
    "parse_ratings",
    "parse_progress",
    "parse_text",
    "parse_meta",
    "parse_keyed",
)


T = TypeVar("T")

#: Meta fields with their checkers; a wrong-typed one is dropped and counted.
_META_CHECKS: dict[str, str] = {
    "title": "str",
    "created_at": "float",
    "schema": "int",
    "stage": "stage",
    "facilitator": "str",
    "max_values": "int",
}


def as_int(value: object) -> int | None:
    """``value`` as an int if it is an int or an integral finite float, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def as_float(value: object) -> float | None:
    """``value`` as a finite float if it is a number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def _fields(value: object) -> dict[str, Any] | None:
    """The fields of a Yjs Map entry, or None when the entry is not a Map."""
    if not isinstance(value, Map):
        return None
    return dict(value.items())


def parse_participant(value: object) -> tuple[Participant | None, int]:
    """A ``participants`` entry: Map ``{name, role, joined_at}``."""
    f = _fields(value)
    if f is None:
        return None, 1
    name, role, joined_at = f.get("name"), f.get("role"), as_float(f.get("joined_at"))
    if not isinstance(name, str) or role not in ROLES or joined_at is None:
        return None, 1
    return Participant(name=name, role=str(role), joined_at=joined_at), 0


def parse_chat_message(value: object) -> tuple[ChatMessage | None, int]:
    """A ``messages`` item: Map ``{id, author, text, sent_at, stage}`` (or its fields as a dict)."""
    f = value if isinstance(value, dict) else _fields(value)
    if f is None:
        return None, 1
    mid, author, text, stage = f.get("id"), f.get("author"), f.get("text"), f.get("stage")
    sent_at = as_float(f.get("sent_at"))
    if (
        not isinstance(mid, str)
        or not mid
        or not isinstance(author, str)
        or not isinstance(text, str)
        or sent_at is None
        or not is_stage(stage)
    ):
        return None, 1
    return ChatMessage(id=mid, author=author, text=text, sent_at=sent_at, stage=str(stage), hlc=parse_clock(f.get("hlc"))), 0


#: the largest clock a JavaScript number holds exactly (Number.MAX_SAFE_INTEGER)
MAX_CLOCK = 2**53 - 1


def parse_clock(value: object) -> int | None:
    """A message's optional ``hlc``: a whole number of ms in 0..2**53-1, else None (ignored)."""
    number = as_float(value)
    if number is None or not number.is_integer() or not 0 <= number <= MAX_CLOCK:
        return None
    return int(number)


def parse_selection(value: object) -> tuple[dict[str, float] | None, int]:
    """A ``selections`` entry: Map value name -> selected_at; bad keys are dropped one by one."""
    f = _fields(value)
    if f is None:
        return None, 1
    skipped = 0
    result: dict[str, float] = {}
    for name in sorted(f):
        ts = as_float(f[name])
        if ts is None or not normalize_value_name(name):
            skipped += 1
            continue
        result[name] = ts
    return result, skipped


def parse_catalogue(items: Iterable[object]) -> tuple[tuple[str, ...], int]:
    """The ``values`` array: non-blank strings, kept in array order."""
    kept: list[str] = []
    skipped = 0
    for item in items:
        if isinstance(item, str) and normalize_value_name(item):
            kept.append(item)
        else:
            skipped += 1
    return tuple(kept), skipped


def parse_ballot(value: object) -> tuple[Ballot | None, int]:
    """A ``ballots`` entry: Map ``{question, options, stage, kind, max_choices, open}``."""
    f = _fields(value)
    if f is None:
        return None, 1
    question, options = f.get("question"), f.get("options")
    stage, kind = f.get("stage"), f.get("kind")
    max_choices, is_open = as_int(f.get("max_choices")), f.get("open")
    if (
        not isinstance(question, str)
        or not isinstance(options, list)
        or not options
        or not all(isinstance(o, str) and o for o in options)
        or len(set(options)) != len(options)
        or not is_stage(stage)
        or kind not in BALLOT_KINDS
        or max_choices is None
        or not 1 <= max_choices <= len(options)
        or (kind == "single" and max_choices != 1)
        or not isinstance(is_open, bool)
    ):
        return None, 1
    return (
        Ballot(
            question=question,
            options=tuple(options),
            stage=str(stage),
            kind=str(kind),
            max_choices=max_choices,
            open=is_open,
        ),
        0,
    )


def parse_ballot_votes(value: object) -> tuple[dict[str, Choice] | None, int]:
    """A ``votes`` entry: Map participant id -> option str, or plain list of option strs.

    Only the shape is checked here; whether the options are on the ballot is decided
    by the tally, which knows the ballot.
    """
    f = _fields(value)
    if f is None:
        return None, 1
    skipped = 0
    result: dict[str, Choice] = {}
    for pid in sorted(f):
        choice = f[pid]
        if isinstance(choice, str):
            result[pid] = choice
        elif isinstance(choice, list) and all(isinstance(c, str) for c in choice):
            result[pid] = tuple(choice)
        else:
            skipped += 1
    return result, skipped


def _parse_rating(value: object) -> Rating | None:
    if not isinstance(value, dict):
        return None
    importance, practice = as_int(value.get("importance")), as_int(value.get("practice"))
    if importance is None or practice is None:
        return None
    if not (1 <= importance <= 5 and 1 <= practice <= 5):
        return None
    return Rating(importance=importance, practice=practice)


def parse_ratings(value: object) -> tuple[dict[str, Rating] | None, int]:
    """A ``matrix`` entry: Map value name -> plain ``{importance: 1..5, practice: 1..5}``."""
    f = _fields(value)
    if f is None:
        return None, 1
    skipped = 0
    result: dict[str, Rating] = {}
    for name in sorted(f):
        rating = _parse_rating(f[name])
        if rating is None or not normalize_value_name(name):
            skipped += 1
            continue
        result[name] = rating
    return result, skipped


def parse_progress(value: object) -> tuple[Progress | None, int]:
    """A ``progress`` entry: Map ``{stage, completed: [stage, ...], updated_at}``."""
    f = _fields(value)
    if f is None:
        return None, 1
    stage, completed, updated_at = f.get("stage"), f.get("completed"), as_float(f.get("updated_at"))
    if (
        not is_stage(stage)
        or not isinstance(completed, list)
        or not all(is_stage(c) for c in completed)
        or updated_at is None
    ):
        return None, 1
    done = tuple(s for s in STAGES if s in completed)
    return Progress(stage=str(stage), completed=done, updated_at=updated_at), 0


def parse_text(value: object) -> tuple[str | None, int]:
    """A ``drafts`` entry: a Yjs Text."""
    if not isinstance(value, Text):
        return None, 1
    return str(value), 0


def parse_meta(root: Map[Any]) -> tuple[dict[str, Any], int]:
    """The ``meta`` map: known fields type-checked, unknown plain fields kept as is."""
    result: dict[str, Any] = {}
    skipped = 0
    for key in sorted(root.keys()):
        value = root[key]
        check = _META_CHECKS.get(key)
        parsed: Any
        if check == "str":
            parsed = value if isinstance(value, str) else None
        elif check == "float":
            parsed = as_float(value)
        elif check == "int":
            parsed = as_int(value)
        elif check == "stage":
            parsed = str(value) if is_stage(value) else None
        elif isinstance(value, (Map, Array, Text)):
            parsed = None
        else:
            parsed = value
        if parsed is None and not (check is None and value is None):
            skipped += 1
            continue
        result[key] = parsed
    return result, skipped


def parse_keyed(
    root: Map[Any], parse: Any, keys: Iterable[str] | None = None
) -> tuple[dict[str, Any], int]:
    """Parse the entries of a keyed root (participant id or ballot id -> entry).

    Returns the kept entries in sorted key order and the number skipped.
    """
    result: dict[str, Any] = {}
    skipped = 0
    for key in sorted(root.keys() if keys is None else keys):
        parsed, n = parse(root[key])
        skipped += n
        if parsed is not None:
            result[key] = parsed
    return result, skipped
