"""The token secret kept by the store, mirrored in the data folder's ``secret.key``.

Why both: every server process on one store must sign and check tokens with the same
secret, so the store keeps it (``Directory.get_or_create_secret``); the contract
(section 6) and the docs also promise a generated secret "kept in a file beside the
database (mode 0600)", which backups, the CLI and older versions read. So with a
data folder the store's secret is written to ``secret.key`` when that file is
missing, and a ``secret.key`` left by an older version is imported into a store that
has none yet, so the tokens it signed stay valid.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import anyio
import anyio.to_thread

from .base import Directory

__all__ = ("token_secret", "SECRET_FILE")

logger = logging.getLogger(__name__)

#: the file name of the mirrored secret inside the data folder
SECRET_FILE = "secret.key"


async def token_secret(directory: Directory, data_dir: Path | None) -> str:
    """The store's token secret (made once); mirrored in ``data_dir/secret.key`` if given.

    Example:
        >>> secret = await token_secret(store, Path("data"))  # doctest: +SKIP
    """
    path = None if data_dir is None else data_dir / SECRET_FILE
    kept = None if path is None else await anyio.to_thread.run_sync(_read, path)
    value = await directory.get_or_create_secret(kept)
    if path is not None and kept is None:
        await anyio.to_thread.run_sync(_write, path, value)
    elif kept is not None and kept != value:
        logger.warning("%s differs from the store's token secret; the store's is used", path)
    return value


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def _write(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process wrote it meanwhile: it holds the same store's value
        return
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    logger.info("kept the store's token secret in %s", path)
