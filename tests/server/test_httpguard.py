"""The HTTP guard (server/httpguard.py) in process: what it refuses before any route runs."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vmv_sync.config import Settings
from vmv_sync.server.httpguard import http_middleware

pytestmark = pytest.mark.anyio


async def echo(request: Request) -> Response:
    return JSONResponse({"size": len(await request.body())})


def client(settings: Settings) -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/api/echo", echo, methods=["GET", "POST"])], middleware=http_middleware(settings))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://h")


async def test_media_type_size_and_headers() -> None:
    async with client(Settings(max_body_bytes=1024)) as http:
        ok = await http.post("/api/echo", json=[1, 2])
        assert ok.json() == {"size": 5} and ok.headers["cache-control"] == "no-store"
        assert "content-security-policy" in ok.headers
        plain = await http.post("/api/echo", content=b"{}", headers={"content-type": "text/plain"})
        assert (plain.status_code, plain.json()["code"]) == (415, 4400)
        big = await http.post("/api/echo", json="x" * 2000)
        assert (big.status_code, big.json()["limit"], big.headers["connection"]) == (413, 1024, "close")
        assert (await http.get("/api/echo")).status_code == 200  # a GET has no body to judge
