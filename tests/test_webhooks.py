"""Webhooks (docs/webhooks.md): a real receiver that is down while the workshop happens
and the server restarts, then comes back: every event arrives, signed, in the order
the server produced it, nothing lost.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.conftest import ROOT, ServerProcess
from vmv_sync.client import WorkshopClient
from vmv_sync.server.webhooks import changes, sign

SECRET = "webhook-secret-" + "w" * 24
_QUEUED = re.compile(r"workshop=(\S+) webhook events queued: (.*)$")


class Receiver:
    """The embedding application's endpoint: checks each signature, keeps what it accepted.

    ``hold``: while not set, every request is kept waiting unanswered (a receiver that
    hangs) and then dropped without an answer; ``attempts`` lists every request's id.
    """

    def __init__(self, port: int, hold: threading.Event | None = None) -> None:
        self.port = port
        self.hold = hold
        self.events: list[dict[str, Any]] = []
        self.attempts: list[str] = []
        self.bad: list[str] = []
        self.httpd: http.server.ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"])).decode()
                event_id, stamp = self.headers["webhook-id"], int(self.headers["webhook-timestamp"])
                receiver.attempts.append(event_id)
                if receiver.hold is not None and not receiver.hold.is_set():
                    receiver.hold.wait(60)
                    self.close_connection = True  # never answered
                    return
                if (
                    self.headers["webhook-signature"] != sign(SECRET, event_id, stamp, body)
                    or abs(time.time() - stamp) > 300
                ):
                    receiver.bad.append(body)
                    self.send_response(400)
                else:
                    receiver.events.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()

    def unique(self) -> list[dict[str, Any]]:
        """At least once: repeated ids are the same event."""
        seen: dict[str, dict[str, Any]] = {}
        for event in list(self.events):
            seen.setdefault(event["id"], event)
        return list(seen.values())


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    made = Receiver(port)  # not listening yet: the endpoint is down
    yield made
    made.stop()


def _queued(server: ServerProcess) -> list[str]:
    """The event types the server queued, in order (its log)."""
    kinds: list[str] = []
    for line in list(server.log):
        match = _QUEUED.search(line.strip())
        if match:
            kinds.extend(match.group(2).split(", "))
    return kinds


def _wait_queued(server: ServerProcess, kind: str, count: int = 1) -> None:
    deadline = time.monotonic() + 20
    while _queued(server).count(kind) < count:
        assert time.monotonic() < deadline, f"{kind} was never queued: {_queued(server)}"
        time.sleep(0.02)


def test_events_survive_a_down_receiver_and_a_restart_in_order(
    server_factory: Callable[..., ServerProcess], receiver: Receiver, tmp_path: Path
) -> None:
    env = {"VMV_WEBHOOK_URLS": f"http://127.0.0.1:{receiver.port}/hooks", "VMV_WEBHOOK_SECRET": SECRET,
           "VMV_WEBHOOK_QUIET_SECONDS": "1.5", "VMV_WEBHOOK_MAX_BACKOFF": "0.5"}  # fmt: skip
    server = server_factory(env=env, args=())
    created = httpx.post(
        server.url + "/api/workshops", json={"title": "Hooks", "name": "Fay", "values": ["Trust"]}
    ).json()
    wid, fay = created["workshop_id"], {"authorization": f"Bearer {created['token']}"}
    _wait_queued(server, "participant.joined")
    ann = httpx.post(
        f"{server.url}/api/workshops/{wid}/join", json={"invite_code": created["invite_code"], "name": "Ann"}
    ).json()
    _wait_queued(server, "participant.joined", 2)

    async def facilitate(*steps: tuple[str, str]) -> None:
        async with WorkshopClient(server.url.replace("http", "ws"), wid, token=created["token"],
                                  store_path=tmp_path / "fay.sqlite3") as client:  # fmt: skip
            await client.wait_connected(timeout=15)
            for step, wanted in steps:
                if step == "stage":
                    await client.set_stage("values-collective")
                elif step == "open":
                    await client.open_ballot("b1", "Which first?", ["Trust", "Care"], stage="values-collective")
                elif step == "mission":
                    await client.set_mission("Our mission is to ")
                    await client.wait_saved(timeout=15)
                    await client.set_mission("Our mission is to grow.")  # one event, after the quiet period
                else:
                    await client.close_ballot("b1")
                await client.wait_saved(timeout=15)
                await anyio.to_thread.run_sync(_wait_queued, server, wanted)

    anyio.run(facilitate, ("stage", "stage.changed"), ("open", "ballot.opened"), ("mission", "mission.changed"))
    server.restart()  # the receiver is still down: the outbox holds everything
    anyio.run(facilitate, ("close", "ballot.closed"))
    revoked = httpx.post(
        f"{server.url}/api/workshops/{wid}/participants/{ann['participant_id']}/revoke", json={}, headers=fay
    )
    assert revoked.status_code == 200
    _wait_queued(server, "participant.removed")
    assert httpx.get(f"{server.url}/workshops/{wid}/export?format=md", headers=fay).status_code == 200
    _wait_queued(server, "workshop.exported")
    assert receiver.events == []

    receiver.start()  # the endpoint comes back; retries reach it
    queued = _queued(server)
    deadline = time.monotonic() + 30
    while len(receiver.unique()) < len(queued):
        assert time.monotonic() < deadline, f"delivered {[e['type'] for e in receiver.unique()]} of {queued}"
        time.sleep(0.05)
    events = receiver.unique()
    assert not receiver.bad
    assert [e["type"] for e in events] == queued  # nothing lost, nothing out of order
    assert {"participant.joined", "stage.changed", "ballot.opened", "mission.changed", "ballot.closed",
            "participant.removed", "workshop.exported"} <= set(queued)  # fmt: skip
    assert queued.count("mission.changed") == 1
    by_type = {e["type"]: e for e in events}
    assert by_type["mission.changed"]["data"] == {"text": "Our mission is to grow."}
    assert by_type["participant.removed"]["data"] == {"participant_id": ann["participant_id"]}
    assert by_type["workshop.exported"]["data"] == {"format": "md"} and all(e["workshop_id"] == wid for e in events)
    assert "webhook" in "".join(server.log) and created["token"] not in "".join(server.log)


def test_signature_and_event_rules() -> None:
    mac = hmac.new(SECRET.encode(), b"evt_1.1700000000.{}", hashlib.sha256).digest()
    assert sign(SECRET, "evt_1", 1700000000, "{}") == "v1," + base64.b64encode(mac).decode()
    old = {"participants": {"f": {"name": "Fay", "role": "facilitator"}}, "removed": [], "stage": "values-select",
           "ballots": {"b1": {"question": "Q", "open": True}}}  # fmt: skip
    new = {"participants": {**old["participants"], "a": {"name": "Ann", "role": "participant"}}, "removed": ["a"],
           "stage": "values-matrix", "ballots": {"b1": {"question": "Q", "open": False}, "b2": {"question": "R", "open": True}}}  # fmt: skip
    assert [kind for kind, _ in changes(old, new)] == [
        "participant.joined", "participant.removed", "stage.changed", "ballot.closed", "ballot.opened"]  # fmt: skip
    assert changes(new, new) == []


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"VMV_WEBHOOK_URLS": "https://app.example/hooks"}, "needs webhook_secret"),
        ({"VMV_WEBHOOK_URLS": "ftp://app.example/hooks", "VMV_WEBHOOK_SECRET": SECRET}, "is not an http(s) URL"),
        (
            {"VMV_WEBHOOK_URLS": "https://app.example/hooks", "VMV_WEBHOOK_SECRET": SECRET, "VMV_DB": "memory:"},
            "need the SQLite or PostgreSQL store",
        ),
    ],
)
def test_bad_webhook_settings_stop_the_server_with_one_line(tmp_path: Path, env: dict[str, str], words: str) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VMV_")}
    args = ["--port", "0"] + ([] if "VMV_DB" in env else ["--db", str(tmp_path / "v.sqlite3")])
    result = subprocess.run([sys.executable, str(ROOT / "server.py"), *args], capture_output=True, text=True,
                            timeout=30, env={**environ, **env}, cwd=tmp_path)  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and words in lines[0], result.stderr
