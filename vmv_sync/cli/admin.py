"""The operator's commands on a stopped or running database: export, list, inspect, compact, backup, restore."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from .common import (
    _AT_HELP,
    _check_id,
    _db_option,
    _db_path,
    _Moment,
    _open,
    _progress,
    _run,
    _settings,
    _size,
    _sorted_keys,
    _updates,
    _when,
)
from .main import main


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
    from ..export import dumps_export, export_json, export_markdown
    from ..history import doc_from_updates

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
        from ..server.report import render_report

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
    from ..history import doc_from_updates
    from ..schema import bind_roots

    path = _db_path(db)
    _check_id(workshop_id)

    async def body() -> list[bytes]:
        async with _open(path) as store:
            return await _updates(store, workshop_id, at)

    roots = bind_roots(doc_from_updates(_run(body)))
    document = {name: _sorted_keys(root.to_py()) for name, root in roots.by_name().items()}
    click.echo(json.dumps(document, ensure_ascii=False, indent=2))


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
    from ..history import doc_from_updates, stored_parts

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
    from ..server.dblock import database_in_use
    from ..storage import SQLiteStore

    path = _db_path(db, must_exist=False)
    if database_in_use(path):
        raise click.ClickException(f"a vmv-sync server is running on {path}: stop it, then restore")

    async def body() -> None:
        await SQLiteStore.restore(file, path, overwrite=force)

    _run(body)
    click.echo(f"restored {file} to {path}")


if __name__ == "__main__":  # pragma: no cover
    main()
