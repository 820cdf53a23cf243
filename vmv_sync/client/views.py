"""Read-only views of the replica and of presence: the seed hook's state, in Python.

Document views read plain data (:func:`vmv_sync.schema.read_workshop`), cached
until the next update, and derived state from a live
:class:`~vmv_sync.derived.DerivedTracker`, which recomputes only what an update
touched. Presence views are functions of the awareness table and the wall clock,
so a typing flag turns stale by itself 3 s after it was set.
"""

from __future__ import annotations

import time

from ..derived import BallotTally, DerivedState, ValueStat
from ..derived.chat import ordered_messages
from ..presence import Cursor, PresenceState, cursors, typing_users
from ..schema import ChatMessage, Participant, Progress, WorkshopData
from .document import LiveDocument
from .presence import AwarenessTable

__all__ = ("WorkshopViews",)


class WorkshopViews:
    """The client's read-only properties, over the two objects the client composes.

    A stateless base of :class:`~vmv_sync.client.WorkshopClient`: it reads only the
    public face of its :class:`~vmv_sync.client.document.LiveDocument`
    (``_document``) and of its :class:`~vmv_sync.client.presence.AwarenessTable`
    (``_peers``), plus ``participant_id``; it owns no state and writes nothing. A
    base rather than forty forwarding properties on the client, so that the public
    surface stays the one object docs/client.md describes.
    """

    participant_id: str
    _document: LiveDocument
    _peers: AwarenessTable

    # -- document ----------------------------------------------------------------

    @property
    def data(self) -> WorkshopData:
        """The whole workshop as plain data (cached until the next update).

        A full read: in a workshop with thousands of messages prefer the narrower
        views (:attr:`messages` is maintained incrementally).
        """
        return self._document.data

    @property
    def derived(self) -> DerivedState:
        """Value stats, tallies, stage counts and matrix summary (contract section 4)."""
        return self._document.derived

    @property
    def title(self) -> str | None:
        title = self.data.meta.get("title")
        return title if isinstance(title, str) else None

    @property
    def stage(self) -> str | None:
        """The workshop's current stage (``meta.stage``), if set."""
        stage = self.data.meta.get("stage")
        return stage if isinstance(stage, str) else None

    @property
    def messages(self) -> tuple[ChatMessage, ...]:
        """Chat messages in display order (vmv_sync.derived.chat; the log is kept current incrementally)."""
        return ordered_messages(self._document.messages)

    @property
    def participants(self) -> dict[str, Participant]:
        return self.data.participants

    @property
    def participants_by_stage(self) -> dict[str, int]:
        """Stage name -> number of participants whose progress is at that stage."""
        return self.derived.stages

    @property
    def value_stats(self) -> tuple[ValueStat, ...]:
        return self.derived.values

    @property
    def voting_stats(self) -> dict[str, BallotTally]:
        """Ballot id -> tally."""
        return self.derived.ballots

    @property
    def stage_progress(self) -> dict[str, Progress]:
        """Participant id -> where that participant is in the workshop."""
        return self.data.progress

    @property
    def selections(self) -> dict[str, dict[str, float]]:
        return self.data.selections

    @property
    def my_values(self) -> tuple[str, ...]:
        """The values this participant selected, sorted."""
        return tuple(sorted(self.data.selections.get(self.participant_id, {})))

    @property
    def mission(self) -> str:
        return self.data.mission

    @property
    def vision(self) -> str:
        return self.data.vision

    @property
    def drafts(self) -> dict[str, str]:
        return self.data.drafts

    # -- presence ------------------------------------------------------------------

    @property
    def presence(self) -> dict[int, PresenceState]:
        """Awareness client id -> parsed state, for every live client (this one included)."""
        return dict(self._peers.states)

    @property
    def online_participants(self) -> dict[str, PresenceState]:
        """Participant id -> presence, one entry per participant however many clients.

        What the server relayed: this client's own participant appears once its state
        came back from the server, and the view is empty while offline.
        """
        return self._peers.online()

    @property
    def typing_users(self) -> tuple[str, ...]:
        """Other participants typing now (flags older than 3 s ignored), sorted."""
        return typing_users(self._peers.states.values(), time.time(), exclude=self.participant_id)

    @property
    def cursors(self) -> dict[int, Cursor]:
        """Awareness client id -> cursor, for every other client showing one."""
        return cursors(self._peers.states, exclude_client=self._document.doc.client_id)

    def cursor_of(self, participant_id: str) -> Cursor | None:
        """The cursor of one participant (its most recently online client showing one)."""
        found = [
            (s.online_at or 0.0, cid, s.cursor)
            for cid, s in self._peers.states.items()
            if s.user.id == participant_id and s.cursor is not None
        ]
        return max(found, key=lambda t: (t[0], t[1]))[2] if found else None
