"""One HTTP error body (server/httperrors.py), and one answer to a bad workshop id on every route."""

from __future__ import annotations

import json

import httpx
import pytest

from vmv_sync.config import Settings
from vmv_sync.errors import Forbidden, StorageError
from vmv_sync.history import HistoryUnavailable
from vmv_sync.server.app import create_app
from vmv_sync.server.httperrors import NotFound, RateLimited, Unavailable, bad_workshop_id, error_response

pytestmark = pytest.mark.anyio


def body(response) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(response.body)


def test_statuses_and_bodies() -> None:
    gone = error_response(HistoryUnavailable("w", 5.0, 10.0))
    assert gone.status_code == 410 and body(gone)["earliest"] == 10.0
    assert (error_response(Forbidden("no")).status_code, body(error_response(Forbidden("no")))) == (403, {"error": "no", "code": 4403})
    assert error_response(Unavailable("the disk is full")).status_code == 503
    assert error_response(NotFound("nothing")).status_code == 404
    assert error_response(StorageError("x")).status_code == 500  # not a refusal: the server's fault
    limited = error_response(RateLimited("requests", 1.5))
    assert limited.headers["retry-after"] == "2" and body(limited)["retry_after"] == 2


async def test_a_bad_workshop_id_is_answered_alike_everywhere(tmp_path) -> None:
    expected = body(bad_workshop_id())
    assert expected["code"] == 4400 and expected["error"].startswith("invalid workshop id")
    app = create_app(Settings(db=str(tmp_path / "db.sqlite3")))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://h") as http:
        for path in ("/w/bad!id", "/workshops/bad!id/state", "/workshops/bad!id/export", "/workshops/bad!id/report"):
            answer = await http.get(path)
            assert (answer.status_code, answer.json()) == (400, expected), path
        joined = await http.post("/api/workshops/bad!id/join", json={"invite_code": "X", "name": "Y"})
        assert (joined.status_code, joined.json()) == (400, expected)
