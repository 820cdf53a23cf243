"""Regression: a late echo of a removed client's state, among thousands of awareness entries, is ignored (not 4403)."""
from __future__ import annotations

import json
from typing import Any

import pytest

from tests.interop.test_node_interop_auth import SECRET, make_workshop, presence, refusals
from tests.yclient import YClient
from vmv_sync.protocol import encode_awareness, encode_awareness_update

pytestmark = pytest.mark.anyio

async def test_late_echo_after_forget(server_factory: Any) -> None:
    # thousands of ids on one connection: past the default per-connection cap (16), raised here
    # (and past the cap on ids claimed by announcing them, issue 19: 64 by default)
    server = server_factory(
        env={"VMV_SECRET": SECRET, "VMV_MAX_AWARENESS_CLIENTS": "5000", "VMV_MAX_ANNOUNCED_CLAIMS": "5000"}, args=()
    )
    ws = await make_workshop(server, "Ann", "Bob")
    ann, bob = ws.members["Ann"], ws.members["Bob"]
    def url(member: Any) -> str:
        return f"{server.ws(ws.wid)}?token={member.token}"

    async with YClient(url(ann)) as a:
        # Ann's connection announces 4100 client ids of her own (e.g. many past page loads).
        entries = [(10_000 + i, 1, json.dumps(presence(ann))) for i in range(4100)]
        await a.send_raw(encode_awareness(encode_awareness_update(entries)))
        async with YClient(url(bob)) as b:
            await b.set_awareness(presence(bob))  # clock 1
            await a.wait_for(lambda: a.awareness.get(b.client_id) is not None)
            bob_cid, bob_state = b.client_id, a.awareness[b.client_id]
        await a.wait_for(lambda: a.awareness.get(bob_cid, "x") is None)  # Bob removed
        # A stock provider echoes what it received; this echo of Bob's (clock 1) state
        # was in flight when the removal went out:
        await a.send_raw(encode_awareness(encode_awareness_update([(bob_cid, 1, json.dumps(bob_state))])))
        code = None
        try:
            code = await a.wait_closed(timeout=2)
        except TimeoutError:
            pass
        print("ANN CLOSE CODE:", code, refusals(server))
        assert code is None
