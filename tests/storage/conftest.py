"""The storage suite's backend registry: every contract test runs over every backend.

``backend`` is parametrized over :data:`BACKENDS` (memory, sqlite, postgres); each
gives a fresh database per test and a factory of store *instances* on it, so the
two-instance contract tests open two stores on one database (two processes on one
PostgreSQL database, two stores on one SQLite file, two MemoryStores sharing one
MemoryDatabase). ``store`` is one open instance.

PostgreSQL: each test gets its own database (random name, created from template0,
dropped WITH (FORCE) at the end) on ``VMV_TEST_PG_URL`` (default: loopback, trust
auth, database ``test``; ``scripts/services`` starts one). Not reachable is a
failure, never a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from vmv_sync.storage import MemoryDatabase, MemoryStore, PostgresStore, SQLiteStore

from .helpers import FakeClock

pytestmark = pytest.mark.anyio

#: the admin database the tests create their own databases from
PG_URL = os.environ.setdefault("VMV_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def pg_url(database: str) -> str:
    """``PG_URL`` pointing at another database."""
    parts = urlsplit(PG_URL)
    return urlunsplit(parts._replace(path="/" + database))


@asynccontextmanager
async def fresh_pg_database() -> AsyncIterator[str]:
    """A new, empty database for one test; dropped (connections and all) at the end."""
    try:
        admin = await asyncpg.connect(PG_URL)
    except (OSError, asyncpg.PostgresError) as exc:
        raise RuntimeError(f"PostgreSQL is not reachable at {PG_URL}: run scripts/services ({exc})") from exc
    name = f"vmv_test_{uuid.uuid4().hex[:16]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        try:
            yield pg_url(name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@dataclass(frozen=True)
class Backend:
    """One test's database on one backend, and how to open store instances on it."""

    name: str
    #: a new (not yet entered) store instance on this test's database
    open: Callable[[], Any]
    #: what ``open_store`` takes for this database
    url: str


@asynccontextmanager
async def _memory(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Backend]:
    database = MemoryDatabase()
    yield Backend("memory", lambda: MemoryStore(clock=clock, database=database), "memory:")


@asynccontextmanager
async def _sqlite(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Backend]:
    path = tmp_path / "sub" / "vmv.sqlite3"
    yield Backend("sqlite", lambda: SQLiteStore(path, clock=clock), f"sqlite:///{path}")


@asynccontextmanager
async def _postgres(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Backend]:
    async with fresh_pg_database() as url:
        yield Backend("postgres", lambda: PostgresStore(url, clock=clock), url)


#: the registry: name -> how to make a fresh database for one test
BACKENDS = {"memory": _memory, "sqlite": _sqlite, "postgres": _postgres}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=sorted(BACKENDS))
async def backend(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Backend]:
    async with BACKENDS[request.param](tmp_path, clock) as made:
        yield made


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Any]:
    async with backend.open() as made:
        yield made


@pytest.fixture
async def pg_database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database URL, for the PostgreSQL-only tests."""
    async with fresh_pg_database() as url:
        yield url
