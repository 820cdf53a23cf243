"""The sync server over real WebSockets, in a real process, on a real SQLite file."""

from __future__ import annotations

import contextlib
import json

import anyio
import httpx
import pytest
import websockets
from pycrdt import Array, Doc, Map, Text

from vmv_sync.protocol import (
    decode_state_vector,
    encode_awareness,
    encode_awareness_update,
    encode_sync_step1,
    encode_sync_update,
)

from .yclient import YClient

pytestmark = pytest.mark.anyio


def items(doc: Doc, name: str = "messages") -> list:
    return list(doc.get(name, type=Array).to_py() or [])


async def test_healthz_and_bad_workshop_id(server) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(server.url + "/healthz")
        assert response.status_code == 200
        assert response.json()["status"] == "ok"
    for bad in ["has space", "x" * 65, "dots.are.bad"]:
        with pytest.raises(websockets.InvalidStatus) as info:
            await websockets.connect(server.ws(bad.replace(" ", "%20")))
        assert info.value.response.status_code == 400


async def test_two_clients_converge_on_every_root(server) -> None:
    url = server.ws("converge")
    async with YClient(url) as a, YClient(url) as b:
        await a.synced.wait()
        await b.synced.wait()
        doc = a.doc
        with doc.transaction():
            meta = doc.get("meta", type=Map)
            meta["title"] = "Family"
            meta["stage"] = "values-select"
            doc.get("participants", type=Map)["p1"] = Map({"name": "Ann", "role": "participant", "joined_at": 1.0})
            doc.get("messages", type=Array).append(Map({"id": "m1", "author": "p1", "text": "hi", "sent_at": 1.0, "stage": "values-select"}))
            doc.get("selections", type=Map)["p1"] = Map({"Honesty": 1.0})
            doc.get("values", type=Array).extend(["Honesty", "Courage"])
            doc.get("ballots", type=Map)["b1"] = Map({"question": "Q", "options": ["x", "y"], "stage": "vision", "kind": "single", "max_choices": 1, "open": True})
            doc.get("votes", type=Map)["b1"] = Map({"p1": "x"})
            doc.get("matrix", type=Map)["p1"] = Map({"Honesty": {"importance": 5, "practice": 3}})
            doc.get("progress", type=Map)["p1"] = Map({"stage": "values-select", "completed": [], "updated_at": 1.0})
            doc.get("drafts", type=Map)["p1"] = Text("We")
            doc.get("mission", type=Text).insert(0, "Our mission")
            doc.get("vision", type=Text).insert(0, "Our vision")
        # and b writes too, concurrently
        b.doc.get("messages", type=Array).append(Map({"id": "m2", "author": "p2", "text": "yo", "sent_at": 2.0, "stage": "values-select"}))
        roots = ["meta", "participants", "messages", "selections", "values", "ballots", "votes", "matrix", "progress", "drafts", "mission", "vision"]
        types = {"messages": Array, "values": Array, "mission": Text, "vision": Text}

        def dump(d: Doc) -> dict:
            return {r: d.get(r, type=types.get(r, Map)).to_py() for r in roots}

        await a.wait_for(lambda: len(items(a.doc)) == 2)
        await b.wait_for(lambda: dump(b.doc) == dump(a.doc))
        assert dump(a.doc)["mission"] == "Our mission"
        assert decode_state_vector(a.doc.get_state()) == decode_state_vector(b.doc.get_state())


async def test_derived_state_over_http_matches_pure_functions(server) -> None:
    from vmv_sync import derived, schema

    url = server.ws("derived")
    async with YClient(url, saved=True) as a:
        await a.synced.wait()
        schema.new_workshop(a.doc, title="T", facilitator_id="f", facilitator_name="Fay", values=("Honesty", "Courage"))
        schema.add_participant(a.doc, "p1", "Ann", "participant")
        schema.add_participant(a.doc, "p2", "Bob", "participant")
        schema.toggle_value(a.doc, "p1", "Honesty")
        schema.toggle_value(a.doc, "p2", " honesty ")
        schema.toggle_value(a.doc, "p2", "Courage")
        schema.open_ballot(a.doc, "b1", "Which?", ["x", "y"], stage="vision")
        schema.cast_vote(a.doc, "b1", "p1", "x")
        schema.rate_value(a.doc, "p1", "Honesty", 5, 2)
        schema.set_progress(a.doc, "p2", "values-matrix")
        await a.wait_for(lambda: a.saved_count == a.sent_updates)
    async with httpx.AsyncClient() as http:
        body = (await http.get(server.url + "/workshops/derived/state")).json()
    expected = derived.compute_state(a.doc).to_json()
    assert body == json.loads(json.dumps(expected))
    stats = {s["name"].strip().lower(): s["count"] for s in body["values"]}
    assert stats["honesty"] == 2 and stats["courage"] == 1


async def test_updates_survive_restart(server) -> None:
    url = server.ws("restart")
    async with YClient(url, saved=True) as a:
        await a.synced.wait()
        arr = a.doc.get("messages", type=Array)
        for i in range(200):
            arr.append(f"m{i}")
        await a.wait_for(lambda: a.saved_count == 200)
    assert server.stop() == 0
    server.restart()
    async with YClient(server.ws("restart")) as b:
        await b.wait_for(lambda: len(items(b.doc)) == 200)
        assert items(b.doc) == [f"m{i}" for i in range(200)]


async def test_kill_9_keeps_everything_any_client_received(server) -> None:
    url = server.ws("crash")
    async with contextlib.AsyncExitStack() as stack:
        observer = await stack.enter_async_context(YClient(url))
        writers = [await stack.enter_async_context(YClient(url, saved=True)) for _ in range(3)]
        for w in writers:
            await w.synced.wait()
        await observer.synced.wait()

        async def write(k: int, w: YClient) -> None:
            arr = w.doc.get("messages", type=Array)
            for i in range(10_000):
                arr.append(f"w{k}-{i}")
                await anyio.sleep(0.002)

        async with anyio.create_task_group() as tg:
            for k, w in enumerate(writers):
                tg.start_soon(write, k, w)
            await observer.wait_for(lambda: len(items(observer.doc)) >= 300, timeout=30)
            server.kill()
            tg.cancel_scope.cancel()
        seen = set(items(observer.doc))
        acked = {k: w.saved_count for k, w in enumerate(writers)}
    server.restart()
    async with YClient(server.ws("crash")) as fresh:
        await fresh.synced.wait()
        stored = set(items(fresh.doc))
    assert seen, "the observer received nothing before the kill"
    missing = seen - stored
    assert not missing, f"{len(missing)} relayed updates were lost by kill -9"
    assert sum(acked.values()) > 0
    for k, count in acked.items():
        assert {f"w{k}-{i}" for i in range(count)} <= stored, f"writer {k} lost acknowledged updates"


async def _expect_close(url: str, frame: bytes | str, code: int) -> None:
    async with YClient(url) as bad:
        await bad.synced.wait()
        await bad.send_raw(frame)
        assert await bad.wait_closed() == code


async def test_bad_input_closes_only_its_connection(server) -> None:
    url = server.ws("bad")
    other_url = server.ws("other")
    async with YClient(url) as good, YClient(other_url) as elsewhere:
        await good.synced.wait()
        await elsewhere.synced.wait()
        good.doc.get("messages", type=Array).append("before")
        await _expect_close(url, b"\x07\x00", 4400)  # unknown message type
        await _expect_close(url, b"\x00\x02\x05ab", 4400)  # truncated payload
        await _expect_close(url, "hello", 4400)  # a text frame
        await _expect_close(url, encode_sync_update(b"\xff" * 30), 4400)  # pycrdt cannot apply
        await _expect_close(url, encode_awareness(b"\x01\x05\x01\x05{bad}"), 4400)  # invalid JSON
        await _expect_close(url, b"\x00\x02" + b"\x00" * (1024 * 1024 + 10), 4413)
        # the good clients keep syncing, in this workshop and in another one
        async with YClient(url) as late, YClient(other_url) as late_other:
            good.doc.get("messages", type=Array).append("after")
            elsewhere.doc.get("messages", type=Array).append("there")
            await late.wait_for(lambda: items(late.doc) == ["before", "after"])
            await late_other.wait_for(lambda: items(late_other.doc) == ["there"])
        assert not good.closed.is_set() and not elsewhere.closed.is_set()
    assert server.proc.poll() is None


async def test_idle_room_unloads_and_reloads_intact(server_factory) -> None:
    server = server_factory(env={"VMV_ROOM_IDLE_SECONDS": "0.3"})
    url = server.ws("idle")
    async with YClient(url, saved=True) as a:
        await a.synced.wait()
        a.doc.get("mission", type=Text).insert(0, "Be kind")
        await a.wait_for(lambda: a.saved_count == 1)
    async with httpx.AsyncClient() as http:
        with anyio.fail_after(10):
            while (await http.get(server.url + "/healthz")).json()["rooms"] != 0:
                await anyio.sleep(0.05)
    async with YClient(url) as b:
        await b.wait_for(lambda: str(b.doc.get("mission", type=Text)) == "Be kind")


async def test_compaction_under_concurrent_writes_loses_nothing(server_factory) -> None:
    server = server_factory(env={"VMV_COMPACT_UPDATES": "40"})
    url = server.ws("compact")
    stack = contextlib.AsyncExitStack()
    clients = [await stack.enter_async_context(YClient(url, saved=True)) for _ in range(4)]
    for c in clients:
        await c.synced.wait()

    async def write(k: int, c: YClient) -> None:
        arr = c.doc.get("messages", type=Array)
        for i in range(150):
            arr.append(f"c{k}-{i}")
            if i % 10 == 0:
                await anyio.sleep(0.001)

    async with anyio.create_task_group() as tg:
        for k, c in enumerate(clients):
            tg.start_soon(write, k, c)
    for c in clients:
        await c.wait_for(lambda c=c: c.saved_count == c.sent_updates, timeout=30)
    await stack.aclose()
    expected = {f"c{k}-{i}" for k in range(4) for i in range(150)}
    assert server.stop() == 0
    assert any("compacted" in line for line in server.log), "no compaction happened"
    server.restart()
    async with YClient(url) as fresh:
        await fresh.wait_for(lambda: set(items(fresh.doc)) == expected, timeout=20)
        assert len(items(fresh.doc)) == 600


async def test_last_client_leaving_after_burst_loses_nothing(server_factory) -> None:
    server = server_factory(env={"VMV_ROOM_IDLE_SECONDS": "0"})
    url = server.ws("burst")
    for round_ in range(3):
        async with YClient(url) as a:
            await a.synced.wait()
            arr = a.doc.get("messages", type=Array)
            for i in range(300):
                arr.append(f"r{round_}-{i}")
        # left at once: no ack awaited. The room unloads as soon as it has read the
        # last frame and committed everything queued; wait for that, not a sleep.
        async with httpx.AsyncClient() as http:
            with anyio.fail_after(20):
                while (await http.get(server.url + "/healthz")).json()["rooms"] != 0:
                    await anyio.sleep(0.02)
    assert server.stop() == 0
    server.restart()
    async with YClient(url) as fresh:
        await fresh.synced.wait()
        got = items(fresh.doc)
    assert [sum(1 for x in got if x.startswith(f"r{r}-")) for r in range(3)] == [300, 300, 300]


async def test_hundred_clients_open_a_new_workshop_at_once(server) -> None:
    url = server.ws("stampede")
    clients = [YClient(url) for _ in range(100)]
    done = 0

    async def join(c: YClient) -> None:
        nonlocal done
        async with c:
            await c.synced.wait()
            done += 1
            await all_done.wait()

    all_done = anyio.Event()
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for c in clients:
                tg.start_soon(join, c)
            while done < 100:
                await anyio.sleep(0.05)
            all_done.set()
    assert done == 100


async def test_awareness_removed_at_once_on_close(server) -> None:
    url = server.ws("presence")
    async with YClient(url) as watcher:
        await watcher.synced.wait()
        async with YClient(url) as a:
            await a.synced.wait()
            await a.set_awareness({"user": {"id": "p1", "name": "Ann"}, "typing": False})
            await watcher.wait_for(lambda: watcher.awareness.get(a.client_id) is not None)
        with anyio.fail_after(2):
            await watcher.wait_for(lambda: watcher.awareness.get(a.client_id, "x") is None)


async def test_silent_client_dropped_after_timeout(server_factory) -> None:
    server = server_factory(env={"VMV_AWARENESS_TIMEOUT": "1"})
    url = server.ws("silent")
    async with YClient(url) as watcher, YClient(url) as silent:
        await silent.synced.wait()
        await silent.set_awareness({"user": {"id": "p9"}})
        await watcher.wait_for(lambda: watcher.awareness.get(silent.client_id) is not None)

        async def keep_alive() -> None:
            while True:
                await watcher.set_awareness({"user": {"id": "w"}})
                await anyio.sleep(0.3)

        async with anyio.create_task_group() as tg:
            tg.start_soon(keep_alive)
            assert await silent.wait_closed(timeout=8) == 4408
            await watcher.wait_for(lambda: watcher.awareness.get(silent.client_id, "x") is None)
            tg.cancel_scope.cancel()
        assert not watcher.closed.is_set()


async def test_saved_ack_counts_committed_updates(server) -> None:
    url = server.ws("saved")
    async with YClient(url, saved=True) as a, YClient(url) as plain:
        await a.synced.wait()
        for i in range(50):
            a.doc.get("messages", type=Array).append(i)
        await a.wait_for(lambda: a.saved_count == 50)
        await plain.wait_for(lambda: len(items(plain.doc)) == 50)
        # a client that did not ask never receives the extension message
        assert plain.saved_count == 0


async def test_sigterm_flushes_and_exits_zero(server) -> None:
    url = server.ws("term")
    async with YClient(url) as a:
        await a.synced.wait()
        for i in range(100):
            a.doc.get("messages", type=Array).append(i)
        # No event tells when frames reach the server without also proving them saved
        # (which would not test the flush): give the loopback a moment.
        await anyio.sleep(0.05)
        assert server.stop() == 0
        assert await a.wait_closed() in (1001, 1000, 1006)
    server.restart()
    async with YClient(url) as b:
        await b.wait_for(lambda: len(items(b.doc)) == 100)


async def test_reconnect_reclaims_presence_and_late_echoes_do_not_resurrect(server) -> None:
    url = server.ws("reclaim")
    state = {"user": {"id": "p1", "name": "Ann"}}
    async with YClient(url) as watcher:
        await watcher.synced.wait()
        await watcher.set_awareness({"user": {"id": "w"}})  # a provider's first frame is its own state
        async with YClient(url) as a:
            await a.synced.wait()
            await a.set_awareness(state)
            await watcher.wait_for(lambda: watcher.awareness.get(a.client_id) is not None)
            cid = a.client_id
        await watcher.wait_for(lambda: watcher.awareness.get(cid, "x") is None)
        # a stock provider echoing the removed state late (same clock) brings back no ghost
        await watcher.send_raw(encode_awareness(encode_awareness_update([(cid, 1, json.dumps(state))])))
        await watcher.set_awareness({"user": {"id": "w", "n": 2}})
        await watcher.wait_for(lambda: (watcher.awareness.get(watcher.client_id) or {}).get("user", {}).get("n") == 2)
        assert watcher.awareness.get(cid, "x") is None
        # the same client reconnecting re-announces its state with the same clock: seen at once
        async with YClient(url, client_id=cid) as again:
            await again.synced.wait()
            await again.set_awareness(state)  # clock 1 again, as a provider's reconnect sends
            with anyio.fail_after(2):
                await watcher.wait_for(lambda: watcher.awareness.get(cid) is not None)


async def test_permessage_deflate_is_declined(server) -> None:
    async with websockets.connect(server.ws("deflate")) as ws:  # websockets offers deflate
        assert "sec-websocket-extensions" not in ws.response.headers
        assert await ws.recv()  # uncompressed frames work


async def test_permessage_deflate_can_be_turned_on(server_factory) -> None:
    server = server_factory(env={"VMV_WS_DEFLATE": "on"})
    async with websockets.connect(server.ws("deflate")) as ws:
        assert "permessage-deflate" in ws.response.headers.get("sec-websocket-extensions", "")


async def test_gapped_update_is_refused_and_nothing_of_it_kept(server) -> None:
    url = server.ws("gap")
    source = Doc()
    updates: list[bytes] = []
    source.observe(lambda event: updates.append(event.update))
    source.get("messages", type=Array).append("first")
    source.get("messages", type=Array).append("second")
    async with YClient(url) as watcher, YClient(url) as sender:
        await watcher.synced.wait()
        await sender.synced.wait()
        await sender.send_raw(encode_sync_update(updates[1]))  # skips "first"
        assert await sender.wait_closed() == 4400
        assert "resync" in (sender.close_reason or "")
    async with YClient(url) as fresh:
        await fresh.synced.wait()
        assert items(fresh.doc) == []
        # the whole history, in order, is accepted
        fresh.doc.apply_update(source.get_update())
        await fresh.wait_for(lambda: fresh.sent_updates == 1)
    async with YClient(url) as later:
        await later.wait_for(lambda: items(later.doc) == ["first", "second"])


async def test_synchronous_normal_still_survives_kill_9(server_factory) -> None:
    server = server_factory(env={"VMV_SYNCHRONOUS": "normal"})
    url = server.ws("normal")
    async with YClient(url, saved=True) as a:
        await a.synced.wait()
        for i in range(50):
            a.doc.get("messages", type=Array).append(i)
        await a.wait_for(lambda: a.saved_count == 50)
        server.kill()
    server.restart()
    async with YClient(url) as b:
        await b.wait_for(lambda: len(items(b.doc)) == 50)


async def test_first_update_sent_at_once_on_a_new_room_is_kept_and_relayed(server) -> None:
    """pycrdt-websocket trap: the first update could arrive before the room observed its doc."""
    url = server.ws("first-update")
    source = Doc()
    source.get("messages", type=Array).append("first")
    async with websockets.connect(url) as raw:
        await raw.send(encode_sync_update(source.get_update()))  # before reading anything
    async with YClient(url) as reader:
        await reader.wait_for(lambda: items(reader.doc) == ["first"])


async def test_slow_reader_gets_every_update_in_causal_order(server_factory) -> None:
    """A peer whose socket stalls and drains again switches from direct writes to its
    queue (coalesced when it is read) and back; it must still get every update, none
    before what it builds on, and end with the writer's document."""
    # 9 MB from one writer in a few seconds: past the default byte rate (1 MiB/s, 8 MiB burst)
    server = server_factory(env={"VMV_RATE_BYTES": str(64 * 1024 * 1024)})
    from vmv_sync.protocol import SyncStep2, SyncUpdate, parse_message
    from vmv_sync.protocol.update import summarize_update

    from .yclient import big_updates, connect_slow

    total, stall_until = 150, 100  # 100 x 60 kB unread: more than the socket buffers hold
    url = server.ws("slow-reader")
    updates = big_updates(total)
    async with await connect_slow(url) as slow:
        await slow.send(encode_sync_step1(b"\x00"))
        async with YClient(url, saved=True) as writer:
            with anyio.fail_after(10):
                await writer.synced.wait()
            doc = Doc()
            messages = doc.get("messages", type=Array)
            stalled_enough = anyio.Event()

            async def write() -> None:
                for i, update in enumerate(updates, 1):
                    await writer.ws.send(encode_sync_update(update))
                    await writer.wait_for(lambda i=i: writer.saved_count >= i)  # one relay each
                    if i == stall_until:
                        stalled_enough.set()

            async def read() -> None:
                await stalled_enough.wait()
                while len(messages) < total:
                    message = parse_message(await slow.recv())
                    if isinstance(message, (SyncStep2, SyncUpdate)):
                        summary = summarize_update(message.update)
                        assert not summary.skips_ahead_of(decode_state_vector(doc.get_state()))
                        doc.apply_update(message.update)

            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(write)
                    tg.start_soon(read)
    assert [item[:6] for item in messages] == [f"{i:06d}" for i in range(total)]
