"""Shared fixtures: the real server in a real process on a free loopback port."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_LISTENING = re.compile(r"listening on (http://[^\s]+)")

# --- hypothesis profiles (owner: convergence suite, docs/testing.md) -------------------
# ``ci`` is loaded by default; ``--hypothesis-profile=deep`` (or any registered name)
# overrides it, because hypothesis' pytest plugin loads that option after this import.
from hypothesis import HealthCheck, settings  # noqa: E402

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]
settings.register_profile(
    "ci", max_examples=200, stateful_step_count=100, deadline=None, print_blob=True,
    suppress_health_check=_SLOW_OK,
)  # fmt: skip
settings.register_profile(
    "deep", max_examples=7000, stateful_step_count=100, deadline=None, print_blob=True,
    suppress_health_check=_SLOW_OK,
)  # fmt: skip
settings.load_profile("ci")
# --- end of hypothesis profiles ------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def drainer_alive(thread: threading.Thread | None) -> bool:
    return thread is not None and thread.is_alive()


class ServerProcess:
    """``python server.py --port 0`` in a subprocess; the port is read from its line."""

    def __init__(self, db: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ("--no-auth",)) -> None:
        self.db = db
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.args = args
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.log: list[str] = []
        self.port = 0

    def start(self, port: int = 0) -> ServerProcess:
        if self.proc is not None and self.proc.poll() is not None:
            self._close_output()  # the previous run's pipe (a restart after the process ended)
        cmd = [sys.executable, str(ROOT / "server.py"), "--port", str(port), "--db", str(self.db), *self.args]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        deadline = time.monotonic() + 30
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("server exited before listening:\n" + "".join(self.log))
            self.log.append(line)
            match = _LISTENING.search(line)
            if match:
                self.url = match.group(1)
                self.port = int(self.url.rsplit(":", 1)[1])
                break
        else:
            raise RuntimeError("server did not print its listening line in 30 s")
        self._drainer = threading.Thread(target=self._drain, args=(self.proc,), daemon=True)
        self._drainer.start()
        return self

    def _drain(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.log.append(line)

    @property
    def ws_base(self) -> str:
        return self.url.replace("http://", "ws://") + "/workshops"

    def ws(self, workshop_id: str) -> str:
        return f"{self.ws_base}/{workshop_id}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self._close_output()
        return code

    def _close_output(self) -> None:
        """Close the pipe once the drain thread has read it to the end (no ResourceWarning)."""
        drainer = getattr(self, "_drainer", None)
        if drainer is not None:
            drainer.join(timeout=5)
        if self.proc is not None and self.proc.stdout is not None and not drainer_alive(drainer):
            self.proc.stdout.close()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> ServerProcess:
        """Stop (if running) and start again on the same port and database."""
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
        return self.start(self.port)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[object]:
    started: list[ServerProcess] = []

    def make(env: dict[str, str] | None = None, db: Path | None = None, args: tuple[str, ...] = ("--no-auth",)) -> ServerProcess:
        proc = ServerProcess(db or tmp_path / "vmv.sqlite3", env, args).start()
        started.append(proc)
        return proc

    yield make
    for proc in started:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill()
        else:
            proc._close_output()


@pytest.fixture
def server(server_factory: object) -> ServerProcess:
    return server_factory()  # type: ignore[operator]
