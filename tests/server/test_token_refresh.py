"""Tokens on open connections, on a real server over real WebSockets (docs/auth.md).

An open connection is closed with 4401 once its token expires; a fresh token handed
over in band (extension message 101, docs/protocol.md) keeps the same connection
open past the old expiry; a refresh naming someone else (4403), an invalid or
expired token (4401) or a malformed 101 frame (4400) closes only that connection.
Waits are for events (a close, an answer, a ``saved``), bounded by timeouts.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from pycrdt import Array

from tests.test_auth import AUTH_ENV, SECRET, Member, Workshop, make_workshop
from tests.yclient import YClient
from vmv_sync import schema
from vmv_sync.errors import TOKEN_REFRESH_PREFIX
from vmv_sync.protocol import encode_token_refresh
from vmv_sync.server.tokens import TokenIssuer

pytestmark = pytest.mark.anyio

ISSUER = TokenIssuer(SECRET)


@pytest.fixture
def auth_server(server_factory: Any) -> Any:
    return server_factory(env=AUTH_ENV, args=())


def _token(ws: Workshop, member: Member, *, ttl: float, role: str | None = None, wid: str | None = None) -> str:
    return ISSUER.issue(wid or ws.wid, member.pid, member.name, role or member.role, ttl=ttl)


def _exp(token: str) -> int:
    return int(jwt.decode(token, options={"verify_signature": False})["exp"])


def _url(ws: Workshop, token: str) -> str:
    return f"{ws.server.ws(ws.wid)}?token={token}"  # type: ignore[attr-defined]


async def _post_and_save(client: YClient, pid: str, text: str) -> None:
    schema.post_message(client.doc, pid, text)
    await client.wait_for(lambda: client.saved_count == client.sent_updates, timeout=15)


def _messages(client: YClient) -> list[str]:
    return [m["text"] for m in client.doc.get("messages", type=Array).to_py()]


async def test_an_expired_token_closes_its_connection_and_only_that_one(auth_server: Any) -> None:
    ws = await make_workshop(auth_server, "Ann", "Bob")
    ann, bob = ws.members["Ann"], ws.members["Bob"]
    short = _token(ws, ann, ttl=2)
    async with YClient(_url(ws, short), saved=True) as a, YClient(ws.url(bob), saved=True) as b:
        await a.synced.wait()
        await b.synced.wait()
        await _post_and_save(a, ann.pid, "before expiry")
        assert await a.wait_closed(timeout=20) == 4401
        closed_at = time.time()
        assert "expired" in (a.close_reason or ""), a.close_reason
        assert _exp(short) <= closed_at < _exp(short) + 5, (closed_at, _exp(short))
        await _post_and_save(b, bob.pid, "still here")  # the sibling with a long token stays open
        assert not b.closed.is_set()
    async with YClient(ws.url(bob)) as reader:
        await reader.synced.wait()
        assert _messages(reader) == ["before expiry", "still here"]


async def test_a_refresh_keeps_the_same_connection_open_past_the_old_expiry(auth_server: Any) -> None:
    ws = await make_workshop(auth_server, "Ann")
    ann = ws.members["Ann"]
    old = _token(ws, ann, ttl=3)
    unrefreshed = _token(ws, ann, ttl=3)  # same participant, same expiry, never refreshed
    async with YClient(_url(ws, old), saved=True) as a, YClient(_url(ws, unrefreshed)) as control:
        await a.synced.wait()
        await control.synced.wait()
        await _post_and_save(a, ann.pid, "before the refresh")
        fresh = _token(ws, ann, ttl=600)
        await a.send_raw(encode_token_refresh(fresh))
        await a.wait_for(lambda: bool(a.refreshed), timeout=10)
        assert a.refreshed == [_exp(fresh)]
        # the control connection is closed at the old expiry; the refreshed one is not
        assert await control.wait_closed(timeout=20) == 4401
        assert time.time() >= _exp(old)
        assert not a.closed.is_set()
        await _post_and_save(a, ann.pid, "after the old expiry")
        # ``saved`` counts this connection's updates: 2 means the very socket that sent the first
        assert a.saved_count == 2 and not a.closed.is_set()
    async with YClient(ws.url(ann)) as reader:
        await reader.synced.wait()
        assert _messages(reader) == ["before the refresh", "after the old expiry"]


async def test_refusals_close_only_the_refreshing_connection(auth_server: Any) -> None:
    ws = await make_workshop(auth_server, "Ann", "Bob")
    other = await make_workshop(auth_server)
    ann, bob = ws.members["Ann"], ws.members["Bob"]
    refresh = encode_token_refresh
    cases: list[tuple[str, bytes, int]] = [
        ("another participant", refresh(_token(ws, bob, ttl=600)), 4403),
        ("another role", refresh(_token(ws, ann, ttl=600, role="observer")), 4403),
        ("another workshop", refresh(_token(ws, ann, ttl=600, wid=other.wid)), 4403),
        ("garbage", refresh("not.a.token"), 4401),
        ("expired", refresh(_token(ws, ann, ttl=-60)), 4401),
        ("another secret", refresh(TokenIssuer("another-secret-" + "y" * 32).issue(ws.wid, ann.pid, "Ann", "participant")), 4401),
        ("empty", refresh(""), 4401),
        ("no payload", b"\x65", 4400),
        ("truncated", b"\x65\x09abc", 4400),
        ("trailing bytes", refresh(_token(ws, ann, ttl=600)) + b"\x00", 4400),
        ("not UTF-8", b"\x65\x02\xff\xfe", 4400),
    ]  # fmt: skip
    async with YClient(ws.url(bob), saved=True) as neighbour:
        await neighbour.synced.wait()
        for what, frame, code in cases:
            async with YClient(ws.url(ann), saved=True) as a:
                await a.synced.wait()
                await a.send_raw(frame)
                assert await a.wait_closed(timeout=10) == code, (what, a.close_reason)
                if code != 4400:
                    assert (a.close_reason or "").startswith(TOKEN_REFRESH_PREFIX), (what, a.close_reason)
                assert not a.refreshed, what
            await _post_and_save(neighbour, bob.pid, f"after {what}")
            assert not neighbour.closed.is_set(), what


async def test_a_flood_of_refreshes_is_charged_to_its_sender_only(server_factory: Any) -> None:
    """Each refresh verifies a signature: inside every rate limit, that work is the
    sender's (its work budget, 4429 once spent), not everyone's."""
    env = {**AUTH_ENV, "VMV_WORK_SHARE": "0.001", "VMV_WORK_BURST": "0.01",
           "VMV_RATE_LIMIT": "100000", "VMV_RATE_BURST": "100000"}  # fmt: skip
    ws = await make_workshop(server_factory(env=env, args=()), "Ann", "Bob")
    ann, bob = ws.members["Ann"], ws.members["Bob"]
    frame = encode_token_refresh(_token(ws, ann, ttl=600))
    sent = 2000
    async with YClient(ws.url(bob), saved=True) as neighbour, YClient(ws.url(ann)) as a:
        await neighbour.synced.wait()
        await a.synced.wait()
        for _ in range(sent):
            await a.send_raw(frame)
            if a.closed.is_set():
                break
        assert await a.wait_closed(timeout=20) == 4429, a.close_reason
        assert "share of the server's time" in (a.close_reason or ""), a.close_reason
        assert len(a.refreshed) < sent  # refused long before the flood was verified
        await _post_and_save(neighbour, bob.pid, "unaffected")
        assert not neighbour.closed.is_set()


async def test_with_authentication_off_a_refresh_is_answered_and_nothing_expires(server: Any) -> None:
    async with YClient(server.ws("open-w"), saved=True) as a:
        await a.synced.wait()
        await a.send_raw(encode_token_refresh("anything at all"))
        await a.wait_for(lambda: bool(a.refreshed), timeout=10)
        assert a.refreshed == [0] and not a.closed.is_set()
        a.doc.get("messages", type=Array).append("still writable")
        await a.wait_for(lambda: a.saved_count == a.sent_updates, timeout=10)
