"""The systemd units of deploy/, tried without systemd: their settings start a server, their
backup command backs up a live database and prunes old copies, and systemd-analyze
(when present) finds nothing wrong but the absent install path.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, ServerProcess
from vmv_sync.config import Settings

DEPLOY = ROOT / "deploy"
VMV = "/opt/vmv-sync/venv/bin/vmv-sync"


def _unit(name: str) -> dict[str, list[str]]:
    entries: dict[str, list[str]] = {}
    for line in (DEPLOY / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            entries.setdefault(key, []).append(value)
    return entries


def _environment(name: str, state: Path) -> dict[str, str]:
    env = dict(value.split("=", 1) for value in _unit(name)["Environment"])
    return {k: v.replace("/var/lib/vmv-sync-backups", str(state / "backups")).replace("/var/lib/vmv-sync", str(state))
            for k, v in env.items()}  # fmt: skip


def test_the_service_settings_start_a_server(server_factory: Callable[..., ServerProcess], tmp_path: Path) -> None:
    unit = _unit("vmv-sync.service")
    assert unit["ExecStart"] == [f"{VMV} serve"] and unit["RestartPreventExitStatus"] == ["2"]
    env = _environment("vmv-sync.service", tmp_path)
    settings = Settings.from_env(env)  # every variable is a valid setting
    assert settings.forwarded_allow_ips == ("127.0.0.1",) and settings.log_format == "json"
    server = server_factory(env={**env, "VMV_PORT": "0"}, db=Path(env["VMV_DB"]), args=())
    assert httpx.get(server.url + "/healthz").json()["status"] == "ok"


def test_the_backup_command_copies_a_live_database_and_prunes(server_factory: Callable[..., ServerProcess], tmp_path: Path) -> None:
    (script,) = re.findall(r"^/bin/sh -c '(.*)'$", _unit("vmv-sync-backup.service")["ExecStart"][0])
    script = script.replace("%%", "%").replace(VMV, f"{sys.executable} -m vmv_sync")
    env = _environment("vmv-sync-backup.service", tmp_path)
    server = server_factory(db=Path(env["VMV_DB"]))
    created = httpx.post(server.url + "/api/workshops", json={"title": "Backed up", "name": "Fay"}).json()
    backups = Path(env["BACKUPS"])
    backups.mkdir()  # systemd's StateDirectory= makes it
    old = backups / "vmv-20000101T0000.sqlite3"
    old.write_bytes(b"")
    stale = time.time() - 15 * 24 * 3600
    os.utime(old, (stale, stale))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VMV_")}
    run = subprocess.run(["/bin/sh", "-c", script], env={**clean, **env}, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    (copy,) = backups.glob("vmv-*.sqlite3")  # the old one is pruned
    assert copy != old
    listed = subprocess.run([sys.executable, "-m", "vmv_sync", "list", "--json", "--db", str(copy)],
                            capture_output=True, text=True, timeout=60, env=clean, cwd=ROOT)  # fmt: skip
    assert created["workshop_id"] in listed.stdout


def test_systemd_analyze_finds_nothing_but_the_install_path(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    for name in ("vmv-sync.service", "vmv-sync-backup.service", "vmv-sync-backup.timer"):
        shutil.copy2(DEPLOY / name, tmp_path / name)
    result = subprocess.run([analyze, "verify", *sorted(str(p) for p in tmp_path.iterdir())],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if line.strip() and VMV not in line]
    assert not complaints, complaints
