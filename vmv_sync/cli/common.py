"""What the commands share: logging, settings with one-line errors, the database option, moments, the event loop."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio
import click

from ..config import Settings
from ..errors import ConfigError, VmvSyncError

LOGGING_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
    "root": {"handlers": ["stderr"], "level": "INFO"},
    "loggers": {"uvicorn.error": {"level": "WARNING"}},
}


class _BadSetting(click.ClickException):
    """A setting the command cannot run with: one line ``Error: ...`` and exit code 2."""

    exit_code = 2


def _settings(**flags: Any) -> Settings:
    try:
        return Settings.from_env(os.environ).with_overrides(**flags)
    except ConfigError as exc:
        raise _BadSetting(str(exc)) from exc



T = TypeVar("T")

_DB_HELP = "SQLite file [env VMV_DB; default ./data/vmv.sqlite3]."
_AT_HELP = "An earlier moment: unix seconds or ISO 8601 (UTC unless a zone is given)."


def _db_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--db", type=click.Path(path_type=Path, dir_okay=False), default=None, help=_DB_HELP)(fn)


class _Moment(click.ParamType):
    """A point in time for --at, as unix seconds (float)."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        from ..history import parse_at

        try:
            return parse_at(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _db_path(db: str | Path | None, *, must_exist: bool = True) -> Path:
    settings = _settings(db=db)
    path = settings.sqlite_path
    if path is None:
        raise click.ClickException(f"this command needs an SQLite file; VMV_DB/--db names another store ({settings.db.split(':', 1)[0]}:)")
    if must_exist and not path.is_file():
        raise click.ClickException(f"no database at {path} (use --db or VMV_DB)")
    return path


def _run(fn: Callable[[], Awaitable[T]]) -> T:
    """Run an async command body; library errors become a one-line CLI error."""
    try:
        return anyio.run(fn)
    except VmvSyncError as exc:
        raise click.ClickException(str(exc)) from exc


@asynccontextmanager
async def _open(path: Path) -> Any:
    from ..storage import open_store

    async with open_store(path) as store:
        yield store


async def _updates(store: Any, workshop_id: str, at: float | None) -> list[bytes]:
    """The stored updates that rebuild a workshop, now or as of ``at``."""
    from ..history import stored_parts, updates_at

    if at is not None:
        base, updates = await store.history(workshop_id)
        if base is None and not updates:
            raise click.ClickException(f"no workshop {workshop_id!r} in the database")
        return updates_at(workshop_id, base, updates, at, now=time.time())
    stored = await store.load(workshop_id)
    if stored.last_seq == 0 and stored.snapshot is None:
        raise click.ClickException(f"no workshop {workshop_id!r} in the database")
    return stored_parts(stored)


def _check_id(workshop_id: str) -> str:
    from ..ids import ID_RULE, WORKSHOP_ID_RE

    if not WORKSHOP_ID_RE.fullmatch(workshop_id):
        raise click.BadParameter(ID_RULE, param_hint="WORKSHOP_ID")
    return workshop_id


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _sorted_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(v) for v in value]
    return value



def _progress(items: list[str]) -> Iterator[str]:
    from tqdm import tqdm

    # a bar only for a person at a terminal: in a log file or a pipe it is noise
    yield from tqdm(items, desc="compacting", unit="workshop", file=sys.stderr, disable=len(items) < 2 or not sys.stderr.isatty())
