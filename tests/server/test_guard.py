"""In-process tests of :class:`vmv_sync.server.guard.WriteGuard` over real pycrdt documents.

Each rule of :mod:`vmv_sync.schema.ownership` is exercised with an update made by a
real replica of the room's document: the allowed ones pass (and are then applied to
the room's document, as the room does), every refused one raises ``Forbidden``
(4403), and after any refusal the guard's shadow equals the room's document again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pycrdt import Doc, Map, Text

from vmv_sync.errors import Forbidden, MalformedMessage
from vmv_sync.protocol import decode_state_vector
from vmv_sync.schema import ROOTS, bind_roots, ensure_participant_entries, new_workshop
from vmv_sync.server.auth import Principal
from vmv_sync.server.guard import WriteGuard

Edit = Callable[[Doc[Any]], object]

P1 = Principal("p1", "P1", "participant", "w1")
FACILITATOR = Principal("f1", "Fay", "facilitator", "w1")
OBSERVER = Principal("o1", "Oz", "observer", "w1")


def room_document() -> Doc[Any]:
    """A workshop by f1 with participants p1 and p2, one ballot, one message, p1's vote Map."""
    doc: Doc[Any] = Doc()
    roots = new_workshop(doc, title="Team", facilitator_id="f1", facilitator_name="Fay", values=["a", "b"], now=1.0)
    with doc.transaction():
        for pid in ("p1", "p2"):
            roots.participants[pid] = Map({"name": pid.upper(), "role": "participant", "joined_at": 1.0})
            ensure_participant_entries(roots, pid)
        roots.ballots["b1"] = Map({"question": "which?"})
        roots.votes["b1"] = Map({"p2": "a"})
        roots.votes["nested"] = Map({"p1": Map()})
        roots.messages.append(Map({"id": "m1", "author": "p2", "text": "hello", "at": 1.0}))
        roots.progress["p2"] = Map({"stage": "values-select", "done": False})
    return doc


def edit_of(room: Doc[Any], edit: Edit) -> bytes:
    """The update a replica of ``room`` sends after making ``edit``."""
    replica: Doc[Any] = Doc()
    replica.apply_update(room.get_update())
    captured: list[bytes] = []
    subscription = replica.observe(lambda event: captured.append(event.update))
    with replica.transaction():
        edit(replica)
    replica.unobserve(subscription)
    assert len(captured) == 1, "the edit changed nothing"
    return captured[0]


def r(doc: Doc[Any]) -> Any:
    return bind_roots(doc)


def assert_shadow_is_room(guard: WriteGuard, room: Doc[Any]) -> None:
    shadow = guard._shadow  # the guard's private copy: what this test is about
    assert snapshot(shadow) == snapshot(room)


def snapshot(doc: Doc[Any]) -> tuple[dict[int, int], dict[str, Any]]:
    """A document's state vector and content, comparable (encoded state vectors list clients in any order)."""
    return decode_state_vector(doc.get_state()), {
        name: doc.get(name, type=kind).to_py() for name, kind in ROOTS.items()
    }


def _append(root: str, text: str) -> Edit:
    def edit(doc: Doc[Any]) -> None:
        t = doc.get(root, type=Text)
        t += text

    return edit


def _setitem(path: tuple[str, ...], key: str, value: Any) -> Edit:
    def edit(doc: Doc[Any]) -> None:
        target: Any = getattr(r(doc), path[0])
        for part in path[1:]:
            target = target[part]
        target[key] = value() if callable(value) else value

    return edit


def _delitem(path: tuple[str, ...], key: str) -> Edit:
    def edit(doc: Doc[Any]) -> None:
        target: Any = getattr(r(doc), path[0])
        for part in path[1:]:
            target = target[part]
        del target[key]

    return edit


def _post(author: str) -> Edit:
    def edit(doc: Doc[Any]) -> None:
        r(doc).messages.append(Map({"id": "m2", "author": author, "text": "hi", "at": 2.0}))

    return edit


def _draft(pid: str) -> Edit:
    def edit(doc: Doc[Any]) -> None:
        r(doc).drafts[pid].insert(0, "draft ")

    return edit


def _other_root(doc: Doc[Any]) -> None:
    doc.get("extra", type=Map)["k"] = 1


def _edit_message(doc: Doc[Any]) -> None:
    r(doc).messages[0]["text"] = "changed"


def _delete_message(doc: Doc[Any]) -> None:
    del r(doc).messages[0]


def _append_value(doc: Doc[Any]) -> None:
    r(doc).values.append("c")


def _subdoc(doc: Doc[Any]) -> None:
    r(doc).selections["p1"]["sub"] = Doc()


ALLOWED: dict[str, tuple[Principal, Edit]] = {
    "mission": (P1, _append("mission", "ours ")),
    "vision": (P1, _append("vision", "ours ")),
    "own selections": (P1, _setitem(("selections", "p1"), "a", True)),
    "own matrix": (P1, _setitem(("matrix", "p1"), "a", 3)),
    "own draft": (P1, _draft("p1")),
    "own progress entry": (P1, _setitem(("progress",), "p1", lambda: Map({"stage": "x", "done": True}))),
    "own vote": (P1, _setitem(("votes", "b1"), "p1", "b")),
    "own message": (P1, _post("p1")),
    "own name": (P1, _setitem(("participants", "p1"), "name", "Pat")),
    "own entry, same role": (
        P1,
        _setitem(("participants",), "p1", lambda: Map({"name": "Pat", "role": "participant"})),
    ),
    "facilitator: meta": (FACILITATOR, _setitem(("meta",), "stage", "mission")),
    "facilitator: values": (FACILITATOR, _append_value),
    "facilitator: ballots": (FACILITATOR, _setitem(("ballots",), "b2", lambda: Map({"question": "?"}))),
    "facilitator: a ballot's votes Map": (FACILITATOR, _setitem(("votes",), "b2", Map)),
    "facilitator: another's entry": (FACILITATOR, _setitem(("participants", "p2"), "name", "Bo")),
    "facilitator: removes a participant": (FACILITATOR, _delitem(("participants",), "p2")),
    "facilitator: another root": (FACILITATOR, _other_root),
}

REFUSED: dict[str, tuple[Principal, Edit, str]] = {
    "meta": (P1, _setitem(("meta",), "title", "mine"), "facilitator"),
    "values": (P1, _append_value, "facilitator"),
    "ballots": (P1, _setitem(("ballots",), "b2", lambda: Map({"question": "?"})), "facilitator"),
    "another's entry": (P1, _setitem(("participants", "p2"), "name", "hacked"), "another participant"),
    "a new entry for another": (P1, _setitem(("participants",), "p3", lambda: Map({"role": "participant"})), "another"),
    "own role": (P1, _setitem(("participants", "p1"), "role", "facilitator"), "role"),
    "own role removed": (P1, _delitem(("participants", "p1"), "role"), "role"),
    "own entry with another role": (
        P1,
        _setitem(("participants",), "p1", lambda: Map({"name": "P1", "role": "facilitator"})),
        "role",
    ),
    "own entry removed": (P1, _delitem(("participants",), "p1"), "remove"),
    "another's selections": (P1, _setitem(("selections", "p2"), "a", True), "another participant"),
    "another's selections Map": (P1, _setitem(("selections",), "p2", Map), "another participant"),
    "another's matrix": (P1, _setitem(("matrix", "p2"), "a", 1), "another participant"),
    "another's progress": (P1, _setitem(("progress", "p2"), "done", True), "another participant"),
    "another's draft": (P1, _draft("p2"), "another participant"),
    "another's vote": (P1, _setitem(("votes", "b1"), "p2", "b"), "another participant"),
    "a ballot's votes Map": (P1, _setitem(("votes",), "b3", Map), "facilitator"),
    "inside a vote": (P1, _setitem(("votes", "nested", "p1"), "k", 1), "nested"),
    "a message edited": (P1, _edit_message, "edited"),
    "a message deleted": (P1, _delete_message, "deleted"),
    "a message as someone else": (P1, _post("p2"), "author"),
    "another root": (P1, _other_root, "root"),
    "an observer's mission": (OBSERVER, _append("mission", "no"), "observers"),
    "an observer's own selections": (OBSERVER, _setitem(("selections",), "o1", Map), "observers"),
    "a sub-document": (P1, _subdoc, "sub-documents"),
}


@pytest.mark.parametrize("case", list(ALLOWED), ids=list(ALLOWED))
def test_allowed_changes_pass(case: str) -> None:
    principal, edit = ALLOWED[case]
    room = room_document()
    guard = WriteGuard(room)
    update = edit_of(room, edit)
    guard.check(update, principal)
    room.apply_update(update)  # what the room does with an update that passed
    assert_shadow_is_room(guard, room)


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_each_rule_refuses_with_forbidden_and_the_shadow_stays_the_room(case: str) -> None:
    principal, edit, why = REFUSED[case]
    room = room_document()
    before = snapshot(room)
    guard = WriteGuard(room)
    update = edit_of(room, edit)
    with pytest.raises(Forbidden) as refused:
        guard.check(update, principal)
    assert refused.value.code == 4403
    assert why in refused.value.reason
    assert snapshot(room) == before  # the guard never touches the room's document
    assert_shadow_is_room(guard, room)


def test_a_refused_update_leaves_nothing_behind_for_the_next_one() -> None:
    """After a refusal, the next update of that replica builds on what the room never got."""
    room = room_document()
    guard = WriteGuard(room)
    replica: Doc[Any] = Doc()
    replica.apply_update(room.get_update())
    captured: list[bytes] = []
    replica.observe(lambda event: captured.append(event.update))
    r(replica).participants["p2"]["name"] = "hacked"  # refused
    mission = replica.get("mission", type=Text)
    mission += "allowed on its own"  # allowed, but its clocks follow the refused update
    refused, follows = captured
    with pytest.raises(Forbidden):
        guard.check(refused, P1)
    with pytest.raises(MalformedMessage, match="depends"):
        guard.check(follows, P1)
    assert_shadow_is_room(guard, room)


def test_accepted_updates_accumulate_and_a_server_edit_is_mirrored() -> None:
    room = room_document()
    guard = WriteGuard(room)
    for edit in (_setitem(("selections", "p1"), "a", True), _setitem(("selections", "p1"), "b", False)):
        update = edit_of(room, edit)
        guard.check(update, P1)
        room.apply_update(update)
    server_update = edit_of(room, _setitem(("participants",), "p4", lambda: Map({"role": "participant"})))
    room.apply_update(server_update)
    guard.accept(server_update)  # the server's own edits skip the rules but reach the shadow
    assert_shadow_is_room(guard, room)
    assert r(room).selections["p1"].to_py() == {"a": True, "b": False}
    # a refusal after all that rebuilds the shadow to the same room
    with pytest.raises(Forbidden):
        guard.check(edit_of(room, _setitem(("selections", "p2"), "x", 1)), P1)
    assert_shadow_is_room(guard, room)


def test_a_refusal_refuses_the_whole_update() -> None:
    room = room_document()
    guard = WriteGuard(room)

    def mixed(doc: Doc[Any]) -> None:
        mission = doc.get("mission", type=Text)
        mission += "fine"
        r(doc).meta["title"] = "not fine"

    with pytest.raises(Forbidden):
        guard.check(edit_of(room, mixed), P1)
    assert_shadow_is_room(guard, room)
    assert str(room.get("mission", type=Text)) == ""


def test_an_undecodable_update_is_malformed_and_the_shadow_is_unchanged() -> None:
    room = room_document()
    guard = WriteGuard(room)
    with pytest.raises(MalformedMessage):
        guard.check(b"\x01\x01\xff\xff\xff\xff\x0f\x00\x99", P1)
    assert_shadow_is_room(guard, room)
