"""docs/web.md's Node example runs as written (issue 21, item 6).

The ``sh`` install block and the ``js`` block under "### In Node" are taken from the
markdown: the install lines run in an empty project (``./web/client`` pointed at this
checkout; npm may use the registry or its cache), the program runs against a real
server with authentication on, and it must exit by itself (``destroy()``), print that
its ``client.doc`` is the program's own ``Y.Doc`` (one copy of Yjs), and have its pick
and message committed on the server. On main the example used IndexedDB (``indexedDB is
not defined`` in Node), never exited, and the install by path loaded a second Yjs.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "web.md"


def _block(lang: str, after: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    match = re.compile(rf"```{lang}\n(.*?)```", re.S).search(text, text.index(after))
    assert match is not None, f"no {lang} block after {after!r}"
    return match.group(1)


def test_node_example_of_docs_web_md_runs_as_written(server_factory: Any, tmp_path: Path) -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are needed: run scripts/setup")
    install = _block("sh", "Install it by path")
    program = _block("js", "### In Node")
    assert "indexeddb" not in program.lower() and program.rstrip().splitlines()[-1].startswith("client.destroy()")

    project = tmp_path / "app"
    project.mkdir()
    (project / "package.json").write_text('{"name": "tour", "private": true, "type": "module"}\n')
    for line in install.splitlines():
        words = shlex.split(line, comments=True)
        if not words or "y-indexeddb" in words:  # the browser-only line
            continue
        words = [str(ROOT / "web" / "client") if w == "./web/client" else w for w in words]
        assert words[:2] == ["npm", "install"], line
        done = subprocess.run(
            [npm, *words[1:], "--prefer-offline", "--no-audit", "--no-fund"],
            cwd=project, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
    copies = list((project / "node_modules").rglob("yjs/package.json"))
    assert len(copies) == 1, copies
    assert not (project / "node_modules" / "@vmv-sync" / "client").is_symlink()  # a copy, not a link

    server = server_factory(args=())
    made = httpx.post(server.url + "/api/workshops", json={"title": "Node", "name": "Fay", "values": ["Honesty"]}, timeout=10).json()
    wid = made["workshop_id"]
    ann = httpx.post(f"{server.url}/api/workshops/{wid}/join", json={"invite_code": made["invite_code"], "name": "Ann"}, timeout=10).json()
    assert "ws://127.0.0.1:8000" in program
    (project / "tour.mjs").write_text(program.replace("ws://127.0.0.1:8000", server.url.replace("http://", "ws://")))
    run = subprocess.run([node, "tour.mjs", wid, ann["token"]], cwd=project, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr  # and it exited by itself
    assert "one Yjs: true" in run.stdout and "Honesty: 1" in run.stdout, run.stdout
    assert "Yjs was already imported" not in run.stderr, run.stderr

    auth = {"authorization": f"Bearer {made['token']}"}
    state = httpx.get(f"{server.url}/workshops/{wid}/state", headers=auth, params={"messages": "1"}, timeout=10).json()
    assert {v["name"]: v["count"] for v in state["values"]}["Honesty"] == 1
    assert [m["text"] for m in state["messages"]] == ["Hello from Node"]
    assert [m["ratings"] for m in state["matrix"]] == [1]
