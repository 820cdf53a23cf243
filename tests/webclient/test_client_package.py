"""The browser client package (web/client, ``@vmv-sync/client``) in Node, against the real server.

The server runs with authentication on (tests/conftest.py's ``server_factory``);
``client.test.mjs`` imports the package through npm's workspace link in
web/node_modules and talks to the server over real WebSockets (the ``ws``
package under the stock y-websocket provider). A second test type-checks a small
TypeScript program against the package's declarations (index.d.ts).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
HERE = Path(__file__).resolve().parent


def _node() -> str:
    node = shutil.which("node")
    if node is None or not (WEB / "node_modules" / "@vmv-sync" / "client").exists():
        pytest.fail("node or web/node_modules is missing: run scripts/setup")
    return node


def test_client_package_against_the_server(server_factory: Any) -> None:
    node = _node()
    server = server_factory(args=())
    created = httpx.post(
        server.url + "/api/workshops",
        json={"title": "Node team", "name": "Fay", "values": ["Honesty", "Trust"]},
        timeout=10,
    ).json()
    env = {
        "webDir": str(WEB),
        "url": server.url,
        "ws": server.url.replace("http://", "ws://"),
        "wid": created["workshop_id"],
        "facToken": created["token"],
        "invite": created["invite_code"],
    }
    proc = subprocess.run(
        [node, "--test", "--test-reporter=spec", str(HERE / "client.test.mjs")],
        env={"PATH": "/usr/bin:/bin", "VMV_TEST": json.dumps(env)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert "# fail 0" in proc.stdout or "ℹ fail 0" in proc.stdout, proc.stdout[-3000:]


def test_client_package_types() -> None:
    """index.d.ts describes the API: a TypeScript program using it type-checks (tsc --noEmit)."""
    node = _node()
    tsc = WEB / "node_modules" / "typescript" / "bin" / "tsc"
    proc = subprocess.run(
        [node, str(tsc), "-p", str(HERE / "tsconfig.json")], cwd=HERE, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
