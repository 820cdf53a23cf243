"""The newcomer's example runs to completion against the real server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_two_participants_example_finishes(server) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "two_participants.py"),
         "--url", server.url.replace("http://", "ws://"), "--pause", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "edited offline: offline, 3 edit(s) not yet saved" in out
    assert "caught up: connected, 0 edit(s) not yet saved" in out
    assert "Ann   sees Ben go offline" in out
    assert "both replicas are identical" in out
