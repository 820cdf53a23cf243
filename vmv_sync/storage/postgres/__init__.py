"""The PostgreSQL backend: :class:`PostgresStore` (needs ``vmv-sync[postgres]``, i.e. asyncpg).

Modules: :mod:`.store` (lifecycle, group commit), :mod:`.schema` (migrations and the
one-round-trip batch function), :mod:`.queries` (reads, compaction, directory).
"""

from __future__ import annotations

try:
    import asyncpg  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("the PostgreSQL store needs asyncpg: pip install 'vmv-sync[postgres]'") from exc

from .schema import SCHEMA_VERSION
from .store import PostgresStore

__all__ = ("PostgresStore", "SCHEMA_VERSION")
