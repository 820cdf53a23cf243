"""The documented tours run as written and lose nothing (issue 13, item 5).

The Python blocks of the README's "A Python participant" and of docs/client.md's
quick start are extracted from the markdown, run in their own process against a
real server with authentication on after an HTTP join, and the server's document
is checked for every edit they made.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from tests.client.helpers import create_workshop, join, server_document

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def python_block(path: Path, after: str) -> str:
    """The first ```python block after the heading or line containing ``after``."""
    text = path.read_text(encoding="utf-8")
    start = text.index(after)
    match = _BLOCK.search(text, start)
    assert match is not None, f"no python block after {after!r} in {path.name}"
    return match.group(1)


async def _run_tour(code: str, server_url: str, folder: Path, workshop_id: str, token: str) -> str:
    assert "ws://127.0.0.1:8000" in code  # the documented address, pointed at the test server
    program = f"WORKSHOP_ID = {workshop_id!r}\nTOKEN = {token!r}\n" + code.replace(
        "ws://127.0.0.1:8000", server_url.replace("http://", "ws://")
    )
    done = await anyio.to_thread.run_sync(
        lambda: subprocess.run(
            [sys.executable, "-c", program], cwd=folder, capture_output=True, text=True, timeout=60,
            env={"PYTHONPATH": str(ROOT), "PATH": ""},
        )
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize(
    ("doc", "heading", "message"),
    [
        ("README.md", "**3. A Python participant**", "Hello from Python"),
        ("docs/client.md", "## Quick start", "hello"),
    ],
)
async def test_documented_tour_runs_and_loses_nothing(
    server_factory, tmp_path: Path, doc: str, heading: str, message: str
) -> None:
    server = server_factory(args=("--secret", "s" * 32))
    created = await create_workshop(server.url, ["Honesty", "Courage", "Kindness"])
    ann = await join(server.url, created, "Ann")
    code = python_block(ROOT / doc, heading)
    out = await _run_tour(code, server.url, tmp_path, created["workshop_id"], ann["token"])
    assert "Honesty" in out  # it printed the value stats
    data = await server_document(server.url, created["workshop_id"], tmp_path / "r.sqlite3", token=created["token"])
    pid = ann["participant_id"]
    assert list(data.selections[pid]) == ["Honesty"]
    assert [(m.author, m.text) for m in data.messages] == [(pid, message)]
    assert (tmp_path / "ann.sqlite3").exists()  # the replica the tour named
