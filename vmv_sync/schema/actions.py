"""Workshop actions: each one validates, then writes in a single transaction.

One action is one transaction is one Yjs update, so a peer never sees half an
action and the server's ownership guard can judge an update as one unit.
Validation always comes before the first write: pycrdt commits what was written
even when the ``with doc.transaction()`` block raises.

Nested containers (a participant's selections, ratings and draft, a ballot's
votes) are edited key by key, so concurrent edits to different keys merge. They
must exist once: two replicas creating the same one concurrently keep only one,
and whatever was written into the other is lost. The server creates them (at
join, on connection, when an entry arrives without them); the functions here
still create an absent one so that a document built without a server (tests,
tools) works, and the client never calls them while a container is absent: it
holds such an action as an intent until the container arrives (client/intents.py).
``progress[pid]`` is a whole record, written completely by every call, so two
first writes racing leave one complete record (what last-writer-wins would give).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from pycrdt import Doc, Map

from vmv_sync.schema.chatclock import next_clock
from vmv_sync.schema.document import (
    InvalidAction,
    Roots,
    bind_roots,
    ensure_participant_entries,
    new_workshop,
)
from vmv_sync.schema.names import normalize_value_name, tidy_value_name
from vmv_sync.schema.parse import (
    as_int,
    parse_ballot,
    parse_catalogue,
    parse_progress,
)
from vmv_sync.schema.records import BALLOT_KINDS, ROLES, Ballot, Choice
from vmv_sync.schema.stages import STAGES, Stage, is_stage

__all__ = (
    "MAX_MESSAGE_CHARS",
    "InvalidAction",
    "add_participant",
    "start_workshop",
    "post_message",
    "toggle_value",
    "select_value",
    "deselect_value",
    "set_catalogue",
    "open_ballot",
    "close_ballot",
    "cast_vote",
    "retract_vote",
    "rate_value",
    "set_progress",
    "set_stage",
)


Target = Doc[Any] | Roots

#: The longest chat message, in characters (the page's chat box holds the same limit):
#: a message always fits in one update far under the server's message limit.
MAX_MESSAGE_CHARS = 4_000


def _now(now: float | None) -> float:
    return time.time() if now is None else float(now)


def _require_id(kind: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidAction(f"{kind} must be a non-empty string, not {value!r}")
    return value


def _require_stage(stage: object) -> str:
    if not is_stage(stage):
        raise InvalidAction(f"unknown stage {stage!r}: expected one of {', '.join(STAGES)}")
    return str(Stage(stage).value)


def _require_value_name(value: object) -> str:
    if not isinstance(value, str) or not normalize_value_name(value):
        raise InvalidAction(f"a value name must be a non-blank string, not {value!r}")
    return tidy_value_name(value)


def _inner_map(parent: Map[Any], key: str) -> Map[Any]:
    """The Map at ``parent[key]``, created only if absent (or not a Map)."""
    inner = parent.get(key)
    if not isinstance(inner, Map):
        inner = Map()
        parent[key] = inner
        inner = parent[key]
    return inner


def _matching_keys(inner: Map[Any], value: str) -> list[str]:
    key = normalize_value_name(value)
    return sorted(k for k in inner.keys() if normalize_value_name(k) == key)


def add_participant(
    doc: Target,
    pid: str,
    name: str,
    role: str = "participant",
    now: float | None = None,
    *,
    containers: bool = True,
) -> None:
    """Add a participant, or update the name and role of an existing one (keeping joined_at).

    With ``containers`` (the server's call) it also creates the participant's empty
    selections and matrix Maps and draft Text, so that its later edits from several
    devices merge (see :func:`~vmv_sync.schema.document.ensure_participant_entries`).
    Clients pass ``containers=False``: a replica that has not synced yet cannot know
    whether the server already created them, and two concurrent creations lose
    whatever was written into one of them; the server adds them when the entry arrives.
    """
    _require_id("participant id", pid)
    if not isinstance(name, str):
        raise InvalidAction(f"participant name must be a string, not {name!r}")
    if role not in ROLES:
        raise InvalidAction(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
    roots = bind_roots(doc)
    with roots.doc.transaction():
        existing = roots.participants.get(pid)
        if isinstance(existing, Map) and "joined_at" in existing:
            existing["name"] = name
            existing["role"] = role
        else:
            roots.participants[pid] = Map({"name": name, "role": role, "joined_at": _now(now)})
        if containers:
            ensure_participant_entries(roots, pid)


def start_workshop(
    doc: Target,
    *,
    title: str,
    facilitator_id: str,
    facilitator_name: str,
    values: Sequence[str] = (),
    max_values: int = 10,
    now: float | None = None,
) -> None:
    """Write a new workshop's meta, facilitator entry and catalogue, without containers.

    :func:`~vmv_sync.schema.document.new_workshop` for a client: the facilitator's
    ``selections``/``matrix``/``drafts`` containers are left to the server, which
    creates them when the entry arrives (see :func:`add_participant`). Validates exactly
    like ``new_workshop``.
    """
    new_workshop(
        bind_roots(doc).doc, title=title, facilitator_id=facilitator_id, facilitator_name=facilitator_name,
        values=values, max_values=max_values, now=now, containers=False,
    )  # fmt: skip


def post_message(
    doc: Target,
    author: str,
    text: str,
    *,
    stage: str | None = None,
    message_id: str | None = None,
    now: float | None = None,
) -> str:
    """Append a chat message and return its id (a uuid4 hex unless given).

    ``stage`` defaults to the workshop's current stage (``values-select`` if unset).
    The message carries ``hlc``, a hybrid logical clock in ms: the wall clock, or one
    more than the largest clock among the messages this replica holds, whichever is
    larger, so it sorts after everything its writer saw (vmv_sync.derived.chat).
    """
    _require_id("author", author)
    if not isinstance(text, str):
        raise InvalidAction(f"message text must be a string, not {text!r}")
    if len(text) > MAX_MESSAGE_CHARS:
        raise InvalidAction(
            f"a chat message may hold {MAX_MESSAGE_CHARS} characters, not {len(text)}; split it or shorten it"
        )
    mid = uuid.uuid4().hex if message_id is None else _require_id("message id", message_id)
    roots = bind_roots(doc)
    with roots.doc.transaction():
        if stage is None:
            current = roots.meta.get("stage")
            stage = str(current) if is_stage(current) else Stage.VALUES_SELECT.value
        msg_stage = _require_stage(stage)
        sent_at = _now(now)
        hlc = next_clock(roots.messages, sent_at)
        roots.messages.append(
            Map(
                {
                    "id": mid,
                    "author": author,
                    "text": text,
                    "sent_at": sent_at,
                    "stage": msg_stage,
                    "hlc": float(hlc),  # a float: JavaScript reads a large int as a BigInt
                }
            )
        )
    return mid


def toggle_value(doc: Target, pid: str, value: str, now: float | None = None) -> bool:
    """Select ``value`` for ``pid`` if not selected, else deselect it; return whether selected.

    "Selected" compares names after normalisation, so toggling "honesty" removes a
    selected "Honesty" (every spelling of it).
    """
    _require_id("participant id", pid)
    name = _require_value_name(value)
    roots = bind_roots(doc)
    with roots.doc.transaction():
        inner = _inner_map(roots.selections, pid)
        matches = _matching_keys(inner, name)
        for key in matches:
            del inner[key]
        if not matches:
            inner[name] = _now(now)
    return not matches


def select_value(doc: Target, pid: str, value: str, now: float | None = None) -> None:
    """Select ``value`` for ``pid``; nothing happens if any spelling of it is selected."""
    _require_id("participant id", pid)
    name = _require_value_name(value)
    roots = bind_roots(doc)
    with roots.doc.transaction():
        inner = _inner_map(roots.selections, pid)
        if not _matching_keys(inner, name):
            inner[name] = _now(now)


def deselect_value(doc: Target, pid: str, value: str) -> None:
    """Deselect every spelling of ``value`` for ``pid``; nothing happens if none is selected."""
    _require_id("participant id", pid)
    name = _require_value_name(value)
    roots = bind_roots(doc)
    with roots.doc.transaction():
        inner = roots.selections.get(pid)
        if isinstance(inner, Map):
            for key in _matching_keys(inner, name):
                del inner[key]


def set_catalogue(doc: Target, values: Sequence[str]) -> None:
    """Replace the catalogue of values offered to pick from."""
    catalogue, bad = parse_catalogue(values)
    if bad or isinstance(values, str):
        raise InvalidAction("catalogue values must be a sequence of non-blank strings")
    roots = bind_roots(doc)
    with roots.doc.transaction():
        roots.values.clear()
        if catalogue:
            roots.values.extend(list(catalogue))


def open_ballot(
    doc: Target,
    ballot_id: str,
    question: str,
    options: Sequence[str],
    *,
    stage: str,
    kind: str = "single",
    max_choices: int = 1,
) -> None:
    """Open a new ballot; ``single`` allows one option, ``multi`` up to ``max_choices``."""
    _require_id("ballot id", ballot_id)
    if not isinstance(question, str) or not question.strip():
        raise InvalidAction("a ballot needs a non-empty question")
    opts = list(options) if not isinstance(options, str) else []
    if not opts or not all(isinstance(o, str) and o for o in opts) or len(set(opts)) != len(opts):
        raise InvalidAction("ballot options must be distinct non-empty strings, at least one")
    if kind not in BALLOT_KINDS:
        raise InvalidAction(f"unknown ballot kind {kind!r}: expected single or multi")
    limit = as_int(max_choices)
    if limit is None or not 1 <= limit <= len(opts) or (kind == "single" and limit != 1):
        raise InvalidAction(
            f"max_choices {max_choices!r} must be 1 for single, 1..{len(opts)} for multi"
        )
    ballot_stage = _require_stage(stage)
    roots = bind_roots(doc)
    with roots.doc.transaction():
        if ballot_id in roots.ballots:
            raise InvalidAction(f"ballot {ballot_id!r} already exists")
        roots.ballots[ballot_id] = Map(
            {
                "question": question,
                "options": opts,
                "stage": ballot_stage,
                "kind": kind,
                "max_choices": limit,
                "open": True,
            }
        )
        # Created with the ballot so that concurrent first votes land in one shared
        # Map instead of racing to create it (Yjs would keep only one of them).
        if not isinstance(roots.votes.get(ballot_id), Map):
            roots.votes[ballot_id] = Map()


def _ballot(roots: Roots, ballot_id: str) -> Ballot:
    ballot, _ = parse_ballot(roots.ballots.get(ballot_id))
    if ballot is None:
        raise InvalidAction(f"no valid ballot {ballot_id!r}")
    return ballot


def close_ballot(doc: Target, ballot_id: str) -> None:
    """Close a ballot; votes stay and the tally keeps counting them."""
    _require_id("ballot id", ballot_id)
    roots = bind_roots(doc)
    with roots.doc.transaction():
        _ballot(roots, ballot_id)
        roots.ballots[ballot_id]["open"] = False


def cast_vote(doc: Target, ballot_id: str, pid: str, choice: Choice | list[str]) -> None:
    """Record (or replace) ``pid``'s vote on an open ballot.

    ``choice`` is one option for a ``single`` ballot, a list of distinct options (at
    least one, at most ``max_choices``) for ``multi``.
    """
    _require_id("ballot id", ballot_id)
    _require_id("participant id", pid)
    roots = bind_roots(doc)
    with roots.doc.transaction():
        ballot = _ballot(roots, ballot_id)
        if not ballot.open:
            raise InvalidAction(f"ballot {ballot_id!r} is closed")
        stored: str | list[str]
        if ballot.kind == "single":
            if not isinstance(choice, str) or choice not in ballot.options:
                raise InvalidAction(
                    f"vote {choice!r} is not one option of {list(ballot.options)!r}"
                )
            stored = choice
        else:
            picks = list(choice) if isinstance(choice, (list, tuple)) else None
            if (
                not picks
                or not all(isinstance(p, str) and p in ballot.options for p in picks)
                or len(set(picks)) != len(picks)
                or len(picks) > ballot.max_choices
            ):
                raise InvalidAction(
                    f"vote {choice!r} must be 1..{ballot.max_choices} distinct options"
                    f" of {list(ballot.options)!r}"
                )
            stored = picks
        _inner_map(roots.votes, ballot_id)[pid] = stored


def retract_vote(doc: Target, ballot_id: str, pid: str) -> None:
    """Remove ``pid``'s vote on an open ballot, if any."""
    roots = bind_roots(doc)
    with roots.doc.transaction():
        if not _ballot(roots, ballot_id).open:
            raise InvalidAction(f"ballot {ballot_id!r} is closed")
        inner = roots.votes.get(ballot_id)
        if isinstance(inner, Map) and pid in inner:
            del inner[pid]


def rate_value(doc: Target, pid: str, value: str, importance: int, practice: int) -> None:
    """Rate how important ``value`` is and how well it is practised, both 1..5.

    An existing rating of any spelling of the value is replaced, keeping its key.
    """
    _require_id("participant id", pid)
    name = _require_value_name(value)
    scores = (as_int(importance), as_int(practice))
    if any(s is None or not 1 <= s <= 5 for s in scores):
        raise InvalidAction(
            f"importance and practice must be ints 1..5, not {importance!r}, {practice!r}"
        )
    roots = bind_roots(doc)
    with roots.doc.transaction():
        inner = _inner_map(roots.matrix, pid)
        matches = _matching_keys(inner, name)
        key = matches[0] if matches else name
        for extra in matches[1:]:
            del inner[extra]
        inner[key] = {"importance": scores[0], "practice": scores[1]}


def set_progress(
    doc: Target,
    pid: str,
    stage: str,
    completed: Sequence[str] | None = None,
    now: float | None = None,
) -> None:
    """Set ``pid``'s current stage; ``completed`` None keeps the stages already completed."""
    _require_id("participant id", pid)
    current = _require_stage(stage)
    done: list[str] | None = None
    if completed is not None:
        given = [_require_stage(s) for s in completed]
        done = [s for s in STAGES if s in given]
    roots = bind_roots(doc)
    with roots.doc.transaction():
        existing = roots.progress.get(pid)
        if done is None:
            previous, _ = parse_progress(existing)
            done = list(previous.completed) if previous is not None else []
        fields = {"stage": current, "completed": done, "updated_at": _now(now)}
        if isinstance(existing, Map):
            existing.update(fields)
        else:
            roots.progress[pid] = Map(fields)


def set_stage(doc: Target, stage: str) -> None:
    """Move the workshop to ``stage`` (any stage, forwards or back: the facilitator decides)."""
    name = _require_stage(stage)
    roots = bind_roots(doc)
    with roots.doc.transaction():
        roots.meta["stage"] = name
