"""The workshop web page: ``/`` (create or join), ``/w/{workshop_id}`` and its bundle.

The HTML shells live in ``web/src/*.html`` (committed) and the script and style
bundle in ``web/dist/`` (built by ``scripts/setup`` with esbuild, not committed).
An installed wheel carries both as ``vmv_sync/_web`` (setup.py copies them), which
is looked at first; a checkout (editable install) serves ``web/`` directly.
The shells are served even when the bundle is missing, with a visible banner that
says how to build it, so a fresh clone never shows a blank page.
"""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from ..ids import is_workshop_id
from .httperrors import bad_workshop_id

__all__ = ("WEB_DIR", "web_routes")

logger = logging.getLogger(__name__)

def _find_web_dir() -> Path:
    """The wheel's copy of the page (``vmv_sync/_web``) if there is one, else the checkout's ``web/``."""
    packaged = Path(__file__).resolve().parents[1] / "_web"
    if (packaged / "src" / "index.html").is_file():
        return packaged
    return Path(__file__).resolve().parents[2] / "web"


#: where the page is served from: inside the installed package, or ``web/`` at the
#: repository root (the package sits beside it)
WEB_DIR = _find_web_dir()

_MARKER = "<!--BUNDLE-MISSING-->"
#: no inline style: the Content-Security-Policy (server/securityheaders.py) allows
#: styles only from /static, and without the bundle there is no stylesheet either
_MISSING = (
    '<p class="bundle-missing" role="alert"><strong>The page\'s script bundle is missing: run '
    "<code>scripts/setup</code> (it needs Node.js) to build <code>web/dist</code>, "
    "then reload.</strong></p>"
)
_NO_STORE = {"cache-control": "no-store"}
_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".webmanifest": "application/manifest+json",
}


def _bundle_ready(dist: Path) -> bool:
    return (dist / "app.js").is_file() and (dist / "app.css").is_file()


def _page(name: str, web_dir: Path) -> Response:
    """One HTML shell, with the missing-bundle banner filled in when needed."""
    try:
        html = (web_dir / "src" / name).read_text(encoding="utf-8")
    except OSError as exc:
        logger.error("web page %s unreadable: %s", name, exc)
        return HTMLResponse("<h1>The web page files are missing (web/src)</h1>", status_code=500)
    ready = _bundle_ready(web_dir / "dist")
    if not ready:
        logger.warning("web bundle missing in %s: run scripts/setup", web_dir / "dist")
    html = html.replace(_MARKER, "" if ready else _MISSING)
    return HTMLResponse(html, headers=_NO_STORE)


def web_routes(web_dir: Path = WEB_DIR) -> list[BaseRoute]:
    """Routes of the web page: ``/``, ``/w/{workshop_id}``, ``/web/config``, ``/static/*``,
    ``/sw.js`` (the service worker, scope ``/``) and ``/manifest.webmanifest``.

    ``/web/config`` tells the page whether the server requires tokens, so it can
    use the create/join API or, with ``--no-auth``, a locally chosen identity.
    """

    async def home(request: Request) -> Response:
        return _page("index.html", web_dir)

    async def workshop(request: Request) -> Response:
        if not is_workshop_id(request.path_params["workshop_id"]):
            return bad_workshop_id()
        return _page("workshop.html", web_dir)

    async def config(request: Request) -> Response:
        settings = getattr(request.app.state, "settings", None)
        auth = bool(getattr(settings, "auth", True))
        return JSONResponse({"auth": auth, "bundle": _bundle_ready(web_dir / "dist")}, headers=_NO_STORE)

    dist = (web_dir / "dist").resolve()

    async def static(request: Request) -> Response:
        # Starlette's StaticFiles refuses to serve from a missing directory with a 500;
        # a missing bundle must be a plain 404 (the page itself explains what to do).
        target = (dist / request.path_params["path"]).resolve()
        if not target.is_relative_to(dist) or target.suffix not in _TYPES or not target.is_file():
            return PlainTextResponse("not found (is the web bundle built? run scripts/setup)", status_code=404)
        return FileResponse(target, media_type=_TYPES[target.suffix], headers={"cache-control": "no-cache"})

    async def service_worker(request: Request) -> Response:
        # at the root so that its scope can be "/" (the app shell for a cold offline start)
        target = dist / "sw.js"
        if not target.is_file():
            return PlainTextResponse("not found (is the web bundle built? run scripts/setup)", status_code=404)
        headers = {"cache-control": "no-cache", "service-worker-allowed": "/"}
        return FileResponse(target, media_type="text/javascript", headers=headers)

    async def manifest(request: Request) -> Response:
        target = dist / "manifest.webmanifest"
        if not target.is_file():
            return PlainTextResponse("not found (is the web bundle built? run scripts/setup)", status_code=404)
        return FileResponse(target, media_type=_TYPES[".webmanifest"], headers={"cache-control": "no-cache"})

    return [
        Route("/", home, methods=["GET"]),
        Route("/sw.js", service_worker, methods=["GET"]),
        Route("/manifest.webmanifest", manifest, methods=["GET"]),
        Route("/w/{workshop_id}", workshop, methods=["GET"]),
        Route("/web/config", config, methods=["GET"]),
        Route("/static/{path:path}", static, methods=["GET", "HEAD"]),
    ]
