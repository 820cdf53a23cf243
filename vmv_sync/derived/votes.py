"""Voting tallies per ballot: counts per option, turnout, winners, open or closed.

Rules (docs/derived-state.md): eligible voters are participants whose role is
``participant`` or ``facilitator``. A vote counts only if its voter is eligible
and it fits the ballot: one option on the ballot for ``single``; for ``multi`` a
list of 1..max_choices distinct options, all on the ballot. Any other vote is
ignored as a whole and counted in ``ignored`` (and in the state's ``skipped``),
because counting half a malformed vote would make turnout and counts disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from vmv_sync.derived.values import round_ratio
from vmv_sync.schema import Ballot, Choice, Participant, WorkshopData

__all__ = ("BallotTally", "ELIGIBLE_ROLES", "tally_votes", "compute_tallies")


ELIGIBLE_ROLES: frozenset[str] = frozenset({"participant", "facilitator"})


@dataclass(frozen=True)
class BallotTally:
    """The result of one ballot.

    Attributes:
        counts: (option, votes) in the ballot's option order.
        voters: eligible participants with a valid vote.
        eligible: participants whose role may vote.
        turnout: voters / eligible, rounded half up to 3 decimals (0.0 if none eligible).
        winners: every option with the highest count, in option order; empty if no votes.
        ignored: votes left out (ineligible voter or not fitting the ballot).
    """

    ballot_id: str
    question: str
    kind: str
    stage: str
    open: bool
    max_choices: int
    counts: tuple[tuple[str, int], ...]
    voters: int
    eligible: int
    turnout: float
    winners: tuple[str, ...]
    ignored: int


def _valid_picks(ballot: Ballot, choice: Choice) -> tuple[str, ...] | None:
    if ballot.kind == "single":
        if isinstance(choice, str) and choice in ballot.options:
            return (choice,)
        return None
    if isinstance(choice, str):
        return None
    picks = set(choice)
    if (
        not choice
        or len(picks) != len(choice)
        or len(picks) > ballot.max_choices
        or not picks <= set(ballot.options)
    ):
        return None
    return tuple(choice)


def _tally_one(
    ballot_id: str, ballot: Ballot, votes: Mapping[str, Choice], eligible: frozenset[str]
) -> BallotTally:
    counts = dict.fromkeys(ballot.options, 0)
    voters = ignored = 0
    for pid in sorted(votes):
        picks = _valid_picks(ballot, votes[pid]) if pid in eligible else None
        if picks is None:
            ignored += 1
            continue
        voters += 1
        for pick in picks:
            counts[pick] += 1
    top = max(counts.values())
    return BallotTally(
        ballot_id=ballot_id,
        question=ballot.question,
        kind=ballot.kind,
        stage=ballot.stage,
        open=ballot.open,
        max_choices=ballot.max_choices,
        counts=tuple((option, counts[option]) for option in ballot.options),
        voters=voters,
        eligible=len(eligible),
        turnout=round_ratio(voters, len(eligible), 3),
        winners=tuple(o for o in ballot.options if top > 0 and counts[o] == top),
        ignored=ignored,
    )


def compute_tallies(
    ballots: Mapping[str, Ballot],
    votes: Mapping[str, Mapping[str, Choice]],
    participants: Mapping[str, Participant],
) -> tuple[dict[str, BallotTally], int]:
    """Tallies keyed by ballot id (sorted), and the number of ignored votes.

    Votes on a ballot id that has no valid ballot are ignored and counted too.
    """
    eligible = frozenset(pid for pid, p in participants.items() if p.role in ELIGIBLE_ROLES)
    tallies = {
        bid: _tally_one(bid, ballots[bid], votes.get(bid, {}), eligible) for bid in sorted(ballots)
    }
    orphaned = sum(len(v) for bid, v in votes.items() if bid not in ballots)
    return tallies, orphaned + sum(t.ignored for t in tallies.values())


def tally_votes(data: WorkshopData) -> dict[str, BallotTally]:
    """Tally every ballot of a workshop, keyed by ballot id in sorted order."""
    return compute_tallies(data.ballots, data.votes, data.participants)[0]
