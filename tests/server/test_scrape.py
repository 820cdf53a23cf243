"""GET /metrics (server/scrape.py): answered before start-up too, then with the live gauges."""

from __future__ import annotations

import httpx
import pytest

from vmv_sync.config import Settings
from vmv_sync.server.app import create_app

pytestmark = pytest.mark.anyio


async def test_metrics_before_and_while_running(tmp_path) -> None:
    app = create_app(Settings(auth=False, db=str(tmp_path / "db.sqlite3")))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://h") as http:
        before = await http.get("/metrics")
        assert before.status_code == 200 and "vmv_rooms_loaded 0.0" in before.text
        async with app.router.lifespan_context(app):
            await http.post("/api/workshops", json={"title": "T", "name": "Fay"})
            during = await http.get("/metrics")
            assert "vmv_updates_committed_total" in during.text and "vmv_rooms_loaded" in during.text
