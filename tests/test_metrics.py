"""GET /metrics: valid Prometheus text whose counters move with real traffic, plus the
connection log lines."""

from __future__ import annotations

import anyio
import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families
from pycrdt import Array, Map

from vmv_sync.protocol import encode_sync_step1, encode_sync_update
from vmv_sync.server.metrics import Metrics, frame_kind

from .yclient import YClient, big_updates, connect_slow

pytestmark = pytest.mark.anyio


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, keyed by (sample name, sorted labels)."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_frame_kinds() -> None:
    assert frame_kind(b"\x00\x00\x01\x00") == "sync_step1"
    assert frame_kind(b"\x00\x01\x02\x00\x00") == "sync_step2"
    assert frame_kind(b"\x00\x02\x02\x00\x00") == "update"
    assert frame_kind(b"\x01\x00") == "awareness"
    assert frame_kind(b"\x03") == "query_awareness"
    assert frame_kind(b"\x64\x01") == "saved"
    assert frame_kind(b"\x07") == "other" and frame_kind(b"") == "other" and frame_kind(b"\x00") == "other"


def test_two_apps_have_separate_registries() -> None:
    a, b = Metrics(), Metrics()
    a.received(b"\x01\x00")
    text_a = a.render().decode()
    text_b = b.render().decode()
    assert 'vmv_messages_in_total{type="awareness"} 1.0' in text_a
    assert 'vmv_messages_in_total{type="awareness"} 0.0' in text_b


async def test_counters_move_with_traffic(server) -> None:
    before = await scrape(server.url)
    names = {name for name, _ in before}
    for expected in (
        "vmv_messages_in_total", "vmv_messages_out_total", "vmv_bytes_in_total", "vmv_bytes_out_total",
        "vmv_connections", "vmv_rooms_loaded", "vmv_store_commit_seconds_bucket", "vmv_compactions_total",
        "vmv_slow_clients_dropped_total", "vmv_updates_committed_total",
    ):
        assert expected in names, expected
    assert value(before, "vmv_connections") == 0

    url = server.ws("metered")
    async with YClient(url, saved=True) as a, YClient(url) as b:
        await a.synced.wait()
        await b.synced.wait()
        for i in range(5):
            a.doc.get("messages", type=Array).append(Map({"id": f"m{i}", "author": "p", "text": "x", "sent_at": 1.0, "stage": "vision"}))
        await a.set_awareness({"user": {"id": "p", "name": "P", "color": "#000", "role": "participant"}})
        await a.wait_for(lambda: a.saved_count >= 5)
        await b.wait_for(lambda: len(b.doc.get("messages", type=Array)) == 5 and a.client_id in b.awareness)
        during = await scrape(server.url)
        assert value(during, "vmv_connections") == 2
        assert value(during, "vmv_rooms_loaded") >= 1

    after = await scrape(server.url)
    assert value(after, "vmv_messages_in_total", type="update") - value(before, "vmv_messages_in_total", type="update") >= 5
    relayed = value(after, "vmv_messages_out_total", type="update") - value(before, "vmv_messages_out_total", type="update")
    assert 1 <= relayed <= 5  # the relay merges a batch into one frame for peers that sent nothing in it
    assert value(after, "vmv_updates_committed_total") - value(before, "vmv_updates_committed_total") >= 5
    assert value(after, "vmv_messages_in_total", type="awareness") > value(before, "vmv_messages_in_total", type="awareness")
    assert value(after, "vmv_messages_out_total", type="awareness") >= 2  # to a and to b
    assert value(after, "vmv_messages_out_total", type="sync_step1") >= 2
    assert value(after, "vmv_messages_out_total", type="saved") >= 1
    assert value(after, "vmv_bytes_in_total") > value(before, "vmv_bytes_in_total")
    assert value(after, "vmv_bytes_out_total") > value(before, "vmv_bytes_out_total")
    assert value(after, "vmv_updates_committed_total") >= 5
    assert value(after, "vmv_store_commit_seconds_count") >= 1
    assert value(after, "vmv_store_commit_seconds_sum") > 0
    assert value(after, "vmv_store_transactions_total") >= 1
    assert value(after, "vmv_connections_opened_total") == 2
    with anyio.fail_after(10):  # the server notices the closes just after the clients leave
        while value(after, "vmv_connections") != 0:
            await anyio.sleep(0.02)
            after = await scrape(server.url)
    assert value(after, "vmv_connections_closed_total", code="1000") == 2

    # A malformed frame is a refused connection, by close code, and logged with it.
    async with YClient(server.ws("metered")) as bad:
        await bad.synced.wait()
        await bad.send_raw(b"\xff\x00")
        assert await bad.wait_closed() == 4400
    with anyio.fail_after(10):
        while value(refused := await scrape(server.url), "vmv_connections_refused_total", code="4400") != 1:
            await anyio.sleep(0.02)
    assert value(refused, "vmv_messages_in_total", type="other") >= 1
    log = "".join(server.log)
    assert "workshop=metered conn=" in log and "open participant=None" in log
    assert "close participant=None code=4400" in log


async def test_slow_client_dropped_is_counted(server_factory) -> None:
    """A peer that stops reading fills its socket, then its send queue (16 frames): 4409."""
    server = server_factory(env={"VMV_SEND_QUEUE_SIZE": "16"})
    url = server.ws("slow")
    async with await connect_slow(url) as stalled:
        await stalled.send(encode_sync_step1(b"\x00"))  # synced: relays are due to it
        async with YClient(url, saved=True) as writer:
            with anyio.fail_after(10):
                await writer.synced.wait()
            dropped = 0.0
            for i, chunk in enumerate(big_updates(200), 1):
                await writer.ws.send(encode_sync_update(chunk))
                # one relay (one frame) per update: wait for its commit before the next
                await writer.wait_for(lambda i=i: writer.saved_count >= i)
                if i % 10 == 0:
                    dropped = value(await scrape(server.url), "vmv_slow_clients_dropped_total")
                    if dropped:
                        break
            assert dropped == 1
            assert not writer.closed.is_set()  # the writer is untouched
        with anyio.fail_after(20), pytest.raises(websockets.ConnectionClosed) as info:
            while True:
                await stalled.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 4409
    samples = await scrape(server.url)
    assert value(samples, "vmv_connections_closed_total", code="4409") == 1
    assert value(samples, "vmv_connections_refused_total", code="4409") == 0


def test_every_metric_is_documented() -> None:
    from .conftest import ROOT

    docs = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    text = Metrics().render(store=type("S", (), {"commits": 0, "max_batch": 0})()).decode()
    families = list(text_string_to_metric_families(text))
    assert len(families) >= 15
    for family in families:
        exposed = family.name + ("_total" if family.type == "counter" else "")
        assert f"`{exposed}`" in docs, f"docs/operations.md does not list {exposed}"
