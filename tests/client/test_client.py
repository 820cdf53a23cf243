"""The offline-first client against the real server, over real WebSockets and SQLite files."""

from __future__ import annotations

import json
import signal
import socket
import statistics
import subprocess
import sys
import textwrap
import time
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import pytest

from vmv_sync.client import Backoff, ConnectionState, Join, Leave, WorkshopClient
from vmv_sync.presence import Cursor

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
FAST = Backoff(base=0.2, factor=2.0, cap=1.0)


def client(url: str, wid: str, store: Path, pid: str, **kw: object) -> WorkshopClient:
    kw.setdefault("backoff", FAST)
    kw.setdefault("name", pid.upper())
    return WorkshopClient(url, wid, store_path=store, participant_id=pid, **kw)  # type: ignore[arg-type]


def dead_url() -> str:
    """A loopback URL where nothing listens (the port was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"ws://127.0.0.1:{port}"


def run_child(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a client script in its own Python process (a real process restart)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


OFFLINE_CHILD = """
    import json, os, signal, sys, anyio
    from vmv_sync.client import WorkshopClient

    async def main(url, store, wid, step):
        async with WorkshopClient(url, wid, store_path=store, participant_id="pa", name="Ann") as a:
            assert not a.connected
            await a.post_message(f"offline {step} from A")
            await a.toggle_value("Courage" if step == "1" else "Kindness")
            await a.rate_value("Courage", 5, 2)
            await a.set_draft(f"Ann's draft, take {step}")
            if step == "1":
                await a.cast_vote("b1", "yes")
            print(json.dumps({"pending": a.pending_count,
                              "messages": [m.text for m in a.messages],
                              "state": a.state.value}), flush=True)
            if step == "2":
                os.kill(os.getpid(), signal.SIGKILL)  # no clean close, no final flush

    anyio.run(main, *sys.argv[1:])
"""


async def test_offline_edits_across_a_process_restart_converge(server, tmp_path: Path) -> None:
    wid = "offline-restart"
    a_store = tmp_path / "a.sqlite3"
    async with client(server.url, wid, tmp_path / "b.sqlite3", "pb", role="facilitator") as b:
        await b.create_workshop("Team", values=["Honesty", "Courage", "Kindness"])
        await b.open_ballot("b1", "Ship it?", ["yes", "no"], stage="values-select")
        async with client(server.url, wid, a_store, "pa") as a:
            await a.wait_connected(10)
            await a.join()
            await a.wait_saved(10)
            assert a.pending_count == 0 and "b1" in a.voting_stats

        # A, offline in its own process, edits; then again in a new process killed -9.
        first = run_child(OFFLINE_CHILD, dead_url(), str(a_store), wid, "1")
        assert first.returncode == 0, first.stderr
        out1 = json.loads(first.stdout)
        assert out1["pending"] == 5 and out1["state"] != "connected"
        second = run_child(OFFLINE_CHILD, dead_url(), str(a_store), wid, "2")
        assert second.returncode == -signal.SIGKILL, second.stderr
        out2 = json.loads(second.stdout)
        assert out2["pending"] == 9  # the 5 of the first run survived the restart
        assert out2["messages"][-2:] == ["offline 1 from A", "offline 2 from A"]

        # Meanwhile B edits online.
        await b.post_message("B while A is away")
        await b.set_mission("We build together")
        await b.wait_saved(10)

        async with client(server.url, wid, a_store, "pa") as a:
            assert a.pending_count == 9  # loaded from the local outbox
            await a.wait_connected(10)
            await a.wait_saved(10)
            await b.wait_for(lambda: b.data == a.data, 10)
            texts = [m.text for m in a.messages]
            assert {"offline 1 from A", "offline 2 from A", "B while A is away"} <= set(texts)
            assert set(a.selections["pa"]) == {"Courage", "Kindness"}
            assert b.drafts["pa"] == "Ann's draft, take 2"
            assert a.mission == "We build together"
            assert b.voting_stats["b1"].counts == (("yes", 1), ("no", 0))
            assert a.doc.get_state() == b.doc.get_state() or a.data == b.data


async def test_server_killed_and_restarted_while_both_edit(server, tmp_path: Path) -> None:
    wid = "kill-restart"
    async with client(server.url, wid, tmp_path / "a.sqlite3", "pa") as a, client(
        server.url, wid, tmp_path / "b.sqlite3", "pb"
    ) as b:
        await a.wait_connected(10)
        await b.wait_connected(10)
        await a.join()
        await b.join()
        for i in range(5):
            await a.post_message(f"a{i}")
            await b.post_message(f"b{i}")
        server.kill()
        for i in range(5, 10):  # the server is dead: these are offline edits
            await a.post_message(f"a{i}")
            await b.post_message(f"b{i}")
            await a.set_draft(f"draft {i}")
        await a.wait_for(lambda: a.offline, 10)
        assert a.pending_count >= 6 and b.pending_count >= 5
        server.restart()
        for i in range(10, 12):
            await a.post_message(f"a{i}")
            await b.post_message(f"b{i}")
        await a.wait_saved(20)
        await b.wait_saved(20)
        expected = {f"{who}{i}" for who in "ab" for i in range(12)}
        await a.wait_for(lambda: {m.text for m in a.messages} == expected, 10)
        await b.wait_for(lambda: b.data == a.data, 10)
        assert len(b.messages) == 24
        assert b.drafts["pa"] == "draft 9"


async def test_wait_saved_means_committed_on_the_server(server, tmp_path: Path) -> None:
    wid = "saved-kill"
    async with client(server.url, wid, tmp_path / "a.sqlite3", "pa") as a:
        await a.wait_connected(10)
        mid = await a.post_message("must survive kill -9")
        assert a.pending_count == 1  # durable locally, not yet confirmed
        await a.wait_saved(10)
        assert a.pending_count == 0
        server.kill()  # right after the acknowledgement
    server.restart()
    async with client(server.url, wid, tmp_path / "c.sqlite3", "pc") as c:
        await c.wait_connected(10)
        await c.wait_for(lambda: any(m.id == mid for m in c.messages), 10)


async def test_twenty_clients_spread_their_reconnects(server, tmp_path: Path) -> None:
    base = 1.0
    backoff = Backoff(base=base, factor=2.0, cap=4.0)
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                client(server.url, "storm", tmp_path / f"c{i}.sqlite3", f"p{i}", backoff=backoff)
            )
            for i in range(20)
        ]
        for c in clients:
            await c.wait_connected(15)
        server.kill()
        for c in clients:
            await c.wait_for(
                lambda c=c: c.disconnected_at is not None
                and any(t > c.disconnected_at for t in c.connection_attempts),
                10,
            )
        firsts = [
            min(t for t in c.connection_attempts if t > c.disconnected_at)  # type: ignore[operator]
            for c in clients
        ]
        delays = [f - c.disconnected_at for f, c in zip(firsts, clients, strict=False)]  # type: ignore[operator]
        spread = max(firsts) - min(firsts)
        # Full jitter: first retries uniform over [0, base); a storm would be ~0 apart.
        assert statistics.stdev(firsts) > 0.15 * base, firsts
        assert spread > 0.4 * base, firsts
        assert max(delays) < base + 0.5
        server.restart()
        for c in clients:
            await c.wait_connected(20)


TYPING_CHILD = """
    import sys, anyio
    from vmv_sync.client import WorkshopClient

    async def main(url, store, wid):
        async with WorkshopClient(url, wid, store_path=store, participant_id="pa", name="Ann") as a:
            await a.wait_connected(10)
            a.set_typing()
            await a.wait_for(lambda: any(s.typing for s in a.presence.values()), 10)
            print("typing", flush=True)
            await anyio.sleep_forever()

    anyio.run(main, *sys.argv[1:])
"""


async def test_typing_goes_stale_when_the_typing_client_vanishes(server, tmp_path: Path) -> None:
    wid = "typing"
    async with client(server.url, wid, tmp_path / "b.sqlite3", "pb") as b:
        await b.wait_connected(10)
        child = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(TYPING_CHILD), server.url, str(tmp_path / "a.sqlite3"), wid],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            with anyio.fail_after(20):
                line = await anyio.to_thread.run_sync(child.stdout.readline)
            assert line.strip() == "typing"
            # Frozen: its socket stays open, it never clears the flag nor renews it.
            child.send_signal(signal.SIGSTOP)
            await b.wait_for(lambda: b.typing_users == ("pa",), 5)
            typing_at = next(s.typing_at for s in b.presence.values() if s.user.id == "pa")
            await b.wait_for(lambda: b.typing_users == (), 6)
            cleared = time.time()
            assert cleared - typing_at >= 3.0 - 0.05
            assert "pa" in b.online_participants  # still there: the flag went stale by itself
        finally:
            child.kill()
            child.wait(10)


async def test_typing_is_cleared_by_its_client_after_3_s(server, tmp_path: Path) -> None:
    async with client(server.url, "typing2", tmp_path / "a.sqlite3", "pa") as a, client(
        server.url, "typing2", tmp_path / "b.sqlite3", "pb"
    ) as b:
        await a.wait_connected(10)
        await b.wait_connected(10)
        started = time.monotonic()
        for _ in range(20):  # keystrokes faster than the debounce: few sends
            a.set_typing()
        await b.wait_for(lambda: b.typing_users == ("pa",), 5)
        await b.wait_for(
            lambda: any(s.user.id == "pa" and not s.typing for s in b.presence.values()), 6
        )
        assert time.monotonic() - started >= 3.0 - 0.05
        assert b.typing_users == ()


async def test_cursor_updates_are_throttled_and_the_last_arrives(server, tmp_path: Path) -> None:
    async with client(server.url, "cursors", tmp_path / "a.sqlite3", "pa") as a, client(
        server.url, "cursors", tmp_path / "b.sqlite3", "pb"
    ) as b:
        await a.wait_connected(10)
        await b.wait_connected(10)
        await a.wait_for(lambda: "pb" in a.online_participants, 5)
        started = time.monotonic()
        for i in range(60):  # a mouse moving for about a second
            a.move_cursor(i, 2 * i, "values-select")
            await anyio.sleep(0.015)
        last = Cursor(59.0, 118.0, "values-select")
        await b.wait_for(lambda: b.cursor_of("pa") == last, 5)
        sends = [t for t in a.cursor_sends if t >= started]
        elapsed = sends[-1] - sends[0]
        gaps = [y - x for x, y in zip(sends, sends[1:], strict=False)]
        assert min(gaps) >= 0.1 - 0.005, gaps
        assert len(sends) <= elapsed / 0.1 + 1.01
        assert len(sends) >= 5  # and it did keep sending while moving

        # A burst with no pause: one leading send, then the trailing latest position.
        before = len(a.cursor_sends)
        for i in range(1000):
            a.move_cursor(1000 + i, 0, "values-select")
        final = Cursor(1999.0, 0.0, "values-select")
        await b.wait_for(lambda: b.cursor_of("pa") == final, 5)
        assert len(a.cursor_sends) - before <= 2
        assert b.cursors and a.doc.client_id in b.cursors


async def test_presence_join_and_leave_once_per_participant(server, tmp_path: Path) -> None:
    wid = "presence"
    async with client(server.url, wid, tmp_path / "c.sqlite3", "pc") as c:
        await c.wait_connected(10)
        events = c.events()
        async with client(server.url, wid, tmp_path / "a2.sqlite3", "pa"):
            async with client(server.url, wid, tmp_path / "a1.sqlite3", "pa"):
                await c.wait_for(
                    lambda: sum(1 for s in c.presence.values() if s.user.id == "pa") == 2, 10
                )
                assert list(c.online_participants) == ["pa", "pc"]
            # one of the two clients left: pa is still online
            await c.wait_for(
                lambda: sum(1 for s in c.presence.values() if s.user.id == "pa") == 1, 10
            )
            assert "pa" in c.online_participants
        await c.wait_for(lambda: "pa" not in c.online_participants, 10)
        seen = [e for e in events.pending() if e.participant_id == "pa"]
        assert seen == [Join("pa", "PA", "participant"), Leave("pa", "PA", "participant")]


async def test_views_changes_and_local_compaction(server, tmp_path: Path) -> None:
    wid = "views"
    a_store = tmp_path / "a.sqlite3"
    async with client(server.url, wid, a_store, "fa", role="facilitator", compact_updates=10) as a, client(
        server.url, wid, tmp_path / "b.sqlite3", "pb"
    ) as b:
        changes = b.changes()
        await a.create_workshop("Views", values=["Honesty", "Courage"])
        await a.open_ballot("b1", "Which first?", ["Honesty", "Courage"], stage="values-collective")
        await b.wait_for(lambda: "b1" in b.voting_stats, 10)
        await b.join()
        await b.toggle_value("Honesty")
        await b.set_progress("values-matrix", ["values-select"])
        await b.cast_vote("b1", "Courage")
        await b.rate_value("Honesty", 4, 3)
        change = await changes.__anext__()
        assert change.kinds and change.version > 0
        await a.wait_for(lambda: a.data.matrix == b.data.matrix and a.data == b.data, 10)
        assert a.participants_by_stage["values-matrix"] == 1
        assert a.value_stats[0].name == "Honesty" and a.value_stats[0].count == 1
        assert a.voting_stats["b1"].winners == ("Courage",)
        assert a.derived.matrix[0].ratings == 1
        for i in range(30):
            await a.post_message(f"m{i}")
        await a.wait_saved(10)
        await b.wait_for(lambda: len(b.messages) == 30, 10)
        # the incrementally kept chat log equals a full read, on both replicas
        assert a.messages == a.data.messages and b.messages == b.data.messages
        assert a._replica.compactions >= 1
        expected = a.data
    # Reopened offline, the compacted replica holds everything.
    async with client(dead_url(), wid, a_store, "fa", connect=False) as again:
        assert again.state is ConnectionState.OFFLINE
        assert again.data == expected and again.pending_count == 0
