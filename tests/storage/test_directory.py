"""The directory (token secret, invites, revocations) and the fencing epoch, every backend."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from vmv_sync.errors import StorageError
from vmv_sync.storage import Directory, Invite, StaleEpoch, StoredDoc, token_secret

from .conftest import Backend
from .helpers import FakeClock

pytestmark = pytest.mark.anyio


async def test_the_secret_is_made_once_and_kept(backend: Backend) -> None:
    async with backend.open() as store:
        assert isinstance(store, Directory)
        secret = await store.get_or_create_secret()
        assert len(secret) >= 32
        assert await store.get_or_create_secret() == secret
        assert await store.get_or_create_secret("an imported secret file") == secret  # the first one stays
    async with backend.open() as again:  # a restart (or another process) reads the same one
        assert await again.get_or_create_secret() == secret


async def test_a_candidate_secret_is_stored_by_the_first_call(store: Any) -> None:
    assert await store.get_or_create_secret("from data/secret.key, 0123456789") == "from data/secret.key, 0123456789"
    assert await store.get_or_create_secret() == "from data/secret.key, 0123456789"


async def test_invites(store: Any, clock: FakeClock) -> None:
    assert await store.get_invite("w") is None
    assert not await store.set_invite("w", "ABCDEFGH")  # unknown workshop: nothing to rotate
    assert await store.get_invite("w") is None
    invite = await store.create_invite("w", "ABCDEFGH", "fay")
    assert invite == Invite("w", "ABCDEFGH", "fay", clock.now)
    assert await store.get_invite("w") == invite
    with pytest.raises(StorageError, match="already has an invite"):
        await store.create_invite("w", "ZZZZZZZZ", "eve")
    assert await store.set_invite("w", "NEWCODE2")
    assert await store.get_invite("w") == Invite("w", "NEWCODE2", "fay", clock.now)
    assert await store.get_invite("other") is None


async def test_revocations(store: Any) -> None:
    assert await store.revoked("w") == frozenset()
    await store.revoke("w", "p1")
    await store.revoke("w", "p1")  # idempotent
    await store.revoke("w", "p2")
    await store.revoke("other", "p3")
    assert await store.revoked("w") == frozenset({"p1", "p2"})
    assert await store.is_revoked("w", "p1") and not await store.is_revoked("w", "p3")


async def test_delete_forgets_the_invite_but_keeps_revocations_and_the_epoch(store: Any) -> None:
    await store.append("w", [b"a"], claims={1: "ann"})
    await store.create_invite("w", "ABCDEFGH", "fay")
    await store.revoke("w", "p1")
    epoch = await store.claim_epoch("w")
    await store.delete("w")
    assert await store.load("w") == StoredDoc(None, (), 0)
    assert await store.get_invite("w") is None
    assert await store.is_revoked("w", "p1")  # a removed participant's tokens never come back
    assert await store.current_epoch("w") == epoch  # an epoch never goes backwards
    with pytest.raises(StaleEpoch):
        await store.append("w", [b"b"], epoch=epoch - 1)


async def test_epochs(store: Any) -> None:
    assert await store.current_epoch("w") == 0
    assert await store.append("w", [b"unfenced"], epoch=0) == 1  # nothing recorded: accepted
    assert [await store.claim_epoch("w") for _ in range(3)] == [1, 2, 3]
    assert await store.current_epoch("w") == 3 and await store.current_epoch("other") == 0
    assert await store.append("w", [b"owner"], epoch=3) == 2
    assert await store.append("w", [b"from the future"], epoch=4) == 3  # not older: accepted
    with pytest.raises(StaleEpoch, match="stale"):
        await store.append("w", [b"stale"], claims={5: "p"}, epoch=2)
    assert await store.append("w", [b"no epoch"]) == 4  # unfenced callers are never refused
    assert await store.load("w") == StoredDoc(None, (b"unfenced", b"owner", b"from the future", b"no epoch"), 4)


async def test_bad_epochs_fail_alone(store: Any) -> None:
    for bad, error in ((True, TypeError), ("3", TypeError), (-1, ValueError), (2**63, ValueError)):
        with pytest.raises(error):
            await store.append("w", [b"a"], epoch=bad)
    assert await store.load("w") == StoredDoc(None, (), 0)


async def test_the_token_secret_is_mirrored_in_the_data_folder(backend: Backend, tmp_path: Path) -> None:
    folder = tmp_path / "files"
    async with backend.open() as store:
        secret = await token_secret(store, folder)
        kept = folder / "secret.key"
        assert kept.read_text().strip() == secret and kept.stat().st_mode & 0o777 == 0o600
        assert await token_secret(store, folder) == secret
        assert await token_secret(store, None) == secret == await store.get_or_create_secret()


async def test_a_secret_file_of_an_older_version_is_imported(backend: Backend, tmp_path: Path) -> None:
    (tmp_path / "secret.key").write_text("older-secret-0123456789abcdef\n")
    async with backend.open() as store:
        assert await token_secret(store, tmp_path) == "older-secret-0123456789abcdef"
        assert await store.get_or_create_secret() == "older-secret-0123456789abcdef"


async def test_another_nodes_own_file_loses_to_the_stores_secret(
    backend: Backend, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with backend.open() as store:
        secret = await token_secret(store, tmp_path / "node1")
        (tmp_path / "node2").mkdir()
        (tmp_path / "node2" / "secret.key").write_text("node-two-secret-0123456789\n")
        with caplog.at_level(logging.WARNING, logger="vmv_sync.storage.secret"):
            assert await token_secret(store, tmp_path / "node2") == secret
        assert "differs" in caplog.text
        assert (tmp_path / "node2" / "secret.key").read_text() == "node-two-secret-0123456789\n"  # left alone
