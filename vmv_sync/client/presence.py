"""The client's side of awareness: its own state and the table of everyone's states.

The wire format is y-protocols awareness (client id, clock, JSON state or null);
:mod:`vmv_sync.presence` gives the contract's state schema and the pure views.
This module adds what a client needs on top: applying a peer's update by the
shared clock rule (:func:`vmv_sync.presence.supersedes`, the server's too), its
own state with a clock that only grows (a reconnect re-announces the same client
id with the next clock, which every peer accepts), and the participant-level
join/leave diff used for presence events.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from ..presence import PresenceState, online_participants, parse_presence, supersedes
from ..protocol import AwarenessEntry, encode_awareness, encode_awareness_update
from .events import Join, Leave, PresenceEvent

__all__ = ("AwarenessTable", "LocalAwareness", "presence_events")


class AwarenessTable:
    """The latest awareness state of every client, as the server relayed them."""

    def __init__(self) -> None:
        self._clocks: dict[int, int] = {}
        self.raw: dict[int, dict[str, Any]] = {}
        self.states: dict[int, PresenceState] = {}

    def apply(self, entries: Iterable[AwarenessEntry]) -> bool:
        """Apply one awareness update with y-protocols' clock rules; True if anything changed."""
        changed = False
        for entry in entries:
            removing = entry.state is None
            live = entry.client_id in self.raw
            if not supersedes(self._clocks.get(entry.client_id), entry.clock, removal=removing, live=live):
                continue
            self._clocks[entry.client_id] = entry.clock
            if removing:
                if live:
                    del self.raw[entry.client_id]
                    self.states.pop(entry.client_id, None)
                    changed = True
                continue
            assert entry.state is not None
            if self.raw.get(entry.client_id) != entry.state:
                self.raw[entry.client_id] = entry.state
                parsed = parse_presence(entry.state)
                if parsed is None:
                    self.states.pop(entry.client_id, None)
                else:
                    self.states[entry.client_id] = parsed
                changed = True
        return changed

    def clear(self) -> bool:
        """Forget every state (we are offline: we no longer know who is online).

        Clocks are kept, so a stale copy of a state cannot come back later.
        """
        changed = bool(self.raw)
        self.raw.clear()
        self.states.clear()
        return changed

    def online(self) -> dict[str, PresenceState]:
        return online_participants(self.states.values())


def presence_events(
    before: dict[str, PresenceState], after: dict[str, PresenceState]
) -> list[PresenceEvent]:
    """Join/Leave events between two ``online_participants`` views, sorted by id."""
    events: list[PresenceEvent] = []
    for pid in sorted(set(before) | set(after)):
        if pid in after and pid not in before:
            user = after[pid].user
            events.append(Join(pid, user.name, user.role))
        elif pid in before and pid not in after:
            user = before[pid].user
            events.append(Leave(pid, user.name, user.role))
    return events


class LocalAwareness:
    """This client's own awareness state and clock."""

    def __init__(self, client_id: int, state: PresenceState) -> None:
        self.client_id = client_id
        self.state = state
        self.clock = 0

    def update(self, **fields: Any) -> PresenceState:
        """Replace some fields of the state (``dataclasses.replace``); bumps the clock."""
        self.state = replace(self.state, **fields)
        self.clock += 1
        return self.state

    def rekey(self, client_id: int) -> None:
        """Announce under a new client id from now on (after the document was rebuilt)."""
        self.client_id = client_id
        self.clock = 0

    def announce(self) -> bytes:
        """Our state for a new connection: ``online_at`` refreshed, next clock."""
        self.update(online_at=time.time())
        return self.frame()

    def frame(self) -> bytes:
        """The current state as an awareness message (also used to renew it)."""
        text = json.dumps(self.state.to_json(), separators=(",", ":"))
        return encode_awareness(encode_awareness_update([(self.client_id, self.clock, text)]))

    def renew(self) -> bytes:
        """The same state with the next clock: a renewal every peer accepts."""
        self.clock += 1
        return self.frame()

    def removal_frame(self) -> bytes:
        """"I am leaving": a null state with the next clock."""
        self.clock += 1
        return encode_awareness(encode_awareness_update([(self.client_id, self.clock, "null")]))
