"""Reconnection policy: full-jitter backoff, and how the client treats close codes.

The close-code cases use a real WebSocket server in this process that closes every
connection with one code, since the sync server only sends 4401/4403 with
authentication on (covered by the auth tests).
"""

from __future__ import annotations

import random
import statistics
from pathlib import Path

import anyio
import pytest
import websockets

from vmv_sync.client import Backoff, WorkshopClient, is_permanent_close, workshop_url
from vmv_sync.errors import ClientError, InvalidWorkshopId

pytestmark = pytest.mark.anyio


def test_full_jitter_is_bounded_and_spread() -> None:
    backoff = Backoff(base=0.5, factor=2.0, cap=4.0)
    assert [backoff.ceiling(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    rng = random.Random(7)
    delays = [backoff.delay(0, rng) for _ in range(500)]
    assert 0.0 <= min(delays) and max(delays) < 0.5
    assert statistics.stdev(delays) > 0.1  # uniform over [0, 0.5): ~0.144
    assert all(backoff.delay(100, rng) < 4.0 for _ in range(100))
    with pytest.raises(ValueError):
        Backoff(base=0.0)


def test_permanent_close_codes() -> None:
    assert is_permanent_close(4401) and is_permanent_close(4403)
    for code in (1001, 1006, 1011, 4408, 4409, 4429, 4400, None):
        assert not is_permanent_close(code)


def test_workshop_url_forms() -> None:
    expected = "ws://h:1/workshops/w?saved=1"
    for base in ("ws://h:1", "ws://h:1/", "ws://h:1/workshops", "http://h:1"):
        assert workshop_url(base, "w", None) == expected
    assert workshop_url("ws://h:1", "w", "a b&c") == expected + "&token=a%20b%26c"
    with pytest.raises(InvalidWorkshopId):
        WorkshopClient("ws://h:1", "bad id", store_path="x", participant_id="p")


async def _closing_server(code: int):
    async def handler(ws: websockets.ServerConnection) -> None:
        await ws.close(code, f"closing with {code}")

    return await websockets.serve(handler, "127.0.0.1", 0)


@pytest.mark.parametrize("code", [4401, 4403])
async def test_refusal_is_permanent_until_reconnect(code: int, tmp_path: Path) -> None:
    server = await _closing_server(code)
    port = server.sockets[0].getsockname()[1]
    try:
        async with WorkshopClient(
            f"ws://127.0.0.1:{port}",
            "w",
            store_path=tmp_path / "c.sqlite3",
            participant_id="p",
            backoff=Backoff(base=0.02, cap=0.05),
        ) as c:
            await c.wait_for(lambda: c.gave_up, 10)
            assert c.last_close_code == code and str(code) in (c.last_error or "")
            with pytest.raises(ClientError):
                await c.wait_connected(5)
            # It works offline all the same.
            await c.post_message("still here")
            assert c.pending_count == 1
            # With a base of 20 ms, a retrying client would have tried ~10 more times.
            await anyio.sleep(0.3)
            assert len(c.connection_attempts) == 1
            c.reconnect()
            await c.wait_for(lambda: len(c.connection_attempts) == 2 and c.gave_up, 10)
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("code", [1011, 4429, 4408])
async def test_transient_closes_are_retried_with_backoff(code: int, tmp_path: Path) -> None:
    server = await _closing_server(code)
    port = server.sockets[0].getsockname()[1]
    try:
        async with WorkshopClient(
            f"ws://127.0.0.1:{port}",
            "w",
            store_path=tmp_path / "c.sqlite3",
            participant_id="p",
            backoff=Backoff(base=0.02, factor=2.0, cap=0.08),
        ) as c:
            await c.wait_for(lambda: len(c.connection_attempts) >= 4, 10)
            assert not c.gave_up and c.last_close_code == code
            assert c.offline or c.connecting
    finally:
        server.close()
        await server.wait_closed()
