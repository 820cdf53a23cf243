"""Views of ``/workshops/{id}/state`` beside the live one: as of a moment, and the chat.

- :func:`state_at` answers ``GET /workshops/{id}/state?at=T``: the derived state
  rebuilt from the stored updates as of unix time ``T`` (the rules are
  :mod:`vmv_sync.history`'s), in a worker thread on plain bytes (the pycrdt documents
  it makes never leave that thread), so a long history does not stall the event loop;
- :func:`chat_of_update` reads the chat for ``?messages=1`` the same way.

The live handler, which calls both, is in app.py.
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

__all__ = ("state_at", "chat_of_update")


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)



async def state_at(request: Request, workshop_id: str, at: str) -> Response:
    """``GET /workshops/{id}/state?at=T``: derived state as of ``T`` (same JSON shape).

    The caller has checked the workshop id and the token. 400 for a bad ``at``, 410
    (with ``earliest``) when ``T`` predates the kept history.
    """
    try:
        moment = parse_at(at)
    except ValueError as exc:
        return _error(400, str(exc))
    try:
        parts = await load_updates_at(server_context(request).store, workshop_id, moment)
    except HistoryUnavailable as exc:
        return _error(410, str(exc), earliest=exc.earliest)
    except VmvSyncError as exc:
        return _error(503, str(exc))

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
