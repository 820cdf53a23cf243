"""A stock y-websocket provider refreshes its token in band, as docs/auth.md shows.

The Node driver runs the documented snippet (lib0: ``writeVarUint(101)``,
``writeVarString(token)`` on ``provider.ws``, and a ``messageHandlers[101]`` reading
the answer). Its connection outlives the old token's expiry, while a peer with the
same expiry that did not refresh is closed with 4401.
"""

from __future__ import annotations

from typing import Any

import anyio
import jwt
import pytest

from tests.interop.test_node_interop import snapshot
from tests.interop.test_node_interop_auth import SECRET, make_workshop, node_peer, presence, python_url
from tests.yclient import YClient
from vmv_sync.server.tokens import TokenIssuer

pytestmark = pytest.mark.anyio


async def test_a_stock_provider_refreshes_its_token_on_the_open_socket(server_factory: Any) -> None:
    server = server_factory(env={"VMV_SECRET": SECRET}, args=())
    ws = await make_workshop(server, "Ann")
    ann = ws.members["Ann"]
    issuer = TokenIssuer(SECRET)
    short = type(ann)(ann.pid, ann.name, ann.role, issuer.issue(ws.wid, ann.pid, ann.name, ann.role, ttl=3))
    control_token = issuer.issue(ws.wid, ann.pid, ann.name, ann.role, ttl=3)
    async with node_peer(server, ws, short) as node, YClient(f"{server.ws(ws.wid)}?token={control_token}") as control:
        await node.call("synced")
        with anyio.fail_after(10):
            await control.synced.wait()
        fresh = issuer.issue(ws.wid, ann.pid, ann.name, ann.role, ttl=600)
        answer = await node.call("refresh_token", token=fresh, timeout=10000)
        assert answer == {"exp": jwt.decode(fresh, options={"verify_signature": False})["exp"]}
        assert await control.wait_closed(timeout=20) == 4401  # the old expiry has passed
        await node.call("write_own", tag="after")  # still live, on the same socket
        await node.call("set_awareness", state=presence(short))
        async with YClient(python_url(server, ws)) as reader:  # the server has the edit
            await reader.wait_for(lambda: f"({ann.pid} after)" in str(snapshot(reader.doc)["vision"]), timeout=10)
        status = await node.call("status")
        assert status["closes"] == [] and status["wsconnected"] and status["synced"]
    assert not [line for line in server.log if "closing code=44" in line and "expired" not in line]
