"""The access registry (server/auth.py) in process, over a real store: invites, revocations, the door check."""

from __future__ import annotations

import pytest

from vmv_sync.errors import Forbidden, Unauthenticated
from vmv_sync.ids import new_id
from vmv_sync.server.auth import AccessRegistry, Principal
from vmv_sync.server.tokens import TokenIssuer
from vmv_sync.storage import MemoryStore

pytestmark = pytest.mark.anyio

SECRET = "a-secret-of-enough-characters-for-hs256"


async def test_invites_are_created_read_and_rotated() -> None:
    async with MemoryStore() as store:
        registry = AccessRegistry(store)
        access = await registry.create("w1", "f-1")
        assert (access.workshop_id, access.facilitator_id, len(access.invite_code)) == ("w1", "f-1", 8)
        assert await registry.get("w1") == access
        code = await registry.rotate("w1")
        assert code is not None and code != access.invite_code
        got = await registry.get("w1")
        assert got is not None and got.invite_code == code
        assert await registry.rotate("nobody") is None and await registry.get("nobody") is None


async def test_the_door_check_refuses_bad_tokens_other_workshops_and_removed_people() -> None:
    tokens = TokenIssuer(SECRET)
    async with MemoryStore() as store:
        registry = AccessRegistry(store)
        ann = tokens.issue("w1", "p-ann", "Ann", "participant")
        assert await registry.authenticate(tokens, ann, "w1") == Principal("p-ann", "Ann", "participant", "w1")
        with pytest.raises(Forbidden):
            await registry.authenticate(tokens, ann, "w2")
        with pytest.raises(Unauthenticated):
            await registry.authenticate(tokens, None, "w1")
        await registry.revoke("w1", "p-ann")
        assert registry.is_revoked("w1", "p-ann") and not registry.is_revoked("w1", None)
        with pytest.raises(Unauthenticated, match="removed"):
            await registry.authenticate(tokens, ann, "w1")
        # another registry on the same store (another process) reads the removal from it
        assert await AccessRegistry(store).load_revoked("w1") == {"p-ann"}


async def test_a_registry_given_a_path_opens_the_store_per_call(tmp_path) -> None:
    registry = AccessRegistry(tmp_path / "db.sqlite3")
    facilitator = new_id("f-")
    access = await registry.create("w1", facilitator)
    assert (await AccessRegistry(str(tmp_path / "db.sqlite3")).get("w1")) == access
