"""The client package's limits and edit refusals (issue 19, finding 6), in Node against the real server.

The limits are read here from the Python schema (``vmv_sync.schema.MAX_MESSAGE_CHARS``,
``MAX_TEXT_CHARS``) and compared with the package's (web/client/src/limits.js), both
by importing the package in Node and in ``limits.test.mjs``; the server runs with
authentication on and a 2 KiB message limit, so an honest mission edit is refused
(4413) without a large test.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.webclient.test_client_package import WEB, _node
from vmv_sync.schema import MAX_MESSAGE_CHARS, MAX_TEXT_CHARS

HERE = Path(__file__).resolve().parent
FRAME_LIMIT = 2048


def test_package_limits_equal_the_python_schema() -> None:
    node = _node()
    script = (
        "const { createRequire } = require('node:module');"
        "const { pathToFileURL } = require('node:url');"
        f"const r = createRequire({json.dumps(str(WEB / 'package.json'))});"
        "import(pathToFileURL(r.resolve('@vmv-sync/client')).href).then((m) =>"
        " console.log(JSON.stringify([m.MAX_MESSAGE_CHARS, m.MAX_TEXT_CHARS])))"
    )
    proc = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [MAX_MESSAGE_CHARS, MAX_TEXT_CHARS]


def test_limits_and_edit_refusals_against_the_server(server_factory: Any) -> None:
    node = _node()
    server = server_factory(env={"VMV_MAX_MESSAGE_SIZE": str(FRAME_LIMIT)}, args=())
    created = httpx.post(
        server.url + "/api/workshops", json={"title": "Limits", "name": "Fay", "values": ["Honesty"]}, timeout=10
    ).json()
    env = {
        "webDir": str(WEB),
        "url": server.url,
        "ws": server.url.replace("http://", "ws://"),
        "wid": created["workshop_id"],
        "facToken": created["token"],
        "invite": created["invite_code"],
        "frameLimit": FRAME_LIMIT,
        "maxMessageChars": MAX_MESSAGE_CHARS,
        "maxTextChars": MAX_TEXT_CHARS,
    }
    proc = subprocess.run(
        [node, "--test", "--test-reporter=spec", str(HERE / "limits.test.mjs")],
        env={"PATH": "/usr/bin:/bin", "VMV_TEST": json.dumps(env)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert "ℹ fail 0" in proc.stdout or "# fail 0" in proc.stdout, proc.stdout[-3000:]
    # one 4413 close for the refused mission, never re-sent
    assert sum(1 for line in server.log if "close=4413" in line) == 1


def test_declarations_cover_limits_and_discard() -> None:
    """index.d.ts declares the limits, TooLong, Refusal.edit and discardUnsaved (tsc --noEmit)."""
    node = _node()
    tsc = WEB / "node_modules" / "typescript" / "bin" / "tsc"
    proc = subprocess.run(
        [node, str(tsc), "-p", str(HERE / "tsconfig.limits.json")],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
