"""``workshop create``, ``workshop token`` and ``participant remove``: the facilitator's commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..config import Settings
from .common import (
    _check_id,
    _run,
    _settings,
)
from .main import main


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

    from ..server.auth import AccessRegistry
    from ..server.tokens import TokenIssuer
    from ..server.workshops import create_workshop
    from ..storage import open_store, token_secret

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

    from ..server.workshops import NewWorkshop

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
    from ..ids import new_id
    from ..server.tokens import TokenIssuer

    settings = _settings(db=db, secret=secret)
    pid = participant_id or new_id("p-")
    if _facilitator_of(settings, _check_id(workshop_id)) is None:
        raise click.ClickException(f"no workshop {workshop_id!r} in {settings.db}: create it first (workshop create)")
    click.echo(TokenIssuer(_token_secret(settings)).issue(_check_id(workshop_id), pid, name, role, ttl=ttl))


def _token_secret(settings: Settings) -> str:
    """The secret the server signs with: configured, else the store's (docs/storage.md)."""
    if settings.secret:
        return settings.secret
    from ..storage import open_store, token_secret

    async def read() -> str:
        async with open_store(settings.db) as store:
            return await token_secret(store, settings.secret_dir)

    return _run(read)


def _answers(base: str) -> bool:
    from ..server.removal import server_answers

    return server_answers(base)


def _facilitator_of(settings: Settings, workshop_id: str) -> str | None:
    """The workshop's facilitator, None for a workshop without invites (or no database file)."""
    from ..server.auth import AccessRegistry
    from ..server.removal import facilitator_of

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
    from ..server.auth import AccessRegistry
    from ..server.removal import remove_participant
    from ..server.tokens import TokenIssuer

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
