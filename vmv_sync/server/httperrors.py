"""HTTP errors: the one place that turns any of the package's errors into a status and a body.

Every HTTP refusal of the server is :func:`error_response`'s JSON body,
``{"error": sentence, "code"?, "field"?, "limit"?, "retry_after"?, "earliest"?}``.
The API's own refusals are :class:`~vmv_sync.errors.CloseError` subclasses, so a
client sees the same close code (``"code"`` in the JSON body) whether a rule
stopped its WebSocket or its HTTP request; each names its HTTP status, and the
errors shared with the WebSocket (tokens, write rules) map by close code. A
workshop id outside the contract's rule gets one answer everywhere, the WebSocket
upgrade included: :func:`bad_workshop_id`.
"""

from __future__ import annotations

import math
from typing import Any

from starlette.responses import JSONResponse

from ..errors import CloseError, MalformedMessage, MessageTooLarge, TooManyMessages, VmvSyncError
from ..history import HistoryUnavailable
from ..ids import ID_RULE

__all__ = (
    "BadRequest",
    "InvalidField",
    "UnsupportedMediaType",
    "PayloadTooLarge",
    "BodyTimeout",
    "RateLimited",
    "NotFound",
    "Unavailable",
    "error_response",
    "http_status",
    "invalid_workshop_id",
    "bad_workshop_id",
)


class BadRequest(MalformedMessage):
    """A request the API cannot read: not JSON, a missing field, a wrong type (400)."""

    http_status = 400

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.field = field


class InvalidField(BadRequest):
    """A well-formed field past one of the API's bounds (too long, too many): 422."""

    http_status = 422

    def __init__(self, field: str, reason: str, limit: int | None = None) -> None:
        super().__init__(reason, field)
        self.limit = limit


class UnsupportedMediaType(BadRequest):
    """A body that is not declared as ``application/json`` (415)."""

    http_status = 415


class PayloadTooLarge(MessageTooLarge):
    """A request body over ``max_body_bytes`` (413); the connection is closed after it."""

    http_status = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is over the {limit} byte limit")
        self.limit = limit


class BodyTimeout(MalformedMessage):
    """A body that did not arrive within :data:`~vmv_sync.server.bodyreader.BODY_TIMEOUT` seconds (408)."""

    http_status = 408


class RateLimited(TooManyMessages):
    """Past a rate limit (429); ``retry_after`` says when one more request will pass."""

    http_status = 429

    def __init__(self, what: str, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"too many {what}; try again in {self.retry_after} s")


class NotFound(VmvSyncError):
    """Nothing of that name (404)."""

    http_status = 404

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unavailable(VmvSyncError):
    """The server cannot serve this now: the store failed, or the workshop could not be opened (503)."""

    http_status = 503


#: close codes (contract section 2 and extensions) -> HTTP status, for errors
#: raised by code the WebSocket shares with HTTP (tokens, write rules, limits)
_STATUS = {4400: 400, 4401: 401, 4403: 403, 4408: 408, 4409: 503, 4413: 413, 4429: 429, 1001: 503, 1011: 500}


def http_status(error: VmvSyncError) -> int:
    """The HTTP status that answers ``error``: its own if it names one, else by close code."""
    status = getattr(error, "http_status", None)
    if isinstance(status, int):
        return status
    if isinstance(error, HistoryUnavailable):
        return 410
    if isinstance(error, CloseError):
        return _STATUS.get(error.code, 400 if 4000 <= error.code < 5000 else 500)
    return 500


def error_response(error: VmvSyncError) -> JSONResponse:
    """The JSON answer to ``error``: ``{"error": sentence, "code"?, "field"?, "limit"?}``.

    ``code`` is the close code a WebSocket would have been closed with (so a client
    handles both the same way); ``field`` names the input to correct; a moment before
    the kept history (410) says the ``earliest`` one kept (``null``: none).
    """
    body: dict[str, Any] = {"error": getattr(error, "reason", None) or str(error)}
    if isinstance(error, CloseError):
        body["code"] = error.code
    field = getattr(error, "field", None)
    if field is not None:
        body["field"] = field
    limit = getattr(error, "limit", None)
    if limit is not None:
        body["limit"] = limit
    if isinstance(error, HistoryUnavailable):
        body["earliest"] = error.earliest
    headers: dict[str, str] = {}
    if isinstance(error, RateLimited):
        headers["retry-after"] = str(error.retry_after)
        body["retry_after"] = error.retry_after
    if isinstance(error, (PayloadTooLarge, BodyTimeout)):
        headers["connection"] = "close"  # uvicorn then closes instead of reading on
    return JSONResponse(body, status_code=http_status(error), headers=headers)


def invalid_workshop_id() -> BadRequest:
    """The refusal of a workshop id outside the contract's rule (400, close code 4400)."""
    return BadRequest(f"invalid workshop id: {ID_RULE}")


def bad_workshop_id() -> JSONResponse:
    """The answer to a workshop id outside the contract's rule, on every route.

    Example:
        >>> bad_workshop_id().status_code
        400
    """
    return error_response(invalid_workshop_id())
