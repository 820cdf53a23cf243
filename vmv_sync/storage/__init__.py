"""Durable storage of Yjs updates per workshop (a leaf package: pycrdt-free, anyio + stdlib).

Seams (:mod:`.base`): :class:`RoomStore` is what a room needs (load, append,
compact, ``async with``); :class:`StoreAdmin` is maintenance (history, stats, list,
delete); :class:`Store` is both. Every backend is also a :class:`Directory` (token
secret, invites, revocations) and an :class:`EpochFence` (fencing epochs). Backends:
:class:`SQLiteStore` (durable, group commit, the embedded default),
:class:`PostgresStore` (several processes on one database; imported on first use,
it needs asyncpg) and :class:`MemoryStore` (tests); :func:`open_store` picks one
from a URL.

Example:
    >>> async with open_store("data/vmv.sqlite3") as store:  # doctest: +SKIP
    ...     seq = await store.append("w1", [update], claims={client_id: "ann"})
"""

from __future__ import annotations

import typing as _typing

from .base import (
    Directory,
    EpochFence,
    Invite,
    RoomStore,
    Store,
    StoreAdmin,
    StoreBackend,
    StoredDoc,
    StoredUpdate,
    WorkshopInfo,
)
from .memory import MemoryDatabase, MemoryStore
from .refusals import ClaimConflict, StaleEpoch
from .secret import token_secret
from .sqlite import SQLiteStore
from .url import open_store

if _typing.TYPE_CHECKING:
    from .postgres import PostgresStore

__all__ = (
    "RoomStore",
    "StoreAdmin",
    "Store",
    "StoreBackend",
    "StoredDoc",
    "StoredUpdate",
    "WorkshopInfo",
    "SQLiteStore",
    "MemoryStore",
    "MemoryDatabase",
    "PostgresStore",
    "Directory",
    "EpochFence",
    "Invite",
    "ClaimConflict",
    "StaleEpoch",
    "open_store",
    "token_secret",
)


def __getattr__(name: str) -> _typing.Any:
    """``PostgresStore`` on first use: importing the package must not need asyncpg."""
    if name == "PostgresStore":
        from .postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
