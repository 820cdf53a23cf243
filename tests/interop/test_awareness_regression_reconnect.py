"""Regression: a stock provider that reconnects is visible again at once.

On reconnect y-websocket re-sends its awareness state with the SAME clock the server
removed it at; peers ignore a same-clock state, so the server takes it as a reclaim
and relays it one clock later (docs/protocol.md). The reference server leaves the
client invisible until its next renewal (~15-18 s).
"""
from __future__ import annotations

import time
from typing import Any

import pytest

from tests.interop.test_node_interop_auth import SECRET, make_workshop, node_peer, presence

pytestmark = pytest.mark.anyio

async def test_presence_back_after_reconnect(server_factory: Any) -> None:
    server = server_factory(env={"VMV_SECRET": SECRET}, args=())
    ws = await make_workshop(server, "Ann", "Bob")
    ann, bob = ws.members["Ann"], ws.members["Bob"]
    async with node_peer(server, ws, ann) as a, node_peer(server, ws, bob) as b:
        await a.call("synced")
        await b.call("synced")
        await b.call("set_awareness", state=presence(bob))
        await a.call("wait_awareness", user_id=bob.pid, present=True)
        await b.call("disconnect")
        await a.call("wait_awareness", user_id=bob.pid, present=False)
        t = time.monotonic()
        await b.call("connect")
        await a.call("wait_awareness", user_id=bob.pid, present=True, timeout=25)
        assert time.monotonic() - t < 10, f"Bob visible again only after {time.monotonic() - t:.1f} s"
