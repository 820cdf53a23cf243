"""Issue 13 regressions over real WebSockets: client ids belong to participants, and
"saved" means the content is in the document.

Each attack here was reproduced against the server before client-id ownership: the
squatter's or collider's update was accepted, and the victim's later edits were
acknowledged as saved while never reaching the document.
"""

from __future__ import annotations

import anyio
import pytest
from pycrdt import Doc, Map, Text

from vmv_sync.errors import CLIENT_ID_TAKEN_PREFIX
from vmv_sync.protocol import decode_state_vector, encode_sync_update

from ..test_auth import AUTH_ENV, make_workshop
from ..yclient import YClient
from .craft import any_item, deleted_struct

pytestmark = pytest.mark.anyio


async def server_text(server, ws, name: str = "mission") -> str:
    """The text as the server's document has it (a fresh facilitator replica)."""
    async with YClient(ws.url(ws.facilitator)) as f:
        with anyio.fail_after(10):
            await f.synced.wait()
        return str(f.doc.get(name, type=Text))


@pytest.mark.parametrize("length", [10, 2**40])
async def test_squatting_a_victims_next_clocks_is_refused_and_the_victims_edits_land(server_factory, length: int) -> None:
    server = server_factory(env=AUTH_ENV, args=())
    ws = await make_workshop(server, "Ann", "Bob")
    ann, bob = ws.members["Ann"], ws.members["Bob"]
    async with YClient(ws.url(ann), saved=True) as a:
        await a.synced.wait()
        mission = a.doc.get("mission", type=Text)
        mission += "A1 "
        await a.wait_for(lambda: a.saved_count >= 1)
        async with YClient(ws.url(bob)) as b:
            await b.synced.wait()
            victim_clock = decode_state_vector(b.doc.get_state())[a.doc.client_id]
            await b.send_raw(encode_sync_update(deleted_struct(a.doc.client_id, victim_clock, length)))
            code = await b.wait_closed()
            assert code in (4400, 4403), code
            if length == 10:
                assert code == 4403 and (b.close_reason or "").startswith(CLIENT_ID_TAKEN_PREFIX)
        mission += "A2"
        await a.wait_for(lambda: a.saved_count >= 2)
    assert await server_text(server, ws) == "A1 A2"


async def test_the_servers_own_client_id_cannot_be_squatted(server_factory) -> None:
    server = server_factory(env=AUTH_ENV, args=())
    ws = await make_workshop(server, "Bob")
    bob = ws.members["Bob"]
    async with YClient(ws.url(bob)) as b:
        await b.synced.wait()
        state = decode_state_vector(b.doc.get_state())
        assert len(state) == 1  # only the server has written (creation, Bob's join)
        [(server_id, clock)] = state.items()
        await b.send_raw(encode_sync_update(deleted_struct(server_id, clock, 10)))
        assert await b.wait_closed() == 4403
    again = await make_workshop(server, "Cy")  # joins keep working in a fresh workshop ...
    import httpx

    async with httpx.AsyncClient(base_url=server.url) as http:  # ... and in this one
        r = await http.post(f"/api/workshops/{ws.wid}/join", json={"invite_code": ws.invite, "name": "Dee"})
        assert r.status_code == 200
        dee = r.json()["participant_id"]
    async with YClient(ws.url(ws.facilitator)) as f:
        await f.synced.wait()
        assert dee in f.doc.get("participants", type=Map)
    assert again.members["Cy"].pid


async def test_a_collision_under_anothers_client_id_is_refused_and_the_owners_offline_edit_lands(server_factory) -> None:
    server = server_factory(env=AUTH_ENV, args=())
    ws = await make_workshop(server, "Ann", "Bob")
    ann, bob = ws.members["Ann"], ws.members["Bob"]
    ann_doc: Doc = Doc()
    async with YClient(ws.url(ann), ann_doc, saved=True) as a:
        await a.synced.wait()
        mission = ann_doc.get("mission", type=Text)
        mission += "hello "
        await a.wait_for(lambda: a.saved_count >= 1)
    # Ann is offline and writes on; meanwhile Bob writes under Ann's client id at her next clock.
    mission += "from Ann"
    async with YClient(ws.url(bob), Doc(client_id=ann_doc.client_id)) as b:
        await b.synced.wait()
        drafts = b.doc.get("drafts", type=Map)
        drafts[bob.pid] = Map({"x": 1})  # under Bob's own key: the write rules allow it
        code = await b.wait_closed()
        assert code == 4403 and (b.close_reason or "").startswith(CLIENT_ID_TAKEN_PREFIX), (code, b.close_reason)
    async with YClient(ws.url(ann), ann_doc, saved=True) as a:
        await a.synced.wait()
        await a.wait_for(lambda: a.saved_count >= 1)  # her sync step 2 (the offline edit) is committed
    assert await server_text(server, ws) == "hello from Ann"


async def test_an_update_with_a_missing_dependency_is_refused_not_acknowledged(server) -> None:
    # Auth off: no identity, but "saved" still means "in the document".
    first, second = Doc(client_id=101), Doc(client_id=202)
    text = first.get("mission", type=Text)
    text += "abc"
    second.apply_update(first.get_update())
    sv = second.get_state()
    other = second.get("mission", type=Text)
    other.insert(1, "X")  # its origin is one of first's items, which the server never saw
    dependent = second.get_update(sv)
    async with YClient(server.ws("dep"), saved=True) as c:
        await c.synced.wait()
        await c.send_raw(encode_sync_update(dependent))
        assert await c.wait_closed() == 4400
        assert c.saved_count == 0
    async with YClient(server.ws("dep")) as d:
        await d.synced.wait()
        assert str(d.doc.get("mission", type=Text)) == ""
        assert decode_state_vector(d.doc.get_state()) == {}


@pytest.mark.parametrize(("root", "key"), [("participants", None), ("selections", None), ("mission", "k"), ("messages", "k")])
async def test_content_no_reader_shows_is_refused(server_factory, root: str, key: str | None) -> None:
    """Sequence items under a Map root, keyed items under an Array or Text root: yrs
    stores them, no reader shows them and the guard saw no event: they were accepted."""
    server = server_factory(env=AUTH_ENV, args=())
    ws = await make_workshop(server, "Ann")
    async with YClient(ws.url(ws.members["Ann"])) as a:
        await a.synced.wait()
        await a.send_raw(encode_sync_update(any_item(a.doc.client_id, root, key)))
        assert await a.wait_closed() == 4403
    async with YClient(ws.url(ws.facilitator)) as f:
        await f.synced.wait()
        assert a.doc.client_id not in decode_state_vector(f.doc.get_state())
