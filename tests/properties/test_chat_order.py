"""The chat's display order (vmv_sync.derived.chat) under offline writers and wrong clocks.

Several writers (pycrdt replicas) post while going offline and online against one
server replica, each with its own clock skew (hours ahead, hours behind, or right);
some are contract v1 writers that set no ``hlc``. After everyone syncs, every replica's
order and both exports must be the same; a message
always follows every message its writer had seen when writing it; and where every
clock agrees, the order is the order of writing. On main before issue 21 the views
and exports showed Yjs merge order (concurrent appends by client id), so all three
properties failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map

from vmv_sync.derived.chat import ordered_messages
from vmv_sync.export import export_json, export_markdown
from vmv_sync.schema import new_workshop, read_workshop
from vmv_sync.schema.actions import add_participant, post_message

HOUR = 3600.0
SKEWS = st.sampled_from([0.0, 0.0, 0.0, 3 * HOUR, -3 * HOUR, 0.25, -37.0])
START = 1_717_000_000.0


@dataclass
class Writer:
    pid: str
    doc: Doc[Any]
    skew: float
    legacy: bool  # a contract v1 writer: no hlc
    online: bool = True


@dataclass
class World:
    server: Doc[Any]
    writers: list[Writer]
    now: float = START
    #: message id -> (true time written, writer pid, ids the writer held then)
    written: dict[str, tuple[float, str, frozenset[str]]] = field(default_factory=dict)


def _sync(a: Doc[Any], b: Doc[Any]) -> None:
    a.apply_update(b.get_update(a.get_state()))
    b.apply_update(a.get_update(b.get_state()))


def _ids(doc: Doc[Any]) -> frozenset[str]:
    return frozenset(m.id for m in read_workshop(doc).messages)


def _post(world: World, w: Writer, number: int) -> None:
    mid = f"m{number:03d}"
    held = _ids(w.doc)
    local = world.now + w.skew
    if w.legacy:
        messages = w.doc.get("messages", type=Array)
        with w.doc.transaction():
            messages.append(Map({"id": mid, "author": w.pid, "text": mid, "sent_at": local, "stage": "vision"}))
    else:
        post_message(w.doc, w.pid, mid, stage="vision", message_id=mid, now=local)
    world.written[mid] = (world.now, w.pid, held)


STEP = st.one_of(
    st.tuples(st.just("post"), st.integers(0, 3), st.integers(2, 120_000)),  # >= 2 ms: distinct ms clocks
    st.tuples(st.just("toggle"), st.integers(0, 3), st.just(0)),
    st.tuples(st.just("sync"), st.integers(0, 3), st.just(0)),
)


def _run(skews: list[float], legacy: list[bool], steps: list[tuple[str, int, int]]) -> World:
    server: Doc[Any] = Doc()
    new_workshop(server, title="Order", facilitator_id="w0", facilitator_name="W0")
    writers = []
    for i, (skew, old) in enumerate(zip(skews, legacy, strict=True)):
        add_participant(server, f"w{i}", f"W{i}")
        doc: Doc[Any] = Doc()
        doc.apply_update(server.get_update())
        writers.append(Writer(f"w{i}", doc, skew, old))
    world = World(server, writers)
    for number, (kind, who, dt_ms) in enumerate(steps):
        w = writers[who % len(writers)]
        if kind == "post":
            world.now += dt_ms / 1000
            _post(world, w, number)
        elif kind == "toggle":
            w.online = not w.online
        if w.online:  # an online writer's edits reach the server at once
            _sync(w.doc, server)
    for _ in range(2):
        for w in writers:
            _sync(w.doc, server)
    return world


def _chat_lines(markdown: str) -> list[str]:
    chat = markdown.split("## Chat", 1)[1]
    return re.findall(r"\): (m\d{3})$", chat, flags=re.M)


@given(
    st.integers(2, 4).flatmap(
        lambda n: st.tuples(
            st.lists(SKEWS, min_size=n, max_size=n),
            st.just([False] * n) | st.lists(st.booleans(), min_size=n, max_size=n),
            st.lists(STEP, min_size=1, max_size=40),
        )
    )
)
def test_every_replica_and_export_show_one_order_that_follows_what_writers_saw(
    case: tuple[list[float], list[bool], list[tuple[str, int, int]]],
) -> None:
    skews, legacy, steps = case
    world = _run(skews, legacy, steps)
    expected = [m.id for m in ordered_messages(read_workshop(world.server).messages)]
    assert sorted(expected) == sorted(world.written)

    for w in world.writers:
        assert [m.id for m in ordered_messages(read_workshop(w.doc).messages)] == expected
    assert [m["id"] for m in export_json(world.server)["messages"]] == expected
    assert _chat_lines(export_markdown(world.server)) == expected

    position = {mid: i for i, mid in enumerate(expected)}
    legacy_pids = {w.pid for w in world.writers if w.legacy}
    for mid, (_, pid, held) in world.written.items():
        if pid in legacy_pids:
            continue  # a contract v1 writer's order rests on its clock alone
        for earlier in held:
            assert position[earlier] < position[mid], f"{mid} by {pid} shown above {earlier}, which it followed"

    if len(set(skews)) == 1:  # the clocks agree: the order of writing
        by_time = sorted(world.written, key=lambda mid: world.written[mid][0])
        assert expected == by_time


def test_a_clock_hours_ahead_or_behind_neither_pins_nor_buries() -> None:
    """The issue's case: one device posts offline, the other a second later; clocks off by hours."""
    for skew in (3 * HOUR, -3 * HOUR):
        steps = [("toggle", 0, 0), ("post", 0, 1000), ("post", 1, 1000), ("toggle", 0, 0),
                 ("post", 0, 1000), ("sync", 1, 0), ("post", 1, 1000)]  # fmt: skip
        world = _run([skew, 0.0], [False, False], steps)
        order = [m.id for m in ordered_messages(read_workshop(world.server).messages)]
        # m004 (w0) and m006 (w1) were written after their writers saw m001 and m002
        assert order[2:] == ["m004", "m006"], (skew, order)


@pytest.mark.anyio
async def test_the_python_clients_message_view_shows_the_same_order(tmp_path: Any) -> None:
    """``WorkshopClient.messages`` (incrementally parsed) sorts by the same rule (issue 21)."""
    import socket

    import anyio

    from vmv_sync.client import WorkshopClient

    world = _run([3 * HOUR, 0.0, -3 * HOUR], [False, False, True],
                 [("toggle", 0, 0), ("post", 0, 5), ("post", 1, 5), ("post", 2, 5), ("toggle", 0, 0),
                  ("post", 1, 5), ("post", 0, 5), ("post", 2, 5)])  # fmt: skip
    expected = [m.id for m in ordered_messages(read_workshop(world.server).messages)]
    assert expected != [m.id for m in read_workshop(world.server).messages]  # merge order differs
    with socket.socket() as s:  # a port where nothing listens: the client stays offline
        s.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{s.getsockname()[1]}"
    async with WorkshopClient(url, "order", store_path=tmp_path / "c.sqlite3", participant_id="w1", name="W1") as client:
        client.doc.apply_update(world.server.get_update())
        with anyio.fail_after(5):
            while len(client.messages) < len(expected):
                await anyio.sleep(0.01)
        assert [m.id for m in client.messages] == expected


def test_a_clock_years_ahead_does_not_drag_everyone_elses() -> None:
    """A message more than a day ahead of a writer's clock is not followed: the others keep
    writing in real time, in order among themselves (the far-future message sorts last)."""
    world = _run([0.0, 10 * 365 * 24 * HOUR, 0.0], [False, False, False],
                 [("post", 1, 5), ("post", 0, 5), ("post", 2, 5), ("post", 0, 5)])  # fmt: skip
    messages = {m.id: m for m in read_workshop(world.server).messages}
    assert all(m.hlc is not None and m.hlc < (START + 60) * 1000 for mid, m in messages.items() if mid != "m000")
    order = [m.id for m in ordered_messages(messages.values())]
    assert order == ["m001", "m002", "m003", "m000"]
