"""The wheel: built from the source, installed into a fresh venv, serving the web page.

This is what a team that runs vmv-sync without our scripts does: ``pip install
vmv_sync-*.whl[server]`` then ``vmv-sync serve``. The wheel must carry the built web
bundle (setup.py copies web/dist into ``vmv_sync/_web``) and its metadata must name
every package the server imports. The install comes from the package index (as
scripts/setup's does), with the pins of constraints.txt, so pip's cache makes it quick.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_LISTENING = re.compile(r"listening on (http://[^\s]+)")

pytestmark = pytest.mark.timeout(240)


def _source_copy(dest: Path) -> Path:
    """The files a wheel is built from, copied so the build leaves the work tree alone."""
    if not (ROOT / "web" / "dist" / "app.js").is_file():
        pytest.fail("web/dist is not built: run scripts/setup")
    src = dest / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "vmv_sync", src / "vmv_sync", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (src / "web" / "src").mkdir(parents=True)
    for page in (ROOT / "web" / "src").glob("*.html"):
        shutil.copy2(page, src / "web" / "src" / page.name)
    shutil.copytree(ROOT / "web" / "dist", src / "web" / "dist")
    return src


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result  # type: ignore[no-any-return]


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode("utf-8", "replace")


def test_wheel_installs_into_a_fresh_venv_and_serves_the_page(tmp_path: Path) -> None:
    src = _source_copy(tmp_path)
    wheels = tmp_path / "wheels"
    # no build isolation: the test venv has setuptools and wheel (the dev extra), so the
    # build needs no download
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(src)])
    (wheel,) = wheels.glob("vmv_sync-*.whl")
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("vmv_sync/_web/src/index.html", "vmv_sync/_web/src/workshop.html", "vmv_sync/_web/dist/app.js",
                   "vmv_sync/_web/dist/app.css", "vmv_sync/_web/dist/sw.js"):  # fmt: skip
        assert needed in names, f"{needed} is not in the wheel"

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    # the test venv's pip installs into the fresh one (--python), pinned like scripts/setup
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--disable-pip-version-check",
          "-c", str(ROOT / "constraints.txt"), f"{wheel}[server]"])  # fmt: skip
    size = _size(venv)
    assert size < 120 * 1024 * 1024, f"the server install weighs {size / 2**20:.0f} MiB"
    installed = _run([str(python), "-c", "import vmv_sync.server.web as w; print(w.WEB_DIR)"], cwd=tmp_path)
    assert str(venv) in installed.stdout, "the page must be served from the installed package"

    work = tmp_path / "run"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VMV_")}
    proc = subprocess.Popen(
        [str(venv / "bin" / "vmv-sync"), "serve", "--port", "0", "--db", str(work / "vmv.sqlite3"), "--no-auth"],
        cwd=work, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = ""
        deadline = time.monotonic() + 30
        seen: list[str] = []
        while time.monotonic() < deadline and not url:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            match = _LISTENING.search(line)
            url = match.group(1) if match else ""
        assert url, "the installed server did not start:\n" + "".join(seen)
        status, page = _get(url + "/")
        assert status == 200 and "<!--BUNDLE-MISSING-->" not in page and "bundle-missing" not in page
        status, script = _get(url + "/static/app.js")
        assert status == 200 and len(script) > 10_000
        status, config = _get(url + "/web/config")
        assert '"bundle":true' in config.replace(" ", "")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()

    # the core alone (no extra): the document model and the database commands import,
    # and `serve` says in one line which extra it needs
    core = tmp_path / "core"
    _run([sys.executable, "-m", "venv", "--without-pip", str(core)])
    _run([sys.executable, "-m", "pip", "--python", str(core / "bin" / "python"), "install", "-q",
          "--disable-pip-version-check", "-c", str(ROOT / "constraints.txt"), str(wheel)])  # fmt: skip
    _run([str(core / "bin" / "python"), "-c", "import vmv_sync, vmv_sync.schema, vmv_sync.storage"], cwd=tmp_path)
    refused = subprocess.run([str(core / "bin" / "vmv-sync"), "serve", "--port", "0"], capture_output=True, text=True,
                             timeout=60, cwd=work, env=env)  # fmt: skip
    assert refused.returncode == 2, refused
    assert refused.stderr.strip().splitlines()[-1].endswith("pip install 'vmv-sync[server]'"), refused.stderr
