"""The token secret kept in a file (server/secret.py)."""

from __future__ import annotations

import stat

from vmv_sync.server.secret import load_secret


def test_made_once_private_then_read_back(tmp_path) -> None:
    folder = tmp_path / "data"
    made = load_secret(None, folder)
    assert len(made) >= 32 and load_secret(None, folder) == made
    assert stat.S_IMODE((folder / "secret.key").stat().st_mode) == 0o600
    assert load_secret("configured-secret", folder) == "configured-secret"
