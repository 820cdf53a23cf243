"""The workshop flow over HTTP: create a workshop, join with an invite code, remove someone.

``POST /api/workshops`` {title, name, values?} -> the facilitator's token and the
invite code; ``POST /api/workshops/{id}/join`` {invite_code, name} -> a
participant token; ``POST /api/workshops/{id}/participants/{pid}/revoke`` (the
facilitator's token) removes a participant: its tokens stop working and its open
connections are closed with 4401 at once. The server writes the ``participants``
entries itself, through the room's durable update path.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .. import schema
from ..errors import CloseError, Forbidden, Unauthenticated, VmvSyncError
from .auth import new_id
from .connection import Principal
from .manager import RoomManager

__all__ = ("api_routes", "request_token", "authorize")

logger = logging.getLogger(__name__)

_MAX_NAME = 80
_MAX_TITLE = 200


def request_token(request: Request) -> str | None:
    """The token of an HTTP request: ``Authorization: Bearer ...`` or ``?token=``."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.query_params.get("token")


async def authorize(request: Request, workshop_id: str) -> Principal:
    """The principal of an HTTP request for ``workshop_id``; raises a CloseError if none.

    With authentication off every request is an anonymous principal.
    """
    app = request.app
    if not app.state.settings.auth:
        return Principal(None)
    principal: Principal = app.state.tokens.verify(request_token(request), workshop_id)
    await app.state.registry.load_revoked(workshop_id)
    if app.state.registry.is_revoked(workshop_id, principal.participant_id):
        raise Unauthenticated("this participant was removed from the workshop")
    return principal


def error_response(error: CloseError) -> JSONResponse:
    status = {4401: 401, 4403: 403}.get(error.code, 400)
    return JSONResponse({"error": error.reason, "code": error.code}, status_code=status)


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise _BadRequest("the body must be JSON") from exc
    if not isinstance(body, dict):
        raise _BadRequest("the body must be a JSON object")
    return body


class _BadRequest(VmvSyncError):
    pass


def _text(body: dict[str, Any], key: str, limit: int) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _BadRequest(f"'{key}' is required and must be a non-empty string")
    value = value.strip()
    if len(value) > limit:
        raise _BadRequest(f"'{key}' must be at most {limit} characters")
    return value


async def create_workshop(request: Request) -> Response:
    try:
        body = await _json(request)
        title = _text(body, "title", _MAX_TITLE)
        name = _text(body, "name", _MAX_NAME)
        values = body.get("values") or []
        if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
            raise _BadRequest("'values' must be a list of non-empty strings")
    except _BadRequest as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    app = request.app
    workshop_id = new_id()
    facilitator_id = new_id("f-")
    manager: RoomManager = app.state.manager
    room = await manager.acquire(workshop_id)
    try:
        await room.edit(
            lambda doc: schema.new_workshop(
                doc, title=title, facilitator_id=facilitator_id, facilitator_name=name, values=values
            )
        )
    finally:
        manager.release(room)
    access = await app.state.registry.create(workshop_id, facilitator_id)
    token = app.state.tokens.issue(workshop_id, facilitator_id, name, "facilitator")
    logger.info("workshop=%s created by %s", workshop_id, facilitator_id)
    return JSONResponse(
        {
            "workshop_id": workshop_id,
            "participant_id": facilitator_id,
            "name": name,
            "role": "facilitator",
            "token": token,
            "invite_code": access.invite_code,
            "link": f"/w/{workshop_id}?token={token}",
        },
        status_code=201,
    )


async def join_workshop(request: Request) -> Response:
    workshop_id = request.path_params["workshop_id"]
    try:
        body = await _json(request)
        name = _text(body, "name", _MAX_NAME)
        code = _text(body, "invite_code", 64)
    except _BadRequest as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    app = request.app
    access = await app.state.registry.get(workshop_id)
    if access is None or not secrets.compare_digest(access.invite_code, code.upper()):
        return JSONResponse({"error": "unknown workshop or wrong invite code"}, status_code=403)
    role = body.get("role", "participant")
    if role not in ("participant", "observer"):
        return JSONResponse({"error": "'role' must be participant or observer"}, status_code=400)
    participant_id = new_id("p-")
    manager: RoomManager = app.state.manager
    room = await manager.acquire(workshop_id)
    try:
        now = time.time()
        await room.edit(lambda doc: schema.add_participant(doc, participant_id, name, role, now=now))
    finally:
        manager.release(room)
    token = app.state.tokens.issue(workshop_id, participant_id, name, role)
    logger.info("workshop=%s participant=%s joined as %s", workshop_id, participant_id, role)
    return JSONResponse(
        {
            "workshop_id": workshop_id,
            "participant_id": participant_id,
            "name": name,
            "role": role,
            "token": token,
            "link": f"/w/{workshop_id}?token={token}",
        }
    )


async def revoke_participant(request: Request) -> Response:
    workshop_id = request.path_params["workshop_id"]
    participant_id = request.path_params["participant_id"]
    try:
        principal = await authorize(request, workshop_id)
        if request.app.state.settings.auth and principal.role != "facilitator":
            raise Forbidden("only the facilitator may remove participants")
    except CloseError as exc:
        return error_response(exc)
    await request.app.state.registry.revoke(workshop_id, participant_id)
    manager: RoomManager = request.app.state.manager
    closed = manager.close_participant(
        workshop_id, participant_id, Unauthenticated("you were removed from this workshop")
    )
    logger.info("workshop=%s participant=%s revoked (%d connections closed)", workshop_id, participant_id, closed)
    return JSONResponse({"workshop_id": workshop_id, "participant_id": participant_id, "closed": closed})


async def invite(request: Request) -> Response:
    """The invite code, for the facilitator."""
    workshop_id = request.path_params["workshop_id"]
    try:
        principal = await authorize(request, workshop_id)
        if request.app.state.settings.auth and principal.role != "facilitator":
            raise Forbidden("only the facilitator may see the invite code")
    except CloseError as exc:
        return error_response(exc)
    access = await request.app.state.registry.get(workshop_id)
    if access is None:
        return JSONResponse({"error": "this workshop has no invite code"}, status_code=404)
    return JSONResponse({"workshop_id": workshop_id, "invite_code": access.invite_code})


def api_routes() -> list[BaseRoute]:
    return [
        Route("/api/workshops", create_workshop, methods=["POST"]),
        Route("/api/workshops/{workshop_id}/join", join_workshop, methods=["POST"]),
        Route("/api/workshops/{workshop_id}/invite", invite, methods=["GET"]),
        Route(
            "/api/workshops/{workshop_id}/participants/{participant_id}/revoke",
            revoke_participant,
            methods=["POST"],
        ),
    ]


