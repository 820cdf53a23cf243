"""Edits the server makes itself (join, creation, containers), applied in a room's pipeline.

A server edit takes the clients' path, like hocuspocus' ``DirectConnection``: queued
in the room's inbox, applied between two client updates, committed and relayed with
the batch; it is never checked by the write rules and never acknowledged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream
from pycrdt import Doc, merge_updates

__all__ = ("ServerEdit", "apply_server_edit", "fail_queued_edits")


@dataclass(slots=True)
class ServerEdit:
    """An edit made by the server itself (join, create): same path, no guard."""

    edit: Callable[[Doc[Any]], Any]
    done: anyio.Event
    reason: str = "edit"
    error: BaseException | None = None


def apply_server_edit(doc: Doc[Any], item: ServerEdit) -> bytes | None:
    """Run ``item``'s edit on ``doc`` in one transaction: the update it wrote, if any.

    What the edit raises is kept in ``item.error`` (for its caller); what it wrote
    before raising stays in the document and is returned like any other update.
    """
    captured: list[bytes] = []
    subscription = doc.observe(lambda event: captured.append(event.update))
    try:
        with doc.transaction():
            item.edit(doc)
    except Exception as exc:
        item.error = exc
    finally:
        doc.unobserve(subscription)
    if not captured:
        return None
    return captured[0] if len(captured) == 1 else merge_updates(*captured)


def fail_queued_edits(inbox: MemoryObjectReceiveStream[Any], error: Callable[[], BaseException]) -> None:
    """Drain a failed room's (closed) inbox: each server edit still queued fails with ``error()``.

    Its caller would otherwise wait forever; other items are dropped.
    """
    while True:
        try:
            item = inbox.receive_nowait()
        except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
            return
        if isinstance(item, ServerEdit):
            item.error = item.error or error()
            item.done.set()
