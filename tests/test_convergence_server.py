"""Convergence through the real server: clients act while the test breaks things.

Each hypothesis example opens a fresh workshop on one real server process (shared
by the examples of the test, restarted as they go) with three offline-first
:class:`~vmv_sync.client.WorkshopClient` s over real WebSockets. The example is a
list of steps: an action by one client, a client going offline or back online, the
server stopped with SIGTERM and started again, or killed with ``kill -9`` and
started again. Afterwards every client goes online and waits until the server has
committed its edits; then all clients and a fresh peer must hold the same document
(equal state vectors, equal roots, equal derived state), every message posted once.

Nothing is lost even across ``kill -9``: a client keeps its edits in its own store
until the server says they are committed (the ``saved`` extension), and resends
them on reconnect. Budget: 20 examples in the ``ci`` profile (~1-2 s each).
"""

from __future__ import annotations

import logging
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import ServerProcess
from tests.yclient import YClient
from vmv_sync.client import Backoff, WorkshopClient
from vmv_sync.derived import compute_state
from vmv_sync.errors import VmvSyncError
from vmv_sync.protocol import decode_state_vector
from vmv_sync.schema import ROOTS, InvalidAction, bind_roots

logger = logging.getLogger(__name__)

PROFILE = settings.get_current_profile_name()
EXAMPLES = {"deep": 100}.get(PROFILE, 20)
CLIENTS = 3
VALUES = ("Honesty", "trust", "Growth", "Café")
OPTIONS = ("A", "B", "C")
TIMEOUT = 30.0

client_ix = st.integers(0, CLIENTS - 1)
actions = st.one_of(
    st.tuples(st.just("message"), client_ix, st.text("ab é", max_size=4)),
    st.tuples(st.just("toggle"), client_ix, st.sampled_from(VALUES)),
    st.tuples(st.just("vote"), client_ix, st.sampled_from(OPTIONS)),
    st.tuples(st.just("rate"), client_ix, st.sampled_from(VALUES), st.integers(1, 5)),
    st.tuples(st.just("progress"), client_ix, st.sampled_from(("values-select", "vision"))),
    st.tuples(st.just("mission"), client_ix, st.integers(0, 50), st.text("xy🙂", max_size=3)),
    st.tuples(st.just("draft"), client_ix, st.text("pq", max_size=5)),
    st.tuples(st.just("stage"), st.sampled_from(("values-select", "mission-draft"))),
)  # fmt: skip
faults = st.one_of(
    st.tuples(st.just("offline"), client_ix),
    st.tuples(st.just("online"), client_ix),
    st.tuples(st.just("settle"), client_ix),
    st.just(("restart",)),
    st.just(("kill",)),
)
steps = st.lists(st.one_of(actions, actions, faults), min_size=6, max_size=25)

STATS: Counter[str] = Counter()


def _content(doc: Any) -> dict[str, Any]:
    roots = bind_roots(doc).by_name()
    return {name: roots[name].to_py() for name in ROOTS}


async def _act(clients: list[WorkshopClient], step: tuple[Any, ...], posted: list[str]) -> None:
    kind, *args = step
    STATS[f"step_{kind}"] += 1
    if kind == "stage":
        await clients[0].set_stage(args[0])
        return
    client = clients[args[0]]
    try:
        if kind == "message":
            posted.append(await client.post_message(args[1]))
        elif kind == "toggle":
            await client.toggle_value(args[1])
        elif kind == "vote":
            await client.cast_vote("b0", args[1])
        elif kind == "rate":
            await client.rate_value(args[1], args[2], 6 - args[2])
        elif kind == "progress":
            await client.set_progress(args[1])
        elif kind == "mission":
            length = len(str(bind_roots(client.doc).mission))
            await client.edit_mission(args[1] % (length + 1), insert=args[2])
        elif kind == "draft":
            await client.set_draft(args[1])
    except InvalidAction:
        STATS["actions_refused"] += 1  # e.g. a vote before the ballot reached this client


async def _fault(
    server: ServerProcess, clients: list[WorkshopClient], step: tuple[Any, ...]
) -> None:
    kind, *args = step
    STATS[f"step_{kind}"] += 1
    if kind == "offline":
        await clients[args[0]].disconnect()
    elif kind == "online":
        clients[args[0]].reconnect()
    elif kind == "settle":
        client = clients[args[0]]
        if client.connected:
            await client.wait_saved(TIMEOUT)
    elif kind == "restart":
        await anyio.to_thread.run_sync(server.restart)
    else:
        await anyio.to_thread.run_sync(server.kill)
        await anyio.to_thread.run_sync(server.start, server.port)


async def _scenario(server: ServerProcess, folder: Path, wid: str, plan: list[Any]) -> None:
    url = server.url.replace("http://", "ws://")
    backoff = Backoff(base=0.02, factor=2.0, cap=0.2)
    posted: list[str] = []
    async with WorkshopClient(url, wid, store_path=folder / "c0.sqlite3", participant_id="f",
                              name="Fay", role="facilitator", backoff=backoff) as fay, \
            WorkshopClient(url, wid, store_path=folder / "c1.sqlite3", participant_id="p1",
                           name="Ann", backoff=backoff) as ann, \
            WorkshopClient(url, wid, store_path=folder / "c2.sqlite3", participant_id="p2",
                           name="Bob", backoff=backoff) as bob:  # fmt: skip
        clients = [fay, ann, bob]
        # Setup while everyone is connected: joining creates each participant's
        # containers once (see docs/testing.md, "what we assume").
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
            await client.wait_for(
                lambda c=client: len(bind_roots(c.doc).participants) == CLIENTS, TIMEOUT
            )

        for step in plan:
            if step[0] in ("offline", "online", "settle", "restart", "kill"):
                await _fault(server, clients, step)
            else:
                await _act(clients, step, posted)

        # Heal: everyone online, every edit committed by the server.
        for client in clients:
            client.reconnect()
        for client in clients:
            await client.wait_connected(TIMEOUT)
            await client.wait_saved(TIMEOUT)
        async with YClient(server.ws(wid)) as fresh:
            with anyio.fail_after(TIMEOUT):
                await fresh.synced.wait()
            target = decode_state_vector(fresh.doc.get_state())
            for client in clients:
                await client.wait_for(
                    lambda c=client: decode_state_vector(c.doc.get_state()) == target, TIMEOUT
                )
            expected = _content(fresh.doc)
            derived = compute_state(fresh.doc).to_json()
            for client in clients:
                assert _content(client.doc) == expected
                assert compute_state(client.doc).to_json() == derived
                assert client.derived.to_json() == derived  # incremental tracker
        ids = Counter(m["id"] for m in expected["messages"])
        assert all(n == 1 for n in ids.values()), ids
        assert set(ids) == set(posted), (set(posted) - set(ids), set(ids) - set(posted))
        votes = expected["votes"]["b0"]
        assert set(votes) <= {"f", "p1", "p2"}
        assert all(isinstance(v, str) for v in votes.values())
        STATS["messages_checked"] += len(ids)


@pytest.mark.timeout(0 if PROFILE == "deep" else 600)
def test_clients_converge_through_server_faults(server: ServerProcess, tmp_path: Path) -> None:
    """Hypothesis-chosen actions, disconnects, SIGTERM restarts and kill -9 all converge."""
    counter = iter(range(10**9))

    @settings(max_examples=EXAMPLES, deadline=None, stateful_step_count=25, print_blob=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(plan=steps)
    # Always covered, whatever hypothesis draws: edits across kill -9 and SIGTERM
    # while a client is offline, and an offline client's edits after the restart.
    @example(plan=[("message", 1, "a"), ("offline", 2), ("message", 2, "b"), ("kill",),
                   ("toggle", 0, "Honesty"), ("vote", 1, "A"), ("restart",), ("online", 2),
                   ("vote", 2, "B"), ("settle", 2), ("kill",), ("mission", 0, 0, "x")])
    @example(plan=[("offline", 0), ("stage", "mission-draft"), ("draft", 0, "pq"),
                   ("restart",), ("draft", 1, "p"), ("online", 0), ("kill",)])  # fmt: skip
    def run(plan: list[Any]) -> None:
        n = next(counter)
        folder = tmp_path / f"ex{n}"
        folder.mkdir()
        if server.proc is None or server.proc.poll() is not None:
            server.start(server.port)
        STATS["examples"] += 1
        STATS["steps"] += len(plan)
        try:
            anyio.run(_scenario, server, folder, f"conv{n}", plan)
        except (VmvSyncError, TimeoutError) as exc:
            tail = "".join(server.log[-20:])
            raise AssertionError(f"scenario failed: {exc!r}; server log tail:\n{tail}") from exc

    STATS.clear()
    run()
    assert STATS["examples"] >= EXAMPLES
    assert STATS["step_kill"] >= 2 and STATS["step_restart"] >= 2
    logger.info("server convergence: %s", dict(STATS))
    if server.proc is not None and server.proc.poll() is None:
        assert server.stop(signal.SIGTERM) == 0
