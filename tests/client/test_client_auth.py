"""The client with authentication on: the token travels as ?token=, identity must match."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmv_sync.client import Backoff, WorkshopClient
from vmv_sync.server.tokens import TokenIssuer

pytestmark = pytest.mark.anyio

SECRET = "client-tests-secret-0123456789abcdef"
FAST = Backoff(base=0.05, cap=0.2)


async def test_tokens_work_and_a_bad_token_is_a_permanent_refusal(server_factory, tmp_path: Path) -> None:
    server = server_factory(args=("--secret", SECRET))
    issuer = TokenIssuer(SECRET)
    wid = "authed"
    fay_token = issuer.issue(wid, "fay", "Fay", "facilitator")
    ann_token = issuer.issue(wid, "ann", "Ann", "participant")
    async with WorkshopClient(
        server.url, wid, store_path=tmp_path / "f.sqlite3", participant_id="fay", name="Fay",
        role="facilitator", token=fay_token, backoff=FAST,
    ) as fay, WorkshopClient(
        server.url, wid, store_path=tmp_path / "a.sqlite3", participant_id="ann", name="Ann",
        token=ann_token, backoff=FAST,
    ) as ann:
        await fay.create_workshop("Secure", values=["Trust"])
        await fay.wait_connected(10)
        await ann.wait_connected(10)
        await ann.join()
        await ann.toggle_value("Trust")
        await ann.wait_saved(10)
        await fay.wait_for(lambda: fay.value_stats and fay.value_stats[0].count == 1, 10)
        await fay.wait_for(lambda: "ann" in fay.online_participants, 10)
        assert not ann.gave_up and fay.last_error is None

    async with WorkshopClient(
        server.url, wid, store_path=tmp_path / "x.sqlite3", participant_id="eve",
        token="not-a-token", backoff=FAST,
    ) as eve:
        await eve.wait_for(lambda: eve.gave_up, 10)
        assert eve.last_close_code == 4401 or "401" in (eve.last_error or "")
        await eve.post_message("offline still works")
        assert eve.pending_count == 1


async def test_identity_comes_from_the_token_of_the_http_flow(server_factory, tmp_path: Path) -> None:
    import httpx

    server = server_factory(args=("--secret", SECRET))
    async with httpx.AsyncClient(base_url=server.url) as http:
        created = (await http.post("/api/workshops", json={"title": "T", "name": "Fay", "values": ["Trust"]})).json()
        joined = (
            await http.post(
                f"/api/workshops/{created['workshop_id']}/join",
                json={"invite_code": created["invite_code"], "name": "Ann"},
            )
        ).json()
    async with WorkshopClient(
        server.url, joined["workshop_id"], token=joined["token"], store_path=tmp_path / "a.sqlite3", backoff=FAST
    ) as ann:
        assert (ann.participant_id, ann.name, ann.role) == (joined["participant_id"], "Ann", "participant")
        await ann.wait_connected(10)
        await ann.toggle_value("Trust")
        await ann.post_message("hello")
        await ann.wait_saved(10)
        assert not ann.gave_up and ann.last_close_code is None
        assert ann.value_stats[0].count == 1
