"""Which database a running server holds, so ``vmv-sync restore`` can refuse to replace it.

A restore under a running server would swap the file beneath its open SQLite
connections: the server keeps writing into the old (unlinked) file and every edit
after the restore is lost without a word. The server therefore holds a shared
``flock`` on the database file while it runs, and ``restore`` asks for an exclusive
one without waiting: if any server holds the file, it refuses.

``flock`` locks are independent of the POSIX record locks SQLite takes, so they do
not interfere with it; the kernel drops them when the process ends, however it ends
(a ``kill -9`` leaves no stale lock behind). Several servers may share a file (the
lock is shared); only ``restore`` is kept out.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from ..config import Settings

__all__ = ("hold_database", "database_in_use", "database_file")


def database_file(settings: Settings) -> Path | None:
    """The SQLite file the server's store uses; None for a store without one (PostgreSQL, memory)."""
    return settings.sqlite_path


@contextlib.contextmanager
def hold_database(path: Path | None) -> Iterator[None]:
    """Hold a shared lock on the database file (made empty if missing) while serving.

    ``None`` (a store without a file: PostgreSQL, memory) holds nothing.
    """
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # an empty file is an empty SQLite database: SQLite creates its schema in it as usual
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def database_in_use(path: Path) -> bool:
    """Whether a running server holds ``path`` (a missing file is held by nobody)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
