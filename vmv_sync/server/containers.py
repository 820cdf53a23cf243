"""The nested shared types only the server creates, so that no two replicas race to.

Yjs keeps one of two shared types created concurrently under one map key, and
everything written into the other is lost. So a participant's ``selections``,
``matrix`` (Maps) and ``drafts`` (Text) entries, and a ballot's ``votes`` Map, are
created exactly once, by the server: at join and workshop creation, when an
authenticated participant connects while they are missing, and whenever an update
brings a participant entry or a ballot without them (authentication off, or a client
that wrote its entry itself). Clients never create them; an edit made before they
arrive is held as an intent (docs/client.md).
"""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, Map

from ..schema import bind_roots, ensure_participant_entries, participant_entries_missing

__all__ = ("missing_containers", "ensure_for")


def missing_containers(doc: Doc[Any]) -> None:
    """Create every missing participant container and ballot ``votes`` Map (one transaction)."""
    roots = bind_roots(doc)
    for pid in list(roots.participants.keys()):
        if participant_entries_missing(roots, pid):
            ensure_participant_entries(roots, pid)
    for ballot_id in list(roots.ballots.keys()):
        if not isinstance(roots.votes.get(ballot_id), Map):
            roots.votes[ballot_id] = Map()


def ensure_for(pid: str) -> Any:
    """An edit creating ``pid``'s containers if missing (for :meth:`Room.edit`)."""

    def edit(doc: Doc[Any]) -> None:
        roots = bind_roots(doc)
        if participant_entries_missing(roots, pid):
            ensure_participant_entries(roots, pid)

    return edit
