"""Run the app on hypercorn: bind, print the listening line, stop cleanly on a signal.

Shutdown happens in named phases, like uvicorn's: stop accepting new work, close
every connection with 1001 while each room drains and commits its pending updates,
then stop hypercorn and close the store.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys

import anyio
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig

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


def _refuse_permessage_deflate() -> None:
    """Make hypercorn's WebSocket handshake ignore extension offers (no permessage-deflate).

    hypercorn has no setting for it and always accepts permessage-deflate, which
    browsers and websockets always offer; with it, every frame is compressed once per
    recipient. Ignoring the offer (as if the client sent none) is standard: the
    client then sends and expects uncompressed frames. Process-wide, so only the
    server's own process calls it.
    """
    from hypercorn.protocol import ws_stream

    original = ws_stream.Handshake.accept
    if getattr(original, "_vmv_no_deflate", False):
        return

    def accept(self: ws_stream.Handshake, *args: object, **kwargs: object) -> object:
        self.extensions = None
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    accept._vmv_no_deflate = True  # type: ignore[attr-defined]
    ws_stream.Handshake.accept = accept  # type: ignore[method-assign,assignment]


async def serve(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    if not settings.ws_deflate:
        _refuse_permessage_deflate()
    # The SQLite writer thread needs the GIL back after each statement; with the
    # event loop busy, the default 5 ms switch interval turns a commit of many rows
    # into a convoy. 1 ms keeps commits short under load.
    sys.setswitchinterval(0.001)
    sock = _bind(settings.host, settings.port)
    port = sock.getsockname()[1]
    config = HypercornConfig()
    config.bind = [f"fd://{sock.fileno()}"]
    config.websocket_max_message_size = max(_TRANSPORT_CAP, settings.max_message_size * 2)
    config.websocket_ping_interval = settings.ping_interval or None
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 5.0
    app = create_app(settings)
    stop_hypercorn = anyio.Event()
    async with anyio.create_task_group() as tg:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            tg.start_soon(lambda: hypercorn_serve(app, config, shutdown_trigger=stop_hypercorn.wait))  # type: ignore[arg-type]
            await app.state.started.wait()
            if not settings.auth:
                logger.warning("AUTHENTICATION IS OFF: anyone can read and write every workshop")
            print(f"vmv-sync listening on http://{settings.host}:{port}", flush=True)
            async for signum in signals:
                logger.info("received %s; shutting down", signal.Signals(signum).name)
                break
        await app.state.manager.aclose()
        stop_hypercorn.set()
    with contextlib.suppress(OSError):  # hypercorn may have closed the descriptor already
        sock.close()


def run(settings: Settings) -> None:
    """Blocking entry point used by the CLI and ``server.py``."""
    try:
        anyio.run(serve, settings)
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        sys.exit(130)
