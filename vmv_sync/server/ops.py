"""Operations endpoints: the workshop's outcome, its history, and the server's metrics.

- ``GET /workshops/{id}/export?format=json|md|html[&at=T]``: the outcome report
  (:mod:`vmv_sync.export`), live or as of an earlier moment; ``GET
  /workshops/{id}/report`` is the ``html`` one, with charts (:mod:`.report`);
- ``GET /workshops/{id}/state?at=T``: :func:`state_at`, called by the ``/state``
  handler of the app when ``at`` is given: derived state rebuilt from the stored
  updates as of unix time ``T``;
- ``GET /metrics``: Prometheus text (:mod:`vmv_sync.server.metrics`).

History rules (docs/operations.md): the store keeps a base state and the updates
after it with their commit times (``Store.history``). The state at ``T`` is the base
plus every update committed at or before ``T``; it is exact for ``T`` at or after the
first kept update, for any ``T`` when nothing was compacted yet, and for ``T`` not in
the past. Anything else predates the kept history: 410 with the earliest moment that
can be shown. Rebuilding runs in a worker thread on plain bytes (the pycrdt documents
it makes never leave that thread), so a long history does not stall the event loop.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from prometheus_client import CONTENT_TYPE_LATEST
from pycrdt import Doc, merge_updates
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from ..derived import compute_state
from ..errors import CloseError, ServerError, VmvSyncError
from ..export import chat_json, export_json, export_markdown
from ..ids import ID_RULE, is_workshop_id
from ..protocol import EMPTY_UPDATE
from ..schema import read_workshop
from ..storage import Store, StoredUpdate
from .api import authorize, error_response
from .context import server_context
from .metrics import Metrics
from .report import render_report, report_css

__all__ = (
    "ops_routes",
    "state_at",
    "HistoryUnavailable",
    "parse_at",
    "updates_at",
    "doc_from_updates",
    "load_updates_at",
    "EXPORT_FORMATS",
    "chat_of_update",
)

logger = logging.getLogger(__name__)

EXPORT_FORMATS = ("json", "md", "html")
#: contract section 2 (the same rule as the app's; this module cannot import the app)


class HistoryUnavailable(VmvSyncError):
    """A moment older than the history the store still keeps (compacted away)."""

    def __init__(self, workshop_id: str, at: float, earliest: float | None) -> None:
        if earliest is None:
            detail = "only the current state is kept"
        else:
            detail = f"the earliest moment kept is {earliest:.3f}"
        super().__init__(
            f"workshop {workshop_id}: its history before {at:.3f} was compacted; {detail}"
        )
        self.workshop_id = workshop_id
        self.at = at
        self.earliest = earliest


def parse_at(text: str) -> float:
    """A moment given as unix seconds (``1717171717.5``) or ISO 8601 (naive means UTC).

    Raises ``ValueError`` with a one-line explanation for anything else.

    Example:
        >>> parse_at("1970-01-01T00:01:00Z")
        60.0
    """
    raw = text.strip()
    try:
        value = float(raw)
    except ValueError:
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise ValueError(
                f"'at' must be unix seconds or an ISO 8601 time, not {text!r}"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        value = moment.timestamp()
    if not math.isfinite(value):
        raise ValueError(f"'at' must be a finite time, not {text!r}")
    return value


def updates_at(
    workshop_id: str,
    base: bytes | None,
    updates: Sequence[StoredUpdate],
    at: float,
    *,
    now: float,
) -> list[bytes]:
    """The updates whose merge is the document as of ``at`` (``Store.history`` output in).

    The state at ``at`` is the base plus the updates up to the last one committed at or
    before ``at`` (commit times are informative, so a clock that stepped back is read
    the way docs/storage.md says). Raises :class:`HistoryUnavailable` when ``at``
    predates what is kept.
    """
    last = -1
    for i, update in enumerate(updates):
        if update.stored_at <= at:
            last = i
    latest = at >= now  # not in the past: the latest state, whatever the clocks said
    if latest:
        last = len(updates) - 1
    elif last < 0 and base is not None:
        raise HistoryUnavailable(workshop_id, at, updates[0].stored_at if updates else None)
    parts = [base] if base is not None else []
    parts.extend(u.update for u in updates[: last + 1])
    return parts


def doc_from_updates(parts: Sequence[bytes]) -> Doc[Any]:
    """A new document holding the merge of ``parts`` (an empty one for none)."""
    doc: Doc[Any] = Doc()
    if parts:
        doc.apply_update(parts[0] if len(parts) == 1 else merge_updates(*parts))
    return doc


async def load_updates_at(store: Store, workshop_id: str, at: float) -> list[bytes]:
    """The stored updates that rebuild ``workshop_id`` as of ``at`` (see :func:`updates_at`)."""
    base, updates = await store.history(workshop_id)
    return updates_at(workshop_id, base, updates, at, now=time.time())


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _bad_id(workshop_id: str) -> bool:
    return not is_workshop_id(workshop_id)


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


async def _current_update(request: Request, workshop_id: str) -> tuple[bytes, int]:
    """The live document of a workshop as one update, and its last stored seq."""
    manager = server_context(request).manager
    room = await manager.acquire(workshop_id)
    try:
        return room.doc.get_update(), room.last_seq
    finally:
        manager.release(room)


async def export(request: Request) -> Response:
    """``GET /workshops/{id}/export?format=json|md[&at=T]``."""
    workshop_id = request.path_params["workshop_id"]
    if _bad_id(workshop_id):
        return _error(400, f"invalid workshop id: {ID_RULE}")
    try:
        await authorize(request, workshop_id)
    except CloseError as exc:
        return error_response(exc)
    # /report is the printable outcome (server/report.py): /export?format=html
    kind = "html" if request.url.path.endswith("/report") else request.query_params.get("format", "json")
    if kind not in EXPORT_FORMATS:
        return _error(400, f"'format' must be one of {', '.join(EXPORT_FORMATS)}, not {kind!r}")
    at_text = request.query_params.get("at")
    as_of: float | None = None
    try:
        if at_text is None:
            update, last_seq = await _current_update(request, workshop_id)
            if last_seq == 0 and update == EMPTY_UPDATE:
                return _error(404, f"workshop {workshop_id} has no content")
            parts = [update]
        else:
            as_of = parse_at(at_text)
            parts = await load_updates_at(server_context(request).store, workshop_id, as_of)
            if not parts:
                return _error(404, f"workshop {workshop_id} had no content at {as_of}")
    except ValueError as exc:
        return _error(400, str(exc))
    except HistoryUnavailable as exc:
        return _error(410, str(exc), earliest=exc.earliest)
    except VmvSyncError as exc:
        return _error(503, str(exc))
    exported_at = time.time()

    def build() -> str | dict[str, Any]:
        doc = doc_from_updates(parts)
        if kind == "md":
            return export_markdown(doc, workshop_id=workshop_id, exported_at=exported_at, as_of=as_of)
        if kind == "html":
            return render_report(doc, workshop_id=workshop_id, exported_at=exported_at, as_of=as_of, css_href="/report.css")
        return export_json(doc, workshop_id=workshop_id, exported_at=exported_at, as_of=as_of)

    report = await anyio.to_thread.run_sync(build)
    logger.info("workshop=%s exported as %s%s", workshop_id, kind, "" if as_of is None else f" as of {as_of}")
    if isinstance(report, str) and kind == "html":
        return HTMLResponse(report)
    if isinstance(report, str):
        return PlainTextResponse(
            report,
            media_type="text/markdown; charset=utf-8",
            headers={"content-disposition": f'inline; filename="{workshop_id}.md"'},
        )
    return JSONResponse(report)


async def metrics(request: Request) -> Response:
    """``GET /metrics``: Prometheus text format (unauthenticated, like /healthz)."""
    registry: Metrics = request.app.state.metrics  # made with the app: counts from the first request
    try:
        context = server_context(request)
    except ServerError:  # before start-up or after shutdown: no rooms, no store
        body = registry.render(rooms=0, connections=0, store=None)
    else:
        rooms = context.manager.rooms
        connections = sum(len(room.connections) for room in rooms.values())
        body = registry.render(rooms=len(rooms), connections=connections, store=context.store)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def ops_routes() -> list[BaseRoute]:
    """The routes of this module, for ``create_app``'s route list."""
    return [
        Route("/workshops/{workshop_id}/export", export, methods=["GET"]),
        Route("/workshops/{workshop_id}/report", export, methods=["GET"]),
        Route("/report.css", report_css, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
