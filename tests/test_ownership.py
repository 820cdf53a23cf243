"""The ownership table as pure functions (contract section 3)."""

from __future__ import annotations

import pytest

from vmv_sync.schema.ownership import Change, check_change

ME, OTHER = "p1", "p2"


def allowed(change: Change, role: str = "participant", pid: str = ME) -> bool:
    return check_change(change, pid, role) is None


@pytest.mark.parametrize("root", ["selections", "matrix", "progress", "drafts"])
def test_owned_roots(root: str) -> None:
    assert allowed(Change(root, (), "map", keys={ME: {}}))
    assert allowed(Change(root, (ME,), "map", keys={"Honesty": 1.0}))
    assert not allowed(Change(root, (), "map", keys={OTHER: {}}))
    assert not allowed(Change(root, (), "map", deleted_keys=frozenset({OTHER})))
    assert not allowed(Change(root, (OTHER,), "map", keys={"Honesty": 1.0}))
    assert not allowed(Change(root, (OTHER,), "map", keys={"x": 1}), role="facilitator")


@pytest.mark.parametrize("root", ["meta", "values", "ballots"])
def test_facilitator_roots(root: str) -> None:
    change = Change(root, (), "map", keys={"title": "x"})
    assert allowed(change, role="facilitator")
    assert not allowed(change)


def test_votes() -> None:
    assert allowed(Change("votes", ("b1",), "map", keys={ME: "x"}))
    assert not allowed(Change("votes", ("b1",), "map", keys={OTHER: "x"}))
    assert not allowed(Change("votes", (), "map", keys={"b1": {}}))
    assert allowed(Change("votes", (), "map", keys={"b1": {}}), role="facilitator")


def test_messages_append_only_as_self() -> None:
    assert allowed(Change("messages", (), "array", inserted=({"author": ME, "text": "hi"},)))
    assert not allowed(Change("messages", (), "array", inserted=({"author": OTHER, "text": "hi"},)))
    assert not allowed(Change("messages", (), "array", inserted=("plain",)))
    assert not allowed(Change("messages", (), "array", deleted=1), role="facilitator")
    assert not allowed(Change("messages", (0,), "map", keys={"text": "edited"}))


def test_participants_and_role_escalation() -> None:
    assert allowed(Change("participants", (ME,), "map", keys={"name": "New"}))
    assert not allowed(Change("participants", (ME,), "map", keys={"role": "facilitator"}))
    assert allowed(Change("participants", (ME,), "map", keys={"role": "participant"}))
    assert not allowed(Change("participants", (), "map", keys={ME: {"name": "x", "role": "facilitator"}}))
    assert allowed(Change("participants", (), "map", keys={ME: {"name": "x", "role": "participant"}}))
    assert not allowed(Change("participants", (), "map", deleted_keys=frozenset({ME})))
    assert not allowed(Change("participants", (OTHER,), "map", keys={"name": "x"}))
    assert allowed(Change("participants", (OTHER,), "map", keys={"role": "observer"}), role="facilitator")


def test_shared_texts_unknown_roots_and_observers() -> None:
    assert allowed(Change("mission", (), "text", inserted=("x",)))
    assert allowed(Change("vision", (), "text", deleted=3))
    assert not allowed(Change("evil", (), "map", keys={"x": 1}))
    assert allowed(Change("evil", (), "map", keys={"x": 1}), role="facilitator")
    assert not allowed(Change("mission", (), "text", inserted=("x",)), role="observer")
