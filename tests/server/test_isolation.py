"""Issue 14 regressions: bad input costs only its sender, a failing room only itself.

Before, a 4-byte sync step 1 with an undecodable state vector ended the room's
pipeline, then the room manager's task group: every workshop closed with 1001 and
every new WebSocket got 1011 until a restart. A failed commit did the same.
"""

from __future__ import annotations

import sqlite3

import httpx
import pytest
from pycrdt import Text

from ..yclient import YClient

pytestmark = pytest.mark.anyio


async def edit_and_see(writer: YClient, reader: YClient, text: str) -> None:
    """``writer`` appends ``text`` to the mission; ``reader`` must see it."""
    mission = writer.doc.get("mission", type=Text)
    mission += text
    await reader.wait_for(lambda: text in str(reader.doc.get("mission", type=Text)))


@pytest.mark.parametrize("frame", [b"\x00\x00\x01\x05", b"\x00\x00\x03\xff\xff\xff", b"\x00\x00\x00"])
async def test_an_undecodable_sync_step1_closes_only_its_sender(server, frame: bytes) -> None:
    async with YClient(server.ws("w1")) as a, YClient(server.ws("w1")) as b, YClient(server.ws("w2")) as c, YClient(server.ws("w2")) as d:
        for client in (a, b, c, d):
            await client.synced.wait()
        async with YClient(server.ws("w1")) as attacker:
            await attacker.synced.wait()
            await attacker.send_raw(frame)
            assert await attacker.wait_closed() == 4400
        await edit_and_see(a, b, "same workshop goes on. ")
        await edit_and_see(c, d, "other workshop goes on. ")
        async with YClient(server.ws("w3")) as fresh:  # new connections and new rooms work
            await fresh.synced.wait()
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.get("/healthz")
        assert r.status_code == 200 and r.json()["status"] == "ok"


async def test_a_failed_commit_ends_only_that_room_which_loads_again(server) -> None:
    async with YClient(server.ws("good")) as g1, YClient(server.ws("good")) as g2, YClient(server.ws("bad")) as bad:
        for client in (g1, g2, bad):
            await client.synced.wait()
        await edit_and_see(g1, g2, "before. ")
        # A real SQLite failure for one workshop's inserts (what a full disk does to all of them).
        db = sqlite3.connect(server.db, isolation_level=None)
        db.execute("PRAGMA busy_timeout = 5000")
        db.execute(
            "CREATE TRIGGER fail_bad BEFORE INSERT ON updates WHEN NEW.workshop_id = 'bad' "
            "BEGIN SELECT RAISE(ABORT, 'simulated disk full'); END"
        )
        mission = bad.doc.get("mission", type=Text)
        mission += "lost?"
        assert await bad.wait_closed() == 1011
        await edit_and_see(g1, g2, "during. ")
        async with httpx.AsyncClient(base_url=server.url) as http:
            r = await http.get("/healthz")
            assert r.status_code == 503 and r.json()["status"] == "unhealthy"
        db.execute("DROP TRIGGER fail_bad")
        db.close()
        async with YClient(server.ws("bad"), saved=True) as again:  # the room loads again
            await again.synced.wait()
            assert str(again.doc.get("mission", type=Text)) == ""  # nothing unsaved was relayed
            text = again.doc.get("mission", type=Text)
            text += "saved now"
            await again.wait_for(lambda: again.saved_count >= 1)
        await edit_and_see(g2, g1, "after.")
    async with YClient(server.ws("bad")) as check:
        await check.synced.wait()
        assert str(check.doc.get("mission", type=Text)) == "saved now"


async def test_a_bug_met_by_a_frame_costs_only_that_connection(server) -> None:
    # Awareness JSON nested 5,000 deep: json.loads raises RecursionError (was a 1006 and a traceback per frame).
    from vmv_sync.protocol import encode_awareness, encode_awareness_update

    deep = "[" * 5000 + "]" * 5000
    state = '{"a": ' + deep + "}"
    async with YClient(server.ws("w")) as a, YClient(server.ws("w")) as b:
        await a.synced.wait()
        await b.synced.wait()
        async with YClient(server.ws("w")) as attacker:
            await attacker.synced.wait()
            await attacker.send_raw(encode_awareness(encode_awareness_update([(7, 1, state)])))
            assert await attacker.wait_closed() == 4400
        await edit_and_see(a, b, "fine")
