"""Log output for operators: plain or JSON lines, an access log, and no tokens anywhere.

The library never configures logging (style.md C5); :func:`configure_log_output` is
called by the server's entry point (serve.py) after the CLI's dictConfig and only
swaps the formatter of the handlers already installed, so ``--log-level`` keeps
working and tests that embed the app see no change.

Tokens must never reach a log file: whoever reads the logs (a log shipper, a support
engineer) could otherwise open any workshop. Both formatters scrub the finished line,
tracebacks included, of anything shaped like a JWT and of ``token=`` values, so a
future log call that quotes a URL or an exception cannot leak one. The access log
writes the query string only with its secret parameters' values replaced.

:class:`AccessLog` is a pure ASGI middleware that writes one line per HTTP request
(method, path, status, bytes, duration, client) and one per WebSocket session when
it ends (path, handshake status, close code and who closed, duration, client). The
client is the TCP peer or, behind a trusted proxy, the forwarded address
(clientaddr.py). On the WebSocket it wraps ``send`` with a plain function that hands
frames straight through (no extra coroutine on the fan-out path, which the eager
send in endpoint.py drives by hand) and only notes the accept and close messages.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ("AccessLog", "JsonFormatter", "PlainFormatter", "configure_log_output", "redact", "ACCESS_LOGGER")

#: the access log's logger name (filter or route it on its own)
ACCESS_LOGGER = "vmv_sync.access"

access_logger = logging.getLogger(ACCESS_LOGGER)

#: a compact JWS (header.payload.signature, base64url, header starting '{"')
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
#: a token passed as a query or form parameter, or a bearer header
_TOKEN_PARAM = re.compile(r"(?i)((?:access_|id_|refresh_)?token[=:]\s*|bearer\s+)[^\s&\"',;]+")
#: query parameters whose values the access log never writes
_SECRET_PARAMS = frozenset({"token", "access_token", "code", "invite_code", "secret"})


def redact(text: str) -> str:
    """``text`` with every JWT and ``token=`` value replaced by ``[redacted]``."""
    return _TOKEN_PARAM.sub(r"\1[redacted]", _JWT.sub("[redacted]", text))


class PlainFormatter(logging.Formatter):
    """The CLI's text lines (time, level, logger, message), tokens scrubbed."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (ISO 8601 UTC), ``level``, ``logger``,
    ``message``, the access log's fields, and ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, ensure_ascii=False, default=str))


def configure_log_output(log_format: Literal["plain", "json"]) -> None:
    """Give every handler of the root logger the chosen (scrubbing) formatter."""
    formatter: logging.Formatter = JsonFormatter() if log_format == "json" else PlainFormatter()
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)


def _query(scope: Scope) -> str:
    raw = scope.get("query_string", b"").decode("latin-1")
    if not raw:
        return ""
    pairs = [(k, "[redacted]" if k.lower() in _SECRET_PARAMS else v) for k, v in parse_qsl(raw, keep_blank_values=True)]
    return "?" + urlencode(pairs, safe="[]")


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "-"


class AccessLog:
    """ASGI middleware: one access line per HTTP request and per WebSocket session."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        seen = {"status": 0, "bytes": 0}

        async def noting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = int(message["status"])
            elif message["type"] == "http.response.body":
                seen["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, noting_send)
        finally:
            status = seen["status"] or 500  # no response started: the app failed
            fields = {
                "kind": "http", "method": scope.get("method", "-"), "path": scope.get("path", "") + _query(scope),
                "status": status, "bytes": seen["bytes"], "ms": round((time.perf_counter() - started) * 1000, 1),
                "client": _client(scope),
            }  # fmt: skip
            access_logger.info(
                "http %s %s status=%d bytes=%d ms=%.1f client=%s",
                fields["method"], fields["path"], status, seen["bytes"], fields["ms"], fields["client"],
                extra={"fields": fields},
            )  # fmt: skip

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        seen: dict[str, Any] = {"status": 0, "close": None, "by": None}

        def noting_send(message: Message) -> Awaitable[None]:
            kind = message["type"]
            if kind != "websocket.send":  # frames pass straight through
                if kind == "websocket.accept":
                    seen["status"] = 101
                elif kind == "websocket.close" and seen["close"] is None:
                    seen["close"], seen["by"] = int(message.get("code", 1000)), "server"
                    seen["status"] = seen["status"] or 403  # closed before accepting: a denial
                elif kind == "websocket.http.response.start":
                    seen["status"] = int(message["status"])
            return send(message)

        async def noting_receive() -> Message:
            message = await receive()
            if message["type"] == "websocket.disconnect" and seen["close"] is None:
                seen["close"], seen["by"] = int(message.get("code", 1005)), "client"
            return message

        try:
            await self.app(scope, noting_receive, noting_send)
        finally:
            fields = {
                "kind": "websocket", "path": scope.get("path", ""), "status": seen["status"] or 500,
                "close": seen["close"], "closed_by": seen["by"] or "-",
                "seconds": round(time.perf_counter() - started, 3), "client": _client(scope),
            }  # fmt: skip
            access_logger.info(
                "ws %s status=%d close=%s by=%s seconds=%.3f client=%s",
                fields["path"], fields["status"], fields["close"], fields["closed_by"], fields["seconds"],
                fields["client"], extra={"fields": fields},
            )  # fmt: skip
