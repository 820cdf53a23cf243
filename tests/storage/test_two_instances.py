"""Two store instances on ONE database (two server processes sharing a store), every backend.

The contract of issue 20: sequence numbers are never reused or reordered; a
conflicting client-id claim is refused (never silently dropped); compaction never
deletes an update its snapshot does not hold, even while the other instance appends;
a stale fencing epoch is refused; both instances see one directory.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import anyio
import pytest
from pycrdt import Doc

from vmv_sync.storage import ClaimConflict, StaleEpoch, StoredDoc

from .conftest import Backend
from .helpers import Editor, content, rebuild, reload

pytestmark = pytest.mark.anyio


async def open_two(backend: Backend, stack: AsyncExitStack) -> tuple[Any, Any]:
    first = await stack.enter_async_context(backend.open())
    second = await stack.enter_async_context(backend.open())
    return first, second


async def test_interleaved_appends_never_reuse_a_seq(backend: Backend) -> None:
    async with AsyncExitStack() as stack:
        a, b = await open_two(backend, stack)
        assert await a.append("w", [b"a1"]) == 1  # a's seq cache is warm ...
        assert await b.append("w", [b"b1", b"b2"]) == 3  # ... and stale now
        assert await a.append("w", [b"a2"]) == 4
        assert await b.append("w", [], claims={1: "ann"}) == 4
        assert await a.load("w") == await b.load("w") == StoredDoc(None, (b"a1", b"b1", b"b2", b"a2"), 4, {1: "ann"})


async def test_concurrent_appends_from_two_instances_get_unique_ordered_seqs(backend: Backend) -> None:
    got: dict[tuple[str, int], list[int]] = {}
    async with AsyncExitStack() as stack:
        stores = await open_two(backend, stack)

        async def writer(name: str, store: Any, task: int) -> None:
            got[(name, task)] = [
                await store.append(f"w{task % 2}", [f"{name}{task}:{i}".encode()]) for i in range(15)
            ]

        async with anyio.create_task_group() as tg:
            for task in range(8):
                tg.start_soon(writer, "a", stores[0], task)
                tg.start_soon(writer, "b", stores[1], task)
        for w in (0, 1):
            _, updates = await stores[1].history(f"w{w}")
            # 2 instances x 4 tasks x 15 appends, seqs 1..120 with no gap and no duplicate
            assert [u.seq for u in updates] == list(range(1, 121))
            by_seq = {u.seq: u.update for u in updates}
            for (name, task), seqs in got.items():
                if task % 2 == w:
                    assert seqs == sorted(seqs)  # each caller's own order is kept
                    assert [by_seq[s] for s in seqs] == [f"{name}{task}:{i}".encode() for i in range(15)]


async def test_a_claim_held_through_the_other_instance_is_refused(backend: Backend) -> None:
    async with AsyncExitStack() as stack:
        a, b = await open_two(backend, stack)
        await a.append("w", [b"p1 text"], claims={4242: "p1"})
        with pytest.raises(ClaimConflict) as refused:
            await b.append("w", [b"p2 text"], claims={4242: "p2"})
        assert (refused.value.client_id, refused.value.owner) == (4242, "p1")
        assert await b.load("w") == StoredDoc(None, (b"p1 text",), 1, {4242: "p1"})
        assert await b.append("w", [b"p1 again"], claims={4242: "p1"}) == 2  # its owner may write


async def test_racing_claims_on_two_instances_one_wins_the_other_is_refused(backend: Backend) -> None:
    outcomes: dict[str, object] = {}
    async with AsyncExitStack() as stack:
        a, b = await open_two(backend, stack)
        for round_ in range(5):
            cid = 100 + round_

            async def claim(name: str, store: Any, cid: int = cid) -> None:
                try:
                    outcomes[name] = await store.append("w", [f"{name}{cid}".encode()], claims={cid: name})
                except ClaimConflict as exc:
                    outcomes[name] = exc

            async with anyio.create_task_group() as tg:
                tg.start_soon(claim, "pa", a)
                tg.start_soon(claim, "pb", b)
            refused = [n for n, r in outcomes.items() if isinstance(r, ClaimConflict)]
            assert len(refused) == 1, outcomes
            winner = "pb" if refused == ["pa"] else "pa"
            stored = await a.load("w")
            assert stored.client_ids[cid] == winner
            assert f"{winner}{cid}".encode() in stored.updates
            assert f"{refused[0]}{cid}".encode() not in stored.updates


async def test_compaction_while_the_other_instance_appends_loses_nothing(backend: Backend) -> None:
    """A compacts from what it loaded (up to its last_seq) while B keeps appending."""
    editor = Editor(seed=20)
    writing = True
    compactions = 0
    async with AsyncExitStack() as stack:
        a, b = await open_two(backend, stack)
        await b.append("w", editor.edit() or [Doc().get_update()])

        async def writer() -> None:
            nonlocal writing
            for _ in range(150):
                updates = editor.edit()
                if updates:
                    await b.append("w", updates)
                await anyio.lowlevel.checkpoint()
            writing = False

        async def compactor() -> None:
            nonlocal compactions
            while writing:
                stored = await a.load("w")
                snapshot = rebuild(stored.snapshot, stored.updates).get_update()
                await anyio.lowlevel.checkpoint()  # B appends between the load and the compaction
                await a.compact("w", snapshot, stored.last_seq)
                compactions += 1

        async with anyio.create_task_group() as tg:
            tg.start_soon(writer)
            tg.start_soon(compactor)
        assert compactions > 1
        assert reload(await a.load("w")) == reload(await b.load("w")) == content(editor.doc)


async def test_a_compaction_only_deletes_up_to_its_own_seq(backend: Backend) -> None:
    async with AsyncExitStack() as stack:
        a, b = await open_two(backend, stack)
        await a.append("w", [b"a1", b"a2"])
        await b.append("w", [b"b3"])  # committed after A built its snapshot of 1..2
        await a.compact("w", b"S(a1,a2)", 2)
        assert await b.load("w") == StoredDoc(b"S(a1,a2)", (b"b3",), 3)
        _, kept = await b.history("w")
        assert [(u.seq, u.update) for u in kept] == [(3, b"b3")]


async def test_a_stale_epoch_is_refused_across_instances(backend: Backend) -> None:
    async with AsyncExitStack() as stack:
        old, new = await open_two(backend, stack)
        first = await old.claim_epoch("w")
        assert await old.append("w", [b"old owner"], epoch=first) == 1
        second = await new.claim_epoch("w")  # a successor takes the workshop
        assert second > first
        with pytest.raises(StaleEpoch) as refused:
            await old.append("w", [b"paused ex-owner"], claims={9: "p"}, epoch=first)
        assert (refused.value.epoch, refused.value.current) == (first, second)
        assert await new.append("w", [b"new owner"], epoch=second) == 2
        assert await old.load("w") == StoredDoc(None, (b"old owner", b"new owner"), 2)
        assert await old.current_epoch("w") == second
        assert await old.append("other", [b"x"], epoch=first) == 1  # epochs are per workshop


async def test_both_instances_share_one_directory(backend: Backend) -> None:
    async with AsyncExitStack() as stack:
        a, b = await open_two(backend, stack)
        secrets: list[str] = []

        async def secret(store: Any) -> None:
            secrets.append(await store.get_or_create_secret())

        async with anyio.create_task_group() as tg:
            tg.start_soon(secret, a)
            tg.start_soon(secret, b)
        assert len(set(secrets)) == 1 and len(secrets[0]) >= 32
        await a.create_invite("w", "K7M2QX9D", "fay")
        assert (await b.get_invite("w")).code == "K7M2QX9D"  # type: ignore[union-attr]
        assert await b.set_invite("w", "NEWCODE2")
        assert (await a.get_invite("w")).code == "NEWCODE2"  # type: ignore[union-attr]
        await a.revoke("w", "p1")
        assert await b.is_revoked("w", "p1") and not await b.is_revoked("w", "p2")
