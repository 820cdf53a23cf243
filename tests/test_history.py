"""History views: ``/state?at=``, ``/export?at=`` and ``inspect --at`` rebuild an earlier state
from the stored updates, compaction keeps the configured window, and a moment older than
the kept history is a clear 410."""

from __future__ import annotations

import json
import sys
import time

import anyio
import httpx
import pytest

from vmv_sync import schema
from vmv_sync.history import HistoryUnavailable, parse_at, updates_at
from vmv_sync.storage import StoredUpdate

from .conftest import ROOT
from .yclient import YClient


async def compactions(http: httpx.AsyncClient) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = (await http.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "vmv_compactions_total":
                return sample.value
    raise AssertionError("no vmv_compactions_total")


async def two_phases(server, workshop_id: str) -> tuple[float, float]:
    """Phase 1 (3 updates: title "Before", Ann picks Honesty), then phase 2 (12 updates).

    Returns (a moment before anything, a moment between the phases). Waits until the
    server has compacted at least once during phase 2.
    """
    start = time.time()
    async with YClient(server.ws(workshop_id), saved=True) as c, httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        await c.synced.wait()
        schema.new_workshop(c.doc, title="Before", facilitator_id="f", facilitator_name="Fay", values=["Honesty", "Trust"])
        schema.add_participant(c.doc, "p1", "Ann")
        schema.select_value(c.doc, "p1", "Honesty")
        await c.wait_for(lambda: c.saved_count >= c.sent_updates)
        assert await compactions(http) == 0
        middle = time.time()
        while time.time() <= middle:  # commit times after this are strictly later
            await anyio.sleep(0.001)
        for name in ("Bob", "Cy", "Di", "Ed", "Flo"):
            schema.add_participant(c.doc, name.lower(), name)
            schema.select_value(c.doc, name.lower(), "Trust")
        with c.doc.transaction():
            schema.bind_roots(c.doc).meta["title"] = "After"
        schema.deselect_value(c.doc, "p1", "Honesty")
        await c.wait_for(lambda: c.saved_count >= c.sent_updates)
        with anyio.fail_after(10):
            while await compactions(http) < 1:
                await anyio.sleep(0.02)
    return start, middle


def counts(state: dict) -> dict[str, int]:
    return {v["name"]: v["count"] for v in state["values"]}


@pytest.mark.anyio
async def test_state_at_survives_compaction_within_the_window(server_factory) -> None:
    server = server_factory(env={"VMV_HISTORY_SECONDS": "3600", "VMV_COMPACT_UPDATES": "5"})
    start, middle = await two_phases(server, "hist")
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        now = (await http.get("/workshops/hist/state")).json()
        assert counts(now) == {"Trust": 5, "Honesty": 0}
        earlier = await http.get("/workshops/hist/state", params={"at": repr(middle)})
        assert earlier.status_code == 200, earlier.text
        assert counts(earlier.json()) == {"Honesty": 1, "Trust": 0}
        assert set(earlier.json()) == set(now)  # same shape as /state
        before = await http.get("/workshops/hist/state", params={"at": repr(start - 1)})
        assert before.status_code == 200 and before.json()["values"] == []  # nothing existed yet
        iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 5)) + "Z"
        assert counts((await http.get("/workshops/hist/state", params={"at": iso})).json()) == counts(now)
        assert (await http.get("/workshops/hist/state", params={"at": "soon"})).status_code == 400
        report = (await http.get("/workshops/hist/export", params={"at": repr(middle)})).json()
        assert report["title"] == "Before" and report["as_of"] == middle
        assert [p["id"] for p in report["participants"]] == ["f", "p1"]

    result = await anyio.run_process(
        [sys.executable, "-m", "vmv_sync", "inspect", "hist", "--at", repr(middle), "--db", str(server.db)],
        cwd=ROOT, check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    document = json.loads(result.stdout)
    assert document["meta"]["title"] == "Before"
    assert sorted(document["participants"]) == ["f", "p1"]
    assert list(document["selections"]["p1"]) == ["Honesty"]
    assert "bob" not in document["selections"]


@pytest.mark.anyio
async def test_state_at_before_the_kept_history_is_gone(server_factory) -> None:
    server = server_factory(env={"VMV_HISTORY_SECONDS": "0", "VMV_COMPACT_UPDATES": "5"})
    _, middle = await two_phases(server, "nohist")
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        response = await http.get("/workshops/nohist/state", params={"at": repr(middle)})
        assert response.status_code == 410
        body = response.json()
        assert "compacted" in body["error"]
        assert body["earliest"] is None or body["earliest"] > middle
        assert (await http.get("/workshops/nohist/export", params={"at": repr(middle)})).status_code == 410
        # the present is always available
        future = await http.get("/workshops/nohist/state", params={"at": repr(time.time() + 60)})
        assert future.status_code == 200 and counts(future.json())["Trust"] == 5
    result = await anyio.run_process(
        [sys.executable, "-m", "vmv_sync", "inspect", "nohist", "--at", repr(middle), "--db", str(server.db)],
        cwd=ROOT, check=False,
    )
    assert result.returncode != 0 and b"compacted" in result.stderr


def test_updates_at_rules() -> None:
    ups = [StoredUpdate(1, b"a", 10.0), StoredUpdate(2, b"b", 20.0), StoredUpdate(3, b"c", 15.0)]
    assert updates_at("w", None, ups, 5.0, now=100) == []
    assert updates_at("w", None, ups, 10.0, now=100) == [b"a"]
    # a clock that stepped back: the state after the last update stored at or before T
    assert updates_at("w", None, ups, 16.0, now=100) == [b"a", b"b", b"c"]
    assert updates_at("w", b"S", ups, 12.0, now=100) == [b"S", b"a"]
    with pytest.raises(HistoryUnavailable) as info:
        updates_at("w", b"S", ups, 9.0, now=100)
    assert info.value.earliest == 10.0
    with pytest.raises(HistoryUnavailable):
        updates_at("w", b"S", [], 9.0, now=100)
    assert updates_at("w", b"S", [], 100.0, now=100) == [b"S"]


def test_parse_at() -> None:
    assert parse_at("12.5") == 12.5
    assert parse_at("1970-01-01T00:00:10+00:00") == 10.0
    assert parse_at("1970-01-01 00:00:10") == 10.0
    for bad in ("", "later", "nan", "inf"):
        with pytest.raises(ValueError):
            parse_at(bad)


@pytest.mark.anyio
async def test_export_and_history_views_need_the_workshop_token(server_factory) -> None:
    server = server_factory(env={"VMV_SECRET": "history-test-secret-" + "y" * 24}, args=())
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        created = await http.post("/api/workshops", json={"title": "Locked", "name": "Fay", "values": ["Trust"]})
        assert created.status_code == 201, created.text
        wid, token = created.json()["workshop_id"], created.json()["token"]
        other = (await http.post("/api/workshops", json={"title": "Other", "name": "Ole"})).json()
        later = repr(time.time() + 60)
        for path, params in ((f"/workshops/{wid}/export", {}), (f"/workshops/{wid}/state", {"at": later})):
            assert (await http.get(path, params=params)).status_code == 401
            assert (await http.get(path, params={**params, "token": other["token"]})).status_code == 403
            ok = await http.get(path, params=params, headers={"authorization": f"Bearer {token}"})
            assert ok.status_code == 200, ok.text
        report = (await http.get(f"/workshops/{wid}/export", params={"token": token})).json()
        assert report["title"] == "Locked" and report["catalogue"] == ["Trust"]
        assert (await http.get("/metrics")).status_code == 200  # like /healthz: no token


def test_stored_parts_is_the_snapshot_then_the_updates() -> None:
    from vmv_sync.history import stored_parts
    from vmv_sync.storage import StoredDoc

    assert stored_parts(StoredDoc(b"s", (b"a", b"b"), 3)) == [b"s", b"a", b"b"]
    assert stored_parts(StoredDoc(None, (b"a",), 1)) == [b"a"]
    assert stored_parts(StoredDoc(None, (), 0)) == []
