"""The vmv-sync command line: help and docs for every command, list/inspect/compact on a real
SQLite file, compaction beside a running server, and backup during writes -> restore ->
a new server that serves every update committed before the backup began."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner
from pycrdt import Array, Doc, Map

from vmv_sync import schema
from vmv_sync.cli import main
from vmv_sync.storage import SQLiteStore

from .conftest import ROOT, ServerProcess
from .yclient import YClient

DOCS = ROOT / "docs" / "cli.md"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_every_command_has_help_and_is_documented() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    code, out, _ = invoke("--help")
    assert code == 0
    assert set(main.commands) >= {"serve", "export", "list", "inspect", "compact", "backup", "restore"}
    for name, command in main.commands.items():
        code, out, _ = invoke(name, "--help")
        assert code == 0 and out.startswith(f"Usage: main {name}"), name
        assert command.help and len(command.get_short_help_str(80)) > 10, name
        assert name in out and "--help" in out
        heading = f"## `vmv-sync {name}`"
        assert heading in docs, f"{heading} missing from docs/cli.md"
        section = docs.split(heading, 1)[1].split("\n## ", 1)[0]
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("--") and opt != "--help":
                    assert opt in section, f"{name} {opt} is not documented in docs/cli.md"


def doc_updates() -> tuple[Doc, list[bytes]]:
    doc: Doc = Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    return doc, updates


def make_db(path: Path, old: float, new: float) -> None:
    """Workshop "fam": title "Old" committed at ``old``, then retitled "New" at ``new``."""
    doc, updates = doc_updates()
    schema.new_workshop(doc, title="Old", facilitator_id="f", facilitator_name="Fay", values=["Trust"])
    schema.select_value(doc, "f", "Trust")
    first = list(updates)
    updates.clear()
    with doc.transaction():
        schema.bind_roots(doc).meta["title"] = "New"
    schema.add_participant(doc, "p1", "Ann")
    second = list(updates)
    clock = [old]

    async def run() -> None:
        async with SQLiteStore(path, clock=lambda: clock[0]) as store:
            await store.append("fam", first)
            clock[0] = new
            await store.append("fam", second)
            await store.append("other", [first[0]])

    anyio.run(run)


def test_list_inspect_compact_and_history(tmp_path: Path) -> None:
    db = str(tmp_path / "v.sqlite3")
    now = time.time()
    make_db(Path(db), now - 7200, now - 10)

    code, out, _ = invoke("list", "--db", db)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["WORKSHOP", "UPDATES", "SIZE", "LAST", "ACTIVITY"]
    assert [line.split()[0] for line in lines[1:]] == ["fam", "other"]
    code, out, _ = invoke("list", "--json", "--db", db)
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows[0]["workshop_id"] == "fam" and rows[0]["updates"] == 4
    assert rows[0]["last_activity"] == pytest.approx(now - 10)

    code, out, _ = invoke("inspect", "fam", "--db", db)
    assert code == 0
    document = json.loads(out)
    assert list(document) == list(schema.ROOTS)
    assert document["meta"]["title"] == "New" and "p1" in document["participants"]
    code, out, _ = invoke("inspect", "fam", "--at", repr(now - 3600), "--db", db)
    assert code == 0 and json.loads(out)["meta"]["title"] == "Old"

    # A history window of an hour keeps the retitling but not the first hour-old updates:
    # still, the base is empty (nothing before them was deleted), so every moment shows.
    code, out, _ = invoke("compact", "--keep-history", "3600", "--db", db)
    assert code == 0 and "compacted 2 workshop(s)" in out
    code, out, _ = invoke("inspect", "fam", "--at", repr(now - 60), "--db", db)
    assert code == 0 and json.loads(out)["meta"]["title"] == "Old"
    code, out, _ = invoke("compact", "fam", "--db", db)
    assert code == 0 and "nothing to compact" in out
    # Compact without a window: the past is gone, the present stays.
    more_doc, more = doc_updates()
    more_doc.get("messages", type=Array).append(Map({"id": "m", "author": "f", "text": "x", "sent_at": 1.0, "stage": "vision"}))

    async def append() -> None:
        async with SQLiteStore(db) as store:
            await store.append("fam", more)

    anyio.run(append)
    code, out, _ = invoke("compact", "fam", "--keep-history", "0", "--db", db)
    assert code == 0 and "compacted 1 workshop(s)" in out
    result = CliRunner().invoke(main, ["inspect", "fam", "--at", repr(now - 60), "--db", db])
    assert result.exit_code == 1 and "compacted" in result.stderr
    code, out, _ = invoke("inspect", "fam", "--db", db)
    document = json.loads(out)
    assert document["meta"]["title"] == "New" and len(document["messages"]) == 1

    # Errors read as one line, not a traceback.
    for extra in ([], ["--at", "5"]):
        result = CliRunner().invoke(main, ["inspect", "nope", *extra, "--db", db])
        assert result.exit_code == 1 and "no workshop 'nope'" in result.stderr
    result = CliRunner().invoke(main, ["inspect", "bad id!", "--db", db])
    assert result.exit_code == 2
    result = CliRunner().invoke(main, ["list", "--db", str(tmp_path / "missing.sqlite3")])
    assert result.exit_code == 1 and "no database" in result.stderr
    assert not (tmp_path / "missing.sqlite3").exists()
    result = CliRunner().invoke(main, ["inspect", "fam", "--at", "someday", "--db", db])
    assert result.exit_code == 2 and "ISO 8601" in result.stderr


def test_restore_checks_before_replacing(tmp_path: Path) -> None:
    db = tmp_path / "v.sqlite3"
    make_db(db, time.time() - 10, time.time())
    copy = tmp_path / "copy.sqlite3"
    code, out, _ = invoke("backup", str(copy), "--db", str(db))
    assert code == 0 and "backed up" in out
    result = CliRunner().invoke(main, ["restore", str(copy), "--db", str(db)])
    assert result.exit_code == 1 and "exists" in result.stderr
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not a database at all" * 100)
    result = CliRunner().invoke(main, ["restore", str(junk), "--db", str(tmp_path / "new.sqlite3")])
    assert result.exit_code == 1 and not (tmp_path / "new.sqlite3").exists()
    code, out, _ = invoke("restore", str(copy), "--db", str(tmp_path / "new.sqlite3"))
    assert code == 0
    code, out, _ = invoke("inspect", "fam", "--db", str(tmp_path / "new.sqlite3"))
    assert json.loads(out)["meta"]["title"] == "New"


async def cli(*args: str) -> tuple[int, str, str]:
    result = await anyio.run_process([sys.executable, "-m", "vmv_sync", *args], cwd=ROOT, check=False)
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def message(i: int) -> Map:
    return Map({"id": f"m{i}", "author": "w", "text": f"update {i}", "sent_at": float(i), "stage": "vision"})


def message_ids(doc: Doc) -> set[str]:
    return {m["id"] for m in doc.get("messages", type=Array).to_py() or []}


async def write_until(client: YClient, stop: anyio.Event, limit: int = 5000) -> None:
    """Append one message per update, each only after the previous one is committed."""
    messages = client.doc.get("messages", type=Array)
    for i in range(limit):
        if stop.is_set():
            return
        messages.append(message(i))
        await client.wait_for(lambda n=i + 1: client.saved_count >= n)


@pytest.mark.anyio
async def test_backup_during_writes_restores_every_committed_update(server: ServerProcess, tmp_path: Path) -> None:
    backup = tmp_path / "backup.sqlite3"
    async with YClient(server.ws("busy"), saved=True) as writer:
        await writer.synced.wait()
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(write_until, writer, stop)
            with anyio.fail_after(20):
                await writer.wait_for(lambda: writer.saved_count >= 50)
            committed_before = writer.saved_count  # every one of these is on disk now
            code, out, err = await cli("backup", str(backup), "--db", str(server.db))
            committed_after = writer.saved_count
            with anyio.fail_after(20):  # writes went on during the backup, and go on after it
                await writer.wait_for(lambda: writer.saved_count >= committed_after + 20)
            stop.set()
        assert code == 0, err
        assert committed_after > committed_before, "the backup should overlap with writes"

    restored = tmp_path / "restored" / "vmv.sqlite3"
    code, out, err = await cli("restore", str(backup), "--db", str(restored))
    assert code == 0, err
    second = ServerProcess(restored).start()
    try:
        async with YClient(second.ws("busy")) as reader:
            await reader.synced.wait()
            ids = message_ids(reader.doc)
    finally:
        second.kill()  # only the restored data matters here, not a graceful stop
    expected = {f"m{i}" for i in range(committed_before)}
    assert expected <= ids, f"missing after restore: {sorted(expected - ids)[:5]}"
    assert len(ids) <= committed_after + 1  # nothing invented; at most the one in flight
    assert ids == {f"m{i}" for i in range(len(ids))}  # a prefix: a consistent moment


@pytest.mark.anyio
async def test_cli_compaction_beside_a_running_server_loses_nothing(server: ServerProcess) -> None:
    async with YClient(server.ws("shared"), saved=True) as writer:
        await writer.synced.wait()
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(write_until, writer, stop)
            with anyio.fail_after(20):
                await writer.wait_for(lambda: writer.saved_count >= 30)
            code, out, err = await cli("compact", "--db", str(server.db))
            done_at = writer.saved_count
            with anyio.fail_after(20):
                await writer.wait_for(lambda: writer.saved_count >= done_at + 20)
            stop.set()
        assert code == 0 and "compacted 1 workshop(s)" in out, err
        total = writer.saved_count
    server.kill()  # kill -9: everything acknowledged must be on disk; then reload from it
    server.start()
    async with YClient(server.ws("shared")) as reader:
        await reader.synced.wait()
        assert message_ids(reader.doc) == {f"m{i}" for i in range(total)}
    code, out, _ = await cli("list", "--json", "--db", str(server.db))
    [row] = [json.loads(line) for line in out.splitlines()]
    assert row["workshop_id"] == "shared" and row["snapshot_bytes"] > 0
    assert re.fullmatch(r"\d+", str(row["updates"]))


def test_workshop_create_prints_the_real_address_and_a_join_link_without_token(tmp_path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "VMV_PORT": "9321", "VMV_SECRET": "s" * 40}
    out = subprocess.run(
        [sys.executable, "-m", "vmv_sync", "workshop", "create", "--title", "T", "--name", "Fay", "--db", str(tmp_path / "db.sqlite3")],
        capture_output=True, text=True, check=True, timeout=60, env=env,
    ).stdout
    fields = dict(line.split(":", 1) for line in out.splitlines())
    wid, code = fields["workshop"].strip(), fields["invite code"].strip()
    join = fields["join link"].split()[0]
    assert join == f"http://127.0.0.1:9321/?join={wid}&code={code}"
    assert "token" not in fields["join link"]
    assert fields["facilitator"].strip().startswith(f"http://127.0.0.1:9321/w/{wid}?token=")
