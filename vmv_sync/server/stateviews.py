"""The views of ``/workshops/{id}/state``: live, as of a moment, and the chat.

- :func:`live_state` answers ``GET /workshops/{id}/state``: the loaded room's derived
  state (``?at=T`` hands over to :func:`state_at`, ``?messages=1`` adds the chat);
- :func:`state_at` answers ``GET /workshops/{id}/state?at=T``: the derived state
  rebuilt from the stored updates as of unix time ``T`` (the rules are
  :mod:`vmv_sync.history`'s), in a worker thread on plain bytes (the pycrdt documents
  it makes never leave that thread), so a long history does not stall the event loop;
- :func:`chat_of_update` reads the chat for ``?messages=1`` the same way.

The export (exports.py) reads history through :func:`moment_param` and
:func:`updates_as_of` too.
"""

from __future__ import annotations

import time
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..derived import compute_state
from ..errors import TooManyMessages, VmvSyncError
from ..export import chat_json
from ..history import HistoryUnavailable, doc_from_updates, load_updates_at, parse_at
from ..ids import is_workshop_id
from ..schema import read_workshop
from .api import authorize
from .budgets import Budget, charged
from .context import server_context
from .httperrors import BadRequest, NotFound, Unavailable, bad_workshop_id, error_response

__all__ = ("state_routes", "live_state", "state_at", "chat_of_update", "moment_param", "updates_as_of")

#: the state vector of a document with nothing in it
EMPTY_STATE_VECTOR = b"\x00"


def state_routes() -> list[BaseRoute]:
    return [Route("/workshops/{workshop_id}/state", live_state)]


async def live_state(request: Request) -> Response:
    """``GET /workshops/{id}/state``: the loaded workshop's derived state.

    400 for a bad workshop id, 401/403 without a token for it, 404 for a workshop
    with no content (like /export), 503 when it cannot be loaded now.
    """
    workshop_id = request.path_params["workshop_id"]
    if not is_workshop_id(workshop_id):
        return bad_workshop_id()
    try:
        principal = await authorize(request, workshop_id)
    except VmvSyncError as exc:
        return error_response(exc)
    budget = server_context(request).manager.budgets.get(workshop_id, principal.participant_id)
    if "at" in request.query_params:  # a history view
        return await state_at(request, workshop_id, request.query_params["at"], budget)
    try:
        async with server_context(request).room(workshop_id) as room:
            # an empty state vector, not an encoded document: this check runs on every request
            if room.last_seq == 0 and room.doc.get_state() == EMPTY_STATE_VECTOR:
                return error_response(NotFound(f"workshop {workshop_id} has no content"))
            body = room.derived.state.to_json()
            wants_chat = request.query_params.get("messages") in ("1", "true")
            if wants_chat:
                budget.work.check()  # the chat costs what the document weighs: the reader pays
                started = time.perf_counter()
                chat = room.doc.get_update()
                budget.work.charge(time.perf_counter() - started)
    except VmvSyncError as exc:  # the workshop could not be loaded now, or the reader's budget is spent
        return error_response(exc if isinstance(exc, TooManyMessages) else Unavailable(str(exc)))
    if wants_chat:  # the chat in display order, read in a worker thread (a long chat)
        with charged(budget):
            body["messages"] = await anyio.to_thread.run_sync(chat_of_update, chat)
    return JSONResponse(body)


def moment_param(text: str) -> float:
    """The ``at`` query parameter as unix seconds; :class:`BadRequest` (400) if it is none."""
    try:
        return parse_at(text)
    except ValueError as exc:
        raise BadRequest(str(exc), "at") from exc


async def updates_as_of(request: Request, workshop_id: str, moment: float) -> list[bytes]:
    """The stored updates that rebuild the workshop as of ``moment``.

    Raises :class:`~vmv_sync.history.HistoryUnavailable` (410) when the moment
    predates the kept history, :class:`Unavailable` (503) when the store fails.
    """
    try:
        return await load_updates_at(server_context(request).store, workshop_id, moment)
    except HistoryUnavailable:
        raise
    except VmvSyncError as exc:
        raise Unavailable(str(exc)) from exc


async def state_at(request: Request, workshop_id: str, at: str, budget: Budget) -> Response:
    """``GET /workshops/{id}/state?at=T``: derived state as of ``T`` (same JSON shape).

    The caller has checked the workshop id and the token. 400 for a bad ``at``, 410
    (with ``earliest``) when ``T`` predates the kept history.
    """
    try:
        moment = moment_param(at)
        with charged(budget):  # rebuilding a past document costs what its history weighs
            parts = await updates_as_of(request, workshop_id, moment)

            def build() -> dict[str, Any]:
                return compute_state(doc_from_updates(parts)).to_json()

            body = await anyio.to_thread.run_sync(build)
    except VmvSyncError as exc:
        return error_response(exc)
    return JSONResponse(body, headers={"x-vmv-as-of": repr(moment)})


def chat_of_update(update: bytes) -> list[dict[str, Any]]:
    """The chat of a document (as one update) in display order, for ``/state?messages=1``.

    Runs in a worker thread on plain bytes, like the export: reading thousands of
    messages out of a pycrdt document takes long enough to stall the event loop.
    """
    return chat_json(read_workshop(doc_from_updates([update])))
