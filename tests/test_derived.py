"""Tests of vmv_sync.derived with hand-computed expected numbers."""

from __future__ import annotations

import json
import unicodedata
from fractions import Fraction
from typing import Any

import pytest
from pycrdt import Doc, Map

import vmv_sync.derived as derived
import vmv_sync.schema as schema
from vmv_sync.derived import (
    BallotTally,
    DerivedTracker,
    MatrixRow,
    ValueStat,
    compute_state,
    matrix_summary,
    participants_by_stage,
    round_fraction,
    round_ratio,
    tally_votes,
    value_stats,
)
from vmv_sync.schema import Ballot, Participant, Progress, Rating, WorkshopData, bind_roots

NFD_CAFE = unicodedata.normalize("NFD", "café")


def people(**roles: str) -> dict[str, Participant]:
    return {pid: Participant(pid.title(), role, 1.0) for pid, role in sorted(roles.items())}


def test_all_matches_module_contents() -> None:
    public = {n for n in dir(derived) if not n.startswith("_")}
    submodules = {"matrix", "progress", "state", "values", "votes", "chat", "annotations"}
    assert set(derived.__all__) == public - submodules


def test_rounding_is_exact_half_up() -> None:
    assert round_ratio(100, 16, 1) == 6.3  # 6.25: half up, where round() would give 6.2
    assert round_ratio(200, 3, 1) == 66.7
    assert round_ratio(1, 8, 2) == 0.13
    assert round_ratio(2, 3, 3) == 0.667
    assert round_ratio(1, 0, 3) == 0.0
    assert round_fraction(Fraction(-1, 8), 2) == -0.13


# --- value stats -----------------------------------------------------------------------


def test_value_stats_normalizes_and_counts() -> None:
    data = WorkshopData(
        values=("Honesty", "Trust", "Care"),
        selections={
            "p1": {"  Honesty": 1.0, "Trust": 1.0},
            "p2": {"honesty": 1.0, "Growth": 1.0},
            "p3": {"HONESTY": 1.0},
            "p4": {},  # selected nothing: not in the percentage base
        },
    )
    assert value_stats(data) == (
        ValueStat("Honesty", "honesty", 3, 100.0, ("p1", "p2", "p3")),
        ValueStat("Growth", "growth", 1, 33.3, ("p2",)),
        ValueStat("Trust", "trust", 1, 33.3, ("p1",)),
        ValueStat("Care", "care", 0, 0.0, ()),
    )


def test_value_stats_nfc_nfd_and_display_tie_break() -> None:
    data = WorkshopData(
        selections={
            "p1": {"Café": 1.0, "kindness": 1.0},
            "p2": {NFD_CAFE: 1.0, "kindness": 1.0},
            "p3": {"Kindness": 1.0, "kindness ": 1.0},  # two spellings, one participant
        }
    )
    assert value_stats(data) == (
        # "kindness" used by 3 participants, "Kindness" by 1: most used wins
        ValueStat("kindness", "kindness", 3, 100.0, ("p1", "p2", "p3")),
        # "Café" and "café" by 1 each: the smallest code point wins
        ValueStat("Café", "café", 2, 66.7, ("p1", "p2")),
    )


def test_value_stats_empty() -> None:
    assert value_stats(WorkshopData()) == ()


# --- votes -----------------------------------------------------------------------------


def test_tally_single_with_ignored_votes() -> None:
    data = WorkshopData(
        participants=people(f="facilitator", p1="participant", p2="participant", p3="participant", o="observer"),
        ballots={"b": Ballot("Which?", ("A", "B", "C"), "values-collective", "single", 1, True)},
        votes={"b": {"p1": "A", "p2": "B", "p3": "A", "o": "A", "x": "B", "f": "D"}},
    )
    assert tally_votes(data) == {
        "b": BallotTally(
            ballot_id="b", question="Which?", kind="single", stage="values-collective", open=True,
            max_choices=1, counts=(("A", 2), ("B", 1), ("C", 0)), voters=3, eligible=4,
            turnout=0.75, winners=("A",), ignored=3,
        )
    }  # fmt: skip
    # observer, unknown voter and off-ballot option are ignored and counted
    assert compute_state(data).skipped == 3


def test_tally_multi_tie_and_limits() -> None:
    data = WorkshopData(
        participants=people(f="facilitator", p1="participant", p2="participant"),
        ballots={
            "m": Ballot("Pick two", ("A", "B", "C"), "vision", "multi", 2, False),
            "s": Ballot("One", ("Y", "N"), "vision", "single", 1, True),
        },
        votes={
            "m": {"p1": ("A", "B"), "p2": ("C", "B"), "f": ("A", "B", "C")},
            "s": {"p1": ("Y",)},  # a list on a single ballot: ignored
            "gone": {"p1": "A"},  # no such ballot: ignored
        },
    )
    tallies = tally_votes(data)
    assert list(tallies) == ["m", "s"]
    m, s = tallies["m"], tallies["s"]
    assert m.counts == (("A", 1), ("B", 2), ("C", 1))
    assert (m.voters, m.eligible, m.turnout, m.winners, m.ignored, m.open) == (2, 3, 0.667, ("B",), 1, False)
    assert (s.counts, s.voters, s.turnout, s.winners, s.ignored) == ((("Y", 0), ("N", 0)), 0, 0.0, (), 1)
    assert compute_state(data).skipped == 3

    tie = WorkshopData(
        participants=people(p1="participant", p2="participant"),
        ballots={"t": Ballot("Tie", ("A", "B", "C"), "vision", "single", 1, True)},
        votes={"t": {"p1": "C", "p2": "A"}},
    )
    assert tally_votes(tie)["t"].winners == ("A", "C")  # all maxima, in option order


def test_tally_no_eligible() -> None:
    data = WorkshopData(ballots={"b": Ballot("Q", ("A",), "vision", "single", 1, True)})
    assert tally_votes(data)["b"].turnout == 0.0 and tally_votes(data)["b"].eligible == 0


# --- progress and matrix ---------------------------------------------------------------


def test_participants_by_stage() -> None:
    data = WorkshopData(
        progress={
            "p1": Progress("values-matrix", ("values-select",), 1.0),
            "p2": Progress("values-matrix", (), 1.0),
            "p3": Progress("vision", (), 1.0),
        }
    )
    assert participants_by_stage(data) == {
        "values-select": 0, "values-collective": 0, "values-matrix": 2,
        "mission-draft": 0, "mission-final": 0, "vision": 1,
    }  # fmt: skip
    assert list(participants_by_stage(WorkshopData())) == list(schema.STAGES)


def test_matrix_summary() -> None:
    data = WorkshopData(
        values=("Honesty", "Care"),
        matrix={
            "p1": {"Trust": Rating(5, 2), "Honesty": Rating(4, 4), "Care": Rating(2, 1), "Growth": Rating(3, 2)},
            "p2": {"trust": Rating(4, 1), "honesty": Rating(5, 4), "care": Rating(2, 2)},
            "p3": {"TRUST ": Rating(3, 3), "CARE": Rating(3, 1), "Kind": Rating(5, 1), "kind": Rating(1, 1)},
        },
    )
    assert matrix_summary(data) == (
        MatrixRow("Kind", "kind", 5.0, 1.0, 4.0, 1),  # p3's "Kind" (smallest key) counts, "kind" not
        # Trust/trust/TRUST one participant each, none in the catalogue: smallest code point
        MatrixRow("TRUST", "trust", 4.0, 2.0, 2.0, 3),
        MatrixRow("Care", "care", 2.333, 1.333, 1.0, 3),  # gap tie with Growth: key order
        MatrixRow("Growth", "growth", 3.0, 2.0, 1.0, 1),
        MatrixRow("Honesty", "honesty", 4.5, 4.0, 0.5, 2),
    )


# --- full state ------------------------------------------------------------------------


EMPTY_JSON: dict[str, Any] = {
    "values": [],
    "ballots": {},
    "stages": dict.fromkeys(schema.STAGES, 0),
    "matrix": [],
    "skipped": 0,
}


def test_empty_workshop_state() -> None:
    assert compute_state(Doc()).to_json() == EMPTY_JSON
    assert compute_state(WorkshopData()).to_json() == EMPTY_JSON
    doc: Doc[Any] = Doc()
    schema.new_workshop(doc, title="T", facilitator_id="f", facilitator_name="F", values=["Trust"])
    assert compute_state(doc).to_json()["values"] == [
        {"name": "Trust", "key": "trust", "count": 0, "percent": 0.0, "participants": []}
    ]


def workshop(doc: Doc[Any]) -> None:
    schema.new_workshop(doc, title="T", facilitator_id="f", facilitator_name="F", values=["Honesty"], now=1.0)
    schema.add_participant(doc, "p1", "Pat", now=2.0)
    schema.toggle_value(doc, "p1", "honesty", now=3.0)
    schema.open_ballot(doc, "b", "Q", ["A", "B"], stage="values-collective")
    schema.cast_vote(doc, "b", "p1", "B")
    schema.rate_value(doc, "p1", "Honesty", 5, 3)
    schema.set_progress(doc, "p1", "values-matrix", now=4.0)


def test_state_json_shape() -> None:
    doc: Doc[Any] = Doc()
    workshop(doc)
    out = compute_state(doc).to_json()
    assert json.loads(json.dumps(out)) == out
    assert list(out) == ["values", "ballots", "stages", "matrix", "skipped"]
    assert out["values"] == [
        {"name": "Honesty", "key": "honesty", "count": 1, "percent": 100.0, "participants": ["p1"]}
    ]
    assert out["ballots"] == {
        "b": {
            "question": "Q", "kind": "single", "stage": "values-collective", "open": True,
            "max_choices": 1, "counts": [{"option": "A", "count": 0}, {"option": "B", "count": 1}],
            "voters": 1, "eligible": 2, "turnout": 0.5, "winners": ["B"], "ignored": 0,
        }
    }  # fmt: skip
    assert out["stages"]["values-matrix"] == 1
    assert out["matrix"] == [
        {"name": "Honesty", "key": "honesty", "importance": 5.0, "practice": 3.0, "gap": 2.0, "ratings": 1}
    ]


def test_two_replicas_converge() -> None:
    a: Doc[Any] = Doc()
    workshop(a)
    b: Doc[Any] = Doc()
    b.apply_update(a.get_update())
    # concurrent edits on both sides, including the same participant's inner maps
    schema.add_participant(a, "p2", "Sam", now=5.0)
    schema.toggle_value(a, "p2", "HONESTY ", now=5.0)
    schema.cast_vote(a, "b", "p2", "A")
    schema.add_participant(b, "p3", "Lee", now=5.0)
    schema.toggle_value(b, "p3", "Trust", now=5.0)
    schema.toggle_value(b, "p1", "Honesty")  # p1 deselects on b
    schema.rate_value(b, "p3", "trust", 2, 4)
    a.apply_update(b.get_update(a.get_state()))
    b.apply_update(a.get_update(b.get_state()))
    assert compute_state(a).to_json() == compute_state(b).to_json()
    state = compute_state(a)
    assert [(v.name, v.count) for v in state.values] == [("Honesty", 1), ("Trust", 1)]
    assert state.ballots["b"].turnout == 0.5  # p1 and p2 voted out of f, p1, p2, p3


# --- tracker ---------------------------------------------------------------------------


def test_tracker_follows_local_and_remote_changes() -> None:
    doc: Doc[Any] = Doc()
    with DerivedTracker(doc) as tracker:
        assert tracker.state.to_json() == EMPTY_JSON
        first = tracker.state
        assert tracker.state is first  # nothing changed: cached
        workshop(doc)
        assert tracker.state == compute_state(doc)
        peer: Doc[Any] = Doc()
        peer.apply_update(doc.get_update())
        schema.add_participant(peer, "p2", "Sam", now=5.0)
        schema.cast_vote(peer, "b", "p2", "A")
        schema.close_ballot(peer, "b")
        doc.apply_update(peer.get_update(doc.get_state()))
        assert tracker.state.ballots["b"].open is False
        assert tracker.state.ballots["b"].voters == 2
        assert tracker.state == compute_state(doc)
    schema.set_progress(doc, "p1", "vision")
    assert tracker.state.stages["vision"] == 0  # closed: no longer follows


def test_tracker_counts_bad_entries_like_full_read() -> None:
    doc: Doc[Any] = Doc()
    tracker = DerivedTracker(doc)
    workshop(doc)
    roots = bind_roots(doc)
    with doc.transaction():
        roots.selections["p9"] = "bad"
        roots.matrix["p1"]["Care"] = {"importance": 9, "practice": 1}
        roots.participants["x"] = Map({"name": 3})
        roots.values.append(None)
        roots.messages.append("not counted: derived state does not read messages")
    assert tracker.state.skipped == 4
    assert tracker.state == compute_state(doc)
    with doc.transaction():
        del roots.selections["p9"]
        del roots.participants["x"]
    assert tracker.state.skipped == 2
    assert tracker.state == compute_state(doc)
    tracker.close()
    tracker.close()


def test_tracker_on_doc_whose_roots_arrive_later() -> None:
    source: Doc[Any] = Doc()
    workshop(source)
    doc: Doc[Any] = Doc()
    tracker = DerivedTracker(doc)
    assert tracker.state.to_json() == EMPTY_JSON
    doc.apply_update(source.get_update())
    assert tracker.state.to_json() == compute_state(source).to_json()
    tracker.close()


@pytest.mark.parametrize("pid", ["p1", "f"])
def test_tracker_replaced_inner_map(pid: str) -> None:
    doc: Doc[Any] = Doc()
    workshop(doc)
    tracker = DerivedTracker(doc)
    _ = tracker.state
    bind_roots(doc).selections[pid] = Map({"Care": 1.0})  # a peer replacing the whole map
    assert tracker.state == compute_state(doc)
    tracker.close()
