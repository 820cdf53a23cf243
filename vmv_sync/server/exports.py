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

from ..errors import CloseError, VmvSyncError
from ..export import export_json, export_markdown
from ..history import HistoryUnavailable, doc_from_updates, load_updates_at, parse_at
from ..ids import ID_RULE, is_workshop_id
from ..protocol import EMPTY_UPDATE
from .api import authorize, error_response
from .context import server_context
from .report import render_report, report_css

__all__ = ("export_routes", "EXPORT_FORMATS")

logger = logging.getLogger(__name__)

EXPORT_FORMATS = ("json", "md", "html")


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)



def _bad_id(workshop_id: str) -> bool:
    return not is_workshop_id(workshop_id)



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


def export_routes() -> list[BaseRoute]:
    """The export routes, and the report's style sheet."""
    return [
        Route("/workshops/{workshop_id}/export", export, methods=["GET"]),
        Route("/workshops/{workshop_id}/report", export, methods=["GET"]),
        Route("/report.css", report_css, methods=["GET"]),
    ]
