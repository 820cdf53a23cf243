"""Issue 14: every WebSocket limit bounds memory and time and costs only its sender.

One test per limit, each with a neighbour that must keep working, and each bounded
in count and time. Limits are lowered through the real VMV_* variables.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import anyio
import httpx
import pytest
import websockets
from pycrdt import Text

from vmv_sync.protocol import encode_awareness, encode_awareness_update, encode_sync_step1, encode_sync_update
from vmv_sync.server.presence_table import FRAME_BYTES, FRAME_ENTRIES, RoomAwareness

from ..test_auth import AUTH_ENV, make_workshop
from ..yclient import YClient, big_updates, connect_slow
from .test_isolation import edit_and_see

pytestmark = pytest.mark.anyio


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_connections_per_participant_are_capped(server_factory) -> None:
    server = server_factory(env={**AUTH_ENV, "VMV_MAX_CONNECTIONS_PER_PARTICIPANT": "3"}, args=())
    ws = await make_workshop(server, "Ann", "Bob")
    ann, bob = ws.members["Ann"], ws.members["Bob"]
    async with YClient(ws.url(ann)) as a1, YClient(ws.url(ann)) as a2, YClient(ws.url(ann)) as a3:
        for c in (a1, a2, a3):
            await c.synced.wait()
        async with YClient(ws.url(ann)) as a4:
            assert await a4.wait_closed() == 4429
        async with YClient(ws.url(bob)) as b:  # everyone else still gets in
            await b.synced.wait()
            await edit_and_see(a1, b, "hi")


async def test_awareness_client_ids_per_connection_are_capped(server) -> None:
    # The attack: a million client ids announced by one connection (+310 MiB before).
    entries = [(1000 + i, 1, json.dumps({"n": i})) for i in range(10_000)]
    async with YClient(server.ws("aw")) as a, YClient(server.ws("aw")) as b:
        await a.synced.wait()
        await b.synced.wait()
        async with YClient(server.ws("aw")) as attacker:
            await attacker.synced.wait()
            before = rss_kib(server.proc.pid)
            await attacker.send_raw(encode_awareness(encode_awareness_update(entries)))
            assert await attacker.wait_closed() == 4429
            assert rss_kib(server.proc.pid) - before < 50 * 1024
        await a.set_awareness({"user": {"id": "a"}})
        await b.wait_for(lambda: b.awareness.get(a.client_id) == {"user": {"id": "a"}})
        assert len(b.awareness) <= 16 + 2  # at most the capped ids ever reached a peer


async def test_an_awareness_state_over_its_size_limit_is_refused(server_factory) -> None:
    server = server_factory(env={"VMV_MAX_AWARENESS_STATE_BYTES": "4096"})
    async with YClient(server.ws("aw")) as a:
        await a.synced.wait()
        await a.set_awareness({"blob": "x" * 5000})
        assert await a.wait_closed() == 4413


def test_outgoing_awareness_frames_are_split_below_client_limits() -> None:
    from vmv_sync.protocol import decode_awareness_update, parse_message
    from vmv_sync.server.connection import Connection

    class Sink:
        async def send(self, frame: bytes) -> None: ...

        def send_nowait(self, frame: bytes) -> bool:
            return True

    table = RoomAwareness(30.0, max_clients_per_connection=10_000, max_state_bytes=100_000)
    conn = Connection("w", Sink())
    big = json.dumps({"s": "y" * 2000})
    table.apply(conn, decode_awareness_update(encode_awareness_update([(i + 1, 1, big) for i in range(3000)])))
    frames = table.full_frames()
    assert len(frames) > 1
    seen = 0
    for frame in frames:
        message = parse_message(frame)
        entries = decode_awareness_update(message.update)  # type: ignore[union-attr]
        assert len(entries) <= FRAME_ENTRIES
        assert len(frame) <= FRAME_BYTES + len(big) + 64
        seen += len(entries)
    assert seen == 3000


async def test_sync_step1_floods_are_bounded_by_the_send_queue_bytes(server_factory) -> None:
    # The attack: 150 sync step 1 frames of 4 bytes against a large document, never read
    # (+722 MiB before: the queue counted frames, not bytes).
    server = server_factory(env={"VMV_SEND_QUEUE_BYTES": str(4 * 1024 * 1024)})
    url = server.ws("big")
    async with YClient(url, saved=True) as writer:
        await writer.synced.wait()
        updates = big_updates(20, 60_000)  # about 1.2 MB of document
        for update in updates:
            await writer.ws.send(encode_sync_update(update))
        await writer.wait_for(lambda: writer.saved_count >= len(updates), timeout=30)
        before = rss_kib(server.proc.pid)
        async with await connect_slow(url) as slow:
            for _ in range(150):
                await slow.send(encode_sync_step1(b"\x00"))
            code = None
            with anyio.fail_after(30):
                try:
                    while True:
                        await slow.recv()
                except websockets.ConnectionClosed as closed:
                    code = closed.rcvd.code if closed.rcvd else None
            assert code == 4409
        grown = rss_kib(server.proc.pid) - before
        assert grown < 120 * 1024, f"server grew {grown} KiB"
        async with YClient(url) as other:  # the workshop is fine
            await other.synced.wait()
            await edit_and_see(writer, other, "still here")


async def write_until_refused(url: str, chunks: int = 50) -> tuple[int | None, str, int]:
    """Append 10 kB chunks to the mission until the server closes; (code, reason, saved)."""
    async with YClient(url, saved=True) as client:
        await client.synced.wait()
        mission = client.doc.get("mission", type=Text)
        for i in range(chunks):
            mission += f"{i:03d}" + "m" * 10_000
            with anyio.fail_after(15):
                await client.wait_for(lambda i=i: client.saved_count >= i + 1 or client.closed.is_set())
            if client.closed.is_set():
                return client.close_code, client.close_reason or "", client.saved_count
    return None, "", chunks


async def test_the_workshop_storage_quota_refuses_further_growth(server_factory) -> None:
    # Issue 19, finding 4: one budget per workshop let one participant make it read-only
    # for everyone. Now each participant has a share (25%), participants stop at 90%,
    # and the facilitator can write up to the quota itself.
    server = server_factory(env={**AUTH_ENV, "VMV_WORKSHOP_QUOTA_BYTES": "200000"}, args=())
    ws = await make_workshop(server, "Ann", "Bob", "Cid", "Dee", "Eve")
    ann = ws.members["Ann"]
    code, reason, saved = await write_until_refused(ws.url(ann))
    assert code == 4413 and "share" in reason, (code, reason)
    assert 3 <= saved <= 5, saved  # 50 kB: her share of 200 kB
    # reconnecting gives nothing back
    code, reason, saved = await write_until_refused(ws.url(ann), chunks=1)
    assert code == 4413 and "share" in reason and saved == 0
    # the others still write; participants stop at 90% of the quota, before it is full
    codes = [await write_until_refused(ws.url(ws.members[name])) for name in ("Bob", "Cid", "Dee", "Eve")]
    assert all(code == 4413 for code, _, _ in codes), codes
    assert any("nearly full" in reason for _, reason, _ in codes), codes
    # the facilitator can still write (moderate) until the quota itself
    code, reason, saved = await write_until_refused(ws.url(ws.facilitator))
    assert saved >= 1 and code == 4413 and "quota" in reason, (code, reason, saved)
    async with YClient(ws.url(ws.members["Bob"])) as b:  # the stored workshop is intact and readable
        await b.synced.wait()
        assert len(str(b.doc.get("mission", type=Text))) > 150_000
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/healthz")).status_code == 200


async def test_participants_cannot_shut_the_facilitator_out_of_their_workshop(server_factory) -> None:
    """Issue 19, finding 6: 25 join tokens held a workshop's 500 connections and shut the
    facilitator out. Participants now stop short of the cap; the rest is the facilitator's."""
    server = server_factory(
        env={
            **AUTH_ENV,
            "VMV_MAX_CONNECTIONS_PER_WORKSHOP": "6",
            "VMV_FACILITATOR_CONNECTION_RESERVE": "2",
            "VMV_MAX_CONNECTIONS_PER_PARTICIPANT": "2",
        },
        args=(),
    )
    ws = await make_workshop(server, "Ann", "Bob", "Cid")
    codes: list[int | None] = []
    async with contextlib.AsyncExitStack() as stack:  # closed last in, first out
        for name in ("Ann", "Ann", "Bob", "Bob", "Cid", "Cid"):
            client = await stack.enter_async_context(YClient(ws.url(ws.members[name])))
            with anyio.fail_after(10):
                while not (client.synced.is_set() or client.closed.is_set()):
                    await anyio.sleep(0.01)
            codes.append(client.close_code if client.closed.is_set() else None)
        assert codes[:4] == [None] * 4 and codes[4:] == [4429, 4429], codes
        # the facilitator still gets in, twice
        for _ in range(2):
            async with YClient(ws.url(ws.facilitator)) as fay:
                await fay.synced.wait()


async def test_a_participants_connections_share_one_byte_budget(server_factory) -> None:
    """Issue 19, findings 4 and 7: byte budgets were per connection, so 16 connections (or a
    reconnect, with its fresh burst) multiplied them: one participant pushed 15.3 MB/s of
    awareness to every peer. Now a participant's connections draw on one budget."""
    server = server_factory(
        env={**AUTH_ENV, "VMV_RATE_BYTES": "65536", "VMV_RATE_BYTES_BURST": "1048576"}, args=()
    )
    ws = await make_workshop(server, "Ann")
    state = json.dumps({"user": {"id": ws.members["Ann"].pid, "name": "Ann"}, "pad": "x" * 8000})
    codes: list[int | None] = []
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(YClient(ws.url(ws.members["Ann"]))) for _ in range(4)]
        for client in clients:
            await client.synced.wait()
        for index, client in enumerate(clients):
            cid = 9000 + index
            # 60 x 8 kB = 480 kB per connection: under the 1 MiB burst alone, 1.9 MB together
            for clock in range(1, 61):
                if client.closed.is_set():
                    break
                try:
                    await client.send_raw(encode_awareness(encode_awareness_update([(cid, clock, state)])))
                except websockets.ConnectionClosed:
                    break
        with anyio.fail_after(15):  # one of them is closed once the shared budget runs out
            while not any(client.closed.is_set() for client in clients):
                await anyio.sleep(0.02)
        codes = [client.close_code if client.closed.is_set() else None for client in clients]
    assert 4429 in codes, codes


async def test_reads_that_weigh_the_document_are_charged_to_the_reader(server_factory) -> None:
    """Issue 19, finding 5: exports by one reader, asked again and again, took the loop from
    every workshop. An export, a report or the chat of /state is charged to the reader's
    work budget: past it, that reader gets 429 while others still read."""
    server = server_factory(
        env={**AUTH_ENV, "VMV_WORK_SHARE": "0.001", "VMV_WORK_BURST": "0.01"}, args=()
    )
    ws = await make_workshop(server, "Ann", "Bob")
    ann, bob = ws.members["Ann"], ws.members["Bob"]
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        statuses = []
        for _ in range(200):
            r = await http.get(f"/workshops/{ws.wid}/export", params={"token": ann.token})
            statuses.append(r.status_code)
            if r.status_code != 200:
                break
        assert statuses[0] == 200 and statuses[-1] == 429, statuses[-3:]
        assert "share of the server's time" in r.json()["error"]
        chat = await http.get(f"/workshops/{ws.wid}/state", params={"token": ann.token, "messages": "1"})
        assert chat.status_code == 429
        other = await http.get(f"/workshops/{ws.wid}/export", params={"token": bob.token})
        assert other.status_code == 200
