"""Interop with authentication on: stock y-websocket providers with ``params: {token}``.

The contract says a stock ``WebsocketProvider`` must work, and with authentication
on (docs/security.md) that includes what a stock provider does on its own: it
re-sends every awareness state it receives, the other clients' states included,
and it echoes removals. Here two Node providers (``driver.mjs``, unmodified
provider) of two participants and a Python peer holding the facilitator's token
write only what their tokens allow, converge, and exchange several seconds of
awareness traffic (cursor moves, renewals, the providers' echoes) without any
connection being closed. A provider that writes what its token does not allow is
closed with 4403, and the others keep syncing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest

from tests.interop.nodepeer import NodePeer
from tests.interop.test_node_interop import snapshot, wait_equal
from tests.yclient import YClient
from vmv_sync.schema import (
    cast_vote,
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

SECRET = "interop-secret-" + "z" * 32
TRAFFIC_MS = 6000  # at least 5 s of awareness traffic, as the stock providers make it


@dataclass(frozen=True)
class Member:
    pid: str
    name: str
    role: str
    token: str

    def user(self) -> dict[str, str]:
        """The awareness ``user`` the server accepts for this token (plus a colour)."""
        return {"id": self.pid, "name": self.name, "role": self.role, "color": "#336699"}


@dataclass(frozen=True)
class Workshop:
    wid: str
    facilitator: Member
    members: dict[str, Member]


async def make_workshop(server: Any, *names: str) -> Workshop:
    """Create a workshop and join ``names`` through the HTTP API (the real flow)."""
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.post("/api/workshops", json={"title": "Interop", "name": "Fay", "values": ["Honesty", "Trust"]})
        assert r.status_code == 201, r.text
        body = r.json()
        fay = Member(body["participant_id"], "Fay", "facilitator", body["token"])
        members = {}
        for name in names:
            r = await http.post(
                f"/api/workshops/{body['workshop_id']}/join", json={"invite_code": body["invite_code"], "name": name}
            )
            assert r.status_code == 200, r.text
            joined = r.json()
            members[name] = Member(joined["participant_id"], name, "participant", joined["token"])
    return Workshop(body["workshop_id"], fay, members)


def presence(member: Member, stage: str = "values-select") -> dict[str, Any]:
    return {
        "user": member.user(),
        "stage": stage,
        "online_at": 1700000000.0,
        "typing": False,
        "typing_at": None,
        "cursor": None,
    }


def refusals(server: Any) -> list[str]:
    """Server log lines of connections it closed with a 44xx code."""
    return [line for line in server.log if "closing code=44" in line]


def node_peer(server: Any, ws: Workshop, member: Member) -> NodePeer:
    return NodePeer(server.ws_base, ws.wid, member.pid, member.token)


def python_url(server: Any, ws: Workshop) -> str:
    return f"{server.ws(ws.wid)}?token={ws.facilitator.token}"


def facilitator_writes(py: YClient, fay: Member) -> None:
    """The Python peer (facilitator's token) writes its own entries, a ballot and the texts."""
    doc = py.doc
    open_ballot(doc, "b1", "Which value first?", ["Honesty", "Trust"], stage="values-collective")
    post_message(doc, fay.pid, "hello from python")
    select_value(doc, fay.pid, "Trust")
    cast_vote(doc, "b1", fay.pid, "Trust")
    rate_value(doc, fay.pid, "Trust", importance=5, practice=3)
    set_progress(doc, fay.pid, "values-collective", completed=["values-select"])
    set_draft(doc, fay.pid, "Fay's draft. ")
    set_mission(doc, "Our mission is to help people grow.")
    set_vision(doc, "A world of honest teams.")


async def test_two_stock_providers_and_python_converge_and_share_awareness(server_factory: Any) -> None:
    server = server_factory(env={"VMV_SECRET": SECRET}, args=())
    ws = await make_workshop(server, "Ann", "Bob")
    fay, ann, bob = ws.facilitator, ws.members["Ann"], ws.members["Bob"]
    async with (
        YClient(python_url(server, ws)) as py,
        node_peer(server, ws, ann) as ann_node,
        node_peer(server, ws, bob) as bob_node,
    ):
        await ann_node.call("synced")
        await bob_node.call("synced")
        with anyio.fail_after(10):
            await py.synced.wait()

        # --- Documents: each writes only its own entries and the shared texts. ------------
        facilitator_writes(py, fay)
        await ann_node.call("wait_equal", expected=snapshot(py.doc))
        await bob_node.call("wait_equal", expected=snapshot(py.doc))
        await ann_node.call("write_own", tag="a1", ballot="b1")
        await bob_node.call("write_own", tag="b1", ballot="b1")
        # Each Node peer's last action prefixes the vision: once both are there, all is.
        await py.wait_for(lambda: all(f"({p} " in str(snapshot(py.doc)["vision"]) for p in (ann.pid, bob.pid)))
        merged = snapshot(py.doc)
        assert await ann_node.call("wait_equal", expected=merged) == merged
        assert await bob_node.call("wait_equal", expected=merged) == merged

        data = read_workshop(py.doc)
        assert data.skipped == 0, data.skipped_by_root
        assert {m.author: m.text for m in data.messages} == {
            fay.pid: "hello from python",
            ann.pid: f"hello from {ann.pid} a1",
            bob.pid: f"hello from {bob.pid} b1",
        }
        assert data.votes["b1"] == {fay.pid: "Trust", ann.pid: "Honesty", bob.pid: "Honesty"}
        for member, tag in ((ann, "a1"), (bob, "b1")):
            assert set(data.selections[member.pid]) == {"Honesty", f"Courage {tag}"}
            assert data.matrix[member.pid]["Honesty"].importance == 4
            assert data.progress[member.pid].stage == "values-matrix"
            assert data.drafts[member.pid] == f"Draft of {member.pid} {tag}. "
            assert f"[{member.pid} {tag}]" in data.mission
        assert data.mission.startswith("Our mission is to help people grow.")
        assert data.vision.endswith("A world of honest teams.")
        assert data.participants[ann.pid].role == "participant" and data.participants[fay.pid].role == "facilitator"

        # --- Awareness: everyone sees everyone, with the identity of their token. ---------
        ann_cid = (await ann_node.call("set_awareness", state=presence(ann)))["clientID"]
        bob_cid = (await bob_node.call("set_awareness", state=presence(bob)))["clientID"]
        await py.set_awareness(presence(fay))
        for node, others in ((ann_node, (bob, fay)), (bob_node, (ann, fay))):
            for other in others:
                seen = await node.call("wait_awareness", user_id=other.pid, present=True)
                assert seen["state"]["user"] == other.user()
        await py.wait_for(lambda: all(py.awareness.get(cid) for cid in (ann_cid, bob_cid)))
        assert py.awareness[ann_cid]["user"] == ann.user() and py.awareness[bob_cid]["user"] == bob.user()

        # --- Several seconds of traffic: cursor moves and renewals from both providers
        # (each one echoed by the other provider), cursor moves from Python. -------------
        results: dict[str, Any] = {}

        async def traffic(name: str, node: NodePeer) -> None:
            results[name] = await node.call(
                "awareness_traffic", timeout=TRAFFIC_MS / 1000 + 15, duration=TRAFFIC_MS, interval=100, stage="vision"
            )

        async def python_cursor() -> None:
            state = presence(fay)
            deadline = time.monotonic() + TRAFFIC_MS / 1000
            for i in range(200):  # bounded; paced at ~7 moves per second
                if time.monotonic() >= deadline:
                    break
                state["cursor"] = {"x": i / 200, "y": 0.25, "stage": "vision"}
                await py.set_awareness(state)
                await anyio.sleep(0.15)
            state["cursor"] = {"x": 0.5, "y": 0.5, "stage": "vision"}
            await py.set_awareness(state)

        started = time.monotonic()
        with anyio.fail_after(TRAFFIC_MS / 1000 + 30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(traffic, "ann", ann_node)
                tg.start_soon(traffic, "bob", bob_node)
                tg.start_soon(python_cursor)
        assert time.monotonic() - started >= 5
        final = {"x": 0.99, "y": 0.99, "stage": "vision"}
        for name in ("ann", "bob"):
            assert results[name]["elapsed"] >= 5000 and results[name]["renewals"] >= 20 and results[name]["moves"] >= 20
            # The stock provider really echoed the other clients' states to the server.
            assert results[name]["echo_frames"] >= 20 and results[name]["echoed_foreign_states"] >= 20, results
        await ann_node.call("wait_remote_field", user_id=bob.pid, field="cursor", value=final)
        await bob_node.call("wait_remote_field", user_id=ann.pid, field="cursor", value=final)
        for node in (ann_node, bob_node):
            await node.call("wait_remote_field", user_id=fay.pid, field="cursor", value={"x": 0.5, "y": 0.5, "stage": "vision"})
        await py.wait_for(lambda: all((py.awareness.get(cid) or {}).get("cursor") == final for cid in (ann_cid, bob_cid)))

        # Nobody was closed, and the documents still sync both ways.
        for node in (ann_node, bob_node):
            status = await node.call("status")
            assert status["closes"] == [] and status["wsconnected"] and status["synced"], status
        assert not py.closed.is_set() and refusals(server) == []
        await ann_node.call("edit_mission", index=0, insert="ANN ")
        set_vision(py.doc, str(snapshot(py.doc)["vision"]) + " PY-END")
        await py.wait_for(lambda: str(snapshot(py.doc)["mission"]).startswith("ANN "))
        after = snapshot(py.doc)
        await ann_node.call("wait_equal", expected=after)
        await bob_node.call("wait_equal", expected=after)

        # --- Removal on disconnect: Bob goes, the others see it at once. ----------------
        await bob_node.call("disconnect")
        assert await ann_node.call("wait_awareness", user_id=bob.pid, present=False, timeout=5) == {"absent": True}
        await py.wait_for(lambda: bob_cid in py.awareness and py.awareness[bob_cid] is None, timeout=5)
        # Ann's provider echoed that removal too; it is ignored, nobody is closed.
        ann_status = await ann_node.call("status")
        assert ann_status["closes"] == [] and ann_status["wsconnected"], ann_status
        assert py.awareness[ann_cid] is not None and not py.closed.is_set()

        # Bob reconnects with the same token and catches up with what he missed.
        set_mission(py.doc, "While Bob was away.")
        await bob_node.call("connect")
        await bob_node.call("wait_equal", expected=snapshot(py.doc))
        assert refusals(server) == []


async def test_forbidden_writes_close_only_that_provider(server_factory: Any) -> None:
    server = server_factory(env={"VMV_SECRET": SECRET}, args=())
    ws = await make_workshop(server, "Ann", "Bob")
    fay, ann, bob = ws.facilitator, ws.members["Ann"], ws.members["Bob"]
    async with (
        YClient(python_url(server, ws)) as py,
        node_peer(server, ws, ann) as ann_node,
        node_peer(server, ws, bob) as bob_node,
    ):
        await ann_node.call("synced")
        await bob_node.call("synced")
        with anyio.fail_after(10):
            await py.synced.wait()
        bob_cid = (await bob_node.call("set_awareness", state=presence(bob)))["clientID"]
        await ann_node.call("set_awareness", state=presence(ann))
        await py.wait_for(lambda: py.awareness.get(bob_cid) is not None)

        # Bob's stock provider writes Ann's selection: closed with 4403, and (4400-4499
        # being final for y-websocket) it does not reconnect.
        await bob_node.call("forbidden_write", target=ann.pid, value="Greed")
        closed = await bob_node.call("wait_close", code=4403)
        assert [c["code"] for c in closed["closes"]] == [4403] and closed["closes"][0]["reason"]
        assert closed["shouldConnect"] is False and closed["wsconnected"] is False
        await py.wait_for(lambda: py.awareness.get(bob_cid, "gone") is None, timeout=5)
        assert await ann_node.call("wait_awareness", user_id=bob.pid, present=False, timeout=5) == {"absent": True}

        # The others keep syncing both ways, and the refused write reached nobody.
        await ann_node.call("write_own", tag="a2")
        await py.wait_for(lambda: f"({ann.pid} a2)" in str(snapshot(py.doc)["vision"]))
        post_message(py.doc, fay.pid, "still here")
        await ann_node.call("wait_equal", expected=snapshot(py.doc))
        await wait_equal(py, await ann_node.call("snapshot"))
        assert "Greed" not in snapshot(py.doc)["selections"].get(ann.pid, {})
        assert (await ann_node.call("status"))["closes"] == [] and not py.closed.is_set()
        assert len(refusals(server)) == 1 and "code=4403" in refusals(server)[0]

        # A stock provider whose awareness names someone else is refused too (4403).
        async with node_peer(server, ws, bob) as liar:
            await liar.call("synced")
            await liar.call("set_awareness", state=presence(ann))
            closed = await liar.call("wait_close", code=4403)
            assert [c["code"] for c in closed["closes"]] == [4403]
        assert (await ann_node.call("wait_awareness", user_id=ann.pid, present=False)) == {"absent": True}
        assert (await ann_node.call("status"))["closes"] == [] and not py.closed.is_set()
