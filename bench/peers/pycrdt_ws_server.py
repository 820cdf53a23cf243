"""The stock pycrdt-websocket server, as a bench peer: WebsocketServer + ASGIServer on hypercorn.

Persistence is on, as ours is: every room gets a ``SQLiteYStore`` on one SQLite file
(the room's path is the YStore path), and a room loads what the store holds when it
starts, the way jupyter-collaboration uses it. Nothing else is changed from the stock
classes, so the bench measures pycrdt-websocket as shipped (0.16.5).

Run: ``python bench/peers/pycrdt_ws_server.py --port 0 --db /tmp/ystore.sqlite3``;
prints ``listening on http://HOST:PORT`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket

import anyio
from hypercorn.asyncio import serve
from hypercorn.config import Config
from pycrdt.store import SQLiteYStore, YDocNotFound
from pycrdt.websocket import ASGIServer, WebsocketServer, YRoom

__all__ = ("main",)

logger = logging.getLogger("pycrdt_peer")


def _store_class(db: str) -> type[SQLiteYStore]:
    # pycrdt-store configures the database file by subclassing (its documented way).
    return type("BenchYStore", (SQLiteYStore,), {"db_path": db})


class PersistentWebsocketServer(WebsocketServer):
    """Stock WebsocketServer whose rooms persist to (and load from) a SQLite YStore."""

    def __init__(self, db: str) -> None:
        super().__init__(rooms_ready=True, auto_clean_rooms=True, log=logger)
        self._store_cls = _store_class(db)

    async def get_room(self, name: str) -> YRoom:
        if name not in self.rooms:
            ystore = self._store_cls(path=name, log=logger)
            self.rooms[name] = YRoom(ready=True, ystore=ystore, log=logger)
            room = self.rooms[name]
            await self.start_room(room)
            await ystore.started.wait()
            try:
                await ystore.apply_updates(room.ydoc)
            except YDocNotFound:
                pass
            return room
        room = self.rooms[name]
        await self.start_room(room)
        return room


async def _main(host: str, port: int, db: str) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    real_port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None
    config.websocket_max_message_size = 64 * 1024 * 1024
    stop = anyio.Event()
    async with PersistentWebsocketServer(db) as ws_server:
        app = ASGIServer(ws_server)
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                print(f"pycrdt-websocket listening on http://{host}:{real_port}", flush=True)
                async for _ in signals:
                    break
            stop.set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--db", default="ystore.sqlite3")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    anyio.run(_main, args.host, args.port, args.db)


if __name__ == "__main__":
    main()
