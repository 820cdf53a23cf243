"""Run the app on uvicorn: bind, print the listening line, stop cleanly on a signal.

Shutdown happens in named phases: stop accepting new work, close every connection
with 1001 while each room drains and commits its pending updates, then stop
uvicorn (its lifespan closes the store).

Why uvicorn and not hypercorn (the design card's first choice): the fan-out bench
(docs/benchmarks.md) is bound by the per-frame cost of the ASGI WebSocket stack.
uvicorn's ``websockets-sansio`` protocol writes a frame to the transport in one call
where hypercorn passes it through five coroutines and a lock. Measured alone (with
uvloop), the switch cut scenario B10's chat p99 from ~600 ms to ~380 ms and the CPU
per frame by about a fifth; the lean writer in ``connection.py`` did the rest.

Transport limits (header and handshake timeouts, connection caps) ride on subclasses
of uvicorn's two protocols, in ``transport.py``; this module sizes the connection cap
to the process's open-file limit at start.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import resource
import signal
import socket
import sys
from collections.abc import Iterator

import anyio
import uvicorn

from ..config import Settings
from ..errors import ConfigError, VmvSyncError
from .app import create_app
from .clientaddr import check_trusted_proxies
from .context import server_context
from .dblock import database_file, hold_database
from .external_auth import ExternalTokens
from .logs import configure_log_output
from .transport import ConnectionGate, TransportLimits, protocol_classes

__all__ = ("serve", "run")

logger = logging.getLogger(__name__)

#: open files kept free of connections: the listener, SQLite (database, WAL, shm per
#: connection), logs, imports. Past the open-file limit accept() fails with EMFILE and
#: every new client is locked out silently; refusing below it keeps that from happening.
_FD_RESERVE = 128


class CannotListen(VmvSyncError):
    """The address to listen on is taken, not this machine's, or not allowed."""

    def __init__(self, host: str, port: int, exc: OSError) -> None:
        why = exc.strerror or str(exc)
        if exc.errno == errno.EADDRINUSE:
            why = "the port is in use (another vmv-sync? pick one with --port or VMV_PORT)"
        super().__init__(f"cannot listen on {host}:{port}: {why}")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as exc:
        sock.close()
        raise CannotListen(host, port, exc if isinstance(exc, OSError) else OSError(str(exc))) from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _fit_open_files(wanted: int) -> int:
    """The connection cap the open-file limit allows: ``wanted`` if it fits.

    Raises the soft RLIMIT_NOFILE toward the hard one first (as far as ``wanted``
    plus the reserve needs), since distributions start services at a soft 1,024.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + _FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        if target > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                logger.info("raised the open-file limit from %d to %d", soft, target)
                soft = target
            except (ValueError, OSError) as exc:
                logger.warning("could not raise the open-file limit from %d: %s", soft, exc)
    if soft == resource.RLIM_INFINITY:
        return wanted
    reserve = min(_FD_RESERVE, soft // 4)
    fitted = max(1, min(wanted, soft - reserve))
    if fitted < wanted:
        logger.warning(
            "max_connections lowered from %d to %d: the open-file limit is %d (hard %s) and %d stay free "
            "for the database and logs; raise it with `ulimit -n` or LimitNOFILE=",
            wanted, fitted, soft, "unlimited" if hard == resource.RLIM_INFINITY else hard, reserve,
        )  # fmt: skip
    return fitted


def _transport_limits(settings: Settings) -> TransportLimits:
    gate = ConnectionGate(_fit_open_files(settings.max_connections), settings.max_connections_per_address)
    return TransportLimits(
        settings.header_timeout,
        settings.ws_handshake_timeout,
        gate,
        cap_loopback=settings.per_address_cap_loopback,
        max_head_bytes=settings.max_request_head_bytes,
        max_message_size=settings.max_message_size,
    )


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handlers: :func:`serve` owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _uvicorn_config(app: object, settings: Settings, limits: TransportLimits) -> uvicorn.Config:
    http, ws = protocol_classes(limits)
    trusted = check_trusted_proxies(settings.forwarded_allow_ips)
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        # httptools and websockets-sansio, with the transport limits (transport.py)
        http=http,
        ws=ws,
        # idle time between requests on a keep-alive connection (uvicorn's default);
        # a request head that starts must complete within settings.header_timeout
        timeout_keep_alive=5,
        # Yjs frames are small and binary, and a compressor per recipient cost 27-30%
        # of the server's CPU in the fan-out bench: off unless VMV_WS_DEFLATE=1.
        ws_per_message_deflate=settings.ws_deflate,
        # frames over the contract's limit are refused at their header (4413, transport.py)
        ws_max_size=settings.max_message_size,
        ws_ping_interval=settings.ping_interval or None,
        ws_ping_timeout=settings.ping_interval or None,
        lifespan="on",
        log_config=None,
        access_log=False,
        # X-Forwarded-For/-Proto believed from the trusted proxies only (clientaddr.py);
        # without any, the TCP peer is the client and the headers are ignored
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
        server_header=False,
        timeout_graceful_shutdown=5,
    )


async def serve(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    # The SQLite writer thread needs the GIL back after each statement; with the
    # event loop busy, the default 5 ms switch interval turns a commit of many rows
    # into a convoy. 1 ms keeps commits short under load.
    sys.setswitchinterval(0.001)
    check_trusted_proxies(settings.forwarded_allow_ips)  # a bad entry stops us before binding
    ExternalTokens.from_settings(settings)  # so does an unreadable key file or a bad algorithm list
    sock = _bind(settings.host, settings.port)
    try:
        with hold_database(database_file(settings)):  # restore refuses while we hold it (dblock.py)
            await _serve_on(sock, settings)
    finally:
        with contextlib.suppress(OSError):  # uvicorn closes the socket on shutdown
            sock.close()


async def _serve_on(sock: socket.socket, settings: Settings) -> None:
    port = sock.getsockname()[1]
    app = create_app(settings)
    limits = _transport_limits(settings)
    server = _Server(_uvicorn_config(app, settings, limits))
    async with anyio.create_task_group() as tg:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            tg.start_soon(lambda: server.serve(sockets=[sock]))
            await app.state.started.wait()
            if not settings.auth:
                logger.warning("AUTHENTICATION IS OFF: anyone can read and write every workshop")
            logger.info(
                "transport limits: %d connections (%s per address%s), request head within %g s, "
                "WebSocket handshake within %g s",
                limits.gate.max_total, limits.gate.max_per_address or "no cap",
                "" if limits.cap_loopback or not limits.gate.max_per_address else ", loopback exempt",
                limits.header_timeout, limits.handshake_timeout,
            )  # fmt: skip
            print(f"vmv-sync listening on http://{settings.host}:{port}", flush=True)
            async for signum in signals:
                logger.info("received %s; shutting down", signal.Signals(signum).name)
                break
        await server_context(app).manager.aclose()
        server.should_exit = True
        limits.gate.close()


def run(settings: Settings) -> None:
    """Blocking entry point used by the CLI and ``server.py``.

    A setting the server cannot start with (a taken port, a bad proxy list) ends it
    with one line on stderr and exit code 2, like a bad flag, not with a traceback.
    """
    configure_log_output(settings.log_format)
    try:
        anyio.run(serve, settings, backend_options={"use_uvloop": True})
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        sys.exit(130)
    except (CannotListen, ConfigError) as exc:
        print(f"vmv-sync: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
