"""A workshop's outcome: what the family or team decided, as stable JSON or readable Markdown.

Pure functions of a pycrdt document, built on :func:`vmv_sync.schema.read_workshop`
and :func:`vmv_sync.derived.compute_state`, so the report shows exactly the numbers
``GET /workshops/{id}/state`` shows. No clock is read: the caller passes
``exported_at`` (and ``as_of`` for a history view), so equal documents export to equal
bytes. The JSON shape is versioned by its ``"format"`` key and documented in
docs/export.md; keys are only ever added to ``vmv-sync.export/1``.

Example:
    >>> from pycrdt import Doc
    >>> export_json(Doc())["format"]
    'vmv-sync.export/1'
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from pycrdt import Doc

from .derived import DerivedState, compute_state
from .derived.chat import ordered_messages
from .derived.votes import BallotTally
from .schema import STAGES, WorkshopData, read_workshop, stage_number, tidy_value_name

__all__ = ("EXPORT_FORMAT", "export_json", "export_markdown", "dumps_export", "chat_json")

#: the value of the ``"format"`` key; bumped only if a key is renamed or dropped
EXPORT_FORMAT = "vmv-sync.export/1"


def _ranks(counts: list[int]) -> list[int]:
    """Competition ranks ("1224") of counts sorted in descending order."""
    ranks: list[int] = []
    for i, count in enumerate(counts):
        ranks.append(ranks[-1] if i and counts[i - 1] == count else i + 1)
    return ranks


def _participants(data: WorkshopData) -> list[dict[str, Any]]:
    ids = sorted(data.participants, key=lambda p: (data.participants[p].joined_at, p))
    result = []
    for pid in ids:
        person = data.participants[pid]
        progress = data.progress.get(pid)
        picks = data.selections.get(pid, {})
        result.append(
            {
                "id": pid,
                "name": person.name,
                "role": person.role,
                "joined_at": person.joined_at,
                "stage": progress.stage if progress else None,
                "completed": list(progress.completed) if progress else [],
                "selected": [tidy_value_name(n) for n in sorted(picks, key=lambda n: (picks[n], n))],
            }
        )
    return result


def _ballot(ballot_id: str, tally: BallotTally) -> dict[str, Any]:
    return {
        "id": ballot_id,
        "question": tally.question,
        "kind": tally.kind,
        "stage": tally.stage,
        "open": tally.open,
        "max_choices": tally.max_choices,
        "counts": [{"option": option, "count": count} for option, count in tally.counts],
        "voters": tally.voters,
        "eligible": tally.eligible,
        "turnout": tally.turnout,
        "winners": list(tally.winners),
        "ignored": tally.ignored,
    }


def chat_json(data: WorkshopData) -> list[dict[str, Any]]:
    """The chat in display order (:mod:`vmv_sync.derived.chat`), as the export and ``/state`` give it."""
    names = {pid: p.name for pid, p in data.participants.items()}
    return [
        {
            "id": m.id,
            "author": m.author,
            "author_name": names.get(m.author),
            "text": m.text,
            "sent_at": m.sent_at,
            "stage": m.stage,
            "hlc": m.hlc,
        }
        for m in ordered_messages(data.messages)
    ]


def export_json(
    doc: Doc[Any],
    *,
    workshop_id: str | None = None,
    exported_at: float | None = None,
    as_of: float | None = None,
) -> dict[str, Any]:
    """The outcome of the workshop in ``doc`` as a JSON-ready dict (docs/export.md).

    Args:
        doc: the workshop document (any state, even empty or partly malformed).
        workshop_id: shown in the report; ``None`` when unknown.
        exported_at: when the export was made (unix s); the function never reads a clock.
        as_of: for a history view, the moment the document was rebuilt at.

    Example:
        >>> from pycrdt import Doc
        >>> from vmv_sync.schema import new_workshop
        >>> doc = Doc()
        >>> _ = new_workshop(doc, title="Us", facilitator_id="f", facilitator_name="Fay")
        >>> export_json(doc)["title"]
        'Us'
    """
    data = read_workshop(doc)
    state: DerivedState = compute_state(data)
    names = {pid: p.name for pid, p in data.participants.items()}
    values = list(state.values)
    ranks = _ranks([v.count for v in values])
    meta = data.meta
    return {
        "format": EXPORT_FORMAT,
        "workshop_id": workshop_id,
        "exported_at": exported_at,
        "as_of": as_of,
        "title": meta.get("title"),
        "created_at": meta.get("created_at"),
        "stage": meta.get("stage"),
        "facilitator": meta.get("facilitator"),
        "max_values": meta.get("max_values"),
        "participants": _participants(data),
        "catalogue": list(data.values),
        "selectors": sum(1 for picks in data.selections.values() if picks),
        "values": [
            {
                "rank": rank,
                "name": v.name,
                "key": v.key,
                "count": v.count,
                "percent": v.percent,
                "participants": list(v.participants),
            }
            for rank, v in zip(ranks, values, strict=False)
        ],
        "matrix": state.to_json()["matrix"],
        "ballots": [_ballot(bid, t) for bid, t in state.ballots.items()],
        "stages": dict(state.stages),
        "mission": data.mission,
        "vision": data.vision,
        "drafts": [
            {"participant": pid, "name": names.get(pid), "text": text}
            for pid, text in data.drafts.items()
        ],
        "messages": chat_json(data),
        "skipped": data.skipped,
    }


def dumps_export(report: dict[str, Any]) -> str:
    """The JSON text of a report: UTF-8 as is, two-space indent, key order kept."""
    return json.dumps(report, ensure_ascii=False, indent=2) + "\n"


# -- Markdown ------------------------------------------------------------------------------


def _when(ts: float | None) -> str:
    if ts is None:
        return "unknown"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


#: characters that mean something to Markdown (CommonMark and GitHub's) or HTML
#: anywhere in a line; each is written with a backslash, which every CommonMark
#: renderer shows as the character itself (a backslash and ``<`` render as ``&lt;``)
_SPECIAL = frozenset("\\`*_[]<>#|~&")
#: a line that starts like a list item (``-``, ``+``, ``1.``, ``1)``) or a heading underline
_LINE_START = re.compile(r"^(\s*)(?:([-+=])(?=[\s=-]|$)|(\d{1,9})(?=[.)](?:\s|$)))")


def _line_start(match: re.Match[str]) -> str:
    indent, mark, number = match.groups()
    return f"{indent}\\{mark}" if mark else f"{indent}{number}\\"


def _escape(text: str) -> str:
    r"""User text with every Markdown and HTML special character left literal.

    Names, value names, ballot options, drafts, chat: anything a participant typed
    must read as text, never as a link (``[a](javascript:...)``), an image, raw HTML
    (``<script>``), emphasis, a list or a heading, in any Markdown renderer.

    Example:
        >>> print(_escape("**x** <script>"))
        \*\*x\*\* \<script\>
        >>> print(_escape("1. first"))
        1\. first
    """
    out = "".join("\\" + ch if ch in _SPECIAL else ch for ch in text)
    return _LINE_START.sub(_line_start, out, count=1)


def _inline(text: object) -> str:
    """User text on one line (line breaks become spaces), escaped."""
    return _escape(" ".join(str(text).split()))


def _cell(text: object) -> str:
    """A table cell: one line, escaped (pipes included); never empty."""
    return _inline(text) or " "


def _quote(text: str) -> list[str]:
    """Multi-line user text as a block quote, each line escaped; an empty text says so."""
    lines = text.strip("\n").splitlines()
    if not "".join(lines).strip():
        return ["_(empty)_"]
    return ["> " + _escape(line) if line.strip() else ">" for line in lines]


def _stage_label(stage: str | None) -> str:
    if stage is None or stage not in STAGES:
        return "not set"
    return f"{stage} ({stage_number(stage)} of {len(STAGES)})"


def _table(header: list[str], rows: list[list[object]], align: list[str]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def export_markdown(
    doc: Doc[Any],
    *,
    workshop_id: str | None = None,
    exported_at: float | None = None,
    as_of: float | None = None,
) -> str:
    """The outcome of the workshop in ``doc`` as a Markdown report, readable as is.

    Same content and numbers as :func:`export_json` (which it is built from).

    Example:
        >>> from pycrdt import Doc
        >>> export_markdown(Doc()).splitlines()[0]
        '# Untitled workshop'
    """
    r = export_json(doc, workshop_id=workshop_id, exported_at=exported_at, as_of=as_of)
    names = {p["id"]: p["name"] for p in r["participants"]}

    def who(pid: str) -> str:
        return names.get(pid) or pid

    out: list[str] = [f"# {_inline(r['title'] or 'Untitled workshop')}", ""]
    facts = []
    if workshop_id is not None:
        facts.append(f"Workshop `{workshop_id}`" if "`" not in workshop_id else f"Workshop {_inline(workshop_id)}")
    facts.append(f"stage: {_stage_label(r['stage'])}")
    if r["created_at"] is not None:
        facts.append(f"created {_when(r['created_at'])}")
    if as_of is not None:
        facts.append(f"as of {_when(as_of)}")
    if exported_at is not None:
        facts.append(f"exported {_when(exported_at)}")
    out += [" · ".join(facts), ""]

    out += ["## Participants", ""]
    if r["participants"]:
        rows: list[list[object]] = [
            [
                p["name"] or p["id"],
                p["role"] + (" (facilitator)" if p["id"] == r["facilitator"] and p["role"] != "facilitator" else ""),
                p["stage"] or "-",
                ", ".join(p["selected"]) or "-",
            ]
            for p in r["participants"]
        ]
        out += _table(["Name", "Role", "Stage", "Chose"], rows, ["---", "---", "---", "---"])
    else:
        out.append("_Nobody has joined._")
    out.append("")

    out += ["## Values", ""]
    chosen = [v for v in r["values"] if v["count"]]
    if chosen:
        who_chose = "the one participant who" if r["selectors"] == 1 else f"the {r['selectors']} participants who"
        out += [f"Ranked by how many of {who_chose} chose values picked each one.", ""]
        rows = [[v["rank"], v["name"], v["count"], f"{v['percent']:.1f} %"] for v in chosen]
        out += _table(["#", "Value", "Chosen by", "Share"], rows, ["--:", "---", "--:", "--:"])
    else:
        out.append("_No values chosen yet._")
    unpicked = [v["name"] for v in r["values"] if not v["count"]]
    if unpicked:
        out += ["", "Offered but not chosen: " + ", ".join(_inline(n) for n in unpicked) + "."]
    out.append("")

    out += ["## Values matrix", ""]
    if r["matrix"]:
        out += ["Mean importance and practice (1 to 5); a large gap means a value lived less than it matters.", ""]
        rows = [
            [m["name"], f"{m['importance']:.2f}", f"{m['practice']:.2f}", f"{m['gap']:+.2f}", m["ratings"]]
            for m in r["matrix"]
        ]
        out += _table(
            ["Value", "Importance", "Practice", "Gap", "Ratings"], rows, ["---", "--:", "--:", "--:", "--:"]
        )
    else:
        out.append("_No ratings yet._")
    out.append("")

    out += ["## Ballots", ""]
    if not r["ballots"]:
        out += ["_No ballots._", ""]
    for b in r["ballots"]:
        state = "open" if b["open"] else "closed"
        kind = "one choice" if b["kind"] == "single" else f"up to {b['max_choices']} choices"
        out += [f"### {_inline(b['question'])}", "", f"{state}, {kind}, stage {_inline(b['stage'])}", ""]
        rows = [[c["option"], c["count"]] for c in b["counts"]]
        out += _table(["Option", "Votes"], rows, ["---", "--:"])
        winners = ", ".join(_inline(w) for w in b["winners"]) or "none yet"
        label = "Winners" if len(b["winners"]) > 1 else "Winner"
        out += [
            "",
            f"{label}: **{winners}** · turnout {b['voters']} of {b['eligible']} "
            f"({b['turnout'] * 100:.1f} %)",
            "",
        ]

    out += ["## Mission", "", *_quote(r["mission"]), "", "## Vision", "", *_quote(r["vision"]), ""]

    drafts = [d for d in r["drafts"] if d["text"].strip()]
    out += ["## Mission drafts", ""]
    if not drafts:
        out += ["_No drafts._", ""]
    for d in drafts:
        out += [f"### {_inline(d['name'] or d['participant'])}", "", *_quote(d["text"]), ""]

    out += ["## Chat", ""]
    if not r["messages"]:
        out.append("_No messages._")
    for m in r["messages"]:
        out.append(f"- **{_inline(who(m['author']))}** ({_inline(m['stage'])}, {_when(m['sent_at'])}): {_inline(m['text'])}")
    out.append("")
    if r["skipped"]:
        out += [f"_{r['skipped']} malformed entries of the document were left out._", ""]
    return "\n".join(out)
