"""Plain, immutable records read out of a workshop document.

The readers in :mod:`vmv_sync.schema.parse` turn shared types into these so that
derived state, the HTTP API and tests work on ordinary Python data that cannot be
mutated behind their back and that compares by value. Dicts in
:class:`WorkshopData` are built in sorted key order, because CRDT map iteration
order is not the same on every replica.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Union

__all__ = (
    "Role",
    "ROLES",
    "BallotKind",
    "BALLOT_KINDS",
    "Choice",
    "Participant",
    "ChatMessage",
    "Ballot",
    "Rating",
    "Progress",
    "WorkshopData",
)

Role = Literal["facilitator", "participant", "observer"]
ROLES: tuple[str, ...] = ("facilitator", "participant", "observer")

BallotKind = Literal["single", "multi"]
BALLOT_KINDS: tuple[str, ...] = ("single", "multi")

#: A vote: one option for a ``single`` ballot, the chosen options for ``multi``.
Choice = Union[str, tuple[str, ...]]


@dataclass(frozen=True)
class Participant:
    """One entry of ``participants``."""

    name: str
    role: str
    joined_at: float


@dataclass(frozen=True)
class ChatMessage:
    """One chat message of ``messages``."""

    id: str
    author: str
    text: str
    sent_at: float
    stage: str
    #: the writer's hybrid logical clock (integer ms), an optional contract v1 extension
    #: that orders the chat (vmv_sync.derived.chat); None for messages written without it
    hlc: int | None = None

    @property
    def clock(self) -> int:
        """The clock the chat is ordered by (vmv_sync.derived.chat): ``hlc``, else ``sent_at`` in ms."""
        if self.hlc is not None:
            return self.hlc
        return min(max(math.floor(self.sent_at * 1000), 0), 2**53 - 1)


@dataclass(frozen=True)
class Ballot:
    """One entry of ``ballots``; ``options`` keeps the facilitator's order."""

    question: str
    options: tuple[str, ...]
    stage: str
    kind: str
    max_choices: int
    open: bool


@dataclass(frozen=True)
class Rating:
    """One participant's matrix rating of one value (both 1..5)."""

    importance: int
    practice: int


@dataclass(frozen=True)
class Progress:
    """One participant's position in the workshop."""

    stage: str
    completed: tuple[str, ...]
    updated_at: float


@dataclass(frozen=True)
class WorkshopData:
    """A tolerant, plain-data snapshot of a whole workshop document.

    ``skipped`` is the number of entries that did not have the contract's shape and
    were left out; ``skipped_by_root`` splits it per root name so that derived state
    can count only the roots it reads.
    """

    meta: dict[str, Any] = field(default_factory=dict)
    participants: dict[str, Participant] = field(default_factory=dict)
    messages: tuple[ChatMessage, ...] = ()
    selections: dict[str, dict[str, float]] = field(default_factory=dict)
    values: tuple[str, ...] = ()
    ballots: dict[str, Ballot] = field(default_factory=dict)
    votes: dict[str, dict[str, Choice]] = field(default_factory=dict)
    matrix: dict[str, dict[str, Rating]] = field(default_factory=dict)
    progress: dict[str, Progress] = field(default_factory=dict)
    drafts: dict[str, str] = field(default_factory=dict)
    mission: str = ""
    vision: str = ""
    skipped: int = 0
    skipped_by_root: dict[str, int] = field(default_factory=dict)
