"""Tests of vmv_sync.schema: stages, names, roots, the tolerant reader and actions."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from typing import Any

import pytest
from pycrdt import Array, Doc, Map, Text, TransactionEvent

import vmv_sync.schema as schema
from vmv_sync.errors import VmvSyncError
from vmv_sync.schema import (
    ROOTS,
    STAGES,
    InvalidAction,
    Stage,
    UnknownStage,
    bind_roots,
    normalize_value_name,
    read_workshop,
    stage_number,
)


@pytest.fixture
def doc() -> Doc[Any]:
    d: Doc[Any] = Doc()
    schema.new_workshop(
        d, title="Team", facilitator_id="f", facilitator_name="Fay", values=("Honesty", "Trust"), now=1.0
    )
    return d


class UpdateCounter:
    """Counts the non-empty updates a doc emits, i.e. committed write transactions."""

    def __init__(self, doc: Doc[Any]) -> None:
        self.updates: list[bytes] = []
        self._sub = doc.observe(self._on)

    def _on(self, event: TransactionEvent) -> None:
        if event.update != b"\x00\x00":
            self.updates.append(event.update)


@pytest.fixture
def updates(doc: Doc[Any]) -> Iterator[UpdateCounter]:
    yield UpdateCounter(doc)


def test_all_matches_module_contents() -> None:
    public = {n for n in dir(schema) if not n.startswith("_")}
    submodules = {"actions", "chatclock", "document", "names", "ownership", "parse", "records", "stages", "text"}
    assert set(schema.__all__) == public - submodules - {"annotations"}
    assert len(schema.__all__) == len(set(schema.__all__))


# --- stages ----------------------------------------------------------------------------


def test_stages_in_order_with_numbers() -> None:
    assert STAGES == (
        "values-select",
        "values-collective",
        "values-matrix",
        "mission-draft",
        "mission-final",
        "vision",
    )
    assert [stage_number(s) for s in STAGES] == [1, 2, 3, 4, 5, 6]
    assert stage_number(Stage.MISSION_FINAL) == 5
    assert Stage("vision") == "vision" and str(Stage.VISION) == "vision"


def test_unknown_stage() -> None:
    with pytest.raises(UnknownStage, match="unknown stage 'nope'") as info:
        stage_number("nope")
    assert isinstance(info.value, VmvSyncError)


# --- names -----------------------------------------------------------------------------


def test_normalize_value_name() -> None:
    assert normalize_value_name("  Honesty ") == normalize_value_name("HONESTY") == "honesty"
    nfc, nfd = "Café", unicodedata.normalize("NFD", "Café")
    assert nfc != nfd and normalize_value_name(nfc) == normalize_value_name(nfd)
    assert normalize_value_name("Straße") == normalize_value_name("STRASSE")
    assert normalize_value_name("   ") == ""


def test_choose_display_name() -> None:
    choose = schema.choose_display_name
    assert choose({"honesty": 2, "Honesty": 2}) == "Honesty"  # tie: smallest code point
    assert choose({"honesty": 3, "Honesty": 2}) == "honesty"  # most participants
    assert choose({"honesty": 3}, [" HONESTY "]) == "HONESTY"  # catalogue wins, tidied
    with pytest.raises(ValueError):
        choose({})


# --- document --------------------------------------------------------------------------


def test_roots_and_bind_on_empty_doc() -> None:
    assert list(ROOTS) == [
        "meta", "participants", "messages", "selections", "values", "ballots",
        "votes", "matrix", "progress", "drafts", "mission", "vision",
    ]  # fmt: skip
    roots = bind_roots(Doc())
    for name, kind in ROOTS.items():
        assert isinstance(getattr(roots, name), kind)
    assert bind_roots(roots) is roots


def test_bind_roots_on_doc_from_peer(doc: Doc[Any]) -> None:
    peer: Doc[Any] = Doc()
    peer.apply_update(doc.get_update())
    roots = bind_roots(peer)
    assert roots.meta["title"] == "Team"
    assert list(roots.values) == ["Honesty", "Trust"]


def test_new_workshop(doc: Doc[Any]) -> None:
    data = read_workshop(doc)
    assert data.meta == {
        "created_at": 1.0,
        "facilitator": "f",
        "max_values": 10,
        "schema": 1,
        "stage": "values-select",
        "title": "Team",
    }
    assert data.participants == {"f": schema.Participant("Fay", "facilitator", 1.0)}
    assert data.values == ("Honesty", "Trust")
    assert data.skipped == 0


@pytest.mark.parametrize(
    "kwargs",
    [{"title": " "}, {"facilitator_id": ""}, {"max_values": 0}, {"values": ["ok", " "]}],
)
def test_new_workshop_refuses_bad_arguments(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"title": "T", "facilitator_id": "f", "facilitator_name": "F"}
    d: Doc[Any] = Doc()
    with pytest.raises(InvalidAction):
        schema.new_workshop(d, **{**args, **kwargs})
    assert read_workshop(d).meta == {}


def test_read_empty_doc() -> None:
    data = read_workshop(Doc())
    assert data == schema.WorkshopData(skipped_by_root=dict.fromkeys(ROOTS, 0))


def test_reader_skips_and_counts_wrong_shapes(doc: Doc[Any]) -> None:
    roots = bind_roots(doc)
    schema.add_participant(doc, "p1", "Pat", now=2.0)
    schema.open_ballot(doc, "b1", "Q", ["A", "B"], stage="values-collective")
    with doc.transaction():
        roots.meta["max_values"] = "ten"  # wrong type: 1
        roots.meta["extra"] = "kept"  # unknown plain field: kept
        roots.participants["bad"] = "not a map"  # 1
        roots.participants["bad2"] = Map({"name": "X", "role": "king", "joined_at": 1.0})  # 1
        roots.messages.append("a str message")  # 1
        roots.messages.append(Map({"id": "m", "author": "p1", "text": "t", "sent_at": 1.0, "stage": "vision"}))
        roots.messages.append(Map({"id": "m", "author": "p1", "text": "dup", "sent_at": 2.0, "stage": "vision"}))  # dup: 1
        roots.selections["p2"] = "honesty"  # 1
        roots.selections["p1"] = Map({"Trust": 3.0, "Bad": "yesterday", "  ": 1.0})  # 2
        roots.values.append(7)  # 1
        roots.ballots["b2"] = Map({"question": "Q", "options": [], "stage": "vision", "kind": "single", "max_choices": 1, "open": True})  # 1
        roots.votes["b1"] = Map({"p1": "A", "f": {"not": "a vote"}, "x": [1, 2]})  # 2
        roots.matrix["p1"] = Map({"Trust": {"importance": 6, "practice": 1}, "Honesty": {"importance": 5, "practice": 1}, "Care": Map({"importance": 1, "practice": 1})})  # 2
        roots.matrix["p2"] = Array([1])  # 1
        roots.progress["p1"] = Map({"stage": "values-matrix", "completed": ["nope"], "updated_at": 1.0})  # 1
        roots.progress["p2"] = Map({"stage": "vision", "completed": ["values-select"], "updated_at": 1})
        roots.drafts["p1"] = "plain str"  # 1
    data = read_workshop(doc)
    assert data.skipped_by_root == {
        "meta": 1, "participants": 2, "messages": 2, "selections": 3, "values": 1,
        "ballots": 1, "votes": 2, "matrix": 3, "progress": 1, "drafts": 1,
        "mission": 0, "vision": 0,
    }  # fmt: skip
    assert data.skipped == 17
    assert data.meta["extra"] == "kept" and "max_values" not in data.meta
    assert set(data.participants) == {"f", "p1"}
    assert [m.text for m in data.messages] == ["t"]
    assert data.selections == {"f": {}, "p1": {"Trust": 3.0}}
    assert data.values == ("Honesty", "Trust")
    assert set(data.ballots) == {"b1"}
    assert data.votes == {"b1": {"p1": "A"}}
    assert data.matrix == {"f": {}, "p1": {"Honesty": schema.Rating(5, 1)}}
    assert data.progress == {"p2": schema.Progress("vision", ("values-select",), 1.0)}
    assert data.drafts == {"f": ""}


def test_reader_dicts_are_sorted(doc: Doc[Any]) -> None:
    for pid in ("zed", "amy", "kim"):
        schema.add_participant(doc, pid, pid.title(), now=2.0)
    assert list(read_workshop(doc).participants) == ["amy", "f", "kim", "zed"]


# --- actions ---------------------------------------------------------------------------


def test_each_action_is_one_update(doc: Doc[Any], updates: UpdateCounter) -> None:
    schema.add_participant(doc, "p1", "Pat", now=2.0)
    schema.post_message(doc, "p1", "hello", now=3.0)
    schema.toggle_value(doc, "p1", "Honesty", now=4.0)
    schema.open_ballot(doc, "b1", "Which?", ["A", "B"], stage="values-collective")
    schema.cast_vote(doc, "b1", "p1", "A")
    schema.rate_value(doc, "p1", "Trust", 4, 2)
    schema.set_progress(doc, "p1", "values-matrix", now=5.0)
    schema.set_draft(doc, "p1", "We help")
    schema.set_mission(doc, "Mission")
    schema.set_stage(doc, "mission-draft")
    assert len(updates.updates) == 10


def test_refused_action_writes_nothing(doc: Doc[Any], updates: UpdateCounter) -> None:
    schema.open_ballot(doc, "b1", "Which?", ["A", "B"], stage="values-collective")
    before = doc.get_state()
    with pytest.raises(InvalidAction, match="not one option"):
        schema.cast_vote(doc, "b1", "p1", "C")
    with pytest.raises(InvalidAction, match="already exists"):
        schema.open_ballot(doc, "b1", "Again?", ["A"], stage="vision")
    assert doc.get_state() == before and len(updates.updates) == 1


def test_add_participant_updates_in_place(doc: Doc[Any]) -> None:
    schema.add_participant(doc, "p1", "Pat", now=2.0)
    schema.add_participant(doc, "p1", "Patricia", "observer", now=9.0)
    assert read_workshop(doc).participants["p1"] == schema.Participant("Patricia", "observer", 2.0)
    with pytest.raises(InvalidAction, match="unknown role"):
        schema.add_participant(doc, "p2", "X", "admin")
    with pytest.raises(InvalidAction, match="participant id"):
        schema.add_participant(doc, "", "X")


def test_post_message_defaults(doc: Doc[Any]) -> None:
    first = schema.post_message(doc, "f", "hi", now=2.0)
    schema.set_stage(doc, "vision")
    second = schema.post_message(doc, "f", "again", message_id="m2", now=3.0)
    third = schema.post_message(doc, "f", "back", stage="values-matrix", now=4.0)
    messages = read_workshop(doc).messages
    assert len(first) == 32 and second == "m2" and third != first
    assert [(m.text, m.stage, m.sent_at) for m in messages] == [
        ("hi", "values-select", 2.0),
        ("again", "vision", 3.0),
        ("back", "values-matrix", 4.0),
    ]
    with pytest.raises(InvalidAction, match="unknown stage"):
        schema.post_message(doc, "f", "x", stage="later")


def test_toggle_select_deselect(doc: Doc[Any]) -> None:
    roots = bind_roots(doc)
    assert schema.toggle_value(doc, "p1", "  Honesty ", now=2.0) is True
    assert roots.selections["p1"].to_py() == {"Honesty": 2.0}
    inner = roots.selections["p1"]
    assert schema.toggle_value(doc, "p1", "HONESTY") is False
    assert roots.selections["p1"].to_py() == {}
    schema.toggle_value(doc, "p1", "Care", now=2.5)
    assert inner.to_py() == {"Care": 2.5}  # the inner Map was kept, not replaced
    schema.toggle_value(doc, "p1", "care")
    schema.select_value(doc, "p1", "Trust", now=3.0)
    schema.select_value(doc, "p1", "trust", now=4.0)  # idempotent across spellings
    assert roots.selections["p1"].to_py() == {"Trust": 3.0}
    schema.deselect_value(doc, "p1", "TRUST")
    schema.deselect_value(doc, "p1", "TRUST")
    schema.deselect_value(doc, "nobody", "Trust")
    assert roots.selections["p1"].to_py() == {}
    assert "nobody" not in roots.selections
    with pytest.raises(InvalidAction, match="value name"):
        schema.toggle_value(doc, "p1", "   ")


def test_set_catalogue(doc: Doc[Any]) -> None:
    schema.set_catalogue(doc, ["Care", "Courage"])
    assert read_workshop(doc).values == ("Care", "Courage")
    with pytest.raises(InvalidAction):
        schema.set_catalogue(doc, "Care")


def test_ballots_and_votes(doc: Doc[Any]) -> None:
    schema.open_ballot(doc, "s", "One?", ["A", "B"], stage="values-collective")
    schema.open_ballot(doc, "m", "Some?", ["A", "B", "C"], stage="vision", kind="multi", max_choices=2)
    schema.cast_vote(doc, "s", "p1", "A")
    schema.cast_vote(doc, "s", "p1", "B")  # replaces
    schema.cast_vote(doc, "m", "p1", ["C", "A"])
    data = read_workshop(doc)
    assert data.ballots["m"] == schema.Ballot("Some?", ("A", "B", "C"), "vision", "multi", 2, True)
    assert data.votes == {"m": {"p1": ("C", "A")}, "s": {"p1": "B"}}
    for bad in (["A", "B", "C"], ["A", "A"], [], ["D"], "A"):
        with pytest.raises(InvalidAction):
            schema.cast_vote(doc, "m", "p2", bad)
    with pytest.raises(InvalidAction):
        schema.cast_vote(doc, "s", "p2", ["A"])
    schema.retract_vote(doc, "m", "p1")
    schema.close_ballot(doc, "s")
    assert read_workshop(doc).ballots["s"].open is False
    with pytest.raises(InvalidAction, match="closed"):
        schema.cast_vote(doc, "s", "p2", "A")
    with pytest.raises(InvalidAction, match="no valid ballot"):
        schema.cast_vote(doc, "zz", "p2", "A")
    assert read_workshop(doc).votes == {"m": {}, "s": {"p1": "B"}}


@pytest.mark.parametrize(
    ("options", "kind", "max_choices"),
    [([], "single", 1), (["A", "A"], "single", 1), (["A", "B"], "single", 2),
     (["A", "B"], "multi", 3), (["A"], "ranked", 1), (["A", ""], "single", 1)],
)  # fmt: skip
def test_open_ballot_refuses(options: list[str], kind: str, max_choices: int) -> None:
    with pytest.raises(InvalidAction):
        schema.open_ballot(Doc(), "b", "Q", options, stage="vision", kind=kind, max_choices=max_choices)


def test_rate_value(doc: Doc[Any]) -> None:
    schema.rate_value(doc, "p1", "Trust", 5, 2)
    schema.rate_value(doc, "p1", "TRUST", 4.0, 3)  # type: ignore[arg-type]  # same key kept
    assert read_workshop(doc).matrix["p1"] == {"Trust": schema.Rating(4, 3)}
    for importance, practice in ((0, 3), (3, 6), (True, 3), (2.5, 3)):
        with pytest.raises(InvalidAction, match="1..5"):
            schema.rate_value(doc, "p1", "Trust", importance, practice)  # type: ignore[arg-type]


def test_set_progress(doc: Doc[Any]) -> None:
    schema.set_progress(doc, "p1", "values-matrix", ["values-collective", "values-select"], now=2.0)
    schema.set_progress(doc, "p1", Stage.MISSION_DRAFT, now=3.0)  # keeps completed
    assert read_workshop(doc).progress["p1"] == schema.Progress(
        "mission-draft", ("values-select", "values-collective"), 3.0
    )
    with pytest.raises(InvalidAction):
        schema.set_progress(doc, "p1", "values-matrix", ["later"])


def test_text_actions_unicode(doc: Doc[Any]) -> None:
    schema.set_draft(doc, "p1", "héllo wörld")
    draft = bind_roots(doc).drafts["p1"]
    schema.set_draft(doc, "p1", "héllo big wörld 😀")
    assert str(draft) == "héllo big wörld 😀"  # the Text was edited, not replaced
    schema.edit_draft(doc, "p1", 16, delete=1, insert="🙂!")
    schema.set_mission(doc, "We ✨ help")
    schema.edit_mission(doc, 3, delete=1, insert="really")
    schema.set_vision(doc, "A world")
    schema.edit_vision(doc, 7, insert=" of trust")
    data = read_workshop(doc)
    assert data.drafts == {"f": "", "p1": "héllo big wörld 🙂!"}
    assert data.mission == "We really help"
    assert data.vision == "A world of trust"
    with pytest.raises(InvalidAction, match="outside"):
        schema.edit_vision(doc, 10, delete=100)


def test_replace_text_is_a_minimal_edit() -> None:
    a: Doc[Any] = Doc()
    text = a.get("mission", type=Text)
    schema.replace_text(text, "We help teams grow")
    b: Doc[Any] = Doc()
    b.apply_update(a.get_update())
    schema.set_mission(b, "We help small teams grow")  # concurrent edits at both ends
    schema.edit_text(text, 0, delete=2, insert="Together we")
    a.apply_update(b.get_update(a.get_state()))
    b.apply_update(a.get_update(b.get_state()))
    assert str(text) == str(b.get("mission", type=Text)) == "Together we help small teams grow"


def test_set_stage(doc: Doc[Any]) -> None:
    schema.set_stage(doc, "values-matrix")
    assert read_workshop(doc).meta["stage"] == "values-matrix"
    with pytest.raises(InvalidAction, match="unknown stage"):
        schema.set_stage(doc, "done")


# --- concurrency -----------------------------------------------------------------------


def _exchange(a: Doc[Any], b: Doc[Any]) -> None:
    a.apply_update(b.get_update(a.get_state()))
    b.apply_update(a.get_update(b.get_state()))


def test_participant_containers_precreated(doc: Doc[Any]) -> None:
    schema.add_participant(doc, "p1", "Pat", now=2.0)
    data = read_workshop(doc)
    assert data.selections == {"f": {}, "p1": {}} and data.matrix == {"f": {}, "p1": {}}
    assert data.drafts == {"f": "", "p1": ""} and data.skipped == 0


def test_concurrent_first_votes_both_survive(doc: Doc[Any]) -> None:
    schema.open_ballot(doc, "b", "Q", ["A", "B"], stage="vision")
    other: Doc[Any] = Doc()
    other.apply_update(doc.get_update())
    schema.cast_vote(doc, "b", "p1", "A")
    schema.cast_vote(other, "b", "p2", "B")
    _exchange(doc, other)
    assert read_workshop(doc).votes == read_workshop(other).votes == {"b": {"p1": "A", "p2": "B"}}


def test_same_participant_on_two_devices_merges_after_join(doc: Doc[Any]) -> None:
    schema.add_participant(doc, "p1", "Pat", now=2.0)
    laptop: Doc[Any] = Doc()
    laptop.apply_update(doc.get_update())
    schema.toggle_value(doc, "p1", "Honesty", now=3.0)
    schema.toggle_value(laptop, "p1", "Trust", now=3.0)
    _exchange(doc, laptop)
    assert read_workshop(laptop).selections["p1"] == {"Honesty": 3.0, "Trust": 3.0}


def test_caveat_concurrently_created_inner_maps_keep_one_side() -> None:
    """Documents the Yjs caveat the pre-created containers avoid: without them,
    two replicas creating selections[pid] concurrently keep only one Map."""
    a: Doc[Any] = Doc()
    b: Doc[Any] = Doc()
    schema.toggle_value(a, "p1", "Honesty", now=1.0)  # no add_participant: no shared Map
    schema.toggle_value(b, "p1", "Trust", now=1.0)
    _exchange(a, b)
    merged = read_workshop(a).selections["p1"]
    assert merged == read_workshop(b).selections["p1"]
    assert merged in ({"Honesty": 1.0}, {"Trust": 1.0})
