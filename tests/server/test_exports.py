"""The export routes (server/exports.py) in process, with the app's real lifespan and store."""

from __future__ import annotations

import time

import httpx
import pytest

from vmv_sync.config import Settings
from vmv_sync.server.app import create_app

pytestmark = pytest.mark.anyio


async def test_export_formats_moments_and_refusals(tmp_path) -> None:
    app = create_app(Settings(auth=False, db=str(tmp_path / "db.sqlite3")))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://h"
    ) as http:
        created = await http.post("/api/workshops", json={"title": "Ours", "name": "Fay", "values": ["Trust"]})
        wid = created.json()["workshop_id"]
        md = await http.get(f"/workshops/{wid}/export", params={"format": "md"})
        assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown") and "Ours" in md.text
        assert (await http.get(f"/workshops/{wid}/export")).json()["title"] == "Ours"
        assert (await http.get(f"/workshops/{wid}/report")).headers["content-type"].startswith("text/html")
        later = await http.get(f"/workshops/{wid}/export", params={"at": str(time.time() + 60)})
        assert later.status_code == 200 and later.json()["title"] == "Ours"
        pdf = await http.get(f"/workshops/{wid}/export", params={"format": "pdf"})
        assert (pdf.status_code, pdf.json()["field"]) == (400, "format")
        soon = await http.get(f"/workshops/{wid}/export", params={"at": "soon"})
        assert (soon.status_code, soon.json()["field"]) == (400, "at")
        empty = await http.get("/workshops/nothing-here/export")
        assert empty.status_code == 404 and "no content" in empty.json()["error"]
