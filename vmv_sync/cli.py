"""The ``vmv-sync`` command line: one entry point, subcommands, help that reads well."""

from __future__ import annotations

import logging.config
import os
from pathlib import Path
from typing import Any

import click

from .config import Settings
from .errors import ConfigError

__all__ = ("main",)

LOGGING_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
    "root": {"handlers": ["stderr"], "level": "INFO"},
    "loggers": {"hypercorn.error": {"level": "WARNING"}},
}


def _settings(**flags: Any) -> Settings:
    try:
        return Settings.from_env(os.environ).with_overrides(**flags)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-level", default="INFO", show_default=True, help="Logging level.")
def main(log_level: str) -> None:
    """vmv-sync: real-time, offline-first sync for Vision-Mission-Values workshops."""
    config = dict(LOGGING_CONFIG)
    config["root"] = {"handlers": ["stderr"], "level": log_level.upper()}
    logging.config.dictConfig(config)


@main.command()
@click.option("--host", default=None, help="Interface to listen on [env VMV_HOST; default 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port; 0 picks a free one [env VMV_PORT; default 8000].")
@click.option("--db", type=click.Path(path_type=Path), default=None, help="SQLite file [env VMV_DB; default ./data/vmv.sqlite3].")
@click.option("--secret", default=None, help="HS256 token secret [env VMV_SECRET; default: generated beside the database].")
@click.option("--no-auth", is_flag=True, default=False, help="Accept every connection without a token (development only).")
def serve(host: str | None, port: int | None, db: Path | None, secret: str | None, no_auth: bool) -> None:
    """Start the sync server (same as `python server.py`)."""
    from .server import run

    settings = _settings(host=host, port=port, db=db, secret=secret, auth=False if no_auth else None)
    run(settings)


if __name__ == "__main__":  # pragma: no cover
    main()
