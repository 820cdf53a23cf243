"""The outcome as a picture (vmv_sync.server.report), and issue 21's smaller server and CLI points.

The report is pure HTML with inline SVG drawn from the export's numbers: bars for
the values and ballots, a scatter with four labelled quadrants for the matrix, the
mission, the vision and who took part; no script and no request. Over HTTP it is
``GET /workshops/{id}/report`` (stylesheet from ``/report.css``: the CSP allows no
inline style), from the CLI ``vmv-sync export --format html`` (stylesheet inlined).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from pycrdt import Doc

from tests.conftest import ROOT
from tests.test_export import build_family
from vmv_sync.server.report import QUADRANTS, render_report


def test_report_draws_every_part_of_the_outcome_as_svg() -> None:
    doc = Doc()
    build_family(doc)
    html = render_report(doc, workshop_id="smiths", exported_at=1_700_001_000.0)
    assert html.startswith("<!doctype html>") and "<script" not in html and "http" not in html
    assert "<style>" in html  # one self-contained file
    values = re.search(r'<svg[^>]*data-chart="bars".*?</svg>', html, re.S)
    assert values is not None
    names = re.findall(r'<g data-name="([^"]+)">', values.group(0))
    assert names == ["Honesty", "Courage", "Fun", "Trust"]  # ranked as the export ranks them
    widths = [float(w) for w in re.findall(r'class="(?:bar|win)"[^>]*width="([\d.]+)"', values.group(0))]
    assert widths[0] == 300.0 and widths[1] == 100.0  # 3 of 3 and 1 of 3 of a 300 px track
    matrix = re.search(r'<svg[^>]*data-chart="matrix".*?</svg>', html, re.S)
    assert matrix is not None
    assert set(re.findall(r'data-quadrant="([^"]+)"', matrix.group(0))) == set(QUADRANTS.values())
    assert re.findall(r'<g data-name="([^"]+)">', matrix.group(0)) == ["Honesty", "Trust"]
    assert "Which value leads?" in html and "turnout 3 of 3" in html
    assert "We tell the truth,\ntogether." in html and "A home where | everyone is heard." in html
    assert all(f"<li>{name}" in html for name in ("Fay", "Ann", "Bob", "Olga"))


def test_report_escapes_user_text() -> None:
    doc = Doc()
    from vmv_sync import schema

    schema.new_workshop(doc, title="<script>x</script>", facilitator_id="f", facilitator_name='"><b>', values=["<i>"], now=1.0)
    schema.select_value(doc, "f", "<i>", now=2.0)
    html = render_report(doc, css_href="/report.css")
    assert "<script>" not in html and "<b>" not in html and "<i>" not in html
    assert '<link rel="stylesheet" href="/report.css">' in html and "<style>" not in html


def test_report_over_http_and_the_cli(server_factory: Any, tmp_path: Path) -> None:
    server = server_factory(args=())
    made = httpx.post(server.url + "/api/workshops", json={"title": "Our family", "name": "Fay", "values": ["Hope"]}, timeout=10).json()
    wid, token = made["workshop_id"], made["token"]
    auth = {"authorization": f"Bearer {token}"}
    r = httpx.get(f"{server.url}/workshops/{wid}/report", headers=auth, timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<h1>Our family</h1>" in r.text and '<link rel="stylesheet" href="/report.css">' in r.text
    css = httpx.get(f"{server.url}/report.css", timeout=10)
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert httpx.get(f"{server.url}/workshops/{wid}/report", timeout=10).status_code == 401
    assert httpx.get(f"{server.url}/workshops/NOPE/report", headers=auth, timeout=10).status_code in (403, 404)

    out = subprocess.run(
        [sys.executable, "-m", "vmv_sync", "export", wid, "--format", "html", "--db", str(server.db)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "<h1>Our family</h1>" in out.stdout and "<style>" in out.stdout


def test_state_of_an_unknown_workshop_is_404_like_export(server_factory: Any) -> None:
    """On main, /state answered 200 with an empty state where /export answered 404."""
    server = server_factory(args=())
    made = httpx.post(server.url + "/api/workshops", json={"title": "T", "name": "Fay"}, timeout=10).json()
    from vmv_sync.server.secret import load_secret
    from vmv_sync.server.tokens import TokenIssuer

    secret = load_secret(None, server.db.parent)
    token = TokenIssuer(secret).issue("NOPE", "p-x", "X", "facilitator")
    auth = {"authorization": f"Bearer {token}"}
    assert httpx.get(f"{server.url}/workshops/NOPE/export", headers=auth, timeout=10).status_code == 404
    assert httpx.get(f"{server.url}/workshops/NOPE/state", headers=auth, timeout=10).status_code == 404
    good = {"authorization": f"Bearer {made['token']}"}
    state = httpx.get(f"{server.url}/workshops/{made['workshop_id']}/state", headers=good, params={"messages": "1"}, timeout=10)
    assert state.status_code == 200 and state.json()["messages"] == []


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmv_sync", *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "VMV_SECRET": "s" * 40, **(env or {})}, check=False,
    )  # fmt: skip


def test_cli_token_refuses_an_unknown_workshop_and_create_says_when_no_server_answers(tmp_path: Path) -> None:
    db = str(tmp_path / "db.sqlite3")
    made = _cli("workshop", "create", "--title", "T", "--name", "Fay", "--db", db, env={"VMV_PORT": "9"})
    assert made.returncode == 0, made.stderr
    assert "no vmv-sync server answers at http://127.0.0.1:9" in made.stderr
    wid = made.stdout.split("workshop:", 1)[1].split()[0]
    refused = _cli("workshop", "token", "NOPE", "--name", "X", "--db", db)
    assert refused.returncode != 0 and "no workshop 'NOPE'" in refused.stderr and refused.stdout == ""
    ok = _cli("workshop", "token", wid, "--name", "X", "--db", db)
    assert ok.returncode == 0 and ok.stdout.count(".") == 2


def test_cli_participant_remove_closes_the_connection_and_rotates_the_code(server_factory: Any) -> None:
    server = server_factory(args=(), env={"VMV_SECRET": "s" * 40})
    made = httpx.post(server.url + "/api/workshops", json={"title": "T", "name": "Fay"}, timeout=10).json()
    wid = made["workshop_id"]
    bob = httpx.post(f"{server.url}/api/workshops/{wid}/join", json={"invite_code": made["invite_code"], "name": "Bob"}, timeout=10).json()
    out = _cli("participant", "remove", wid, bob["participant_id"], "--db", str(server.db), "--url", server.url)
    assert out.returncode == 0, out.stderr
    assert f"removed {bob['participant_id']}" in out.stdout
    code = out.stdout.split("new invite code:", 1)[1].strip()
    assert code and code != made["invite_code"]
    bob_state = httpx.get(f"{server.url}/workshops/{wid}/state", headers={"authorization": f"Bearer {bob['token']}"}, timeout=10)
    assert bob_state.status_code == 401 and "removed" in bob_state.text
    again = _cli("participant", "remove", wid, made["participant_id"], "--db", str(server.db), "--url", server.url)
    assert again.returncode != 0 and "facilitator cannot be removed" in again.stderr


def test_cli_participant_remove_without_a_server_records_it_for_the_next_start(tmp_path: Path) -> None:
    db = str(tmp_path / "db.sqlite3")
    made = _cli("workshop", "create", "--title", "T", "--name", "Fay", "--db", db, env={"VMV_PORT": "9"})
    assert made.returncode == 0, made.stderr
    wid = made.stdout.split("workshop:", 1)[1].split()[0]
    old_code = made.stdout.split("invite code:", 1)[1].split()[0]
    out = _cli("participant", "remove", wid, "p-bob", "--db", db, "--url", "http://127.0.0.1:9")
    assert out.returncode == 0, out.stderr
    assert "no server answers at http://127.0.0.1:9" in out.stdout
    new_code = out.stdout.split("new invite code:", 1)[1].strip()
    assert new_code and new_code != old_code
    unknown = _cli("participant", "remove", "NOPE", "p-bob", "--db", db, "--url", "http://127.0.0.1:9")
    assert unknown.returncode != 0 and "no workshop 'NOPE'" in unknown.stderr
