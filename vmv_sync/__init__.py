"""vmv-sync: a real-time, offline-first CRDT sync engine for VMV workshops.

The public API is re-exported here; everything else is private to its module.
"""

from __future__ import annotations

from .client import Backoff, ConnectionState, WorkshopClient
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
