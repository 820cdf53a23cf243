"""The token secret kept in a file: ``secret.key`` in the data folder, made once (0600).

The server's secret comes from the settings, else from the store (``token_secret``:
one secret for every process on it, mirrored beside an SQLite file), else, for a
store that keeps none, from this file.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

__all__ = ("load_secret",)

logger = logging.getLogger(__name__)


def load_secret(secret: str | None, data_dir: Path) -> str:
    """The configured secret, or the one kept in ``data_dir/secret.key`` (made once, 0600)."""
    if secret:
        return secret
    path = data_dir / "secret.key"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    logger.info("generated a new token secret in %s", path)
    return value
