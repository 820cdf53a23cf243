"""The one Origin rule (server/originpolicy.py) behind the HTTP guard and the WebSocket upgrade."""

from __future__ import annotations

import httpx
import pytest
from starlette.datastructures import Headers

from vmv_sync.config import Settings
from vmv_sync.server.app import create_app
from vmv_sync.server.originpolicy import origin_allowed

pytestmark = pytest.mark.anyio


def test_no_origin_the_servers_own_or_an_allowed_one() -> None:
    ours, listed = Settings(), Settings(allowed_origins=("https://app.example",))
    assert origin_allowed({}, ours)  # curl, Python, Node: the token decides
    assert origin_allowed({"origin": "http://h:8000", "host": "h:8000"}, ours)
    assert origin_allowed({"origin": "https://h:8000", "host": "h:8000"}, ours)
    assert not origin_allowed({"origin": "https://evil.example", "host": "h:8000"}, ours)
    assert not origin_allowed({"origin": "http://h:8000"}, ours)  # no Host: nothing is ours
    assert origin_allowed({"origin": "https://app.example", "host": "h"}, listed)
    assert origin_allowed({"origin": "https://evil.example", "host": "h"}, Settings(allowed_origins=("*",)))
    assert not origin_allowed(Headers({"origin": "null", "host": "h"}), ours)  # starlette's headers too


async def test_the_http_guard_applies_it_to_what_may_change_something(tmp_path) -> None:
    app = create_app(Settings(db=str(tmp_path / "db.sqlite3")))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://h") as http:
        refused = await http.post("/api/workshops", json={}, headers={"origin": "https://evil.example"})
        assert refused.status_code == 403 and refused.json()["code"] == 4403
        read = await http.get("/web/config", headers={"origin": "https://evil.example"})
        assert read.status_code == 200  # a GET changes nothing
