"""Without a Redis URL nothing of the cluster is loaded: the single process stays as it was."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

_PROBE = """
import sys
import anyio
from vmv_sync.config import Settings
from vmv_sync.server.app import create_app

async def main():
    app = create_app(Settings(db="memory:", auth=False))
    async with app.router.lifespan_context(app):
        manager = app.state.context.manager
        assert manager.cluster is None
        room = await manager.acquire("w1")
        assert room.link is None and type(room).__name__ == "Room"
        manager.release(room)

anyio.run(main)
loaded = sorted(m for m in sys.modules if m == "redis" or m.startswith(("redis.", "vmv_sync.server.cluster")))
print(loaded)
"""


def test_one_process_loads_no_cluster_code() -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
