"""The ``vmv-sync`` group and ``serve``: the server's entry point."""

from __future__ import annotations

import logging.config
from pathlib import Path

import click

from .common import (
    LOGGING_CONFIG,
    _BadSetting,
    _settings,
)


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
        from ..server import run
    except ImportError as exc:  # the core install: the server's packages are an extra
        raise _BadSetting(f"the server needs the 'server' extra ({exc}): pip install 'vmv-sync[server]'") from exc

    proxies = None if forwarded_allow_ips is None else tuple(p.strip() for p in forwarded_allow_ips.split(",") if p.strip())
    settings = _settings(
        host=host, port=port, db=db, data_dir=data_dir, secret=secret, auth=False if no_auth else None,
        log_format=log_format, forwarded_allow_ips=proxies, redis_url=redis_url, node_id=node_id,
    )
    run(settings)
