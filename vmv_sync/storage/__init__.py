"""Durable storage of Yjs updates per workshop (a leaf package: pycrdt-free, anyio + stdlib).

Seams (:mod:`.base`): :class:`RoomStore` is what a room needs (load, append,
compact, ``async with``); :class:`StoreAdmin` is maintenance (history, stats, list,
delete); :class:`Store` is both. Backends: :class:`SQLiteStore` (durable, group
commit) and :class:`MemoryStore` (tests); :func:`open_store` picks one from a URL.

Example:
    >>> async with open_store("data/vmv.sqlite3") as store:  # doctest: +SKIP
    ...     seq = await store.append("w1", [update], claims={client_id: "ann"})
"""

from __future__ import annotations

from .base import RoomStore, Store, StoreAdmin, StoredDoc, StoredUpdate, WorkshopInfo
from .memory import MemoryStore
from .sqlite import SQLiteStore
from .url import open_store

__all__ = (
    "RoomStore",
    "StoreAdmin",
    "Store",
    "StoredDoc",
    "StoredUpdate",
    "WorkshopInfo",
    "SQLiteStore",
    "MemoryStore",
    "open_store",
)
