"""The client package's in-band token refresh (``client.refreshToken``), in Node against the real server.

The server runs with authentication on and a known secret (tests/test_auth.py), so
``token_refresh.test.mjs`` signs its own short-lived tokens (HS256, the claims of
vmv_sync.server.tokens.TokenIssuer) at the moment it needs them: a ttl of a few
seconds then measures from the Node side, not from this process. The Node tests
cover a refresh that keeps the same socket open past the old token's expiry (while
an unrefreshed peer is closed with 4401, as before), refusals (another participant's
token: 4403; a bad signature: 4401) after which the client reconnects with its old
token and saves, a refresh asked for while the socket opens, and offline refreshes.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.test_auth import AUTH_ENV, SECRET
from tests.webclient.test_client_package import WEB, _node

HERE = Path(__file__).resolve().parent


def _join(url: str, wid: str, invite: str, name: str) -> dict[str, Any]:
    joined: dict[str, Any] = httpx.post(
        f"{url}/api/workshops/{wid}/join", json={"invite_code": invite, "name": name}, timeout=10
    ).json()
    return joined


def test_refresh_token_against_the_server(server_factory: Any) -> None:
    node = _node()
    server = server_factory(env=AUTH_ENV, args=())
    created = httpx.post(
        server.url + "/api/workshops", json={"title": "Refresh", "name": "Fay", "values": ["Honesty"]}, timeout=10
    ).json()
    wid, invite = created["workshop_id"], created["invite_code"]
    ann, bob = _join(server.url, wid, invite, "Ann"), _join(server.url, wid, invite, "Bob")
    env = {
        "webDir": str(WEB),
        "url": server.url,
        "ws": server.url.replace("http://", "ws://"),
        "wid": wid,
        "secret": SECRET,
        "facToken": created["token"],
        "ann": {"pid": ann["participant_id"], "name": "Ann", "role": "participant", "token": ann["token"]},
        "bob": {"pid": bob["participant_id"], "name": "Bob", "role": "participant", "token": bob["token"]},
    }
    proc = subprocess.run(
        [node, "--test", "--test-reporter=spec", str(HERE / "token_refresh.test.mjs")],
        env={"PATH": "/usr/bin:/bin", "VMV_TEST": json.dumps(env)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert "ℹ fail 0" in proc.stdout or "# fail 0" in proc.stdout, proc.stdout[-3000:]
    closes = [line for line in server.log if "closing code=44" in line or "close=44" in line]
    assert any("expired" in line for line in closes), closes  # the unrefreshed peer
    assert any("token refresh:" in line for line in closes), closes  # the refusals
