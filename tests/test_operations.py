"""Operating the server: JSON logs and the access log (never a token), clear start-up
errors, trusted proxies and spoofed X-Forwarded-For, restore refusal, quiet progress bars.

Every test runs the real server (``python server.py``) on a free loopback port.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.conftest import ROOT, ServerProcess
from vmv_sync.errors import ConfigError
from vmv_sync.server.clientaddr import address_key, check_trusted_proxies

Factory = Callable[..., ServerProcess]


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _create(url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        url + "/api/workshops", json={"title": "Ops", "name": "Fay", "values": ["Honesty"]}, headers=headers or {}
    )


# -- logs ------------------------------------------------------------------------------


def test_json_log_lines_and_an_access_line_per_request_and_session_without_tokens(server_factory: Factory) -> None:
    server = server_factory(env={"VMV_LOG_FORMAT": "json"}, args=())
    created = _create(server.url)
    assert created.status_code in (200, 201), created.text
    workshop_id, token = created.json()["workshop_id"], created.json()["token"]
    assert httpx.get(f"{server.url}/workshops/{workshop_id}/state", params={"token": token}).status_code == 200
    with connect(f"{server.ws(workshop_id)}?token={token}") as ws:
        ws.recv(timeout=10)  # the server's sync step 1: the session is open
    with connect(f"{server.ws(workshop_id)}?token={token}x") as refused:  # a bad signature
        with pytest.raises(ConnectionClosed) as closed:
            refused.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401

    def access_lines() -> list[dict[str, object]]:
        entries = []
        for line in list(server.log):
            if line.startswith("{"):
                entries.append(json.loads(line))
        return [e for e in entries if e.get("logger") == "vmv_sync.access"]

    _wait_for(lambda: sum(e.get("kind") == "websocket" for e in access_lines()) >= 2, "two WebSocket access lines")
    server.stop()
    lines = [line for line in server.log if line.strip()]
    for line in lines:
        if "listening on" not in line:  # the listening line is the contract's plain text
            entry = json.loads(line)  # every log line is one JSON object
            assert {"time", "level", "logger", "message"} <= set(entry)
        assert token not in line and token.split(".")[2] not in line and "eyJ" not in line, line
    entries = access_lines()
    http = {(e["method"], str(e["path"]).split("?")[0]): e for e in entries if e["kind"] == "http"}
    assert http[("POST", "/api/workshops")]["status"] in (200, 201)
    state = http[("GET", f"/workshops/{workshop_id}/state")]
    assert state["status"] == 200 and state["path"] == f"/workshops/{workshop_id}/state?token=[redacted]"
    assert state["client"] == "127.0.0.1" and isinstance(state["ms"], float)
    sessions = [e for e in entries if e["kind"] == "websocket"]
    # a refused token is accepted and then closed with 4401, so that browsers see the code
    assert [(s["status"], s["closed_by"]) for s in sessions] == [(101, "client"), (101, "server")], sessions
    assert sessions[0]["close"] == 1000 and sessions[0]["path"] == f"/workshops/{workshop_id}"
    assert sessions[1]["close"] == 4401


def test_plain_log_lines_scrub_tokens(server_factory: Factory) -> None:
    server = server_factory(args=())
    created = _create(server.url).json()
    token = created["token"]
    with connect(f"{server.ws(created['workshop_id'])}?token={token}") as ws:
        ws.recv(timeout=10)
    _wait_for(lambda: any("vmv_sync.access: ws " in line for line in list(server.log)), "the session's access line")
    server.stop()
    text = "".join(server.log)
    assert "vmv_sync.access: http POST /api/workshops status=" in text
    assert token not in text and "eyJ" not in text


# -- start-up errors -----------------------------------------------------------------------


def _start_and_fail(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VMV_")}
    return subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "--db", str(tmp_path / "v.sqlite3"), *args],
        capture_output=True, text=True, timeout=30, env={**environ, **(env or {})}, cwd=tmp_path,
    )  # fmt: skip


def test_busy_port_and_bad_settings_are_one_line_and_exit_code_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = _start_and_fail(tmp_path, "--port", str(port), "--no-auth")
    assert result.returncode == 2, result
    assert result.stderr.strip().splitlines() == [f"vmv-sync: cannot listen on 127.0.0.1:{port}: "
                                                  "the port is in use (another vmv-sync? pick one with --port or VMV_PORT)"]  # fmt: skip
    for env, args, words in (
        ({"VMV_PORT": "eighty"}, (), "VMV_PORT='eighty' is invalid"),
        ({"VMV_RATE_LIMIT": "nan"}, (), "rate_limit=nan is not a finite number"),
        ({"VMV_FORWARDED_ALLOW_IPS": "10.0.0.0/8,proxy.example"}, ("--port", "0"), "'proxy.example' is not an IP"),
    ):
        result = _start_and_fail(tmp_path, *args, env=env)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and words in lines[0], (env, args, result.stderr)
        assert "Traceback" not in result.stderr and not result.stdout
    # a bad flag gets click's usage hint above its one error line
    result = _start_and_fail(tmp_path, "--port", "0", "--log-format", "xml")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "Error: Invalid value for '--log-format': 'xml' is not one of 'plain', 'json'."


# -- trusted proxies -------------------------------------------------------------------------

_LIMITS = {"VMV_WORKSHOP_CREATE_RATE": "0.001", "VMV_WORKSHOP_CREATE_BURST": "2"}


def test_forwarded_for_counts_the_real_client_behind_a_trusted_proxy(server_factory: Factory) -> None:
    server = server_factory(env={**_LIMITS, "VMV_FORWARDED_ALLOW_IPS": "127.0.0.1"}, args=())
    ann, bob = {"x-forwarded-for": "203.0.113.7"}, {"x-forwarded-for": "198.51.100.1, 203.0.113.9"}
    assert [_create(server.url, ann).status_code for _ in range(3)] == [201, 201, 429]
    # another user behind the same proxy has a budget of their own
    assert _create(server.url, bob).status_code == 201
    _wait_for(lambda: any("client=203.0.113.9" in line for line in list(server.log)), "the forwarded client in the log")


@pytest.mark.parametrize("trusted", [None, "10.0.0.1"])
def test_forwarded_for_from_an_untrusted_peer_is_ignored(server_factory: Factory, trusted: str | None) -> None:
    env = dict(_LIMITS) if trusted is None else {**_LIMITS, "VMV_FORWARDED_ALLOW_IPS": trusted}
    server = server_factory(env=env, args=())
    codes = [_create(server.url, {"x-forwarded-for": f"203.0.113.{n}"}).status_code for n in range(3)]
    assert codes == [201, 201, 429]  # a fresh spoofed address per request buys nothing


def test_one_address_key_for_every_limit() -> None:
    assert address_key("::1") == address_key("0:0:0:0:0:0:0:1") == "::1"
    assert address_key("::ffff:192.0.2.5") == "192.0.2.5"
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert address_key("fe80::1%eth0") == "fe80::/64"
    assert address_key(None) == "unknown" and address_key("192.0.2.1") == "192.0.2.1"
    assert check_trusted_proxies(("127.0.0.1", "10.0.0.0/8", "::1", "*")) == ["127.0.0.1", "10.0.0.0/8", "::1", "*"]
    with pytest.raises(ConfigError):
        check_trusted_proxies(("localhost",))


# -- restore and progress bars ---------------------------------------------------------------


def _cli(*args: str, stderr: int | None = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VMV_")}
    return subprocess.run(
        [sys.executable, "-m", "vmv_sync", *args], stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=60,
        env=environ, cwd=ROOT,
    )  # fmt: skip


def test_restore_refuses_while_a_server_holds_the_database(server_factory: Factory, tmp_path: Path) -> None:
    server = server_factory()
    assert httpx.post(server.url + "/api/workshops", json={"title": "T", "name": "F"}).status_code == 201
    backup = tmp_path / "backup.sqlite3"
    assert _cli("backup", str(backup), "--db", str(server.db)).returncode == 0
    refused = _cli("restore", str(backup), "--db", str(server.db), "--force")
    assert refused.returncode == 1 and "a vmv-sync server is running on" in refused.stderr, refused.stderr
    server.stop()
    assert _cli("restore", str(backup), "--db", str(server.db), "--force").returncode == 0


def test_compact_draws_a_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    db = str(tmp_path / "v.sqlite3")
    for title in ("One", "Two", "Three"):
        made = _cli("workshop", "create", "--title", title, "--name", "Fay", "--db", db, "--secret", "s" * 32)
        assert made.returncode == 0, made.stderr
    piped = _cli("compact", "--db", db)
    assert piped.returncode == 0 and "compacted 3 workshop(s)" in piped.stdout
    assert "compacting" not in piped.stderr and "\r" not in piped.stderr
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # tqdm sizes the bar to it
    try:
        at_terminal = _cli("compact", "--db", db, stderr=follower)
        os.close(follower)
        follower = -1
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other end is closed: everything was read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    assert at_terminal.returncode == 0 and b"compacting" in drawn
