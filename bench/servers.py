"""Start the servers under test in their own processes, and read their CPU and memory.

Three servers speak the same y-websocket wire: ours (``server.py``, SQLite
persistence on), the Node reference ``@y/websocket-server`` (installed into
``bench/node`` by ``bench/setup.sh``; no persistence, its default) and the stock
pycrdt-websocket server (``bench/peers/pycrdt_ws_server.py``, SQLite YStore on).
Each is a direct child process so ``/proc/<pid>`` is the server itself, not a shim.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ("SERVERS", "ServerProc", "ProcSample", "start_server", "sample", "node_available")

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
NODE_SERVER = BENCH / "node" / "node_modules" / "@y" / "websocket-server" / "src" / "server.js"
PYCRDT_PEER = BENCH / "peers" / "pycrdt_ws_server.py"
_LISTENING = re.compile(r"listening on http://([^\s:]+):(\d+)")
_CLK_TCK = os.sysconf("SC_CLK_TCK")

#: server name -> label used in tables
SERVERS = {"ours": "vmv-sync", "node": "@y/websocket-server", "pycrdt": "pycrdt-websocket"}


def node_available() -> bool:
    return NODE_SERVER.exists()


@dataclass(frozen=True)
class ProcSample:
    """CPU seconds (user + system) and memory of a process at one moment."""

    at: float
    cpu_s: float
    rss_kb: int
    hwm_kb: int


def sample(pid: int) -> ProcSample:
    """Read /proc/<pid>/stat (utime+stime) and /proc/<pid>/status (VmRSS, VmHWM)."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        stat = fh.read()
    fields = stat[stat.rindex(b")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return ProcSample(time.monotonic(), cpu, rss, hwm)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProc:
    """A running server: its process, base URL and the way it names rooms."""

    name: str
    proc: subprocess.Popen[str]
    host: str
    port: int
    log_path: Path
    lines: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def ws_url(self, room: str) -> str:
        if self.name == "ours":
            return f"ws://{self.host}:{self.port}/workshops/{room}"
        return f"ws://{self.host}:{self.port}/{room}"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait(timeout=5)
        return self.proc.returncode


def _wait_listening(proc: subprocess.Popen[str], timeout: float) -> tuple[str, int, list[str]]:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("server exited before listening:\n" + "".join(lines))
        lines.append(line)
        match = _LISTENING.search(line)
        if match:
            return match.group(1), int(match.group(2)), lines
    raise RuntimeError("server did not say it was listening in time:\n" + "".join(lines))


def _drain(proc: subprocess.Popen[str], sink: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        sink.append(line)


def start_server(
    name: str, workdir: Path, *, db: Path | None = None, env: dict[str, str] | None = None, ours_root: Path | None = None,
    auth: bool = False,
) -> ServerProc:
    """Start server ``name`` (ours, node, pycrdt) with its data under ``workdir``.

    ``auth``: ours with authentication and write rules on (set VMV_SECRET in ``env``).

    ``ours_root``: run our ``server.py`` from another checkout (e.g. a ``git archive``
    of a commit) while the work tree is mid-edit; default: this repository.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}.log"
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    if name == "ours":
        cmd = [sys.executable, str((ours_root or ROOT) / "server.py"), *([] if auth else ["--no-auth"]), "--port", "0", "--db", str(db or workdir / "vmv.sqlite3")]
    elif name == "pycrdt":
        cmd = [sys.executable, str(PYCRDT_PEER), "--port", "0", "--db", str(db or workdir / "ystore.sqlite3")]
    elif name == "node":
        if not node_available():
            raise RuntimeError("the Node peer is not installed: run bench/setup.sh")
        port = _free_port()
        full_env.update(HOST="127.0.0.1", PORT=str(port))
        cmd = ["node", str(NODE_SERVER)]
    else:
        raise ValueError(f"unknown server {name!r}")
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, cwd=(ours_root or ROOT) if name == "ours" else ROOT, env=full_env, stdout=subprocess.PIPE, stderr=log, text=True)
    log.close()
    try:
        if name == "node":
            assert proc.stdout is not None
            line = proc.stdout.readline()  # "running at '127.0.0.1' on port N"
            if not line:
                raise RuntimeError("the Node server exited before listening: " + log_path.read_text())
            host, lines = "127.0.0.1", [line]
        else:
            host, port, lines = _wait_listening(proc, 30)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    server = ServerProc(name, proc, host, port, log_path, lines)
    threading.Thread(target=_drain, args=(proc, server.lines), daemon=True).start()
    return server
