"""``/openapi.json`` against the real routes and the real server's answers.

Both directions: every HTTP route of the app is described and every description is
a route; then a scripted tour of the API on a running server (auth on) checks that
each answer's status code is one the description lists for that operation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from starlette.routing import Route, WebSocketRoute

from tests.conftest import ServerProcess
from vmv_sync.config import Settings
from vmv_sync.server import create_app
from vmv_sync.server.openapi import openapi_document


def _operations_of_the_app(tmp_path: Path) -> set[tuple[str, str]]:
    app = create_app(Settings(db=tmp_path / "v.sqlite3"))
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", getattr(route, "path", ""))
        if isinstance(route, WebSocketRoute):
            found.add((path, "get"))
        elif isinstance(route, Route):
            found.update((path, m.lower()) for m in (route.methods or ()) if m != "HEAD")
    return found


def test_every_route_is_described_and_every_description_is_a_route(tmp_path: Path) -> None:
    document = openapi_document()
    assert document["openapi"].startswith("3.1")
    described = {(path, method) for path, ops in document["paths"].items() for method in ops}
    real = _operations_of_the_app(tmp_path)
    assert real - described == set(), "routes missing from /openapi.json"
    assert described - real == set(), "described operations the app does not have"
    for path, ops in document["paths"].items():
        names = set(re.findall(r"\{(\w+)\}", path))
        for op in ops.values():
            assert op["responses"], path
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == names, f"{path}: path parameters {declared} != {names}"


def _template_of(document: dict[str, Any], path: str) -> str:
    for template in document["paths"]:
        pattern = "^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template)) + "$"
        if template == "/static/{path}":
            pattern = "^/static/.+$"
        if re.match(pattern, path):
            return template
    raise AssertionError(f"{path} matches no described path")


def test_the_running_server_answers_only_documented_status_codes(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory(args=())
    base = server.url
    with httpx.Client(base_url=base, timeout=10) as http:
        document = http.get("/openapi.json").json()
        assert document == openapi_document()
        checked: list[tuple[str, str, int]] = []

        def call(method: str, path: str, expect: int, **kwargs: Any) -> httpx.Response:
            answer = http.request(method, path, **kwargs)
            assert answer.status_code == expect, (method, path, answer.status_code, answer.text)
            template = _template_of(document, path.split("?")[0])
            documented = document["paths"][template][method.lower()]["responses"]
            assert str(answer.status_code) in documented, f"{method} {template} answered undocumented {answer.status_code}"
            checked.append((method, template, answer.status_code))
            return answer

        created = call("POST", "/api/workshops", 201, json={"title": "T", "name": "Fay", "values": ["Trust"]}).json()
        wid, token = created["workshop_id"], created["token"]
        auth = {"authorization": f"Bearer {token}"}
        call("POST", "/api/workshops", 400, json={"title": "T"})
        call("POST", "/api/workshops", 415, content=b"{}", headers={"content-type": "text/plain"})
        call("POST", "/api/workshops", 403, json={"title": "T", "name": "F"}, headers={"origin": "https://evil.example"})
        joined = call("POST", f"/api/workshops/{wid}/join", 200, json={"invite_code": created["invite_code"], "name": "Ann"})
        call("POST", f"/api/workshops/{wid}/join", 403, json={"invite_code": "WRONGONE", "name": "Bob"})
        call("GET", f"/api/workshops/{wid}/invite", 200, headers=auth)
        call("GET", f"/api/workshops/{wid}/invite", 401)
        call("GET", f"/api/workshops/{wid}/invite", 403, headers={"authorization": f"Bearer {joined.json()['token']}"})
        call("POST", f"/api/workshops/{wid}/invite/rotate", 415, headers=auth)  # a POST is JSON, even empty
        call("POST", f"/api/workshops/{wid}/invite/rotate", 200, headers=auth, json={})
        call("GET", f"/workshops/{wid}/state", 200, headers=auth)
        call("GET", f"/workshops/{wid}/state", 401)
        call("GET", f"/workshops/{wid}/state?at=someday", 400, headers=auth)
        call("GET", f"/workshops/{wid}/export?format=md", 200, headers=auth)
        call("GET", f"/workshops/{wid}/export", 200, headers=auth)
        call("GET", f"/workshops/{wid}/report", 200, headers=auth)
        call("GET", f"/workshops/{wid}/report", 401)
        call("POST", f"/api/workshops/{wid}/participants/{joined.json()['participant_id']}/revoke", 200, headers=auth, json={})
        for path, expect in (("/healthz", 200), ("/metrics", 200), ("/", 200), (f"/w/{wid}", 200), ("/w/bad!id", 400),
                             ("/web/config", 200), ("/report.css", 200), ("/sw.js", 200), ("/manifest.webmanifest", 200),
                             ("/static/app.js", 200), ("/static/nothing.js", 404)):  # fmt: skip
            call("GET", path, expect)
    touched = {(m.lower(), t) for m, t, _ in checked}
    described = {(m, p) for p, ops in document["paths"].items() for m in ops}
    # every HTTP operation was exercised (the WebSocket has its own tests)
    assert described - touched == {("get", "/workshops/{workshop_id}"), ("get", "/openapi.json")}
