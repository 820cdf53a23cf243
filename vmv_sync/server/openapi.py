"""``GET /openapi.json``: a machine-readable description of the HTTP API (OpenAPI 3.1).

Written by hand rather than generated: the handlers read their JSON bodies
themselves (api.py), so there is nothing to derive schemas from, and the contract
(status codes, the token rules) is what an embedding application needs to read.
tests/test_openapi.py checks it against the app's real routes in both directions
and checks that answers of the running server carry documented status codes, so the
two cannot drift apart silently. The WebSocket (``/workshops/{workshop_id}``) is
listed as a GET with a 101 answer; its protocol is in docs/protocol.md.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

__all__ = ("openapi_document", "openapi_routes")

_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
    "required": ["error"],
}
_ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}
_TOKEN_SAYS = "A token of this workshop: `Authorization: Bearer TOKEN` or `?token=TOKEN` (not needed with --no-auth)."


def _errors(*codes: int) -> dict[str, Any]:
    meaning = {
        400: "malformed input", 401: "no valid token", 403: "not allowed (wrong workshop, role or invite code; foreign Origin)",
        404: "no such workshop or file", 410: "that moment was compacted away", 413: "body over the size limit",
        415: "body is not application/json", 429: "rate limit (see Retry-After)", 503: "the server cannot serve now",
    }  # fmt: skip
    return {
        str(c): {"description": meaning[c], "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        for c in codes
    }


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema or {"type": "object"}}}}


def _text(description: str, media: str = "text/plain") -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": {"type": "string"}}}}


def _workshop_param() -> dict[str, Any]:
    return {"name": "workshop_id", "in": "path", "required": True, "schema": _ID}


def _body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_TOKEN_FIELDS: dict[str, Any] = {
    k: {"type": "string"} for k in ("workshop_id", "participant_id", "name", "role", "token", "link")
}
_TOKEN_ANSWER: dict[str, Any] = {"type": "object", "properties": _TOKEN_FIELDS}
_INVITE = {"type": "object", "properties": {k: {"type": "string"} for k in ("workshop_id", "invite_code", "join_link")}}
_AT = {"name": "at", "in": "query", "required": False, "schema": {"type": "string"},
       "description": "An earlier moment: unix seconds or ISO 8601 (docs/operations.md, History)."}  # fmt: skip


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of every HTTP route of :func:`~vmv_sync.server.app.create_app`."""
    secured: list[dict[str, list[str]]] = [{"bearer": []}, {"query_token": []}]
    paths: dict[str, Any] = {
        "/healthz": {"get": {"summary": "Liveness and readiness", "responses": {
            "200": _json("serving"), "503": _json("unhealthy: shutting down or a workshop failed lately")}}},
        "/metrics": {"get": {"summary": "Prometheus metrics (docs/operations.md)", "responses": {
            "200": _text("text exposition format")}}},
        "/openapi.json": {"get": {"summary": "This description", "responses": {"200": _json("OpenAPI 3.1")}}},
        "/api/workshops": {"post": {
            "summary": "Create a workshop; answers the facilitator's token and the invite code",
            "requestBody": _body({"title": {"type": "string"}, "name": {"type": "string"},
                                  "values": {"type": "array", "items": {"type": "string"}}}, ["title", "name"]),
            "responses": {"201": _json("created", {"type": "object", "properties": {
                **_TOKEN_FIELDS, "invite_code": {"type": "string"}, "join_link": {"type": "string"}}}),
                **_errors(400, 403, 413, 415, 429)}}},
        "/api/workshops/{workshop_id}/join": {"post": {
            "summary": "Join with the invite code; answers a participant token",
            "parameters": [_workshop_param()],
            "requestBody": _body({"invite_code": {"type": "string"}, "name": {"type": "string"},
                                  "role": {"enum": ["participant", "observer"]}}, ["invite_code", "name"]),
            "responses": {"200": _json("joined", _TOKEN_ANSWER), **_errors(400, 403, 413, 415, 429)}}},
        "/api/workshops/{workshop_id}/invite": {"get": {
            "summary": "The current invite code (facilitator)", "parameters": [_workshop_param()], "security": secured,
            "responses": {"200": _json("the invite", _INVITE), **_errors(400, 401, 403, 404)}}},
        "/api/workshops/{workshop_id}/invite/rotate": {"post": {
            "summary": "A new invite code; the old one stops working (facilitator)", "parameters": [_workshop_param()],
            "security": secured, "responses": {"200": _json("the new invite", _INVITE), **_errors(400, 401, 403, 404, 413, 415)}}},
        "/api/workshops/{workshop_id}/participants/{participant_id}/revoke": {"post": {
            "summary": "Remove a participant: its tokens stop working, its connections close, the code rotates",
            "parameters": [_workshop_param(), {"name": "participant_id", "in": "path", "required": True, "schema": _ID}],
            "security": secured, "responses": {"200": _json("removed"), **_errors(400, 401, 403, 413, 415)}}},
        "/workshops/{workshop_id}/state": {"get": {
            "summary": "The derived state (docs/derived-state.md)", "security": secured,
            "parameters": [_workshop_param(), _AT, {"name": "messages", "in": "query", "required": False,
                                                     "schema": {"enum": ["1", "true"]}}],
            "responses": {"200": _json("derived state"), **_errors(400, 401, 403, 404, 410, 429, 503)}}},
        "/workshops/{workshop_id}/export": {"get": {
            "summary": "The outcome as JSON or Markdown (docs/export.md)", "security": secured,
            "parameters": [_workshop_param(), _AT, {"name": "format", "in": "query", "required": False,
                                                     "schema": {"enum": ["json", "md"]}}],
            "responses": {"200": {"description": "the export", "content": {
                "application/json": {"schema": {"type": "object"}}, "text/markdown": {"schema": {"type": "string"}}}},
                **_errors(400, 401, 403, 404, 410, 429, 503)}}},
        "/workshops/{workshop_id}/report": {"get": {
            "summary": "The outcome as a printable HTML report", "security": secured,
            "parameters": [_workshop_param(), _AT],
            "responses": {"200": _text("the report", "text/html"), **_errors(400, 401, 403, 404, 410, 429, 503)}}},
        "/report.css": {"get": {"summary": "The report's style sheet", "responses": {"200": _text("CSS", "text/css")}}},
        "/workshops/{workshop_id}": {"get": {
            "summary": "The workshop's WebSocket (y-websocket protocol, docs/protocol.md)", "security": secured,
            "parameters": [_workshop_param()],
            "responses": {"101": {"description": "upgraded; refusals close with 44xx codes (docs/security.md)"}}}},
        "/": {"get": {"summary": "The web page: create or join", "responses": {"200": _text("page", "text/html")}}},
        "/w/{workshop_id}": {"get": {"summary": "The web page of one workshop", "parameters": [_workshop_param()],
                                     "responses": {"200": _text("page", "text/html"), **_errors(400)}}},
        "/web/config": {"get": {"summary": "What the page needs to know (auth on, bundle built)",
                                "responses": {"200": _json("config")}}},
        "/sw.js": {"get": {"summary": "The page's service worker", "responses": {
            "200": _text("script", "text/javascript"), "404": _text("bundle not built")}}},
        "/manifest.webmanifest": {"get": {"summary": "The web app manifest", "responses": {
            "200": _text("manifest", "application/manifest+json"), "404": _text("bundle not built")}}},
        "/static/{path}": {"get": {"summary": "The page's bundle (web/dist)", "parameters": [
            {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": _text("a file", "application/octet-stream"), "404": _text("no such file")}}},
    }  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "vmv-sync",
            "version": _version(),
            "description": "HTTP API of the vmv-sync server. " + _TOKEN_SAYS,
        },
        "paths": paths,
        "components": {
            "schemas": {"Error": _ERROR},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "query_token": {"type": "apiKey", "in": "query", "name": "token"},
            },
        },
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vmv-sync")
    except PackageNotFoundError:  # a checkout on sys.path, not installed
        return "unknown"


def openapi_routes() -> list[BaseRoute]:
    """The route serving the description (built once, on first request)."""
    cached: list[dict[str, Any]] = []

    async def openapi(request: Request) -> Response:
        if not cached:
            cached.append(openapi_document())
        return JSONResponse(cached[0])

    return [Route("/openapi.json", openapi, methods=["GET"])]
