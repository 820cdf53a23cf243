"""Which document updates are local edits: captured, applied from the server, or stray.

The client observes its document once. An update made while :meth:`EditCapture.capture`
is active is a local edit to persist; one applied inside :meth:`EditCapture.remote` came
from the server (or the local store) and is persisted elsewhere; anything else is a
direct write to ``client.doc`` outside the client's methods, kept as a *stray* and
persisted with the next edit, because it would otherwise never reach the server.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pycrdt import Doc, Subscription

__all__ = ("EditCapture",)

logger = logging.getLogger(__name__)


class EditCapture:
    """Sorts the updates of one document (see the module docstring).

    Args:
        doc: the document to observe.
        changed: called after every update, whatever its kind (views drop caches).
        label: for log lines.
    """

    def __init__(self, doc: Doc[Any], changed: Callable[[], None], label: str = "") -> None:
        self.doc = doc
        self._changed = changed
        self._label = label
        self._remote = False
        self._capture: list[bytes] | None = None
        self._stray: list[bytes] = []
        self._subscription: Subscription | None = doc.observe(self._on_update)

    def _on_update(self, event: Any) -> None:
        self._changed()
        if self._remote:
            return
        if self._capture is not None:
            self._capture.append(event.update)
        else:
            logger.warning("workshop=%s doc edited outside client.edit()", self._label)
            self._stray.append(event.update)

    @contextmanager
    def remote(self) -> Iterator[None]:
        """Updates applied inside are not local edits."""
        self._remote = True
        try:
            yield
        finally:
            self._remote = False

    def apply_remote(self, updates: list[bytes]) -> None:
        with self.remote():
            for update in updates:
                self.doc.apply_update(update)

    @contextmanager
    def capture(self) -> Iterator[list[bytes]]:
        """Collect the local updates made inside (after any stray ones)."""
        captured, self._stray = self._stray, []
        self._capture = captured
        try:
            yield captured
        finally:
            self._capture = None

    def close(self) -> None:
        if self._subscription is not None:
            self.doc.unobserve(self._subscription)
            self._subscription = None
