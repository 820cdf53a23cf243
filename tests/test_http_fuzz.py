"""Fuzz every HTTP endpoint of the real server: random JSON, strings, wrong types, odd paths.

Whatever comes in, the answer is never a 5xx and the server stays healthy. One
server serves the whole module (hypothesis runs many examples per test), with the
rate limits off so that they do not hide the handlers behind 429s.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .conftest import ServerProcess

SECRET = "test-secret-" + "f" * 32
NO_LIMITS = {
    "VMV_SECRET": SECRET,
    "VMV_WORKSHOP_CREATE_RATE": "0",
    "VMV_JOIN_RATE": "0",
    "VMV_INVITE_GUESS_RATE": "0",
}


class Target:
    def __init__(self, server: ServerProcess, http: httpx.Client, workshop: dict) -> None:
        self.server = server
        self.http = http
        self.workshop = workshop


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    db = Path(tmp_path_factory.mktemp("fuzz")) / "vmv.sqlite3"
    server = ServerProcess(db, NO_LIMITS, args=()).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            created = http.post("/api/workshops", json={"title": "Fuzz", "name": "Fay", "values": ["Trust"]})
            assert created.status_code == 201, created.text
            yield Target(server, http, created.json())
            assert http.get("/healthz").status_code == 200
    finally:
        server.kill()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=300),
    lambda inner: st.lists(inner, max_size=8) | st.dictionaries(st.text(max_size=20), inner, max_size=8),
    max_leaves=40,
)
HEADER_CHARS = st.characters(min_codepoint=32, max_codepoint=126)
TOKEN_CHARS = string.ascii_letters + string.digits + ".-_=+/"
FIELDS = ["title", "name", "values", "invite_code", "role"]
#: bodies that pass most checks, so the fuzz reaches the handlers' later steps
near_valid = st.fixed_dictionaries(
    {
        "name": st.text(min_size=1, max_size=90),
        "title": st.text(min_size=1, max_size=210),
        "invite_code": st.just("CODE") | st.text(max_size=40),
        "values": st.lists(st.text(max_size=90), max_size=5),
    },
    optional={"role": st.sampled_from(["participant", "observer"]) | json_values},
)
bodies = st.one_of(
    near_valid,
    json_values,
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5),
)
segment = st.one_of(
    st.just("WID"),
    st.just("FID"),
    st.text(st.characters(codec="utf-8", exclude_characters="/?#"), min_size=1, max_size=80),
    st.sampled_from(["f-x", "..", "a" * 65]),
)


def _body(body: object, workshop: dict) -> str:
    if isinstance(body, dict) and body.get("invite_code") == "CODE":
        body = {**body, "invite_code": workshop["invite_code"]}
    return json.dumps(body)


def _path(template: str, segments: list[str], workshop: dict) -> str:
    parts = iter(segments)
    out = template
    while "{}" in out:
        part = next(parts)
        out = out.replace("{}", {"WID": workshop["workshop_id"], "FID": workshop["participant_id"]}.get(part) or quote(part, safe=""), 1)
    return out


POSTS = [
    "/api/workshops",
    "/api/workshops/{}/join",
    "/api/workshops/{}/invite/rotate",
    "/api/workshops/{}/participants/{}/revoke",
]
GETS = ["/api/workshops/{}/invite", "/workshops/{}/state", "/workshops/{}/export", "/w/{}", "/static/{}"]


def _check(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.request.method, response.request.url, response.text[:300])


@settings(max_examples=150)
@given(template=st.sampled_from(POSTS), segments=st.lists(segment, min_size=2, max_size=2), body=bodies,
       auth=st.sampled_from(["none", "facilitator"]) | st.text(TOKEN_CHARS, min_size=1, max_size=200))  # fmt: skip
def test_posts_never_5xx(target: Target, template: str, segments: list[str], body: object, auth: str) -> None:
    headers = {"content-type": "application/json"}
    if auth == "facilitator":
        headers["authorization"] = f"Bearer {target.workshop['token']}"
    elif auth != "none":
        headers["authorization"] = "Bearer " + auth
    path = _path(template, segments, target.workshop)
    _check(target.http.post(path, content=_body(body, target.workshop), headers=headers))


@settings(max_examples=100)
@given(raw=st.binary(max_size=400) | st.text(max_size=400).map(lambda t: t.encode("utf-8", "surrogatepass")),
       template=st.sampled_from(POSTS))  # fmt: skip
def test_raw_bodies_never_5xx(target: Target, raw: bytes, template: str) -> None:
    path = _path(template, ["WID", "p-x"], target.workshop)
    _check(target.http.post(path, content=raw, headers={"content-type": "application/json"}))


@settings(max_examples=100)
@given(template=st.sampled_from(GETS), segments=st.lists(segment, min_size=1, max_size=1),
       query=st.dictionaries(st.sampled_from(["token", "format", "at", "x"]), st.text(max_size=60), max_size=3))  # fmt: skip
def test_gets_never_5xx(target: Target, template: str, segments: list[str], query: dict[str, str]) -> None:
    path = _path(template, segments, target.workshop)
    _check(target.http.get(path, params=query))


@settings(max_examples=60)
@given(ctype=st.text(HEADER_CHARS, max_size=60), origin=st.none() | st.text(HEADER_CHARS, max_size=60))
def test_odd_headers_never_5xx(target: Target, ctype: str, origin: str | None) -> None:
    headers = {"content-type": ctype.strip() or "x"}
    if origin is not None:
        headers["origin"] = origin.strip() or "null"
    _check(target.http.post("/api/workshops", content=b"{}", headers=headers))
