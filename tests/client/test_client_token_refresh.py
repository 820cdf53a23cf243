"""``WorkshopClient.refresh_token`` against the real server (docs/auth.md).

The live connection takes a fresh token in band (extension message 101) and outlives
its old one; a refused token raises ClientError and leaves the client on the token it
had; offline the token is only stored. Also with the application's RS256 keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.client.helpers import FAST, SECRET, create_workshop, join
from tests.test_external_auth import Key, _jwks
from tests.yclient import YClient
from vmv_sync.client import WorkshopClient
from vmv_sync.errors import ClientError
from vmv_sync.server.tokens import TokenIssuer

pytestmark = pytest.mark.anyio

ISSUER = TokenIssuer(SECRET)


def _exp(token: str) -> int:
    return int(jwt.decode(token, options={"verify_signature": False})["exp"])


async def test_refresh_keeps_the_connection_past_the_old_expiry(server_factory: Any, tmp_path: Path) -> None:
    server = server_factory(args=("--secret", SECRET))
    created = await create_workshop(server.url, ["Trust"])
    ann = await join(server.url, created, "Ann")
    wid, pid = created["workshop_id"], ann["participant_id"]
    old = ISSUER.issue(wid, pid, "Ann", "participant", ttl=3)
    control_token = ISSUER.issue(wid, pid, "Ann", "participant", ttl=3)  # the same expiry, never refreshed
    async with WorkshopClient(server.url, wid, token=old, store_path=tmp_path / "a.sqlite3", backoff=FAST) as client:
        await client.wait_connected(15)
        await client.post_message("before the refresh")
        await client.wait_saved(15)
        fresh = ISSUER.issue(wid, pid, "Ann", "participant", ttl=600)
        assert await client.refresh_token(fresh, timeout=10) == _exp(fresh)
        assert client.token == fresh and fresh in client.url
        async with YClient(f"{server.ws(wid)}?token={control_token}") as control:
            assert await control.wait_closed(timeout=20) == 4401  # the old expiry has passed
        await client.post_message("after the old expiry")
        await client.wait_saved(15)
        assert client.connected and client.last_close_code is None
        assert len(client.connection_attempts) == 1, "the client reconnected instead of refreshing"
        assert [m.text for m in client.messages] == ["before the refresh", "after the old expiry"]


async def test_a_refused_refresh_raises_and_the_client_keeps_its_token(server_factory: Any, tmp_path: Path) -> None:
    server = server_factory(args=("--secret", SECRET))
    created = await create_workshop(server.url, ["Trust"])
    ann, bob = await join(server.url, created, "Ann"), await join(server.url, created, "Bob")
    wid = created["workshop_id"]
    async with WorkshopClient(
        server.url, wid, token=ann["token"], store_path=tmp_path / "a.sqlite3", backoff=FAST
    ) as client:
        await client.wait_connected(15)
        expired = ISSUER.issue(wid, ann["participant_id"], "Ann", "participant", ttl=-60)
        for refused, code in ((expired, 4401), (bob["token"], 4403)):
            with pytest.raises(ClientError, match=f"{code}: token refresh:"):
                await client.refresh_token(refused, timeout=10)
            assert client.token == ann["token"] and not client.gave_up
            await client.post_message(f"after a refused {code}")  # kept, sent once reconnected
            await client.wait_connected(15)  # with the token it had
            await client.wait_saved(15)
        assert not client.refused and not client.recoveries


async def test_offline_the_token_is_only_stored(server_factory: Any, tmp_path: Path) -> None:
    server = server_factory(args=("--secret", SECRET))
    created = await create_workshop(server.url, ["Trust"])
    ann = await join(server.url, created, "Ann")
    wid = created["workshop_id"]
    async with WorkshopClient(
        server.url, wid, token=ann["token"], store_path=tmp_path / "a.sqlite3", backoff=FAST, connect=False
    ) as client:
        fresh = ISSUER.issue(wid, ann["participant_id"], "Ann", "participant", ttl=600)
        assert await client.refresh_token(fresh) is None
        assert client.token == fresh and not client.connection_attempts
        await client.post_message("offline")
        client.reconnect()
        await client.wait_connected(15)  # with the stored token
        await client.wait_saved(15)


async def test_refresh_with_the_applications_rs256_key(server_factory: Any, tmp_path: Path) -> None:
    key = Key("RS256", "rs256-refresh")
    jwks = tmp_path / "keys.jwks"
    jwks.write_text(_jwks(key))
    server = server_factory(env={"VMV_AUTH_JWKS": str(jwks)}, args=())  # default claims: sub, name, role, wid
    wid = (await create_workshop(server.url, ["Trust"]))["workshop_id"]
    claims = {"role": "participant", "wid": wid}
    first = key.sign(wid, sub="u-ann", ttl=60, **claims)
    async with WorkshopClient(server.url, wid, token=first, store_path=tmp_path / "a.sqlite3", backoff=FAST) as client:
        await client.wait_connected(15)
        await client.post_message("signed by the application")
        fresh = key.sign(wid, sub="u-ann", ttl=3600, **claims)
        assert await client.refresh_token(fresh, timeout=10) == _exp(fresh)
        with pytest.raises(ClientError, match="4403: token refresh:"):
            await client.refresh_token(key.sign(wid, sub="u-eve", ttl=3600, **claims), timeout=10)
        # reconnected with the accepted fresh token: wait for the second connection itself
        # (right after the refusal the first one may not be marked closed yet)
        await client.wait_for(lambda: len(client.connection_attempts) == 2 and client.connected, 15)
        assert client.token == fresh
        await client.wait_saved(15)
        assert len(client.connection_attempts) == 2 and not client.gave_up
