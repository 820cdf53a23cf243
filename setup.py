"""Build step that puts the web page into the wheel (the metadata is in pyproject.toml).

The page's HTML shells (web/src/*.html) and its esbuild bundle (web/dist, built by
scripts/setup) live beside the package, not in it, because the Node build owns web/.
A wheel must carry them, or ``pip install`` of it gives a server without its page:
this copies them to ``vmv_sync/_web`` in the build tree, where server/web.py looks
first. An editable install (scripts/setup) copies nothing: the server then finds the
checkout's web/ directly, so a rebuilt bundle shows without reinstalling.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
WEB = ROOT / "web"


class BuildWithWebPage(build_py):
    """``build_py`` plus the web page copied into the package as ``_web/``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        dist = WEB / "dist"
        if not (dist / "app.js").is_file() or not (dist / "app.css").is_file():
            raise SystemExit(
                "web/dist is not built: run scripts/setup (it needs Node.js) before building the wheel, "
                "so that the wheel carries the web page"
            )
        target = Path(self.build_lib) / "vmv_sync" / "_web"
        shutil.rmtree(target, ignore_errors=True)
        (target / "src").mkdir(parents=True)
        for page in sorted((WEB / "src").glob("*.html")):
            shutil.copy2(page, target / "src" / page.name)
        shutil.copytree(dist, target / "dist", ignore=shutil.ignore_patterns("*.map"))


setup(cmdclass={"build_py": BuildWithWebPage})
