"""The real-server convergence suite (tests/test_convergence_server.py) against two processes.

Same hypothesis-chosen plans of actions and faults, with the three clients split over
two processes of one cluster (the facilitator and Bob on ``a``, Ann on ``b``): every
edit crosses processes, and the faults (SIGTERM restarts, ``kill -9``) hit ``a`` and
``b`` in turn, owner or relay. Afterwards every client, and a fresh peer of each
process, must hold the same document, every message posted once.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from hypothesis import HealthCheck, example, given, settings

from tests.conftest import ServerProcess
from tests.test_convergence_server import CLIENTS, OPTIONS, PROFILE, TIMEOUT, VALUES, _act, _content, steps
from tests.yclient import YClient
from vmv_sync.client import Backoff, WorkshopClient
from vmv_sync.derived import compute_state
from vmv_sync.protocol import decode_state_vector
from vmv_sync.schema import bind_roots

from .conftest import Cluster

EXAMPLES = {"deep": 60}.get(PROFILE, 3)
STATS: Counter[str] = Counter()


async def _scenario(nodes: list[ServerProcess], folder: Path, wid: str, plan: list[Any]) -> None:
    backoff = Backoff(base=0.02, factor=2.0, cap=0.2)
    urls = [n.url.replace("http://", "ws://") for n in nodes]
    posted: list[str] = []
    faults = 0
    async with WorkshopClient(urls[0], wid, store_path=folder / "c0.sqlite3", participant_id="f",
                              name="Fay", role="facilitator", backoff=backoff) as fay, \
            WorkshopClient(urls[1], wid, store_path=folder / "c1.sqlite3", participant_id="p1",
                           name="Ann", backoff=backoff) as ann, \
            WorkshopClient(urls[0], wid, store_path=folder / "c2.sqlite3", participant_id="p2",
                           name="Bob", backoff=backoff) as bob:  # fmt: skip
        clients = [fay, ann, bob]
        for client in clients:
            await client.wait_connected(TIMEOUT)
        await fay.create_workshop("Team", values=list(VALUES[:2]))
        await fay.open_ballot("b0", "Which?", list(OPTIONS), stage="values-collective")
        await fay.wait_saved(TIMEOUT)
        for client in clients[1:]:
            await client.wait_for(lambda c=client: "b0" in bind_roots(c.doc).ballots, TIMEOUT)
            await client.join()
            await client.wait_saved(TIMEOUT)
        for client in clients:
            await client.wait_for(lambda c=client: len(bind_roots(c.doc).participants) == CLIENTS, TIMEOUT)
        for step in plan:
            kind = step[0]
            STATS[f"step_{kind}"] += 1
            if kind == "offline":
                await clients[step[1]].disconnect()
            elif kind == "online":
                clients[step[1]].reconnect()
            elif kind == "settle":
                if clients[step[1]].connected:
                    await clients[step[1]].wait_saved(TIMEOUT)
            elif kind in ("restart", "kill"):
                node = nodes[faults % 2]  # a, b, a, ...: the owner and the relay in turn
                faults += 1
                if kind == "restart":
                    await anyio.to_thread.run_sync(node.restart)
                else:
                    await anyio.to_thread.run_sync(node.kill)
                    await anyio.to_thread.run_sync(node.start, node.port)
            else:
                await _act(clients, step, posted)
        for client in clients:
            client.reconnect()
        for client in clients:
            await client.wait_connected(TIMEOUT)
            await client.wait_saved(TIMEOUT)
        expected: dict[str, Any] | None = None
        for node in nodes:
            async with YClient(node.ws(wid)) as fresh:
                with anyio.fail_after(TIMEOUT):
                    await fresh.synced.wait()
                target = decode_state_vector(fresh.doc.get_state())
                for client in clients:
                    await client.wait_for(
                        lambda c=client, t=target: decode_state_vector(c.doc.get_state()) == t, TIMEOUT
                    )
                content = _content(fresh.doc)
                expected = expected or content
                assert content == expected
                derived = compute_state(fresh.doc).to_json()
                for client in clients:
                    assert _content(client.doc) == expected
                    assert client.derived.to_json() == derived
        assert expected is not None
        ids = Counter(m["id"] for m in expected["messages"])
        assert all(n == 1 for n in ids.values()), ids
        assert set(ids) == set(posted)
        STATS["messages_checked"] += len(ids)


@pytest.mark.timeout(0 if PROFILE == "deep" else 300)
def test_clients_on_two_processes_converge_through_faults(sync_cluster: Cluster) -> None:
    cluster = sync_cluster
    nodes = [cluster.start(name, args=("--no-auth",)) for name in ("a", "b")]
    counter = iter(range(10**9))

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(plan=steps)
    @example(plan=[("message", 1, "a"), ("offline", 2), ("message", 2, "b"), ("kill",),
                   ("toggle", 0, "Honesty"), ("vote", 1, "A"), ("kill",), ("online", 2),
                   ("mission", 1, 0, "x"), ("restart",), ("message", 0, "c")])  # fmt: skip
    def run(plan: list[Any]) -> None:
        n = next(counter)
        folder = cluster.tmp / f"ex{n}"
        folder.mkdir()
        for node in nodes:
            if node.proc is None or node.proc.poll() is not None:
                node.start(node.port)
        STATS["examples"] += 1
        anyio.run(_scenario, nodes, folder, f"conv{n}", plan)

    STATS.clear()
    run()
    assert STATS["examples"] >= EXAMPLES
