"""The views of /state beside the live one (server/stateviews.py): as of a moment, and the chat."""

from __future__ import annotations

import time

import httpx
import pytest
from pycrdt import Doc

from vmv_sync import schema
from vmv_sync.config import Settings
from vmv_sync.server.app import create_app
from vmv_sync.server.httperrors import BadRequest
from vmv_sync.server.stateviews import chat_of_update, moment_param

pytestmark = pytest.mark.anyio


def test_moment_param_and_the_chat_of_an_update() -> None:
    assert moment_param("1970-01-01T00:00:10Z") == 10.0
    with pytest.raises(BadRequest) as bad:
        moment_param("soon")
    assert bad.value.field == "at"
    doc: Doc = Doc()
    schema.new_workshop(doc, title="T", facilitator_id="f", facilitator_name="Fay", values=[])
    assert chat_of_update(doc.get_update()) == []


async def test_state_as_of_a_moment(tmp_path) -> None:
    app = create_app(Settings(auth=False, db=str(tmp_path / "db.sqlite3")))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://h"
    ) as http:
        wid = (await http.post("/api/workshops", json={"title": "T", "name": "Fay"})).json()["workshop_id"]
        now = time.time() + 60
        state = await http.get(f"/workshops/{wid}/state", params={"at": str(now)})
        assert state.status_code == 200 and float(state.headers["x-vmv-as-of"]) == now
        assert state.json() == (await http.get(f"/workshops/{wid}/state")).json()
        assert (await http.get(f"/workshops/{wid}/state", params={"at": "soon"})).json()["field"] == "at"
