"""Watch two simulated participants use a workshop, one of them dropping offline.

Start a local server in another terminal first:

    python server.py --no-auth

then run:

    python examples/two_participants.py            # or --url ws://127.0.0.1:8000

Ann (the facilitator) and Ben join a fresh workshop, chat, pick values and vote.
Ben's laptop then loses the network: he keeps working offline (his edits are saved
in his local SQLite replica), while Ann carries on. When Ben comes back, both
replicas converge and the server confirms every edit. Finishes in a few seconds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

import anyio

# Runnable from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vmv_sync.client import Backoff, Join, Leave, WorkshopClient  # noqa: E402

T0 = time.monotonic()
#: seconds between scenes, so a person can follow along (--pause)
PAUSE = 0.7


def say(who: str, text: str) -> None:
    print(f"[{time.monotonic() - T0:5.2f}s] {who:<5} {text}", flush=True)


def status(c: WorkshopClient) -> str:
    return f"{c.state.value}, {c.pending_count} edit(s) not yet saved on the server"


async def watch_presence(ann: WorkshopClient) -> None:
    """Print what Ann sees: people coming and going."""
    async for event in ann.events():
        if event.participant_id == ann.participant_id:
            continue
        if isinstance(event, Join):
            say("Ann", f"sees {event.name} come online")
        elif isinstance(event, Leave):
            say("Ann", f"sees {event.name} go offline")


async def run(url: str, data_dir: Path) -> int:
    workshop = "demo-" + uuid.uuid4().hex[:8]
    say("", f"workshop {workshop} on {url}; local replicas in {data_dir}")
    fast = Backoff(base=0.3, cap=2.0)
    async with WorkshopClient(
        url, workshop, store_path=data_dir / "ann.sqlite3",
        participant_id="ann", name="Ann", role="facilitator", backoff=fast,
    ) as ann, WorkshopClient(
        url, workshop, store_path=data_dir / "ben.sqlite3",
        participant_id="ben", name="Ben", backoff=fast,
    ) as ben, anyio.create_task_group() as tg:
        tg.start_soon(watch_presence, ann)
        try:
            await ann.wait_connected(5)
            await ben.wait_connected(5)
        except TimeoutError:
            say("", f"cannot reach {url}: start `python server.py --no-auth` first")
            tg.cancel_scope.cancel()
            return 1
        say("Ann", "connected; creates the workshop")
        await ann.create_workshop("Our team", values=["Honesty", "Courage", "Kindness", "Focus"])
        await ann.open_ballot("first", "Which value first?", ["Honesty", "Courage"],
                              stage="values-collective")
        await ben.wait_for(lambda: ben.title is not None and "first" in ben.voting_stats, 5)
        await ben.join()
        await anyio.sleep(PAUSE)
        say("Ben", f"joined '{ben.title}'")

        ben.set_typing()
        await ann.wait_for(lambda: ann.typing_users == ("ben",), 5)
        say("Ann", "sees: Ben is typing...")
        await ben.post_message("Hi Ann! Ready when you are.")
        await ann.post_message("Welcome Ben, pick your values.")
        await ann.wait_for(lambda: len(ann.messages) == 2, 5)
        for m in ann.messages:
            say("chat", f"{ann.participants[m.author].name}: {m.text}")

        await anyio.sleep(PAUSE)
        await ben.toggle_value("Honesty")
        await ben.toggle_value("Courage")
        await ann.toggle_value("Honesty")
        await ann.cast_vote("first", "Honesty")
        await ann.wait_for(lambda: sum(v.count for v in ann.value_stats) == 3, 5)
        say("Ann", "value stats: " + ", ".join(
            f"{v.name} {v.count} ({v.percent:g}%)" for v in ann.value_stats))

        await anyio.sleep(PAUSE)
        say("Ben", "loses the network (train tunnel)")
        await ben.disconnect()
        say("Ben", status(ben))
        await ben.post_message("Writing this in a tunnel...")
        await ben.cast_vote("first", "Courage")
        await ben.set_draft("We act with courage and honesty.")
        say("Ben", f"edited offline: {status(ben)}")
        await ann.post_message("Ben, are you still there?")
        await ann.set_mission("Together we")

        await anyio.sleep(PAUSE)
        say("Ben", "is back online")
        ben.reconnect()
        await ben.wait_connected(10)
        await ben.wait_saved(10)
        await ann.wait_for(lambda: ann.data == ben.data, 10)
        say("Ben", f"caught up: {status(ben)}; mission reads '{ben.mission}'")
        tally = ann.voting_stats["first"]
        await anyio.sleep(PAUSE)
        say("Ann", f"sees Ben's offline work: vote {dict(tally.counts)}, "
                   f"turnout {tally.turnout:.0%}, draft '{ann.drafts['ben']}'")
        for m in ann.messages:
            say("chat", f"{ann.participants[m.author].name}: {m.text}")
        say("", "both replicas are identical and every edit is saved on the server")
        tg.cancel_scope.cancel()
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8000", help="the sync server")
    parser.add_argument("--pause", type=float, default=PAUSE, help="seconds between scenes")
    args = parser.parse_args()
    globals()["PAUSE"] = max(0.0, args.pause)
    with tempfile.TemporaryDirectory(prefix="vmv-demo-") as tmp:
        code = anyio.run(run, args.url, Path(tmp))
    sys.exit(code)


if __name__ == "__main__":
    main()
