"""vmv-sync: a real-time, offline-first CRDT sync engine for VMV workshops.

The public API is re-exported here; everything else is private to its module.

A lazy root (PEP 562, as anyio and starlette do): only the errors are imported
with the package; every other public name is imported on first use. So importing
a leaf (``import vmv_sync.storage``, ``vmv_sync.protocol``) loads that leaf and
nothing of the web stack, and ``import vmv_sync`` works with either extra alone:
the server needs ``server`` (starlette, uvicorn), the client ``client``
(websockets; pyproject.toml). tests/test_package.py checks both in a fresh process.
"""

from __future__ import annotations

import importlib
import typing as _typing

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

if _typing.TYPE_CHECKING:
    from .client import Backoff, ConnectionState, WorkshopClient
    from .config import Settings
    from .export import export_json, export_markdown
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

#: public name -> the submodule that defines it, imported on first use
_LAZY = {
    "Settings": "config",
    "export_json": "export",
    "export_markdown": "export",
    "create_app": "server",
    "WorkshopClient": "client",
    "ConnectionState": "client",
    "Backoff": "client",
}


def __getattr__(name: str) -> _typing.Any:
    """Import a public name's module on first use, then keep the name here.

    Unknown names raise AttributeError, which is also what lets
    ``from vmv_sync import schema`` fall through to importing the submodule.
    """
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'vmv_sync' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{where}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
