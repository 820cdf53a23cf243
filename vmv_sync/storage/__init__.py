"""Durable storage of Yjs updates per workshop (a leaf package: pycrdt-free, anyio + stdlib).

Example:
    >>> async with open_store("data/vmv.sqlite3") as store:  # doctest: +SKIP
    ...     seq = await store.append("w1", [update])
"""

from __future__ import annotations

import os

from .base import Store, StoredDoc, StoredUpdate, WorkshopInfo
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = (
    "Store",
    "StoredDoc",
    "StoredUpdate",
    "WorkshopInfo",
    "SQLiteStore",
    "MemoryStore",
    "open_store",
)


def open_store(url_or_path: str | os.PathLike[str], *, busy_timeout: float = 5.0) -> Store:
    """A store (not yet entered) for a setting such as ``VMV_DB``.

    ``"memory:"`` or ``":memory:"`` gives a :class:`MemoryStore`; ``"sqlite:///rel/path"``,
    ``"sqlite:////abs/path"`` or a plain path gives a :class:`SQLiteStore`.
    """
    text = os.fspath(url_or_path)
    if text in ("memory:", ":memory:"):
        return MemoryStore()
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    elif "://" in text:
        raise ValueError(f"unsupported store URL {text!r}: use a path or sqlite:///path")
    return SQLiteStore(text, busy_timeout=busy_timeout)
