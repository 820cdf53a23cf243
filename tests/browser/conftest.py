"""Browser fixtures: Debian's Chromium driven by Playwright, and the built web bundle.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium``
(``scripts/test`` installs it). Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def ensure_bundle() -> None:
    """Build web/dist if it is missing (scripts/setup normally has built it)."""
    if (ROOT / "web" / "dist" / "app.js").is_file():
        return
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("web/dist is missing and node/npm are not installed: run scripts/setup")
    web = ROOT / "web"
    if not (web / "node_modules" / "esbuild").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=web, check=True, timeout=300)
    subprocess.run([node, "build.mjs"], cwd=web, check=True, timeout=120)


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    if not CHROMIUM.exists():
        pytest.fail("/usr/bin/chromium is missing: run 'apt-get install -y chromium' (scripts/test does)")
    ensure_bundle()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()
