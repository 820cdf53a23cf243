"""Drive ``tests/interop/driver.mjs`` (a stock y-websocket provider in Node) from pytest.

The driver answers one JSON line per command; waits happen inside Node, woken by
Yjs events, so this side only awaits the answer line, bounded by ``fail_after``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream

__all__ = ("INTEROP_DIR", "NodePeer", "NodeUnavailable", "ensure_node_modules")

INTEROP_DIR = Path(__file__).resolve().parent


class NodeUnavailable(RuntimeError):
    """Node or the interop packages are missing; ``scripts/setup`` installs them."""


def ensure_node_modules() -> str:
    """The node executable, after checking ``npm ci`` ran in tests/interop (running it if not)."""
    node = shutil.which("node")
    if node is None:
        raise NodeUnavailable("node is not installed: the interop tests need Node 18+ (see scripts/setup)")
    if not (INTEROP_DIR / "node_modules" / "y-websocket").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            raise NodeUnavailable("npm is not installed: run scripts/setup")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=INTEROP_DIR, check=True, timeout=300)
    return node


class NodePeer:
    """One Node process holding one Y.Doc connected with ``WebsocketProvider``.

    ``token`` (authentication on) is passed to the provider as ``params: {token}``,
    which y-websocket sends as the ``?token=`` query parameter.
    """

    def __init__(self, ws_base: str, workshop_id: str, participant_id: str, token: str | None = None) -> None:
        self.args = (ws_base, workshop_id, participant_id, *((token,) if token else ()))
        self.process: Process | None = None
        self._lines: list[str] = []
        self._buffer = ""
        self._stream: TextReceiveStream | None = None
        self._next_id = 0

    async def __aenter__(self) -> NodePeer:
        node = ensure_node_modules()
        self.process = await anyio.open_process(
            [node, str(INTEROP_DIR / "driver.mjs"), *self.args], cwd=INTEROP_DIR, stderr=None
        )
        assert self.process.stdout is not None
        self._stream = TextReceiveStream(self.process.stdout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            with anyio.move_on_after(5):
                await self.call("quit")
                await self.process.wait()
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
        await self.process.aclose()

    async def _read_line(self) -> str:
        assert self._stream is not None
        while "\n" not in self._buffer:
            try:
                chunk = await self._stream.receive()
            except anyio.EndOfStream:
                raise RuntimeError("the node driver exited") from None
            self._buffer += chunk
        line, self._buffer = self._buffer.split("\n", 1)
        return line

    async def call(self, cmd: str, timeout: float = 15.0, **args: Any) -> Any:
        """Send one command and return its result; a driver error fails the test."""
        assert self.process is not None and self.process.stdin is not None
        self._next_id += 1
        request = {"id": self._next_id, "cmd": cmd, "timeout": int(timeout * 1000) - 500, **args}
        with anyio.fail_after(timeout + 5):
            await self.process.stdin.send((json.dumps(request) + "\n").encode())
            while True:
                line = await self._read_line()
                try:
                    answer = json.loads(line)
                except json.JSONDecodeError:
                    continue  # not an answer: stray output of a library
                if isinstance(answer, dict) and answer.get("id") == self._next_id:
                    break
        if not answer["ok"]:
            raise AssertionError(f"node driver {cmd} failed: {answer['error']}")
        return answer["result"]
