"""The workshop's outcome as a picture: a printable HTML report with inline SVG charts.

A family or a team would rather look at its outcome than read JSON: the group's
values as ranked bars, the importance x practice matrix as a labelled scatter with
its four quadrants, the ballots, the final mission and vision, and who took part.
Everything is drawn from :func:`vmv_sync.export.export_json` (so the numbers are
those of ``/state`` and of the other exports, the chat aside), with no script, no
font and no request: it opens offline and prints to PDF. The page's outcome view
(web/src/outcome.js) draws the same charts from the replica.

Served as ``GET /workshops/{id}/report`` (the stylesheet then comes from
``/report.css``, because the server's Content-Security-Policy allows no inline
style) and written by ``vmv-sync export --format html`` (stylesheet inlined: one
self-contained file).

Example:
    >>> from pycrdt import Doc
    >>> render_report(Doc()).startswith("<!doctype html>")
    True
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any

from pycrdt import Doc
from starlette.requests import Request
from starlette.responses import Response

from ..export import export_json

__all__ = ("render_report", "report_css", "REPORT_CSS", "QUADRANTS")

#: the matrix's quadrants, split at the middle of the 1..5 scales:
#: (importance high?, practice high?) -> label
QUADRANTS = {
    (True, False): "Matters, not yet lived",
    (True, True): "Lived strengths",
    (False, False): "Less central",
    (False, True): "Lived, less central",
}
_MIDDLE = 3.0

REPORT_CSS = """
body { font-family: system-ui, "DejaVu Sans", sans-serif; color: #1d2430; margin: 0 auto; max-width: 52rem; padding: 1.5rem; line-height: 1.45; }
h1 { font-size: 1.6rem; margin: 0 0 .3rem; } h2 { font-size: 1.15rem; margin: 1.8rem 0 .6rem; border-bottom: 2px solid #2456a6; padding-bottom: .2rem; }
h3 { font-size: 1rem; margin: 1rem 0 .3rem; } .facts, .note { color: #5b6472; font-size: .9rem; }
blockquote { margin: 0; padding: .6rem 1rem; background: #f6f7f9; border-left: 4px solid #2456a6; white-space: pre-wrap; font-size: 1.05rem; }
svg { display: block; max-width: 100%; height: auto; } svg[data-chart="bars"] { width: 40rem; } svg[data-chart="matrix"] { width: 28rem; } svg text { font-family: inherit; font-size: 12px; fill: #1d2430; }
.bar { fill: #2456a6; } .track { fill: #e6eefb; } .win { fill: #1e8e3e; } .muted { fill: #5b6472; }
.quad { fill: #f6f7f9; stroke: #d9dde3; } .quad.hot { fill: #fdf1e4; } .axis { stroke: #5b6472; } .dot { fill: #2456a6; }
.people { columns: 2; padding-left: 1.2rem; } section { break-inside: avoid; }
@media print { body { padding: 0; } h2 { break-after: avoid; } }
"""


async def report_css(request: Request) -> Response:
    """``GET /report.css``: the report's stylesheet (the CSP allows no inline style)."""
    return Response(REPORT_CSS, media_type="text/css", headers={"cache-control": "public, max-age=3600"})


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _short(text: str, limit: int = 26) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bars(rows: list[tuple[str, float, str, bool]], *, label: str) -> str:
    """Horizontal bars: (name, fraction 0..1, caption, highlighted) per row, one SVG."""
    width, left, right, step = 640, 190, 150, 30
    span = width - left - right
    height = step * len(rows) + 10
    out = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{_e(label)}" data-chart="bars">']
    for i, (name, fraction, caption, win) in enumerate(rows):
        y = 5 + i * step
        fill = max(0.0, min(1.0, fraction)) * span
        out += [
            f'<g data-name="{_e(name)}"><title>{_e(name)}: {_e(caption)}</title>',
            f'<text x="{left - 8}" y="{y + 18}" text-anchor="end">{_e(_short(name, (left - 10) * 2 // 15))}</text>',
            f'<rect class="track" x="{left}" y="{y + 5}" width="{span}" height="16" rx="4"/>',
            f'<rect class="{"win" if win else "bar"}" x="{left}" y="{y + 5}" width="{fill:.1f}" height="16" rx="4"/>',
            f'<text class="muted" x="{left + span + 8}" y="{y + 18}">{_e(caption)}</text></g>',
        ]
    out.append("</svg>")
    return "\n".join(out)


def _scatter(matrix: list[dict[str, Any]]) -> str:
    """Importance (up) against practice (right), 1..5, with the four quadrants labelled."""
    size, pad = 460, 46
    plot = size - 2 * pad

    def x(v: float) -> float:
        return pad + (v - 1) / 4 * plot

    def y(v: float) -> float:
        return size - pad - (v - 1) / 4 * plot

    mid_x, mid_y = x(_MIDDLE), y(_MIDDLE)
    out = [f'<svg viewBox="0 0 {size} {size}" role="img" aria-label="Values matrix: importance and practice" data-chart="matrix">']
    for (high_imp, high_prac), name in QUADRANTS.items():
        qx = mid_x if high_prac else pad
        qy = pad if high_imp else mid_y
        hot = " hot" if high_imp and not high_prac else ""
        out.append(f'<rect class="quad{hot}" x="{qx:.1f}" y="{qy:.1f}" width="{plot / 2:.1f}" height="{plot / 2:.1f}"/>')
        tx = qx + (plot / 2 - 6 if high_prac else 6)
        anchor = "end" if high_prac else "start"
        ty = qy + (14 if high_imp else plot / 2 - 6)
        out.append(f'<text class="muted" x="{tx:.1f}" y="{ty:.1f}" text-anchor="{anchor}" data-quadrant="{_e(name)}">{_e(name)}</text>')
    out += [
        f'<line class="axis" x1="{pad}" y1="{size - pad}" x2="{size - pad}" y2="{size - pad}"/>',
        f'<line class="axis" x1="{pad}" y1="{pad}" x2="{pad}" y2="{size - pad}"/>',
    ]
    for tick in range(1, 6):
        out.append(f'<text class="muted" x="{x(tick):.1f}" y="{size - pad + 16}" text-anchor="middle">{tick}</text>')
        out.append(f'<text class="muted" x="{pad - 10}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick}</text>')
    out += [
        f'<text x="{size / 2}" y="{size - 8}" text-anchor="middle">practice: how much we live it →</text>',
        f'<text x="14" y="{size / 2}" text-anchor="middle" transform="rotate(-90 14 {size / 2})">importance →</text>',
    ]
    for m in matrix:
        px, py = x(m["practice"]), y(m["importance"])
        anchor = "end" if px > size - pad - 90 else "start"
        dx = -8 if anchor == "end" else 8
        out += [
            f'<g data-name="{_e(m["name"])}"><title>{_e(m["name"])}: importance {m["importance"]:.2f}, '
            f'practice {m["practice"]:.2f} ({m["ratings"]} ratings)</title>',
            f'<circle class="dot" cx="{px:.1f}" cy="{py:.1f}" r="5"/>',
            f'<text x="{px + dx:.1f}" y="{py - 6:.1f}" text-anchor="{anchor}">{_e(_short(m["name"], 20))}</text></g>',
        ]
    out.append("</svg>")
    return "\n".join(out)


def _when(ts: float | None) -> str:
    return "unknown" if ts is None else datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _text(label: str, text: str) -> str:
    body = f"<blockquote>{_e(text.strip())}</blockquote>" if text.strip() else '<p class="note">Not written yet.</p>'
    return f"<section><h2>{label}</h2>{body}</section>"


def render_report(
    doc: Doc[Any],
    *,
    workshop_id: str | None = None,
    exported_at: float | None = None,
    as_of: float | None = None,
    css_href: str | None = None,
) -> str:
    """The outcome of the workshop in ``doc`` as one HTML page (charts as inline SVG).

    ``css_href`` links the stylesheet (:data:`REPORT_CSS`) instead of inlining it.
    """
    r = export_json(doc, workshop_id=workshop_id, exported_at=exported_at, as_of=as_of)
    title = r["title"] or "Untitled workshop"
    style = f'<link rel="stylesheet" href="{_e(css_href)}">' if css_href else f"<style>{REPORT_CSS}</style>"
    facts = [f"workshop {_e(workshop_id)}"] if workshop_id else []
    if r["created_at"] is not None:
        facts.append(f"created {_when(r['created_at'])}")
    if as_of is not None:
        facts.append(f"as of {_when(as_of)}")
    if exported_at is not None:
        facts.append(f"made {_when(exported_at)}")
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)} · outcome</title>{style}</head><body>",
        f'<header><h1>{_e(title)}</h1><p class="facts">{" · ".join(facts)}</p></header>',
    ]
    chosen = [v for v in r["values"] if v["count"]]
    out.append('<section id="values"><h2>Our values</h2>')
    if chosen:
        n = r["selectors"]
        out.append(f'<p class="note">How many of the {n} {"person" if n == 1 else "people"} who chose values picked each one.</p>')
        top = chosen[0]["count"]
        rows = [(v["name"], v["count"] / n, f"{v['count']} of {n} · {v['percent']:.1f}%", v["count"] == top) for v in chosen]
        out.append(_bars(rows, label="The group's values, most chosen first"))
    else:
        out.append('<p class="note">No values chosen yet.</p>')
    out.append("</section>")

    out.append('<section id="matrix"><h2>How we live them</h2>')
    if r["matrix"]:
        out.append('<p class="note">Mean importance and practice (1 to 5) of each rated value; '
                   "values in the shaded corner matter more than they are lived.</p>")  # fmt: skip
        out.append(_scatter(r["matrix"]))
    else:
        out.append('<p class="note">No ratings yet.</p>')
    out.append("</section>")

    out.append('<section id="ballots"><h2>Decisions</h2>')
    if not r["ballots"]:
        out.append('<p class="note">No ballots.</p>')
    for b in r["ballots"]:
        total = max(1, max((c["count"] for c in b["counts"]), default=0))
        rows = [(c["option"], c["count"] / total, f"{c['count']} vote{'' if c['count'] == 1 else 's'}",
                 c["option"] in b["winners"]) for c in b["counts"]]  # fmt: skip
        winners = ", ".join(b["winners"]) or "none yet"
        out += [
            f'<h3>{_e(b["question"])}</h3>',
            _bars(rows, label=b["question"]),
            f'<p class="note">{"open" if b["open"] else "closed"} · winner{"s" if len(b["winners"]) > 1 else ""}: '
            f'{_e(winners)} · turnout {b["voters"]} of {b["eligible"]} ({b["turnout"] * 100:.0f}%)</p>',
        ]
    out.append("</section>")
    out += [_text("Our mission", r["mission"]), _text("Our vision", r["vision"])]
    people = "".join(
        f"<li>{_e(p['name'] or p['id'])}" + ("" if p["role"] == "participant" else f" ({_e(p['role'])})") + "</li>"
        for p in r["participants"]
    )
    out.append(f'<section id="people"><h2>Who took part</h2><ul class="people">{people}</ul></section>')
    out.append("</body></html>\n")
    return "\n".join(out)
