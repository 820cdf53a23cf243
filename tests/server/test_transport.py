"""Issue 14, transport: header timeout, handshake timeout, connection caps, open-file limit.

Real sockets against the real server process (``server_factory``), limits lowered
through the real VMV_* variables. The handshake timeout needs an app that does not
answer an upgrade, which this server's endpoint never does, so that one test runs
uvicorn in-process with the server's own protocol classes and a stalling ASGI app.
Every wait is bounded by ``anyio.fail_after``; every loop by a count.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import resource
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
import websockets
from anyio.abc import SocketStream

from vmv_sync.server.transport import ConnectionGate, TransportLimits, protocol_classes

pytestmark = pytest.mark.anyio

REFUSAL_LINE = "refusing new connections"


async def connect(port: int, source: str = "127.0.0.1") -> SocketStream:
    """A raw TCP connection to the server from a given loopback source address."""
    with anyio.fail_after(5):
        return await anyio.connect_tcp("127.0.0.1", port, local_host=source)


async def read_until_closed(stream: SocketStream, timeout: float) -> bytes:
    """Everything the server sends until it closes the socket; fails after ``timeout``."""
    data = b""
    with anyio.fail_after(timeout):
        for _ in range(1000):
            try:
                data += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
                return data
    raise AssertionError("the server kept sending")


async def stays_open(stream: SocketStream, seconds: float) -> bool:
    """Whether the server neither sends nor closes anything for ``seconds``."""
    with anyio.move_on_after(seconds):
        try:
            await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
            pass
        return False
    return True


async def healthz(url: str, source: str = "127.0.0.1") -> int:
    transport = httpx.AsyncHTTPTransport(local_address=source)
    async with httpx.AsyncClient(transport=transport, timeout=5) as client:
        return (await client.get(url + "/healthz")).status_code


def log_count(server: Any, text: str) -> int:
    return sum(text in line for line in server.log)


async def wait_for_log(server: Any, text: str, timeout: float = 5) -> None:
    with anyio.fail_after(timeout):
        for _ in range(int(timeout / 0.05) + 1):
            if log_count(server, text):
                return
            await anyio.sleep(0.05)


async def test_idle_and_slowloris_sockets_are_closed_after_the_header_timeout(server_factory) -> None:
    server = server_factory(env={"VMV_HEADER_TIMEOUT": "1"})
    idle = [await connect(server.port) for _ in range(5)]
    slowloris = await connect(server.port)
    await slowloris.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
    # a keep-alive socket that got one answer, then trickles blank lines (each byte
    # cancels uvicorn's keep-alive timer, so only the header timeout can end it)
    trickler = await connect(server.port)
    await trickler.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    with anyio.fail_after(5):
        first = await trickler.receive()
        while not first.rstrip().endswith(b"}"):  # headers and body may come in two writes
            first += await trickler.receive()
    assert first.startswith(b"HTTP/1.1 200")
    started = time.monotonic()

    async def trickle() -> None:
        with contextlib.suppress(anyio.BrokenResourceError, ConnectionResetError, BrokenPipeError, OSError):
            for _ in range(40):
                await trickler.send(b"\r\n")
                await anyio.sleep(0.2)

    async with anyio.create_task_group() as tg:
        tg.start_soon(trickle)
        for stream in [*idle, slowloris]:
            assert await read_until_closed(stream, timeout=4) == b""
        assert await read_until_closed(trickler, timeout=4) == b""
        tg.cancel_scope.cancel()
    elapsed = time.monotonic() - started
    assert 0.5 < elapsed < 4, elapsed
    # a client that sends its request in time is served as before
    prompt = await connect(server.port)
    await anyio.sleep(0.5)
    await prompt.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (await read_until_closed(prompt, timeout=4)).startswith(b"HTTP/1.1 200")
    for stream in [*idle, slowloris, trickler, prompt]:
        await stream.aclose()
    assert "Traceback" not in "".join(server.log)


async def test_per_address_cap_refuses_past_it_logs_once_and_recovers(server_factory) -> None:
    server = server_factory(
        env={
            "VMV_MAX_CONNECTIONS_PER_ADDRESS": "50", "VMV_PER_ADDRESS_CAP_LOOPBACK": "on",
            "VMV_HEADER_TIMEOUT": "30", "VMV_WS_HANDSHAKE_TIMEOUT": "0.5",
        }
    )
    streams = [await connect(server.port) for _ in range(60)]
    refused = []
    for stream in streams[50:]:
        refused.append(await read_until_closed(stream, timeout=5))
    assert all(r == b"" or r.startswith(b"HTTP/1.1 503") for r in refused), refused
    assert any(r.startswith(b"HTTP/1.1 503") for r in refused)
    held = streams[:50]
    assert await stays_open(held[0], 0.3) and await stays_open(held[-1], 0.1)
    # the cap is per address: another loopback address gets in while 127.0.0.1 is full
    assert await healthz(server.url, source="127.0.0.2") == 200
    try:
        status: int | None = await healthz(server.url)
    except httpx.TransportError:  # the 503 lost to the reset of the unread request
        status = None
    assert status in (503, None)
    await wait_for_log(server, REFUSAL_LINE)
    for stream in held:
        await stream.aclose()
    # the server sees the 50 closes before a new connection (same loop, earlier events):
    # the very next client gets in, within a few retries at most
    started = time.monotonic()
    for _ in range(20):
        try:
            if await healthz(server.url) == 200:
                break
        except httpx.TransportError:
            pass
        await anyio.sleep(0.05)
    else:
        raise AssertionError("no client got in after the idle sockets closed")
    assert time.monotonic() - started < 1.5
    # a WebSocket gets in too, and outlives the (lowered) handshake timeout
    with anyio.fail_after(10):
        async with websockets.connect(server.ws("transport-cap"), open_timeout=5) as ws:
            await anyio.sleep(1.0)
            pong = await ws.ping()
            await pong
    assert log_count(server, REFUSAL_LINE) == 1, [line for line in server.log if "refus" in line]
    line = next(line for line in server.log if REFUSAL_LINE in line)
    assert "127.0.0.1 holds 50 (cap 50)" in line
    assert "Traceback" not in "".join(server.log)


async def test_global_cap_counts_every_address(server_factory) -> None:
    server = server_factory(env={"VMV_MAX_CONNECTIONS": "30", "VMV_MAX_CONNECTIONS_PER_ADDRESS": "0"})
    held = [await connect(server.port, "127.0.0.1") for _ in range(20)]
    held += [await connect(server.port, "127.0.0.2") for _ in range(10)]
    extra = await connect(server.port, "127.0.0.3")
    assert (await read_until_closed(extra, timeout=5)).startswith(b"HTTP/1.1 503")
    assert await stays_open(held[-1], 0.2)
    for stream in held[:5]:
        await stream.aclose()
    for _ in range(20):
        with contextlib.suppress(httpx.TransportError):
            if await healthz(server.url, source="127.0.0.3") == 200:
                break
        await anyio.sleep(0.05)
    else:
        raise AssertionError("no client got in after five sockets closed")
    for stream in held[5:]:
        await stream.aclose()
    await wait_for_log(server, REFUSAL_LINE)
    assert log_count(server, REFUSAL_LINE) == 1
    assert "(all connections cap)" in next(line for line in server.log if REFUSAL_LINE in line)


async def test_loopback_is_held_to_the_global_cap_only_by_default(server_factory) -> None:
    """The default bind is 127.0.0.1: a proxy on this host brings every client from
    loopback, so loopback peers skip the per-address cap unless told otherwise."""
    server = server_factory(env={"VMV_MAX_CONNECTIONS_PER_ADDRESS": "2", "VMV_MAX_CONNECTIONS": "6"})
    held = [await connect(server.port, source) for source in ("127.0.0.1",) * 4 + ("127.0.0.2",) * 2]
    assert all([await stays_open(stream, 0.1) for stream in held])
    extra = await connect(server.port)
    assert (await read_until_closed(extra, timeout=5)).startswith(b"HTTP/1.1 503")  # the global cap holds
    for stream in held:
        await stream.aclose()


@contextlib.contextmanager
def soft_open_files(limit: int) -> Iterator[None]:
    """Lower this process's soft open-file limit (which a child inherits), then restore it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_files_limit(pid: int) -> int:
    text = Path(f"/proc/{pid}/limits").read_text()
    match = re.search(r"Max open files\s+(\d+)", text)
    assert match, text
    return int(match.group(1))


async def test_the_server_raises_a_low_open_file_limit_and_caps_below_the_hard_one(server_factory) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 1000:
        pytest.skip(f"needs a finite hard open-file limit of 1000 or more, have {hard}")
    with soft_open_files(256):
        fits = server_factory(env={"VMV_MAX_CONNECTIONS": "300"})
        too_many = server_factory(env={"VMV_MAX_CONNECTIONS": str(hard + 1000)}, db=fits.db.with_name("b.sqlite3"))
    assert fits.proc is not None and too_many.proc is not None
    # the soft limit of 256 would have locked clients out at ~250 sockets: raised to fit
    assert open_files_limit(fits.proc.pid) == 300 + 128
    assert log_count(fits, "raised the open-file limit from 256 to 428") == 1
    assert log_count(fits, "transport limits: 300 connections (256 per address, loopback exempt)") == 1
    # a cap the hard limit cannot hold is lowered, and said so at start
    assert open_files_limit(too_many.proc.pid) == hard
    assert log_count(too_many, f"max_connections lowered from {hard + 1000} to {hard - 128}") == 1
    assert await healthz(too_many.url) == 200


# -- the WebSocket handshake timeout: uvicorn in-process, the server's protocols, a stalling app


async def stalling_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Accepts ``/ok`` and echoes; never answers an upgrade to any other path."""
    if scope["type"] == "lifespan":
        return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    assert (await receive())["type"] == "websocket.connect"
    if scope["path"] != "/ok":
        # a stalled handshake: never answered; the timeout's close ends the wait
        with anyio.move_on_after(60):
            assert (await receive())["type"] == "websocket.disconnect"
        return
    await send({"type": "websocket.accept"})
    for _ in range(100):
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # pytest owns the signals
        yield


@contextlib.asynccontextmanager
async def in_process_server(limits: TransportLimits) -> AsyncIterator[int]:
    http, ws = protocol_classes(limits)
    config = uvicorn.Config(
        stalling_app, http=http, ws=ws, lifespan="off", log_config=None, access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = _QuietServer(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        with anyio.fail_after(10):
            while not server.started:
                await anyio.sleep(0.02)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        with anyio.fail_after(10):
            await task
        sock.close()


async def test_an_unanswered_websocket_handshake_is_dropped_after_the_timeout() -> None:
    limits = TransportLimits(header_timeout=5, handshake_timeout=0.5, gate=ConnectionGate(100, 10))
    async with in_process_server(limits) as port:
        started = time.monotonic()
        with anyio.fail_after(5), pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(f"ws://127.0.0.1:{port}/stall", open_timeout=4)
        assert refused.value.response.status_code == 503
        assert 0.4 < time.monotonic() - started < 3
        assert limits.timed_out["handshake"] == 1
        # an answered handshake is untouched by the timer, however long it lives
        with anyio.fail_after(5):
            async with websockets.connect(f"ws://127.0.0.1:{port}/ok", open_timeout=4) as ws:
                await anyio.sleep(1.0)
                await ws.send(b"ping")
                assert await ws.recv() == b"ping"
        assert limits.timed_out["handshake"] == 1
        # every slot was given back, through the WebSocket protocol's connection_lost
        with anyio.fail_after(5):
            while limits.gate.total:
                await anyio.sleep(0.02)
        assert limits.gate.per_address == {}


async def test_every_way_a_connection_ends_gives_its_slot_back(server_factory) -> None:
    """A leaked slot would lock an address out for good: after many connections that end
    in every way (served, refused upgrades, bad requests, timeouts, WebSockets), the
    cap of 3 still admits 3."""
    server = server_factory(
        env={"VMV_MAX_CONNECTIONS_PER_ADDRESS": "3", "VMV_PER_ADDRESS_CAP_LOOPBACK": "on", "VMV_HEADER_TIMEOUT": "1"}
    )
    closes = b"Host: x\r\nConnection: close\r\n\r\n"
    raw_requests = [
        b"GET /healthz HTTP/1.1\r\n" + closes,  # served, closed by the server
        b"GET /workshops/bad%20id HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nHost: x\r\n\r\n",  # denial
        b"GET /workshops/w1 HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nHost: x\r\n\r\n",  # no key
        b"NOT HTTP AT ALL\r\n\r\n",  # 400 from the parser
    ]
    for _ in range(3):
        for request in raw_requests:
            stream = await connect(server.port)
            await stream.send(request)
            answer = await read_until_closed(stream, timeout=5)
            assert answer.startswith(b"HTTP/1.1 "), (request, answer)
            await stream.aclose()
        keep_alive = await connect(server.port)  # served, then closed by the client
        await keep_alive.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        with anyio.fail_after(5):
            assert (await keep_alive.receive()).startswith(b"HTTP/1.1 200")
        await keep_alive.aclose()
        with anyio.fail_after(10):
            async with websockets.connect(server.ws("slots"), open_timeout=5) as ws:
                await (await ws.ping())
    silent = [await connect(server.port) for _ in range(3)]  # closed by the header timeout
    for stream in silent:
        assert await read_until_closed(stream, timeout=4) == b""
        await stream.aclose()
    held = []
    for _ in range(20):  # the server may not have seen the last client closes yet
        held = [await connect(server.port) for _ in range(3)]
        if all([await stays_open(s, 0.2) for s in held]):
            break
        for stream in held:
            await stream.aclose()
        held = []
        await anyio.sleep(0.1)
    assert held, "a slot leaked: the cap of 3 no longer admits 3 connections"
    for stream in held:
        await stream.aclose()
    assert "Traceback" not in "".join(server.log)


async def test_refusal_log_lines_are_one_per_window_then_a_summary(caplog: pytest.LogCaptureFixture) -> None:
    gate = ConnectionGate(max_total=1, max_per_address=0, log_interval=0.3)
    caplog.set_level("INFO", logger="vmv_sync.server.transport")
    assert gate.admit("10.0.0.1")
    assert not any([gate.admit("10.0.0.2") for _ in range(5)])
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "refusing new connections (all connections cap)" in messages[0], messages
    with anyio.fail_after(3):
        while len(caplog.records) < 2:
            await anyio.sleep(0.05)
    assert "still refusing connections: 4 refused in the last 0.3 s" in caplog.records[1].getMessage()
    with anyio.fail_after(3):
        while len(caplog.records) < 3:
            await anyio.sleep(0.05)
    assert "stopped refusing connections: 5 refused" in caplog.records[2].getMessage()
    gate.release("10.0.0.1")
    assert gate.admit("10.0.0.2") and gate.total == 1 and gate.per_address == {"10.0.0.2": 1}
    gate.close()
