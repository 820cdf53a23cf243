"""PostgreSQL restarted mid-run (a private server of this test): nothing acknowledged is lost."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import anyio
import asyncpg
import pytest

from .conftest import Cluster, client, create_workshop, free_port, join, stored_doc
from .test_failover import Writer, stored_texts

pytestmark = pytest.mark.anyio

_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))


class PrivatePostgres:
    """initdb + pg_ctl on a free port in a temporary folder (as the postgres user when root)."""

    def __init__(self) -> None:
        if not _BIN:
            pytest.fail("PostgreSQL's server binaries are missing: run scripts/services")
        self.bin = _BIN[-1]
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="vmv-pg-"))
        self.data = self.folder / "data"
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "start")

    def crash(self) -> None:
        """Stop at once, as a crash would (no checkpoint): the restart replays the WAL."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        try:
            self.crash()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    made = PrivatePostgres()
    made.start()
    yield made
    made.remove()


async def test_postgres_restarted_mid_run(tmp_path: Path, private_postgres: PrivatePostgres) -> None:
    admin = await asyncpg.connect(private_postgres.url)
    await admin.execute('CREATE DATABASE "vmv"')
    await admin.close()
    db = private_postgres.url.rsplit("/", 1)[0] + "/vmv"
    cluster = Cluster(db, f"vmvpg{os.getpid()}{free_port()}", tmp_path)
    try:
        a = cluster.start("a")
        b = cluster.start("b")
        made = create_workshop(a)
        wid = made["workshop_id"]
        ann = join(b, wid, made["invite_code"], "Ann")
        async with client(a, wid, made["token"]) as fay, client(b, wid, ann["token"]) as ann_client:
            await fay.wait_connected(10)
            await ann_client.wait_connected(10)
            writers = [Writer("fay", fay), Writer("ann", ann_client)]
            async with anyio.create_task_group() as tg:
                for writer in writers:
                    tg.start_soon(writer.run)
                await anyio.sleep(0.8)
                saved_before = [w.saved for w in writers]
                private_postgres.crash()
                await anyio.sleep(1.0)
                private_postgres.start()
                await anyio.sleep(1.0)
                for writer in writers:
                    writer.stop.set()
            for each in (fay, ann_client):
                await each.wait_saved(20)
            total = sum(w.posted for w in writers)
            await fay.wait_for(lambda: len(fay.messages) == len(ann_client.messages) == total, 10)
        assert a.proc is not None and a.proc.poll() is None  # both processes stayed up
        assert b.proc is not None and b.proc.poll() is None
        texts = stored_texts(await stored_doc(db, wid))
        for writer, before in zip(writers, saved_before, strict=True):
            assert writer.texts(before) <= texts  # acknowledged before the crash
            assert writer.texts(writer.posted) <= texts  # and everything since, resent after it
    finally:
        for node in cluster.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.kill()
            else:
                node._close_output()
        from .conftest import _delete_keys

        _delete_keys(cluster.redis_url, cluster.prefix)
