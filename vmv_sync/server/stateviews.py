"""Views of ``/workshops/{id}/state`` beside the live one: as of a moment, and the chat.

- :func:`state_at` answers ``GET /workshops/{id}/state?at=T``: the derived state
  rebuilt from the stored updates as of unix time ``T`` (the rules are
  :mod:`vmv_sync.history`'s), in a worker thread on plain bytes (the pycrdt documents
  it makes never leave that thread), so a long history does not stall the event loop;
- :func:`chat_of_update` reads the chat for ``?messages=1`` the same way.

The live handler, which calls both, is in app.py; the export (exports.py) reads
history through :func:`moment_param` and :func:`updates_as_of` too.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..derived import compute_state
from ..errors import VmvSyncError
from ..export import chat_json
from ..history import HistoryUnavailable, doc_from_updates, load_updates_at, parse_at
from ..schema import read_workshop
from .context import server_context
from .httperrors import BadRequest, Unavailable, error_response

__all__ = ("state_at", "chat_of_update", "moment_param", "updates_as_of")


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


async def state_at(request: Request, workshop_id: str, at: str) -> Response:
    """``GET /workshops/{id}/state?at=T``: derived state as of ``T`` (same JSON shape).

    The caller has checked the workshop id and the token. 400 for a bad ``at``, 410
    (with ``earliest``) when ``T`` predates the kept history.
    """
    try:
        moment = moment_param(at)
        parts = await updates_as_of(request, workshop_id, moment)
    except VmvSyncError as exc:
        return error_response(exc)

    def build() -> dict[str, Any]:
        return compute_state(doc_from_updates(parts)).to_json()

    body = await anyio.to_thread.run_sync(build)
    return JSONResponse(body, headers={"x-vmv-as-of": repr(moment)})


def chat_of_update(update: bytes) -> list[dict[str, Any]]:
    """The chat of a document (as one update) in display order, for ``/state?messages=1``.

    Runs in a worker thread on plain bytes, like the export: reading thousands of
    messages out of a pycrdt document takes long enough to stall the event loop.
    """
    return chat_json(read_workshop(doc_from_updates([update])))
