"""Token expiry and the in-band refresh (101) in a cluster: the process holding the socket decides.

A client on the process that does not own the workshop hands its connection a fresh
token: that process answers it (the refresh is never forwarded to the owner as a
document frame) and keeps the connection past the old expiry, while a sibling that
did not refresh is closed there with 4401 at its token's expiry.
"""

from __future__ import annotations

import time

import anyio
import jwt
import pytest
from pycrdt import Array

from tests.yclient import YClient
from vmv_sync import schema
from vmv_sync.protocol import encode_token_refresh
from vmv_sync.server.tokens import TokenIssuer

from .conftest import SECRET, Cluster, create_workshop, join, owner_of, stored_doc

pytestmark = pytest.mark.anyio


def _exp(token: str) -> int:
    return int(jwt.decode(token, options={"verify_signature": False})["exp"])


async def test_a_client_of_the_relay_refreshes_and_an_unrefreshed_one_expires(cluster: Cluster) -> None:
    a = cluster.start("a")
    b = cluster.start("b")
    made = create_workshop(a)
    wid = made["workshop_id"]
    assert owner_of(cluster.prefix, wid) == "a"
    ann = join(b, wid, made["invite_code"], "Ann")
    issuer, pid = TokenIssuer(SECRET), ann["participant_id"]
    old = issuer.issue(wid, pid, "Ann", "participant", ttl=3)
    unrefreshed = issuer.issue(wid, pid, "Ann", "participant", ttl=3)
    async with (
        YClient(f"{b.ws(wid)}?token={old}", saved=True) as peer,
        YClient(f"{b.ws(wid)}?token={unrefreshed}") as control,
    ):
        with anyio.fail_after(15):
            await peer.synced.wait()
            await control.synced.wait()
        schema.post_message(peer.doc, pid, "before the refresh")
        await peer.wait_for(lambda: peer.saved_count == 1, timeout=15)
        fresh = issuer.issue(wid, pid, "Ann", "participant", ttl=600)
        await peer.send_raw(encode_token_refresh(fresh))
        await peer.wait_for(lambda: bool(peer.refreshed), timeout=10)
        assert peer.refreshed == [_exp(fresh)]
        assert await control.wait_closed(timeout=20) == 4401  # closed by b at the old expiry
        assert "expired" in (control.close_reason or "") and time.time() >= _exp(old)
        schema.post_message(peer.doc, pid, "after the old expiry")
        await peer.wait_for(lambda: peer.saved_count == 2, timeout=15)  # the same connection, still relayed
        assert not peer.closed.is_set()
    doc = await stored_doc(cluster.db, wid)
    assert [m["text"] for m in doc.get("messages", type=Array).to_py()] == [
        "before the refresh",
        "after the old expiry",
    ]
    # b answered the refresh; the owner never saw it (no frame of type 101 judged there)
    assert any("token refreshed" in line for line in b.log)
    assert not any("token refreshed" in line or "unknown message type" in line for line in a.log)
