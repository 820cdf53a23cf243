"""The workshop flow over HTTP: create a workshop, join with an invite code, manage access.

``POST /api/workshops`` {title, name, values?} -> the facilitator's token and the
invite code; ``POST /api/workshops/{id}/join`` {invite_code, name} -> a
participant token; ``GET /api/workshops/{id}/invite`` and
``POST /api/workshops/{id}/invite/rotate`` (the facilitator's token) -> the invite
code and join link; ``POST /api/workshops/{id}/participants/{pid}/revoke`` (the
facilitator's token) removes a participant: its tokens stop working, its open
connections are closed with 4401 at once, and the invite code is rotated so that
it cannot join again under a new id. The server writes the ``participants``
entries itself, through the room's durable update path.

Every input is bounded (docs/security.md, HTTP limits) and judged before any
work: a 16,000-name ``values`` list used to cost seconds of event loop and
gigabytes, because pycrdt inserts list items one by one and yrs walks every
not-yet-merged item of the open transaction to find the next index (quadratic).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .. import schema
from ..errors import Forbidden, Unauthenticated, VmvSyncError
from ..ids import ID_RULE, WORKSHOP_ID_RE, new_id
from .auth import AccessRegistry, Principal
from .context import server_context
from .httperrors import BadRequest, InvalidField, NotFound, error_response, invalid_workshop_id
from .ratelimits import HttpLimits, client_key, http_limits
from .workshops import create_workshop as create_new_workshop
from .workshops import join_link

if TYPE_CHECKING:
    from .cluster.guesses import SharedAddressLimits

__all__ = ("api_routes", "request_token", "authorize", "MAX_VALUES", "MAX_NAME", "MAX_TITLE")

logger = logging.getLogger(__name__)

#: a display name, in characters (after trimming)
MAX_NAME = 80
#: a workshop title, in characters
MAX_TITLE = 200
#: value names offered when a workshop is created
MAX_VALUES = 200
#: one value name, in characters
MAX_VALUE_NAME = 80
#: an invite code: letters and digits (the server makes 8)
_INVITE_CODE = re.compile(r"[A-Z0-9]{1,32}")
_ID = WORKSHOP_ID_RE  # contract section 2, also participant ids
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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
    context = server_context(request)
    if not context.settings.auth:
        return Principal(None)
    return await context.registry.authenticate(context.tokens, request_token(request), workshop_id)


async def _facilitator(request: Request, workshop_id: str, action: str) -> None:
    principal = await authorize(request, workshop_id)
    if server_context(request).settings.auth and principal.role != "facilitator":
        raise Forbidden(f"only the facilitator may {action}")


# -- inputs ----------------------------------------------------------------------------


async def _json(request: Request) -> dict[str, Any]:
    """The body as a JSON object (the middleware has already bounded its size)."""
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[..." nested too deep
        raise BadRequest("the body must be JSON (UTF-8)") from exc
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _clean(value: str, key: str, limit: int) -> str:
    """A trimmed, printable, UTF-8-encodable string of at most ``limit`` characters."""
    value = value.strip()
    if not value:
        raise BadRequest(f"'{key}' must not be blank", key)
    if len(value) > limit:
        raise InvalidField(key, f"'{key}' must be at most {limit} characters (got {len(value)})", limit)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate ("\\ud800") in the JSON
        raise BadRequest(f"'{key}' is not valid Unicode text", key) from exc
    if _CONTROL.search(value):
        raise BadRequest(f"'{key}' must not contain control characters (line breaks, tabs)", key)
    return value


def _text(body: dict[str, Any], key: str, limit: int) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise BadRequest(f"'{key}' is required and must be a non-empty string", key)
    return _clean(value, key, limit)


def _values(body: dict[str, Any]) -> list[str]:
    values = body.get("values")
    if values is None:
        return []
    if not isinstance(values, list):
        raise BadRequest("'values' must be a list of value names", "values")
    if len(values) > MAX_VALUES:  # judged before any item is looked at
        raise InvalidField("values", f"'values' may hold at most {MAX_VALUES} names (got {len(values)})", MAX_VALUES)
    if not all(isinstance(v, str) for v in values):
        raise BadRequest("'values' must be a list of non-empty strings", "values")
    return [_clean(v, "values", MAX_VALUE_NAME) for v in values]


def _workshop_id(request: Request) -> str:
    workshop_id: str = request.path_params["workshop_id"]
    if not _ID.fullmatch(workshop_id):
        raise invalid_workshop_id()
    return workshop_id


def _invite_code(body: dict[str, Any]) -> str:
    code = body.get("invite_code")
    if not isinstance(code, str) or not code.strip():
        raise BadRequest("'invite_code' is required: ask the facilitator for it", "invite_code")
    code = code.strip().upper()
    if not code.isascii() or not _INVITE_CODE.fullmatch(code):
        raise BadRequest("an invite code is made of letters and digits, like K7M2QX9D", "invite_code")
    return code


def _address_limits(request: Request, limits: HttpLimits) -> SharedAddressLimits | None:
    """The per-address join and create limits counted over the cluster (in Redis), or None
    for one process (``limits``' own buckets count)."""
    cluster = server_context(request).manager.cluster
    if cluster is None:
        return None
    from .cluster.guesses import address_limits  # only with several processes

    return address_limits(cluster.guesses, limits)


# -- handlers --------------------------------------------------------------------------


async def create_workshop(request: Request) -> Response:
    try:
        limits = http_limits(request.app)
        address = client_key(request.scope)
        shared = _address_limits(request, limits)  # several processes: counted in Redis
        await shared.create.take(address, limits.create) if shared else limits.create.take(address)
        body = await _json(request)
        title = _text(body, "title", MAX_TITLE)
        name = _text(body, "name", MAX_NAME)
        values = _values(body)
    except VmvSyncError as exc:
        return error_response(exc)
    context = server_context(request)

    async def write(workshop_id: str, edit: Any) -> None:
        async with context.room(workshop_id) as room:
            await room.edit(edit)

    try:
        created = await create_new_workshop(
            title=title, name=name, values=values, registry=context.registry, tokens=context.tokens, write=write
        )
    except VmvSyncError as exc:
        return error_response(exc)
    return JSONResponse(
        {
            "workshop_id": created.workshop_id,
            "participant_id": created.facilitator_id,
            "name": name,
            "role": "facilitator",
            "token": created.token,
            "invite_code": created.invite_code,
            "join_link": created.join_link,
            "link": created.facilitator_link,
        },
        status_code=201,
    )


async def join_workshop(request: Request) -> Response:
    """Join with the invite code. Every attempt counts against the address's join
    limit; a wrong code also counts against the address's guess limit for this
    workshop and, once that address has guessed wrong, against the workshop's guess
    limit (tokens are taken up front and given back when the code is right, so
    concurrent guesses cannot all slip past the check). An address that has not
    guessed wrong is always checked: guessers cannot lock out people with the code."""
    limits = http_limits(request.app)
    try:
        workshop_id = _workshop_id(request)
        address = client_key(request.scope)
        addresses = _address_limits(request, limits)  # several processes: counted in Redis
        await addresses.join.take(address, limits.join) if addresses else limits.join.take(address)
        body = await _json(request)
        name = _text(body, "name", MAX_NAME)
        code = _invite_code(body)
        role = body.get("role", "participant")
        if role not in ("participant", "observer"):
            raise BadRequest("'role' must be participant or observer", "role")
        guesser = f"{workshop_id} {address}"
        suspect = limits.address_guesses.spent(guesser)
        limits.address_guesses.take(guesser)
        context = server_context(request)
        shared = context.manager.cluster.guesses if context.manager.cluster else None  # several processes
        if suspect:
            await shared.take(workshop_id, limits.guesses) if shared else limits.guesses.take(workshop_id)
    except VmvSyncError as exc:
        return error_response(exc)
    access = await context.registry.get(workshop_id)
    if access is None or not secrets.compare_digest(access.invite_code.encode(), code.encode()):
        logger.info("workshop=%s join refused: wrong invite code", workshop_id)
        if not suspect:  # a first wrong guess from this address counts for the workshop too
            try:
                await shared.take(workshop_id, limits.guesses) if shared else limits.guesses.take(workshop_id)
            except VmvSyncError:
                pass
        return error_response(Forbidden("unknown workshop or wrong invite code"))
    limits.address_guesses.refund(guesser)
    if suspect:
        await shared.refund(workshop_id, limits.guesses) if shared else limits.guesses.refund(workshop_id)
    participant_id = new_id("p-")
    async with context.room(workshop_id) as room:
        now = time.time()
        await room.edit(lambda doc: schema.add_participant(doc, participant_id, name, role, now=now))
    token = context.tokens.issue(workshop_id, participant_id, name, role)
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
    """Remove a participant and rotate the invite code (else it re-joins under a new id)."""
    participant_id = request.path_params["participant_id"]
    context = server_context(request)
    registry = context.registry
    try:
        workshop_id = _workshop_id(request)
        if not _ID.fullmatch(participant_id):
            raise BadRequest(f"invalid participant id: {ID_RULE}")
        await _facilitator(request, workshop_id, "remove participants")
        access = await registry.get(workshop_id)
        if access is not None and access.facilitator_id == participant_id:
            raise Forbidden("the facilitator cannot be removed from their own workshop")
    except VmvSyncError as exc:
        return error_response(exc)
    await registry.revoke(workshop_id, participant_id)
    code = await registry.rotate(workshop_id)
    closed = context.manager.close_participant(
        workshop_id, participant_id, Unauthenticated("you were removed from this workshop")
    )
    logger.info(
        "workshop=%s participant=%s revoked (%d connections closed, invite code rotated)",
        workshop_id, participant_id, closed,
    )  # fmt: skip
    answer: dict[str, Any] = {"workshop_id": workshop_id, "participant_id": participant_id, "closed": closed}
    if code is not None:
        answer |= {"invite_code": code, "join_link": join_link(workshop_id, code)}
    return JSONResponse(answer)


async def invite(request: Request) -> Response:
    """The invite code and join link, for the facilitator."""

    async def current(registry: AccessRegistry, workshop_id: str) -> str | None:
        access = await registry.get(workshop_id)
        return None if access is None else access.invite_code

    return await _invite(request, "see the invite code", current)


async def rotate_invite(request: Request) -> Response:
    """A fresh invite code for the facilitator; the old code stops working at once."""
    answer = await _invite(request, "change the invite code", AccessRegistry.rotate)
    if answer.status_code == 200:
        logger.info("workshop=%s invite code rotated", request.path_params["workshop_id"])
    return answer


async def _invite(
    request: Request, action: str, code_of: Callable[[AccessRegistry, str], Awaitable[str | None]]
) -> Response:
    """The facilitator's invite answer: ``code_of`` gives the code (None: the workshop has none)."""
    try:
        workshop_id = _workshop_id(request)
        await _facilitator(request, workshop_id, action)
        code = await code_of(server_context(request).registry, workshop_id)
        if code is None:
            raise NotFound("this workshop has no invite code")
    except VmvSyncError as exc:
        return error_response(exc)
    return JSONResponse({"workshop_id": workshop_id, "invite_code": code, "join_link": join_link(workshop_id, code)})


def api_routes() -> list[BaseRoute]:
    return [
        Route("/api/workshops", create_workshop, methods=["POST"]),
        Route("/api/workshops/{workshop_id}/join", join_workshop, methods=["POST"]),
        Route("/api/workshops/{workshop_id}/invite", invite, methods=["GET"]),
        Route("/api/workshops/{workshop_id}/invite/rotate", rotate_invite, methods=["POST"]),
        Route(
            "/api/workshops/{workshop_id}/participants/{participant_id}/revoke",
            revoke_participant,
            methods=["POST"],
        ),
    ]

