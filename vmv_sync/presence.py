"""Awareness states of contract section 5, as pure data and pure functions.

An awareness state is a JSON object every client announces about itself:
``{"user": {"id", "name", "color", "role"}, "stage", "online_at", "typing",
"typing_at", "cursor"}``. Peers may be browsers, so the reader here is tolerant:
a state that lacks a participant id is simply not a participant, a malformed
cursor is no cursor, and a typing flag older than :data:`TYPING_STALE_SECONDS`
counts as not typing (a client that vanished never clears its flag).

The functions take ``now`` as an argument instead of reading the clock, so every
view is a deterministic function of (states, now) and tests need no sleeps. Both
the client (views, events) and the server (checks) may use them.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = (
    "TYPING_STALE_SECONDS",
    "TYPING_DEBOUNCE_SECONDS",
    "CURSOR_INTERVAL_SECONDS",
    "Cursor",
    "PresenceUser",
    "PresenceState",
    "parse_presence",
    "color_for",
    "is_typing",
    "online_participants",
    "typing_users",
    "cursors",
    "supersedes",
)

#: A typing flag older than this counts as not typing (contract section 5).
TYPING_STALE_SECONDS = 3.0
#: Clients send typing at most about this often.
TYPING_DEBOUNCE_SECONDS = 0.3
#: Clients send at most one cursor update per this interval (10 per second).
CURSOR_INTERVAL_SECONDS = 0.1

_PALETTE = (
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4",
    "#46f0f0", "#f032e6", "#bcf60c", "#008080", "#9a6324",
)


def color_for(participant_id: str) -> str:
    """A stable colour for a participant (same id -> same colour on every replica)."""
    digest = hashlib.sha256(participant_id.encode("utf-8")).digest()
    return _PALETTE[digest[0] % len(_PALETTE)]


@dataclass(frozen=True, slots=True)
class Cursor:
    """A pointer position on one stage's canvas."""

    x: float
    y: float
    stage: str


@dataclass(frozen=True, slots=True)
class PresenceUser:
    """Who a client says it is (``user`` of the state)."""

    id: str
    name: str
    color: str
    role: str


@dataclass(frozen=True, slots=True)
class PresenceState:
    """One client's awareness state, parsed.

    Example:
        >>> s = parse_presence({"user": {"id": "p1", "name": "Ann"}, "typing": True,
        ...                     "typing_at": 10.0})
        >>> is_typing(s, now=11.0), is_typing(s, now=14.0)
        (True, False)
    """

    user: PresenceUser
    stage: str | None = None
    online_at: float | None = None
    typing: bool = False
    typing_at: float | None = None
    cursor: Cursor | None = None

    def to_json(self) -> dict[str, Any]:
        """The contract's JSON object (key order as in contract section 5)."""
        return {
            "user": {
                "id": self.user.id,
                "name": self.user.name,
                "color": self.user.color,
                "role": self.user.role,
            },
            "stage": self.stage,
            "online_at": self.online_at,
            "typing": self.typing,
            "typing_at": self.typing_at,
            "cursor": (
                None
                if self.cursor is None
                else {"x": self.cursor.x, "y": self.cursor.y, "stage": self.cursor.stage}
            ),
        }


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _text(value: object, default: str = "") -> str:
    return value if isinstance(value, str) else default


def parse_presence(state: Mapping[str, Any] | None) -> PresenceState | None:
    """Parse a JSON awareness state; ``None`` when it names no participant.

    Never raises on peer content: wrong types fall back to "absent".
    """
    if not isinstance(state, Mapping):
        return None
    user = state.get("user")
    if not isinstance(user, Mapping):
        return None
    pid = user.get("id")
    if not isinstance(pid, str) or not pid:
        return None
    cursor = None
    raw = state.get("cursor")
    if isinstance(raw, Mapping):
        x, y = _number(raw.get("x")), _number(raw.get("y"))
        if x is not None and y is not None:
            cursor = Cursor(x, y, _text(raw.get("stage")))
    stage = state.get("stage")
    return PresenceState(
        user=PresenceUser(
            id=pid,
            name=_text(user.get("name"), pid),
            color=_text(user.get("color"), color_for(pid)),
            role=_text(user.get("role"), "participant"),
        ),
        stage=stage if isinstance(stage, str) else None,
        online_at=_number(state.get("online_at")),
        typing=state.get("typing") is True,
        typing_at=_number(state.get("typing_at")),
        cursor=cursor,
    )


def is_typing(state: PresenceState, now: float) -> bool:
    """Typing, and the flag is fresh: set less than 3 s ago (a missing time is stale)."""
    if not state.typing or state.typing_at is None:
        return False
    return now - state.typing_at < TYPING_STALE_SECONDS


def online_participants(states: Iterable[PresenceState]) -> dict[str, PresenceState]:
    """One entry per participant id, however many clients it has.

    With several clients of one participant, the one online longest wins (then the
    lexically smallest name), so the choice does not flicker as states renew.
    """
    chosen: dict[str, PresenceState] = {}
    for state in states:
        pid = state.user.id
        current = chosen.get(pid)
        if current is None or _rank(state) < _rank(current):
            chosen[pid] = state
    return {pid: chosen[pid] for pid in sorted(chosen)}


def _rank(state: PresenceState) -> tuple[float, str]:
    return (state.online_at if state.online_at is not None else math.inf, state.user.name)


def typing_users(
    states: Iterable[PresenceState], now: float, *, exclude: str | None = None
) -> tuple[str, ...]:
    """Participant ids with a fresh typing flag on any of their clients, sorted."""
    return tuple(
        sorted({s.user.id for s in states if s.user.id != exclude and is_typing(s, now)})
    )


def cursors(
    states: Mapping[int, PresenceState], *, exclude_client: int | None = None
) -> dict[int, Cursor]:
    """Awareness client id -> cursor, for every client showing one (per client: two
    windows of one participant have two pointers)."""
    return {
        cid: s.cursor
        for cid, s in sorted(states.items())
        if s.cursor is not None and cid != exclude_client
    }


def supersedes(known_clock: int | None, clock: int, *, removal: bool, live: bool) -> bool:
    """Whether an awareness entry with ``clock`` replaces the one known (y-protocols' rule).

    A newer clock always wins. At the same clock only a removal of a live state
    wins: a peer that saw a state removed by someone else (the server, on a timeout)
    at the clock it knew must accept that removal, while an echo of the same state
    changes nothing. ``known_clock`` is None for a client id never seen. Written
    once, here, because the server's awareness table and every client's must agree
    on it, or a state one side dropped lives on in the other.

    Example:
        >>> supersedes(None, 0, removal=False, live=False), supersedes(3, 3, removal=False, live=True)
        (True, False)
        >>> supersedes(3, 3, removal=True, live=True), supersedes(3, 2, removal=True, live=True)
        (True, False)
    """
    if known_clock is None:
        return True
    return known_clock < clock or (known_clock == clock and removal and live)
