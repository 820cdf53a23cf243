"""What must hold for any frame given to the pure parsers (shared by pytest, atheris, the CLI).

:func:`check_frame` runs a frame through everything the server runs on it before a
room sees it, and raises :class:`Violation` when an invariant breaks:

- only :class:`~vmv_sync.errors.VmvSyncError` (in practice MalformedMessage) escapes
  ``parse_message``, ``decode_state_vector``, ``decode_awareness_update`` and
  ``summarize_update``: never ValueError, IndexError, RecursionError, OverflowError,
  MemoryError, UnicodeError;
- what the parsers accept, pycrdt handles: a sync step 1's state vector can be
  answered (``Doc.get_update``), and an awareness state is JSON that JSON.parse
  reads (no NaN or Infinity literals);
- the update summary describes what pycrdt applies: on a fresh document, every
  client pycrdt integrates is one the summary lists, never past the summary's end
  clock, and every root pycrdt creates is one the summary names (the write guard
  judges updates by the summary);
- a frame takes bounded time (``max_seconds``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from pycrdt import Doc

from vmv_sync.errors import VmvSyncError
from vmv_sync.protocol import (
    Awareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode_awareness_update,
    decode_state_vector,
    parse_message,
)
from vmv_sync.protocol.update import summarize_update

__all__ = ("Violation", "Outcome", "check_frame", "check_update", "check_state_vector", "check_awareness")


class Violation(AssertionError):
    """An invariant of the parsers broke; the message says which and on what input."""


@dataclass(frozen=True, slots=True)
class Outcome:
    #: "accepted" or the exception class name that refused it (MalformedMessage, ...)
    result: str
    #: message kind parsed ("SyncStep1", ...) or "" when parse_message refused it
    kind: str
    seconds: float


def _escaped(what: str, data: bytes, exc: BaseException) -> Violation:
    return Violation(f"{what} let {type(exc).__name__} escape ({exc!r}) on {data[:200].hex()}")


def check_state_vector(sv: bytes, *, with_pycrdt: bool = True) -> str:
    try:
        decode_state_vector(sv)
    except VmvSyncError as exc:
        return type(exc).__name__
    except Exception as exc:
        raise _escaped("decode_state_vector", sv, exc) from exc
    if with_pycrdt:
        try:
            Doc().get_update(sv)
        except Exception as exc:
            raise Violation(f"decode_state_vector accepted {sv[:200].hex()} but pycrdt refuses it: {exc}") from exc
    return "accepted"


def check_update(update: bytes, *, with_pycrdt: bool = True) -> str:
    try:
        summary = summarize_update(update)
    except VmvSyncError as exc:
        return type(exc).__name__
    except Exception as exc:
        raise _escaped("summarize_update", update, exc) from exc
    if not with_pycrdt:
        return "accepted"
    doc: Doc = Doc()
    try:
        doc.apply_update(update)
    except Exception:  # pycrdt refusing is fine: the server turns it into 4400
        return "accepted"
    state = decode_state_vector(doc.get_state())
    for client, clock in state.items():
        span = summary.structs.get(client)
        if span is None or clock > span[1]:
            raise Violation(
                f"pycrdt integrated client {client} up to {clock}, the summary says {span}: {update[:300].hex()}"
            )
    extra = set(doc.keys()) - summary.roots
    if extra:
        raise Violation(f"pycrdt created roots {sorted(extra)!r} the summary does not name: {update[:300].hex()}")
    return "accepted"


def check_awareness(payload: bytes) -> str:
    try:
        entries = decode_awareness_update(payload)
    except VmvSyncError as exc:
        return type(exc).__name__
    except Exception as exc:
        raise _escaped("decode_awareness_update", payload, exc) from exc
    for entry in entries:
        if entry.state is not None and not isinstance(entry.state, dict):
            raise Violation(f"awareness state {entry.state_json[:100]!r} is not an object")
        try:  # the text is relayed as is: JSON.parse must read it (no NaN, Infinity)
            json.loads(entry.state_json, parse_constant=_no_constant)
        except ValueError as exc:
            raise Violation(f"awareness state {entry.state_json[:100]!r} is not standard JSON: {exc}") from exc
    return "accepted"


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def check_frame(frame: bytes | str, *, with_pycrdt: bool = True, max_seconds: float = 2.0) -> Outcome:
    """Run one frame through the parsers; raise :class:`Violation` if an invariant breaks."""
    started = time.perf_counter()
    if isinstance(frame, str):  # the server refuses text frames before parsing
        return Outcome("text", "", 0.0)
    kind = ""
    try:
        message = parse_message(frame)
    except VmvSyncError as exc:
        result = type(exc).__name__
    except Exception as exc:
        raise _escaped("parse_message", frame, exc) from exc
    else:
        kind = type(message).__name__
        if isinstance(message, SyncStep1):
            # the server decodes it (rooms.py) before pycrdt answers it
            result = check_state_vector(message.state_vector, with_pycrdt=with_pycrdt)
        elif isinstance(message, (SyncStep2, SyncUpdate)):
            result = check_update(message.update, with_pycrdt=with_pycrdt)
        elif isinstance(message, Awareness):
            result = check_awareness(message.update)
        else:
            result = "accepted"
    seconds = time.perf_counter() - started
    if seconds > max_seconds:
        raise Violation(f"{len(frame)}-byte frame took {seconds:.2f} s: {frame[:200].hex()}")
    return Outcome(result, kind, seconds)
