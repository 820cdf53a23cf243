"""``open_store``: one function that picks a backend from a setting such as ``VMV_DB``.

Why a URL: the server, the CLI and the client take one string for "where the data
lives", and a backend is a scheme here, not a new flag in each. The PostgreSQL
backend is imported only when a ``postgresql://`` URL asks for it, so the SQLite
default never needs asyncpg.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from typing import Literal

from ..errors import ConfigError
from .base import StoreBackend
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = ("open_store", "postgres_url", "SUPPORTED_URLS")

#: what ``open_store`` accepts, for error messages and docs
SUPPORTED_URLS = (
    "postgresql://user@host:5432/dbname",
    "sqlite:///relative/path",
    "sqlite:////absolute/path",
    "a plain path",
    "memory:",
)

#: ``scheme:`` at the start; two letters at least, so a Windows drive is a path
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


def postgres_url(url: str | os.PathLike[str]) -> str | None:
    """``url`` if it names a PostgreSQL database (``postgresql://`` or ``postgres://``), else None.

    The one reading of "is this PostgreSQL" that ``open_store`` and the webhook outbox share.
    """
    text = os.fspath(url)
    match = _SCHEME.match(text)
    if (
        match is not None
        and match.group(1).lower() in ("postgresql", "postgres")
        and text[match.end() :].startswith("//")
    ):
        return text
    return None


def open_store(
    url: str | os.PathLike[str],
    *,
    busy_timeout: float = 5.0,
    synchronous: Literal["FULL", "NORMAL"] = "FULL",
    clock: Callable[[], float] = time.time,
) -> StoreBackend:
    """A store (not yet entered: use ``async with``) for ``url``.

    ``"postgresql://..."`` (or ``"postgres://..."``) gives a
    :class:`~vmv_sync.storage.postgres.PostgresStore`; ``"sqlite:///rel/path"``,
    ``"sqlite:////abs/path"`` or a plain path give a :class:`SQLiteStore` with
    ``busy_timeout`` and ``synchronous``; ``"memory:"`` (or ``":memory:"``) gives a
    :class:`MemoryStore`. ``clock`` goes to every backend. Anything
    else raises :class:`~vmv_sync.errors.ConfigError` naming the scheme, never the
    whole URL (it may hold a password).

    Example:
        >>> async with open_store("sqlite:///data/vmv.sqlite3") as store:  # doctest: +SKIP
        ...     seq = await store.append("w1", [update])
    """
    text = os.fspath(url)
    if text in ("memory:", ":memory:"):
        return MemoryStore(clock=clock)
    if postgres_url(text) is not None:
        from .postgres import PostgresStore

        return PostgresStore(text, clock=clock)
    match = _SCHEME.match(text)
    if match is not None:
        scheme = match.group(1)
        if scheme.lower() != "sqlite" or not text.startswith(f"{scheme}:///") or len(text) == len(scheme) + 4:
            raise ConfigError(f"unsupported store URL (scheme {scheme!r}): use {', '.join(SUPPORTED_URLS)}")
        text = text[len(scheme) + 4 :]
    if not text:
        raise ConfigError("empty store URL: use " + ", ".join(SUPPORTED_URLS))
    try:
        return SQLiteStore(text, busy_timeout=busy_timeout, synchronous=synchronous, clock=clock)
    except ValueError as exc:
        raise ConfigError(f"store URL: {exc}") from exc
