"""The workshop document of contract section 3: its roots, creation and a tolerant reader.

Every replica (browser, Python client, server) must reach the same root objects
under the same names with the same Yjs types, so they are listed once here.
``bind_roots`` uses ``doc.get(name, type=...)``, which creates a missing root and
types one that arrived untyped from a peer, so it works on an empty doc, on a doc
built from a stored update, and before any peer has written anything.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pycrdt import Array, Doc, Map, Text

from vmv_sync.errors import VmvSyncError
from vmv_sync.schema.parse import (
    parse_ballot,
    parse_ballot_votes,
    parse_catalogue,
    parse_chat_message,
    parse_keyed,
    parse_meta,
    parse_participant,
    parse_progress,
    parse_ratings,
    parse_selection,
    parse_text,
)
from vmv_sync.schema.records import ChatMessage, WorkshopData
from vmv_sync.schema.stages import Stage

__all__ = (
    "InvalidAction",
    "ROOTS",
    "SCHEMA_VERSION",
    "Roots",
    "bind_roots",
    "ensure_participant_entries",
    "participant_entries_missing",
    "new_workshop",
    "read_workshop",
)

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1


class InvalidAction(VmvSyncError, ValueError):
    """A workshop action refused before it wrote anything (bad argument or state).

    Actions validate first and write after, because a pycrdt transaction commits
    whatever was written even when the ``with`` block raises.
    """

#: Root name -> pycrdt type, in contract order.
ROOTS: Mapping[str, type[Map[Any] | Array[Any] | Text]] = {
    "meta": Map,
    "participants": Map,
    "messages": Array,
    "selections": Map,
    "values": Array,
    "ballots": Map,
    "votes": Map,
    "matrix": Map,
    "progress": Map,
    "drafts": Map,
    "mission": Text,
    "vision": Text,
}


@dataclass(frozen=True)
class Roots:
    """The twelve root shared types of one workshop document, bound once.

    Keep this object alive while observing: pycrdt drops a subscription together
    with the Python wrapper it was made on.
    """

    doc: Doc[Any]
    meta: Map[Any]
    participants: Map[Any]
    messages: Array[Any]
    selections: Map[Any]
    values: Array[Any]
    ballots: Map[Any]
    votes: Map[Any]
    matrix: Map[Any]
    progress: Map[Any]
    drafts: Map[Any]
    mission: Text
    vision: Text

    def by_name(self) -> dict[str, Map[Any] | Array[Any] | Text]:
        """The roots keyed by their contract names, in contract order."""
        return {name: getattr(self, name) for name in ROOTS}


def bind_roots(doc: Doc[Any] | Roots) -> Roots:
    """Get (creating if needed) every root of ``doc`` with its contract type.

    Creating a root writes nothing to the document's update stream, so this is safe
    on a fresh doc that will later receive a peer's state.

    Example:
        >>> roots = bind_roots(Doc())
        >>> roots.meta.to_py()
        {}
    """
    if isinstance(doc, Roots):
        return doc
    with doc.transaction():
        bound = {name: doc.get(name, type=kind) for name, kind in ROOTS.items()}
    return Roots(doc=doc, **bound)


def new_workshop(
    doc: Doc[Any],
    *,
    title: str,
    facilitator_id: str,
    facilitator_name: str,
    values: Iterable[str] = (),
    max_values: int = 10,
    now: float | None = None,
    containers: bool = True,
) -> Roots:
    """Write a new workshop's meta, its facilitator and its value catalogue in one update.

    ``containers`` also creates the facilitator's ``selections``/``matrix``/``drafts``:
    the server does (it is the only creator of containers); a client passes False.

    Example:
        >>> doc = Doc()
        >>> _ = new_workshop(doc, title="Team", facilitator_id="f1", facilitator_name="Fay")
        >>> read_workshop(doc).meta["stage"]
        'values-select'
    """
    if not isinstance(title, str) or not title.strip():
        raise InvalidAction("a workshop needs a non-empty title")
    if not isinstance(facilitator_id, str) or not facilitator_id:
        raise InvalidAction("a workshop needs a non-empty facilitator id")
    if isinstance(max_values, bool) or not isinstance(max_values, int) or max_values < 1:
        raise InvalidAction(f"max_values must be a positive int, not {max_values!r}")
    catalogue, bad = parse_catalogue(values)
    if bad:
        raise InvalidAction("catalogue values must be non-blank strings")
    stamp = time.time() if now is None else float(now)
    roots = bind_roots(doc)
    with doc.transaction():
        roots.meta.update(
            {
                "title": title,
                "created_at": stamp,
                "schema": SCHEMA_VERSION,
                "stage": Stage.VALUES_SELECT.value,
                "facilitator": facilitator_id,
                "max_values": max_values,
            }
        )
        roots.participants[facilitator_id] = Map(
            {"name": facilitator_name, "role": "facilitator", "joined_at": stamp}
        )
        if containers:
            ensure_participant_entries(roots, facilitator_id)
        if catalogue:
            roots.values.extend(list(catalogue))
    logger.debug("new workshop %r with %d catalogue values", title, len(catalogue))
    return roots


def ensure_participant_entries(roots: Roots, pid: str) -> None:
    """Create ``pid``'s empty ``selections`` and ``matrix`` Maps and ``drafts`` Text if absent.

    Why: when two replicas concurrently create the same nested Map (say the first
    selection of one participant on two devices), Yjs keeps only one of them and
    every key written into the other is lost. Creating the containers once, when
    the participant joins, means later edits only set keys inside a shared Map,
    which merge. (``progress`` is not pre-created: an empty entry would be
    malformed; its fields are set together anyway.)
    """
    if not isinstance(roots.selections.get(pid), Map):
        roots.selections[pid] = Map()
    if not isinstance(roots.matrix.get(pid), Map):
        roots.matrix[pid] = Map()
    if not isinstance(roots.drafts.get(pid), Text):
        roots.drafts[pid] = Text()


def participant_entries_missing(roots: Roots, pid: str) -> bool:
    """Whether any of ``pid``'s containers (see :func:`ensure_participant_entries`) is absent."""
    return (
        not isinstance(roots.selections.get(pid), Map)
        or not isinstance(roots.matrix.get(pid), Map)
        or not isinstance(roots.drafts.get(pid), Text)
    )


def _read_messages(messages: Array[Any]) -> tuple[tuple[ChatMessage, ...], int]:
    """Messages in array order; a repeated id keeps its first message and counts the rest."""
    kept: list[ChatMessage] = []
    seen: set[str] = set()
    skipped = 0
    # One pass in yrs: indexing an Array walks it from the start, so iterating one
    # (pycrdt's iterator indexes) is quadratic: 72k messages took 26.5 s to export
    # (issue 19, finding 5). Each message comes back as a dict of its fields.
    for item in json.loads(str(messages)) if len(messages) else ():
        message, _ = parse_chat_message(item)
        if message is None or message.id in seen:
            skipped += 1
            continue
        seen.add(message.id)
        kept.append(message)
    return tuple(kept), skipped


def read_workshop(doc: Doc[Any] | Roots) -> WorkshopData:
    """Read the whole document into plain data, skipping and counting malformed entries.

    Never raises on document content, and works on an empty doc. Dicts are in sorted
    key order and lists in array order, so equal documents give equal results.

    Example:
        >>> read_workshop(Doc()).skipped
        0
    """
    roots = bind_roots(doc)
    with roots.doc.transaction():
        meta, s_meta = parse_meta(roots.meta)
        participants, s_participants = parse_keyed(roots.participants, parse_participant)
        messages, s_messages = _read_messages(roots.messages)
        selections, s_selections = parse_keyed(roots.selections, parse_selection)
        values, s_values = parse_catalogue(roots.values)
        ballots, s_ballots = parse_keyed(roots.ballots, parse_ballot)
        votes, s_votes = parse_keyed(roots.votes, parse_ballot_votes)
        matrix, s_matrix = parse_keyed(roots.matrix, parse_ratings)
        progress, s_progress = parse_keyed(roots.progress, parse_progress)
        drafts, s_drafts = parse_keyed(roots.drafts, parse_text)
        mission, vision = str(roots.mission), str(roots.vision)
    skipped_by_root = {
        "meta": s_meta,
        "participants": s_participants,
        "messages": s_messages,
        "selections": s_selections,
        "values": s_values,
        "ballots": s_ballots,
        "votes": s_votes,
        "matrix": s_matrix,
        "progress": s_progress,
        "drafts": s_drafts,
        "mission": 0,
        "vision": 0,
    }
    total = sum(skipped_by_root.values())
    if total:
        logger.debug("read_workshop skipped %d malformed entries: %r", total, skipped_by_root)
    return WorkshopData(
        meta=meta,
        participants=participants,
        messages=messages,
        selections=selections,
        values=values,
        ballots=ballots,
        votes=votes,
        matrix=matrix,
        progress=progress,
        drafts=drafts,
        mission=mission,
        vision=vision,
        skipped=total,
        skipped_by_root=skipped_by_root,
    )
