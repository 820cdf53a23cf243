"""Who may write what (contract section 3, "Ownership"), as data and pure functions.

The server's write guard turns the deep events of an incoming update into
:class:`Change` records and asks :func:`check_change` about each; the first
refusal refuses the whole update. Kept here, beside the document model, so the
rules read as one table and tests can call them without a server.

Rules, by root, for a principal with participant id ``pid``:

| root | participant | facilitator |
| --- | --- | --- |
| meta, values, ballots | no | yes |
| participants | only its own entry; never its `role`; never delete it | any entry |
| selections, matrix, progress, drafts | only key `pid` and below | same as participant |
| votes | only `votes/<ballot>/<pid>` | also the ballot Maps |
| messages | append Maps with `author == pid`; no edit, no delete | same |
| mission, vision | yes | yes |
| any other root | no | yes |

An observer writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .document import ROOTS

__all__ = ("Change", "check_change", "OWNED_ROOTS", "FACILITATOR_ROOTS", "SHARED_ROOTS")

OWNED_ROOTS = frozenset({"selections", "matrix", "progress", "drafts"})
FACILITATOR_ROOTS = frozenset({"meta", "values", "ballots"})
SHARED_ROOTS = frozenset({"mission", "vision"})


@dataclass(frozen=True)
class Change:
    """One changed shared type, as a deep event reports it."""

    root: str
    #: keys / indices from the root down to the changed type
    path: tuple[str | int, ...]
    kind: Literal["map", "array", "text"]
    #: map events: key -> new value (None when deleted)
    keys: dict[str, Any] = field(default_factory=dict)
    #: map events: keys deleted
    deleted_keys: frozenset[str] = frozenset()
    #: array events: inserted values (live pycrdt objects or plain values)
    inserted: tuple[Any, ...] = ()
    #: array / text events: number of deleted elements
    deleted: int = 0


def check_change(change: Change, pid: str | None, role: str | None) -> str | None:
    """Why ``change`` is not allowed for this principal, or None when it is."""
    if role == "observer":
        return "observers cannot change the workshop"
    root = change.root
    facilitator = role == "facilitator"
    if root not in ROOTS:
        return None if facilitator else f"only the facilitator may write the root {root!r}"
    if root in SHARED_ROOTS:
        return None
    if root in FACILITATOR_ROOTS:
        return None if facilitator else f"only the facilitator may change {root}"
    if root == "messages":
        return _check_messages(change, pid)
    if root == "participants":
        return None if facilitator else _check_participants(change, pid, role)
    if root == "votes":
        return _check_votes(change, pid, facilitator)
    if root in OWNED_ROOTS:
        return _check_owned(change, pid)
    return f"unknown root {root!r}"  # pragma: no cover - ROOTS is exhaustive


def _touched_keys(change: Change) -> set[str]:
    return set(change.keys) | set(change.deleted_keys)


def _check_owned(change: Change, pid: str | None) -> str | None:
    if change.path:
        if change.path[0] != pid:
            return f"{change.root} of another participant cannot be changed"
        return None
    others = _touched_keys(change) - {pid}
    if others:
        return f"{change.root} of another participant cannot be changed"
    return None


def _check_votes(change: Change, pid: str | None, facilitator: bool) -> str | None:
    if not change.path:
        return None if facilitator else "only the facilitator may create or remove ballots' votes"
    if len(change.path) == 1:
        if _touched_keys(change) - {pid}:
            return "a vote of another participant cannot be changed"
        return None
    return "votes are plain values; nested changes are not allowed"


def _check_participants(change: Change, pid: str | None, role: str | None) -> str | None:
    if not change.path:
        if _touched_keys(change) - {pid}:
            return "another participant's entry cannot be changed"
        if change.deleted_keys:
            return "a participant cannot remove its own entry"
        new = change.keys.get(pid) if pid is not None else None
        if new is not None and _field(new, "role") != role:
            return "a participant cannot give itself another role"
        return None
    if change.path[0] != pid:
        return "another participant's entry cannot be changed"
    if len(change.path) == 1 and "role" in _touched_keys(change):
        if "role" in change.deleted_keys or change.keys.get("role") != role:
            return "a participant cannot change its own role"
    return None


def _check_messages(change: Change, pid: str | None) -> str | None:
    if change.path:
        return "messages cannot be edited once posted"
    if change.deleted:
        return "messages cannot be deleted"
    for item in change.inserted:
        if _field(item, "author") != pid:
            return "a message must be posted with its sender as author"
    return None


def _field(value: Any, key: str) -> Any:
    try:
        return value.get(key)
    except (AttributeError, TypeError):
        return None
