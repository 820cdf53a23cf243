"""Interop: a stock y-websocket provider in Node and a Python peer in one workshop.

The Node side is ``driver.mjs`` (npm ``yjs``, ``y-websocket``'s ``WebsocketProvider``,
``ws``); the Python side is ``tests/yclient.py`` writing through ``vmv_sync.schema``.
Both talk to the real server over real sockets. They must converge on every root of
contract section 3 both ways, see each other's awareness, and merge the edits a Node
client made while disconnected. The browser's derived-state code (web/src/derived.js)
runs in Node too and must agree with the server's ``GET /workshops/{id}/state``.
"""

from __future__ import annotations

import unicodedata
import uuid
from typing import Any

import anyio
import httpx
import pytest
from pycrdt import Array, Doc, Map, Text

from tests.interop.nodepeer import NodePeer
from tests.yclient import YClient
from vmv_sync.schema import (
    ROOTS,
    add_participant,
    bind_roots,
    cast_vote,
    new_workshop,
    open_ballot,
    post_message,
    rate_value,
    read_workshop,
    select_value,
    set_draft,
    set_mission,
    set_progress,
    set_vision,
)

pytestmark = pytest.mark.anyio

PY = "py-1"
NODE = "node-1"


def plain(value: Any) -> Any:
    """A pycrdt value as the plain JSON the Node driver's ``snapshot`` produces."""
    if isinstance(value, Text):
        return str(value)
    if isinstance(value, Map):
        return {k: plain(value[k]) for k in sorted(value.keys())}
    if isinstance(value, Array):
        return [plain(v) for v in value]
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(value[k]) for k in sorted(value)}
    return value


def snapshot(doc: Doc) -> dict[str, Any]:
    roots = bind_roots(doc).by_name()
    with doc.transaction():
        return {name: plain(roots[name]) for name in ROOTS}


def python_writes(doc: Doc) -> None:
    """The Python peer writes to every root type, one action per transaction."""
    new_workshop(doc, title="Interop", facilitator_id=PY, facilitator_name="Py", values=["Honesty", "Trust"])
    post_message(doc, PY, "hello from python")
    select_value(doc, PY, "Honesty")
    select_value(doc, PY, "Trust")
    open_ballot(doc, "b1", "Which value first?", ["Honesty", "Trust"], stage="values-collective")
    cast_vote(doc, "b1", PY, "Honesty")
    rate_value(doc, PY, "Trust", importance=5, practice=3)
    set_progress(doc, PY, "values-collective", completed=["values-select"])
    set_draft(doc, PY, "We make things better. ")
    set_mission(doc, "Our mission is to help people grow.")
    set_vision(doc, "A world of honest teams.")


async def wait_equal(client: YClient, expected: dict[str, Any], timeout: float = 15) -> None:
    try:
        await client.wait_for(lambda: snapshot(client.doc) == expected, timeout=timeout)
    except TimeoutError:
        assert snapshot(client.doc) == expected  # show the difference


def awareness_state(pid: str, name: str, stage: str = "values-select") -> dict[str, Any]:
    return {
        "user": {"id": pid, "name": name, "color": "#336699", "role": "participant"},
        "stage": stage,
        "online_at": 1700000000.0,
        "typing": False,
        "typing_at": None,
        "cursor": {"x": 0.25, "y": 0.5, "stage": stage},
    }


async def test_every_root_converges_both_ways(server: Any) -> None:
    wid = "interop-" + uuid.uuid4().hex[:8]
    async with YClient(server.ws(wid)) as py, NodePeer(server.ws_base, wid, NODE) as node:
        await node.call("synced")
        with anyio.fail_after(10):
            await py.synced.wait()

        # Python -> Node: every root type written by the Python schema actions.
        python_writes(py.doc)
        expected = snapshot(py.doc)
        assert all(expected[name] for name in ROOTS), expected  # every root has content
        seen = await node.call("wait_equal", expected=expected)
        assert seen["mission"] == "Our mission is to help people grow."
        assert seen["participants"][PY]["role"] == "facilitator"

        # Node -> Python: every root type written with the Yjs JS API.
        after_node = await node.call("write_all", tag="n1")
        await wait_equal(py, after_node)
        data = read_workshop(py.doc)
        assert data.skipped == 0, data.skipped_by_root  # the JS shapes follow the contract
        assert data.participants[NODE].role == "participant"
        assert data.votes["b1"] == {PY: "Honesty", NODE: "Trust"}
        assert data.votes["nb-n1"] == {NODE: "yes"}
        assert data.matrix[NODE]["Honesty"].importance == 5
        assert data.progress[NODE].completed == ("values-select", "values-collective")
        assert data.drafts[NODE] == "Node draft n1. "
        assert "[node n1]" in data.mission and data.mission.startswith("Our mission")
        assert data.vision == "A world of honest teams. Node vision n1."
        assert [m.text for m in data.messages] == ["hello from python", "hello from node n1"]
        assert data.meta["note_n1"] == "from node n1"

        # The browser's derived.js (run in Node) agrees with the server's derived state.
        async with httpx.AsyncClient(base_url=server.url) as http:
            served = (await http.get(f"/workshops/{wid}/state")).json()
        assert await node.call("derived") == served
        honesty = next(v for v in served["values"] if v["key"] == "honesty")
        assert (honesty["count"], honesty["percent"]) == (2, 100.0)


async def test_awareness_both_ways_and_removed_on_disconnect(server: Any) -> None:
    wid = "aware-" + uuid.uuid4().hex[:8]
    async with NodePeer(server.ws_base, wid, NODE) as node:
        await node.call("synced")
        async with YClient(server.ws(wid)) as py:
            with anyio.fail_after(10):
                await py.synced.wait()
            node_cid = (await node.call("set_awareness", state=awareness_state(NODE, "Nora")))["clientID"]
            await py.wait_for(lambda: (py.awareness.get(node_cid) or {}).get("user", {}).get("id") == NODE)
            assert py.awareness[node_cid] == awareness_state(NODE, "Nora")

            await py.set_awareness(awareness_state(PY, "Pia", stage="vision"))
            seen = await node.call("wait_awareness", user_id=PY, present=True)
            assert seen["clientID"] == py.client_id
            assert seen["state"] == awareness_state(PY, "Pia", stage="vision")
        # The Python peer closed: the server removes its state and tells Node at once.
        gone = await node.call("wait_awareness", user_id=PY, present=False, timeout=5)
        assert gone == {"absent": True}

    # And the other way: a Node provider that disconnects disappears for Python.
    async with YClient(server.ws(wid)) as py:
        async with NodePeer(server.ws_base, wid, "node-2") as node2:
            await node2.call("synced")
            cid = (await node2.call("set_awareness", state=awareness_state("node-2", "Ned")))["clientID"]
            await py.wait_for(lambda: py.awareness.get(cid) is not None)
            await node2.call("disconnect")
            await py.wait_for(lambda: cid in py.awareness and py.awareness[cid] is None, timeout=5)
            assert py.awareness[cid] is None


async def test_node_edits_offline_and_reconnects(server: Any) -> None:
    wid = "offline-" + uuid.uuid4().hex[:8]
    async with YClient(server.ws(wid)) as py, NodePeer(server.ws_base, wid, NODE) as node:
        await node.call("synced")
        python_writes(py.doc)
        add_participant(py.doc, NODE, "Node", "participant")
        await node.call("wait_equal", expected=snapshot(py.doc))

        await node.call("disconnect")
        # Both sides edit while Node is offline, the same texts included.
        offline = await node.call("write_all", tag="off")
        await node.call("edit_mission", index=0, insert="NODE ")
        post_message(py.doc, PY, "python while node was away")
        set_mission(py.doc, str(bind_roots(py.doc).mission) + " PY-END")
        select_value(py.doc, PY, unicodedata.normalize("NFD", "Café"))
        assert snapshot(py.doc) != offline

        await node.call("connect")
        # Node's offline edits reach Python; then both replicas are equal.
        await py.wait_for(lambda: "node-off" in [m["id"] for m in snapshot(py.doc)["messages"]])
        merged = await node.call("wait_equal", expected=snapshot(py.doc))
        await wait_equal(py, merged)
        mission = merged["mission"]
        assert mission.startswith("NODE Our mission") and mission.endswith(" PY-END") and "[node off]" in mission
        texts = [m["text"] for m in merged["messages"]]
        assert "hello from node off" in texts and "python while node was away" in texts
        assert read_workshop(py.doc).skipped == 0


async def test_derived_js_matches_server_on_tricky_names(server: Any) -> None:
    """Names equal only after strip/NFC/casefold, half-up rounding, ties: JS == Python."""
    wid = "derived-" + uuid.uuid4().hex[:8]
    async with YClient(server.ws(wid)) as py, NodePeer(server.ws_base, wid, NODE) as node:
        await node.call("synced")
        doc = py.doc
        new_workshop(doc, title="Names", facilitator_id="f", facilitator_name="F", values=["Straße", " Café "])
        picks = {
            "p1": ["STRASSE", unicodedata.normalize("NFD", "café"), "ΟΔΟΣ"],
            "p2": ["strasse", "οδος", "Zeal"],
            "p3": ["Honesty"],
            "p4": ["honesty", "\u2003Zeal\u2003"],
            "p5": ["HONESTY"],
            "p6": ["\U0001f600 Joy"],
            "p7": ["\ufb01ne"],
            "p8": ["fine"],
        }
        for pid, names in picks.items():
            add_participant(doc, pid, pid.upper())
            for name in names:
                select_value(doc, pid, name)
        for pid, (imp, prac) in {"p1": (5, 2), "p2": (4, 4), "p3": (3, 1), "p4": (5, 5)}.items():
            rate_value(doc, pid, "Honesty", imp, prac)
            rate_value(doc, pid, "Trust", prac, imp)
        open_ballot(doc, "b", "Pick", ["A", "B", "C"], stage="vision", kind="multi", max_choices=2)
        for pid, choice in {"p1": ["A", "B"], "p2": ["B"], "p3": ["C", "B"], "p4": ["A", "A"]}.items():
            bind_roots(doc).votes["b"][pid] = choice  # p4's duplicate vote must be ignored
        bind_roots(doc).selections["p9"] = Map({"  ": 1.0, "Ok": 2.0})  # a blank key is skipped
        await node.call("wait_equal", expected=snapshot(doc))
        async with httpx.AsyncClient(base_url=server.url) as http:
            served = (await http.get(f"/workshops/{wid}/state")).json()
        js = await node.call("derived")
        assert js == served
        by_key = {v["key"]: v for v in served["values"]}
        assert by_key["strasse"]["count"] == 2 and by_key["strasse"]["name"] == "Straße"
        assert by_key["fine"]["count"] == 2
        assert served["ballots"]["b"]["counts"] == [
            {"option": "A", "count": 1}, {"option": "B", "count": 3}, {"option": "C", "count": 1}
        ]
        assert served["skipped"] >= 2
