"""The WebSocket endpoint (server/endpoint.py, :class:`WorkshopSocket`) in process, upgrade to close.

The app runs with its real lifespan and store; the socket is a pair of in-memory
ASGI channels (what uvicorn would hand the app), so nothing listens on a port.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from pycrdt import Doc
from starlette.applications import Starlette

from vmv_sync.config import Settings
from vmv_sync.protocol import SyncStep1, SyncStep2, encode_sync_step1, parse_message
from vmv_sync.server.app import create_app
from vmv_sync.server.endpoint import WorkshopSocket

pytestmark = pytest.mark.anyio


class Peer:
    """One WebSocket's two ASGI channels, seen from the client's side."""

    def __init__(self) -> None:
        self.to_app, self.app_in = anyio.create_memory_object_stream[dict[str, Any]](16)
        self.app_out, self.from_app = anyio.create_memory_object_stream[dict[str, Any]](16)

    async def next(self) -> dict[str, Any]:
        with anyio.fail_after(5):
            return await self.from_app.receive()


def scope(path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    raw = [(b"host", b"h")] + [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    return {
        "type": "websocket", "asgi": {"version": "3.0", "spec_version": "2.4"}, "scheme": "ws",
        "path": path, "raw_path": path.encode(), "query_string": b"", "headers": raw, "subprotocols": [],
        "server": ("h", 80), "client": ("127.0.0.1", 5000), "extensions": {"websocket.http.response": {}},
    }  # fmt: skip


@asynccontextmanager
async def running(tmp_path, **settings: Any) -> AsyncIterator[Starlette]:  # type: ignore[no-untyped-def]
    app = create_app(Settings(db=str(tmp_path / "db.sqlite3"), **settings))
    assert any(isinstance(getattr(route, "app", None), WorkshopSocket) for route in app.routes)
    async with app.router.lifespan_context(app):
        yield app


@asynccontextmanager
async def connected(app: Starlette, path: str, headers: dict[str, str] | None = None) -> AsyncIterator[Peer]:
    peer = Peer()
    async with anyio.create_task_group() as tg:
        tg.start_soon(app, scope(path, headers), peer.app_in.receive, peer.app_out.send)
        await peer.to_app.send({"type": "websocket.connect"})
        yield peer
        await peer.to_app.send({"type": "websocket.disconnect", "code": 1000})


async def test_refused_before_the_upgrade_bad_id_and_foreign_origin(tmp_path) -> None:
    async with running(tmp_path, auth=False) as app:
        for path, headers, status, code in (
            ("/workshops/bad!id", None, 400, 4400),
            ("/workshops/w1", {"origin": "https://evil.example"}, 403, 4403),
        ):
            async with connected(app, path, headers) as peer:
                start, body = await peer.next(), await peer.next()
                assert (start["type"], start["status"]) == ("websocket.http.response.start", status)
                assert json.loads(body["body"])["code"] == code


async def test_a_peer_syncs_and_a_missing_token_closes_with_4401(tmp_path) -> None:
    async with running(tmp_path, auth=False) as app, connected(app, "/workshops/w1") as peer:
        assert (await peer.next())["type"] == "websocket.accept"
        await peer.to_app.send({"type": "websocket.receive", "bytes": encode_sync_step1(Doc().get_state())})
        kinds = {type(parse_message((await peer.next())["bytes"])) for _ in range(2)}
        assert kinds == {SyncStep1, SyncStep2}  # its answer, and the server's own request
    async with running(tmp_path) as app, connected(app, "/workshops/w1") as peer:
        assert (await peer.next())["type"] == "websocket.accept"
        closed = await peer.next()
        assert (closed["type"], closed["code"]) == ("websocket.close", 4401)
