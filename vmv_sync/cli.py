"""The ``vmv-sync`` command line: one entry point, subcommands, help that reads well."""

from __future__ import annotations

import json
import logging.config
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

from .config import Settings
from .errors import ConfigError, VmvSyncError

__all__ = ("main",)

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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    default=None,
    help="Logging level [default: INFO for serve, WARNING for the other commands].",
)
@click.pass_context
def main(ctx: click.Context, log_level: str | None) -> None:
    """vmv-sync: real-time, offline-first sync for Vision-Mission-Values workshops."""
    level = log_level or ("INFO" if ctx.invoked_subcommand == "serve" else "WARNING")
    config = dict(LOGGING_CONFIG)
    config["root"] = {"handlers": ["stderr"], "level": level.upper()}
    logging.config.dictConfig(config)


@main.command()
@click.option("--host", default=None, help="Interface to listen on [env VMV_HOST; default 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port; 0 picks a free one [env VMV_PORT; default 8000].")
@click.option("--db", default=None, help="SQLite file, sqlite:///path, postgresql://... or memory: [env VMV_DB; default ./data/vmv.sqlite3].")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), default=None, help="Folder for files beside the store [env VMV_DATA_DIR; default: the SQLite file's folder, else ./data].")
@click.option("--secret", default=None, help="HS256 token secret [env VMV_SECRET; default: generated beside the database].")
@click.option("--no-auth", is_flag=True, default=False, help="Accept every connection without a token (development only).")
@click.option("--log-format", type=click.Choice(["plain", "json"]), default=None, help="Log lines as text or JSON [env VMV_LOG_FORMAT; default plain].")
@click.option(
    "--forwarded-allow-ips", default=None, metavar="ADDRS",
    help="Comma-separated proxy addresses/networks whose X-Forwarded-For is believed [env VMV_FORWARDED_ALLOW_IPS; default none].",
)
@click.option("--redis", "redis_url", default=None, metavar="URL", help="Redis URL: run as one of several processes sharing the store (docs/scaling.md) [env VMV_REDIS_URL; default none: one process].")
@click.option("--node-id", default=None, help="This process's name in the cluster [env VMV_NODE_ID; default HOST-PID].")
def serve(
    host: str | None, port: int | None, db: str | None, data_dir: Path | None, secret: str | None, no_auth: bool,
    log_format: str | None, forwarded_allow_ips: str | None, redis_url: str | None = None, node_id: str | None = None,
) -> None:
    """Start the sync server (same as `python server.py`)."""
    try:
        from .server import run
    except ImportError as exc:  # the core install: the server's packages are an extra
        raise _BadSetting(f"the server needs the 'server' extra ({exc}): pip install 'vmv-sync[server]'") from exc

    proxies = None if forwarded_allow_ips is None else tuple(p.strip() for p in forwarded_allow_ips.split(",") if p.strip())
    settings = _settings(
        host=host, port=port, db=db, data_dir=data_dir, secret=secret, auth=False if no_auth else None,
        log_format=log_format, forwarded_allow_ips=proxies, redis_url=redis_url, node_id=node_id,
    )
    run(settings)



@main.group()
def workshop() -> None:
    """Create workshops and mint tokens (the CLI side of the workshop flow)."""


@workshop.command("create")
@click.option("--title", required=True, help="The workshop's title.")
@click.option("--name", required=True, help="The facilitator's display name.")
@click.option("--value", "values", multiple=True, help="A value of the catalogue (repeat the option).")
@click.option("--url", default=None, help="The server's address for the links [default: http://VMV_HOST:VMV_PORT].")
@click.option("--db", type=click.Path(path_type=Path, dir_okay=False), default=None, help="SQLite file [env VMV_DB; default ./data/vmv.sqlite3].")
@click.option("--secret", default=None, help="Token secret [env VMV_SECRET; default: the one beside the database].")
def workshop_create(title: str, name: str, values: tuple[str, ...], url: str | None, db: Path | None, secret: str | None) -> None:
    """Create a workshop in the database; print its join link, invite code and facilitator link.

    Safe while the server runs: the workshop is new, so no server holds it in memory.
    The links use the server's address from VMV_HOST/VMV_PORT (as ``serve`` does)
    unless ``--url`` is given.
    """
    from pycrdt import Doc

    from .server.auth import AccessRegistry
    from .server.tokens import TokenIssuer
    from .server.workshops import create_workshop
    from .storage import open_store, token_secret

    settings = _settings(db=db, secret=secret)
    base = (url or f"http://{settings.host}:{settings.port}").rstrip("/")

    async def create() -> object:
        async with open_store(settings.db) as store:

            async def write(workshop_id: str, edit: object) -> None:
                doc: Doc[Any] = Doc()
                edit(doc)  # type: ignore[operator]
                await store.append(workshop_id, [doc.get_update()])

            return await create_workshop(
                title=title,
                name=name,
                values=values,
                registry=AccessRegistry(settings.db),
                tokens=TokenIssuer(settings.secret or await token_secret(store, settings.secret_dir)),
                write=write,
            )

    from .server.workshops import NewWorkshop

    created = _run(create)
    assert isinstance(created, NewWorkshop)
    click.echo(f"workshop:    {created.workshop_id}")
    click.echo(f"invite code: {created.invite_code}")
    click.echo(f"join link:   {base}{created.join_link}   (send this one to participants)")
    click.echo(f"facilitator: {base}{created.facilitator_link}")
    if url is None and not _answers(base):
        click.echo(f"note: no vmv-sync server answers at {base}; if yours runs elsewhere, use its address "
                   "instead (or pass --url)", err=True)  # fmt: skip


@workshop.command("token")
@click.argument("workshop_id")
@click.option("--name", required=True, help="Display name in the token.")
@click.option("--role", type=click.Choice(["facilitator", "participant", "observer"]), default="participant", show_default=True)
@click.option("--participant-id", default=None, help="Participant id (default: a new one).")
@click.option("--ttl", type=float, default=None, help="Lifetime in seconds [default: 30 days].")
@click.option("--db", type=click.Path(path_type=Path, dir_okay=False), default=None, help="SQLite file [env VMV_DB; default ./data/vmv.sqlite3].")
@click.option("--secret", default=None, help="Token secret [env VMV_SECRET; default: the one beside the database].")
def workshop_token(workshop_id: str, name: str, role: str, participant_id: str | None, ttl: float | None, db: Path | None, secret: str | None) -> None:
    """Print a token for one participant of a workshop (for bots, tests and scripts)."""
    from .ids import new_id
    from .server.tokens import TokenIssuer

    settings = _settings(db=db, secret=secret)
    pid = participant_id or new_id("p-")
    if _facilitator_of(settings, _check_id(workshop_id)) is None:
        raise click.ClickException(f"no workshop {workshop_id!r} in {settings.db}: create it first (workshop create)")
    click.echo(TokenIssuer(_token_secret(settings)).issue(_check_id(workshop_id), pid, name, role, ttl=ttl))


def _token_secret(settings: Settings) -> str:
    """The secret the server signs with: configured, else the store's (docs/storage.md)."""
    if settings.secret:
        return settings.secret
    from .storage import open_store, token_secret

    async def read() -> str:
        async with open_store(settings.db) as store:
            return await token_secret(store, settings.secret_dir)

    return _run(read)


def _answers(base: str) -> bool:
    from .server.removal import server_answers

    return server_answers(base)


def _facilitator_of(settings: Settings, workshop_id: str) -> str | None:
    """The workshop's facilitator, None for a workshop without invites (or no database file)."""
    from .server.auth import AccessRegistry
    from .server.removal import facilitator_of

    sqlite = settings.sqlite_path
    if sqlite is not None and not sqlite.is_file():
        return None
    return _run(lambda: facilitator_of(AccessRegistry(settings.db), workshop_id))


@main.group()
def participant() -> None:
    """Manage the people of a workshop."""


@participant.command("remove")
@click.argument("workshop_id")
@click.argument("participant_id")
@click.option("--url", default=None, help="The running server [default: http://VMV_HOST:VMV_PORT].")
@click.option("--db", type=click.Path(path_type=Path, dir_okay=False), default=None, help="SQLite file [env VMV_DB; default ./data/vmv.sqlite3].")
@click.option("--secret", default=None, help="Token secret [env VMV_SECRET; default: the one beside the database].")
def participant_remove(workshop_id: str, participant_id: str, url: str | None, db: Path | None, secret: str | None) -> None:
    """Remove PARTICIPANT_ID from WORKSHOP_ID: their tokens stop working, the invite code changes.

    Asks the running server (as the facilitator), which closes the participant's
    connections at once; with no server answering, records the removal in the
    database, for the next start. What the participant picked, rated and voted
    still counts (docs/web.md, "Removing people").
    """
    from .server.auth import AccessRegistry
    from .server.removal import remove_participant
    from .server.tokens import TokenIssuer

    settings = _settings(db=db, secret=secret)
    base = (url or f"http://{settings.host}:{settings.port}").rstrip("/")
    if _facilitator_of(settings, _check_id(workshop_id)) is None:
        raise click.ClickException(f"no workshop {workshop_id!r} with invites in {settings.db}")
    tokens = TokenIssuer(_token_secret(settings))
    done = _run(lambda: remove_participant(AccessRegistry(settings.db), tokens, workshop_id, participant_id, base))
    if done.through_server:
        click.echo(f"removed {participant_id} ({done.closed} connection(s) closed)")
    else:
        click.echo(f"removed {participant_id} in {settings.db} (no server answers at {base}: it applies at the next start)")
    click.echo(f"new invite code: {done.invite_code}")


# -- operations on the database (no server needed; safe while one runs) ---------------------
#
# Each command opens the SQLite file itself. WAL lets it read and write beside a running
# server; see docs/cli.md for what is safe when.

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
        from .history import parse_at

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
    from .storage import open_store

    async with open_store(path) as store:
        yield store


async def _updates(store: Any, workshop_id: str, at: float | None) -> list[bytes]:
    """The stored updates that rebuild a workshop, now or as of ``at``."""
    from .history import stored_parts, updates_at

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
    from .ids import ID_RULE, WORKSHOP_ID_RE

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


@main.command(short_help="Export a workshop's outcome as JSON or Markdown.")
@click.argument("workshop_id")
@click.option(
    "--format", "fmt", type=click.Choice(["json", "md", "html"]), default="json", show_default=True,
    help="json: stable, documented in docs/export.md; md: a report to read; html: the outcome with charts, to print.",
)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Write to this file instead of stdout.")
@click.option("--at", "at", type=_Moment(), default=None, help="Export as of an earlier moment. " + _AT_HELP)
@_db_option
def export(workshop_id: str, fmt: str, out: Path | None, at: float | None, db: Path | None) -> None:
    """Export a workshop's outcome: values, matrix, ballots, mission, vision, drafts, chat.

    Reads the database directly; every update the server has committed is included.

    \b
    Example:
      vmv-sync export Ab3xYz --format md --out smith-family.md
    """
    from .export import dumps_export, export_json, export_markdown
    from .history import doc_from_updates

    path = _db_path(db)
    _check_id(workshop_id)

    async def body() -> list[bytes]:
        async with _open(path) as store:
            return await _updates(store, workshop_id, at)

    doc = doc_from_updates(_run(body))
    stamp = time.time()
    if fmt == "md":
        text = export_markdown(doc, workshop_id=workshop_id, exported_at=stamp, as_of=at)
    elif fmt == "html":
        from .server.report import render_report

        text = render_report(doc, workshop_id=workshop_id, exported_at=stamp, as_of=at)
    else:
        text = dumps_export(export_json(doc, workshop_id=workshop_id, exported_at=stamp, as_of=at))
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out} ({len(text.encode())} bytes)", err=True)


@main.command("list", short_help="List workshops: updates, size, last activity.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per workshop, for scripts.")
@_db_option
def list_workshops(as_json: bool, db: Path | None) -> None:
    """List the stored workshops with their updates, size and last activity.

    SIZE counts stored updates and snapshots; UPDATES includes updates kept for history.
    """
    path = _db_path(db)

    async def body() -> list[Any]:
        async with _open(path) as store:
            return list(await store.list_workshops())

    infos = _run(body)
    if as_json:
        for info in infos:
            click.echo(json.dumps({
                "workshop_id": info.workshop_id,
                "updates": info.updates,
                "bytes": info.bytes,
                "snapshot_bytes": info.snapshot_bytes,
                "last_activity": info.last_activity,
            }))
        return
    if not infos:
        click.echo(f"no workshops in {path}")
        return
    rows = [
        (i.workshop_id, str(i.updates), _size(i.bytes + i.snapshot_bytes), _when(i.last_activity))
        for i in infos
    ]
    header = ("WORKSHOP", "UPDATES", "SIZE", "LAST ACTIVITY")
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(4)]
    for row in [header, *rows]:
        click.echo(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]}")


@main.command(short_help="Print a workshop's document as JSON, now or earlier.")
@click.argument("workshop_id")
@click.option("--at", "at", type=_Moment(), default=None, help="Show the document as of an earlier moment. " + _AT_HELP)
@_db_option
def inspect(workshop_id: str, at: float | None, db: Path | None) -> None:
    """Print a workshop's document as JSON: every root of the contract, by name.

    With --at, the document is rebuilt from the stored updates as of that moment, as
    long as compaction has kept them (VMV_HISTORY_SECONDS sets the window).
    """
    from .history import doc_from_updates
    from .schema import bind_roots

    path = _db_path(db)
    _check_id(workshop_id)

    async def body() -> list[bytes]:
        async with _open(path) as store:
            return await _updates(store, workshop_id, at)

    roots = bind_roots(doc_from_updates(_run(body)))
    document = {name: _sorted_keys(root.to_py()) for name, root in roots.by_name().items()}
    click.echo(json.dumps(document, ensure_ascii=False, indent=2))


def _progress(items: list[str]) -> Iterator[str]:
    from tqdm import tqdm

    # a bar only for a person at a terminal: in a log file or a pipe it is noise
    yield from tqdm(items, desc="compacting", unit="workshop", file=sys.stderr, disable=len(items) < 2 or not sys.stderr.isatty())


@main.command(short_help="Fold update logs into snapshots (one or every workshop).")
@click.argument("workshop_id", required=False)
@click.option(
    "--keep-history", type=float, default=None, metavar="SECONDS",
    help="Keep the updates of the last SECONDS for history views [env VMV_HISTORY_SECONDS; default 0].",
)
@_db_option
def compact(workshop_id: str | None, keep_history: float | None, db: Path | None) -> None:
    """Fold a workshop's update log into a snapshot (every workshop if no ID is given).

    Safe while the server runs: only updates already in the new snapshot are deleted,
    and the server keeps appending after them.
    """
    from .history import doc_from_updates, stored_parts

    settings = _settings(db=db, history_seconds=keep_history)
    path = _db_path(settings.db)
    if workshop_id is not None:
        _check_id(workshop_id)

    async def body() -> tuple[int, int, int, int]:
        done = skipped = folded = size = 0
        async with _open(path) as store:
            ids = [workshop_id] if workshop_id else [i.workshop_id for i in await store.list_workshops()]
            for wid in _progress(ids):
                stored = await store.load(wid)
                if stored.update_count == 0:
                    skipped += 1
                    continue
                snapshot = doc_from_updates(stored_parts(stored)).get_update()
                await store.compact(wid, snapshot, stored.last_seq, keep_history_seconds=settings.history_seconds)
                done += 1
                folded += stored.update_count
                size += len(snapshot)
        return done, skipped, folded, size

    done, skipped, folded, size = _run(body)
    click.echo(
        f"compacted {done} workshop(s): {folded} updates into {_size(size)} of snapshots; "
        f"{skipped} had nothing to compact"
    )


@main.command(short_help="Copy the database consistently while the server runs.")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@_db_option
def backup(file: Path, db: Path | None) -> None:
    """Copy the database to FILE, consistently, while the server keeps running.

    The copy holds every update committed before the backup began. It is one
    self-contained SQLite file; an existing FILE is replaced. The token secret
    (secret.key beside the database) is not in it: keep it too, or pass --secret.
    """
    path = _db_path(db)

    async def body() -> None:
        async with _open(path) as store:
            await store.backup(file)

    started = time.perf_counter()
    _run(body)
    click.echo(f"backed up {path} to {file} ({_size(file.stat().st_size)}) in {time.perf_counter() - started:.2f} s")


@main.command(short_help="Replace the database with a backup (server stopped).")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace the database if it exists.")
@_db_option
def restore(file: Path, force: bool, db: Path | None) -> None:
    """Make the database a copy of the backup FILE. Stop the server first.

    FILE is checked (a vmv-sync database, integrity) before anything is replaced.
    Refused while a server runs on the database (it would keep writing to the old file).
    """
    from .server.dblock import database_in_use
    from .storage import SQLiteStore

    path = _db_path(db, must_exist=False)
    if database_in_use(path):
        raise click.ClickException(f"a vmv-sync server is running on {path}: stop it, then restore")

    async def body() -> None:
        await SQLiteStore.restore(file, path, overwrite=force)

    _run(body)
    click.echo(f"restored {file} to {path}")


if __name__ == "__main__":  # pragma: no cover
    main()
