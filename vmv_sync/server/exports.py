"""The workshop's outcome over HTTP: ``GET /workshops/{id}/export`` and ``/report``.

``?format=json|md|html[&at=T]``: the outcome report (:mod:`vmv_sync.export`), live or
as of an earlier moment (:mod:`vmv_sync.history`); ``/report`` is the ``html`` one,
with charts (:mod:`.report`). The document is rebuilt and rendered in a worker
thread on plain bytes, so a long workshop does not stall the event loop.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from ..errors import VmvSyncError
from ..export import export_json, export_markdown
from ..history import doc_from_updates
from ..ids import is_workshop_id
from ..protocol import EMPTY_UPDATE
from .api import authorize
from .budgets import charged
from .context import server_context
from .httperrors import BadRequest, NotFound, Unavailable, bad_workshop_id, error_response
from .report import render_report, report_css
from .stateviews import moment_param, updates_as_of

__all__ = ("export_routes", "EXPORT_FORMATS")

logger = logging.getLogger(__name__)

EXPORT_FORMATS = ("json", "md", "html")


async def _current_update(request: Request, workshop_id: str) -> tuple[bytes, int]:
    """The live document of a workshop as one update, and its last stored seq."""
    try:
        async with server_context(request).room(workshop_id) as room:
            return room.doc.get_update(), room.last_seq
    except VmvSyncError as exc:
        raise Unavailable(str(exc)) from exc


async def _parts(request: Request, workshop_id: str, as_of: float | None) -> list[bytes]:
    """The updates to export: the live document, or the stored ones as of ``as_of``."""
    if as_of is not None:
        parts = await updates_as_of(request, workshop_id, as_of)
        if not parts:
            raise NotFound(f"workshop {workshop_id} had no content at {as_of}")
        return parts
    update, last_seq = await _current_update(request, workshop_id)
    if last_seq == 0 and update == EMPTY_UPDATE:
        raise NotFound(f"workshop {workshop_id} has no content")
    return [update]


async def export(request: Request) -> Response:
    """``GET /workshops/{id}/export?format=json|md[&at=T]``."""
    workshop_id = request.path_params["workshop_id"]
    if not is_workshop_id(workshop_id):
        return bad_workshop_id()
    # /report is the printable outcome (server/report.py): /export?format=html
    kind = "html" if request.url.path.endswith("/report") else request.query_params.get("format", "json")
    at_text = request.query_params.get("at")
    try:
        principal = await authorize(request, workshop_id)
        if kind not in EXPORT_FORMATS:
            raise BadRequest(f"'format' must be one of {', '.join(EXPORT_FORMATS)}, not {kind!r}", "format")
        as_of = None if at_text is None else moment_param(at_text)
        budget = server_context(request).manager.budgets.get(workshop_id, principal.participant_id)
        with charged(budget):  # the reader's work budget pays for the export (budgets.py)
            report = await _build(request, workshop_id, kind, as_of)
    except VmvSyncError as exc:
        return error_response(exc)
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


async def _build(request: Request, workshop_id: str, kind: str, as_of: float | None) -> str | dict[str, Any]:
    """The export of ``kind``, built in a worker thread from plain update bytes."""
    parts = await _parts(request, workshop_id, as_of)
    exported_at = time.time()

    def build() -> str | dict[str, Any]:
        doc = doc_from_updates(parts)
        if kind == "md":
            return export_markdown(doc, workshop_id=workshop_id, exported_at=exported_at, as_of=as_of)
        if kind == "html":
            return render_report(doc, workshop_id=workshop_id, exported_at=exported_at, as_of=as_of, css_href="/report.css")
        return export_json(doc, workshop_id=workshop_id, exported_at=exported_at, as_of=as_of)

    return await anyio.to_thread.run_sync(build)


def export_routes() -> list[BaseRoute]:
    """The export routes, and the report's style sheet."""
    return [
        Route("/workshops/{workshop_id}/export", export, methods=["GET"]),
        Route("/workshops/{workshop_id}/report", export, methods=["GET"]),
        Route("/report.css", report_css, methods=["GET"]),
    ]
