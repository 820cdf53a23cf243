"""The SQLite backend: :class:`SQLiteStore` and its schema version.

Modules: :mod:`.store` (lifecycle, threading, group commit), :mod:`.schema`
(migrations, connections), :mod:`.reads`, :mod:`.writes` (batch commit, compaction,
delete) and :mod:`.backup`. ``vmv_sync.storage.sqlite.SQLiteStore`` keeps working
from when this was one module.
"""

from __future__ import annotations

from .schema import SCHEMA_VERSION
from .store import SQLiteStore

__all__ = ("SQLiteStore", "SCHEMA_VERSION")
