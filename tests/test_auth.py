"""Security over real WebSockets: tokens, write rules on CRDT updates, awareness, limits."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import anyio
import httpx
import jwt
import pytest
import websockets
from pycrdt import Array, Doc, Map, Text

from vmv_sync import schema
from vmv_sync.protocol import decode_state_vector, encode_awareness, encode_awareness_update

from .yclient import YClient

pytestmark = pytest.mark.anyio

SECRET = "test-secret-" + "x" * 32
AUTH_ENV = {"VMV_SECRET": SECRET}


@dataclass
class Member:
    pid: str
    token: str
    role: str
    name: str


@dataclass
class Workshop:
    server: object
    wid: str
    invite: str
    facilitator: Member
    members: dict[str, Member]

    def url(self, member: Member) -> str:
        return f"{self.server.ws(self.wid)}?token={member.token}"


async def make_workshop(server, *names: str, observer: str | None = None) -> Workshop:
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.post("/api/workshops", json={"title": "Family", "name": "Fay", "values": ["Honesty", "Courage"]})
        assert r.status_code == 201, r.text
        body = r.json()
        fac = Member(body["participant_id"], body["token"], "facilitator", "Fay")
        ws = Workshop(server, body["workshop_id"], body["invite_code"], fac, {})
        for name in names:
            r = await http.post(f"/api/workshops/{ws.wid}/join", json={"invite_code": ws.invite, "name": name})
            assert r.status_code == 200, r.text
            b = r.json()
            ws.members[name] = Member(b["participant_id"], b["token"], "participant", name)
        if observer:
            r = await http.post(f"/api/workshops/{ws.wid}/join", json={"invite_code": ws.invite, "name": observer, "role": "observer"})
            b = r.json()
            ws.members[observer] = Member(b["participant_id"], b["token"], "observer", observer)
    return ws


@pytest.fixture
def auth_server(server_factory):
    return server_factory(env=AUTH_ENV, args=())


def snapshot(doc: Doc) -> tuple:
    return decode_state_vector(doc.get_state()), {name: doc.get(name, type=kind).to_py() for name, kind in schema.ROOTS.items()}


def forge(claims: dict, secret: str = SECRET, alg: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=alg)


async def expect_refused(url: str, code: int) -> None:
    async with YClient(url) as c:
        assert await c.wait_closed() == code


async def test_tokens_checked_at_connect(auth_server) -> None:
    ws = await make_workshop(auth_server, "Ann")
    base = auth_server.ws(ws.wid)
    now = int(time.time())
    good = {"sub": "p-x", "name": "X", "role": "participant", "wid": ws.wid, "iat": now, "exp": now + 60}
    await expect_refused(base, 4401)  # no token
    await expect_refused(base + "?token=not.a.jwt", 4401)  # malformed
    await expect_refused(base + "?token=" + forge(good, secret="another-secret-" + "y" * 32), 4401)  # bad signature
    await expect_refused(base + "?token=" + forge({**good, "exp": now - 10}), 4401)  # expired
    none_token = jwt.encode(good, None, algorithm="none")
    await expect_refused(base + "?token=" + none_token, 4401)  # alg: none
    other = await make_workshop(auth_server, "Bob")
    await expect_refused(f"{base}?token={other.members['Bob'].token}", 4403)  # another workshop
    # HTTP endpoints check the same token
    async with httpx.AsyncClient(base_url=auth_server.url) as http:
        assert (await http.get(f"/workshops/{ws.wid}/state")).status_code == 401
        assert (await http.get(f"/workshops/{ws.wid}/state", headers={"Authorization": f"Bearer {other.members['Bob'].token}"})).status_code == 403
        ok = await http.get(f"/workshops/{ws.wid}/state", params={"token": ws.members["Ann"].token})
        assert ok.status_code == 200 and "values" in ok.json()


async def test_unauthenticated_client_holds_nothing(auth_server) -> None:
    ws = await make_workshop(auth_server)
    started = time.monotonic()
    async with websockets.connect(auth_server.ws(ws.wid)) as raw:
        with anyio.fail_after(5):
            with pytest.raises(websockets.ConnectionClosed) as info:
                await raw.recv()
    assert info.value.rcvd.code == 4401
    assert time.monotonic() - started < 5


ATTACKS = {
    "others_selection": lambda doc, me, other: doc.get("selections", type=Map)[other.pid].__setitem__("Greed", 1.0),
    "others_vote": lambda doc, me, other: doc.get("votes", type=Map)["b1"].__setitem__(other.pid, "x"),
    "others_matrix": lambda doc, me, other: doc.get("matrix", type=Map)[other.pid].__setitem__("Honesty", {"importance": 1, "practice": 1}),
    "others_progress": lambda doc, me, other: doc.get("progress", type=Map).__setitem__(other.pid, Map({"stage": "vision", "completed": [], "updated_at": 1.0})),
    "others_draft": lambda doc, me, other: doc.get("drafts", type=Map)[other.pid].insert(0, "evil"),
    "message_as_other": lambda doc, me, other: doc.get("messages", type=Array).append(Map({"id": "m-x", "author": other.pid, "text": "I quit", "sent_at": 1.0, "stage": "vision"})),
    "meta": lambda doc, me, other: doc.get("meta", type=Map).__setitem__("stage", "vision"),
    "values": lambda doc, me, other: doc.get("values", type=Array).append("Greed"),
    "ballots": lambda doc, me, other: doc.get("ballots", type=Map)["b1"].__setitem__("open", False),
    "role_escalation": lambda doc, me, other: doc.get("participants", type=Map)[me.pid].__setitem__("role", "facilitator"),
    "new_root": lambda doc, me, other: doc.get("evil", type=Map).__setitem__("x", 1),
    "delete_message": lambda doc, me, other: doc.get("messages", type=Array).__delitem__(0),
}


async def _prepare(auth_server) -> Workshop:
    ws = await make_workshop(auth_server, "Ann", "Bob", observer="Olga")
    async with YClient(ws.url(ws.facilitator), saved=True) as fac:
        await fac.synced.wait()
        schema.open_ballot(fac.doc, "b1", "Which?", ["x", "y"], stage="values-select")
        schema.post_message(fac.doc, ws.facilitator.pid, "welcome")
        await fac.wait_for(lambda: fac.saved_count == fac.sent_updates)
    return ws


@pytest.mark.parametrize("attack", sorted(ATTACKS))
async def test_write_rules_refuse_each_attack(auth_server, attack: str) -> None:
    ws = await _prepare(auth_server)
    ann, bob = ws.members["Ann"], ws.members["Bob"]
    async with YClient(ws.url(bob), saved=True) as victim:
        await victim.synced.wait()
        before = snapshot(victim.doc)
        async with YClient(ws.url(ann)) as attacker:
            await attacker.synced.wait()
            ATTACKS[attack](attacker.doc, ann, bob)
            assert await attacker.wait_closed() == 4403, attack
            assert attacker.close_reason
        # the legitimate client keeps syncing and never saw any part of the attack
        schema.post_message(victim.doc, bob.pid, "still here")
        await victim.wait_for(lambda: victim.saved_count == victim.sent_updates)
    async with YClient(ws.url(ws.facilitator)) as fresh:
        await fresh.wait_for(lambda: len(fresh.doc.get("messages", type=Array)) == 2)
        state, content = snapshot(fresh.doc)
    assert content["messages"][-1]["text"] == "still here"
    content["messages"] = content["messages"][:-1]
    assert content == before[1]


async def test_mixed_legal_and_illegal_update_refused_whole(auth_server) -> None:
    ws = await _prepare(auth_server)
    ann, bob = ws.members["Ann"], ws.members["Bob"]
    async with YClient(ws.url(bob)) as watcher:
        await watcher.synced.wait()
        async with YClient(ws.url(ann)) as attacker:
            await attacker.synced.wait()
            with attacker.doc.transaction():
                schema.toggle_value(attacker.doc, ann.pid, "Honesty")  # legal
                attacker.doc.get("selections", type=Map)[bob.pid]["Greed"] = 1.0  # illegal
            assert await attacker.wait_closed() == 4403
        async with YClient(ws.url(ws.facilitator)) as fresh:
            await fresh.synced.wait()
            selections = fresh.doc.get("selections", type=Map).to_py()
    assert selections[ann.pid] == {} and selections[bob.pid] == {}
    assert watcher.received_updates == 1  # only its initial sync step 2


async def test_legal_writes_pass_for_each_role(auth_server) -> None:
    ws = await _prepare(auth_server)
    ann = ws.members["Ann"]
    async with YClient(ws.url(ann), saved=True) as a:
        await a.synced.wait()
        schema.toggle_value(a.doc, ann.pid, "Honesty")
        schema.cast_vote(a.doc, "b1", ann.pid, "x")
        schema.rate_value(a.doc, ann.pid, "Honesty", 5, 3)
        schema.set_progress(a.doc, ann.pid, "values-matrix")
        schema.set_draft(a.doc, ann.pid, "We care")
        schema.post_message(a.doc, ann.pid, "hello")
        schema.set_mission(a.doc, "Our mission")
        schema.add_participant(a.doc, ann.pid, "Ann B.", "participant")  # rename self, same role
        await a.wait_for(lambda: a.saved_count == a.sent_updates)
        assert not a.closed.is_set()
    async with YClient(ws.url(ws.facilitator), saved=True) as f:
        await f.synced.wait()
        schema.set_stage(f.doc, "values-matrix")
        schema.close_ballot(f.doc, "b1")
        await f.wait_for(lambda: f.saved_count == f.sent_updates)
        assert not f.closed.is_set()
    async with httpx.AsyncClient(base_url=auth_server.url) as http:
        body = (await http.get(f"/workshops/{ws.wid}/state", params={"token": ann.token})).json()
    assert body["stages"]["values-matrix"] == 1


async def test_observer_cannot_write(auth_server) -> None:
    ws = await _prepare(auth_server)
    olga = ws.members["Olga"]
    async with YClient(ws.url(olga)) as o:
        await o.synced.wait()
        o.doc.get("mission", type=Text).insert(0, "hi")
        assert await o.wait_closed() == 4403


async def test_awareness_spoofing_refused(auth_server) -> None:
    ws = await _prepare(auth_server)
    ann, bob = ws.members["Ann"], ws.members["Bob"]
    async with YClient(ws.url(bob)) as b:
        await b.synced.wait()
        await b.set_awareness({"user": {"id": bob.pid, "name": "Bob", "role": "participant"}})
        async with YClient(ws.url(ann)) as a:
            await a.synced.wait()
            await a.wait_for(lambda: a.awareness.get(b.client_id) is not None)
            # a stock y-websocket provider echoes the states it receives: that is no attack
            echo = encode_awareness_update([(b.client_id, b.awareness_clock, json.dumps(a.awareness[b.client_id]))])
            await a.send_raw(encode_awareness(echo))
            await a.set_awareness({"user": {"id": ann.pid, "name": "Ann", "role": "participant"}})
            await b.wait_for(lambda: b.awareness.get(a.client_id) is not None)
            assert not a.closed.is_set()
            # claiming another identity in its own state is
            await a.set_awareness({"user": {"id": bob.pid, "name": "Bob", "role": "participant"}})
            assert await a.wait_closed() == 4403
        async with YClient(ws.url(ann)) as a2:
            await a2.synced.wait()
            # reuse Bob's awareness client id with Ann's own identity
            a2.awareness_clock = 100
            await a2.set_awareness({"user": {"id": ann.pid, "name": "Ann", "role": "participant"}}, client_id=b.client_id)
            assert await a2.wait_closed() == 4403
        # Bob's own newer state comes back after anything the spoof could have caused
        await b.set_awareness({"user": {"id": bob.pid, "name": "Bob", "role": "participant"}, "mark": 1})
        await b.wait_for(lambda: (b.awareness.get(b.client_id) or {}).get("mark") == 1)
        assert b.awareness[b.client_id]["user"]["id"] == bob.pid
        assert not b.closed.is_set()


async def test_removed_participant_loses_access(auth_server) -> None:
    ws = await _prepare(auth_server)
    ann = ws.members["Ann"]
    async with YClient(ws.url(ann)) as a:
        await a.synced.wait()
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=auth_server.url) as http:
            denied = await http.post(f"/api/workshops/{ws.wid}/participants/{ann.pid}/revoke", params={"token": ann.token}, json={})
            assert denied.status_code == 403
            r = await http.post(f"/api/workshops/{ws.wid}/participants/{ann.pid}/revoke", headers={"Authorization": f"Bearer {ws.facilitator.token}"}, json={})
            assert r.status_code == 200
        assert await a.wait_closed(timeout=5) == 4401
        assert time.monotonic() - started < 5
    await expect_refused(ws.url(ann), 4401)  # the replayed token
    async with httpx.AsyncClient(base_url=auth_server.url) as http:
        assert (await http.get(f"/workshops/{ws.wid}/state", params={"token": ann.token})).status_code == 401


async def test_join_with_wrong_invite_code(auth_server) -> None:
    ws = await make_workshop(auth_server)
    async with httpx.AsyncClient(base_url=auth_server.url) as http:
        r = await http.post(f"/api/workshops/{ws.wid}/join", json={"invite_code": "WRONG123", "name": "Eve"})
        assert r.status_code == 403
        r = await http.post(f"/api/workshops/{ws.wid}/join", json={"name": "Eve"})
        assert r.status_code == 400


async def test_rate_limit_and_connection_cap(server_factory) -> None:
    server = server_factory(env={**AUTH_ENV, "VMV_RATE_LIMIT": "20", "VMV_RATE_BURST": "40", "VMV_MAX_CONNECTIONS_PER_WORKSHOP": "2"}, args=())
    ws = await make_workshop(server, "Ann")
    ann = ws.members["Ann"]
    async with YClient(ws.url(ann)) as a, YClient(ws.url(ws.facilitator)) as f:
        await a.synced.wait()
        await f.synced.wait()
        await expect_refused(ws.url(ann), 4429)  # third connection
        for i in range(200):
            if a.closed.is_set():
                break
            await a.set_awareness({"user": {"id": ann.pid, "name": "Ann"}, "n": i})
        assert await a.wait_closed() == 4429
        assert not f.closed.is_set()


async def test_origin_allow_list(auth_server) -> None:
    ws = await make_workshop(auth_server, "Ann")
    url = ws.url(ws.members["Ann"])
    with pytest.raises(websockets.InvalidStatus) as info:
        await websockets.connect(url, origin="http://evil.example")
    assert info.value.response.status_code == 403
    own = auth_server.url  # http://127.0.0.1:PORT
    async with websockets.connect(url, origin=own) as ok:
        assert await ok.recv()  # the server's sync step 1


async def test_cli_created_workshop_works_with_the_running_server(auth_server) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "vmv_sync", "workshop", "create", "--title", "CLI", "--name", "Fay",
         "--value", "Honesty", "--db", str(auth_server.db), "--secret", SECRET],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    fields = dict(line.split(":", 1) for line in out.splitlines())
    wid = fields["workshop"].strip()
    code = fields["invite code"].split()[0]
    token = fields["facilitator"].split("token=", 1)[1].strip()
    async with httpx.AsyncClient(base_url=auth_server.url) as http:
        joined = await http.post(f"/api/workshops/{wid}/join", json={"invite_code": code, "name": "Ann"})
        assert joined.status_code == 200, joined.text
        state = await http.get(f"/workshops/{wid}/state", params={"token": token})
        assert state.status_code == 200
        assert [v["name"] for v in state.json()["values"]] == ["Honesty"]
    async with YClient(f"{auth_server.ws(wid)}?token={token}", saved=True) as fac:
        await fac.synced.wait()
        assert fac.doc.get("meta", type=Map)["title"] == "CLI"
        schema.set_stage(fac.doc, "values-matrix")
        await fac.wait_for(lambda: fac.saved_count == 1)
