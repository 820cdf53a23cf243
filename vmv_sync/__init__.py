"""vmv-sync: a real-time, offline-first CRDT sync engine for VMV workshops.

The public API is re-exported here; everything else is private to its module.
"""

from __future__ import annotations

import typing as _typing

from .config import Settings
from .errors import (
    ClientError,
    CloseError,
    ConfigError,
    Forbidden,
    MalformedMessage,
    MessageTooLarge,
    StorageError,
    TooManyMessages,
    Unauthenticated,
    VmvSyncError,
)
from .export import export_json, export_markdown

if _typing.TYPE_CHECKING:
    from .client import Backoff, ConnectionState, WorkshopClient
    from .server import create_app

__version__ = "0.1.0"

__all__ = (
    "__version__",
    "Settings",
    "create_app",
    "export_json",
    "export_markdown",
    "VmvSyncError",
    "CloseError",
    "MalformedMessage",
    "Unauthenticated",
    "Forbidden",
    "MessageTooLarge",
    "TooManyMessages",
    "StorageError",
    "ConfigError",
    "ClientError",
    "WorkshopClient",
    "ConnectionState",
    "Backoff",
)


#: names imported on first use: the server needs the `server` extra (starlette,
#: uvicorn) and the client the `client` extra (websockets), so that ``import
#: vmv_sync`` works with either alone (pyproject.toml)
_LAZY = {
    "create_app": "server",
    "WorkshopClient": "client",
    "ConnectionState": "client",
    "Backoff": "client",
}


def __getattr__(name: str) -> _typing.Any:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'vmv_sync' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{where}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
