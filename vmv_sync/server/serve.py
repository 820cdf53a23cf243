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
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Iterator

import anyio
import uvicorn

from ..config import Settings
from .app import create_app

__all__ = ("serve", "run")

logger = logging.getLogger(__name__)

#: the transport's own cap; frames between max_message_size and this get 4413
_TRANSPORT_CAP = 64 * 1024 * 1024


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handlers: :func:`serve` owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _uvicorn_config(app: object, settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        http="httptools",
        ws="websockets-sansio",
        # Yjs frames are small and binary, and a compressor per recipient cost 27-30%
        # of the server's CPU in the fan-out bench: off unless VMV_WS_DEFLATE=1.
        ws_per_message_deflate=settings.ws_deflate,
        ws_max_size=max(_TRANSPORT_CAP, settings.max_message_size * 2),
        ws_ping_interval=settings.ping_interval or None,
        ws_ping_timeout=settings.ping_interval or None,
        lifespan="on",
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=5,
    )


async def serve(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    # The SQLite writer thread needs the GIL back after each statement; with the
    # event loop busy, the default 5 ms switch interval turns a commit of many rows
    # into a convoy. 1 ms keeps commits short under load.
    sys.setswitchinterval(0.001)
    sock = _bind(settings.host, settings.port)
    port = sock.getsockname()[1]
    app = create_app(settings)
    server = _Server(_uvicorn_config(app, settings))
    async with anyio.create_task_group() as tg:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            tg.start_soon(lambda: server.serve(sockets=[sock]))
            await app.state.started.wait()
            if not settings.auth:
                logger.warning("AUTHENTICATION IS OFF: anyone can read and write every workshop")
            print(f"vmv-sync listening on http://{settings.host}:{port}", flush=True)
            async for signum in signals:
                logger.info("received %s; shutting down", signal.Signals(signum).name)
                break
        await app.state.manager.aclose()
        server.should_exit = True
    with contextlib.suppress(OSError):  # uvicorn closes the socket on shutdown
        sock.close()


def run(settings: Settings) -> None:
    """Blocking entry point used by the CLI and ``server.py``."""
    try:
        anyio.run(serve, settings, backend_options={"use_uvloop": True})
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        sys.exit(130)
