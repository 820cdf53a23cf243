"""The workshop outcome: pure export functions, and a workshop built over the wire exported
by HTTP and by the CLI (against the database of the running server)."""

from __future__ import annotations

import json
import re
import sys

import anyio
import httpx
import pytest
from pycrdt import Doc

from vmv_sync import schema
from vmv_sync.export import EXPORT_FORMAT, dumps_export, export_json, export_markdown

from .conftest import ROOT
from .yclient import YClient


def build_family(doc: Doc) -> None:
    """A small finished workshop whose numbers are known by hand."""
    schema.new_workshop(
        doc, title="The Smiths", facilitator_id="f", facilitator_name="Fay",
        values=["Honesty", "Courage", "Trust"], now=1_700_000_000,
    )
    schema.add_participant(doc, "p1", "Ann", now=1_700_000_001)
    schema.add_participant(doc, "p2", "Bob", now=1_700_000_002)
    schema.add_participant(doc, "o", "Olga", "observer", now=1_700_000_003)
    for pid, value in [("f", "Honesty"), ("f", "Trust"), ("p1", "Honesty"), ("p1", "Courage"), ("p2", "honesty"), ("p2", "Fun")]:
        schema.select_value(doc, pid, value, now=1_700_000_010)
    schema.rate_value(doc, "p1", "Honesty", importance=5, practice=3)
    schema.rate_value(doc, "p2", "Honesty", importance=4, practice=2)
    schema.rate_value(doc, "f", "Trust", importance=5, practice=5)
    schema.open_ballot(doc, "b1", "Which value leads?", ["Honesty", "Trust"], stage="values-collective")
    schema.cast_vote(doc, "b1", "f", "Honesty")
    schema.cast_vote(doc, "b1", "p1", "Honesty")
    schema.cast_vote(doc, "b1", "p2", "Trust")
    schema.close_ballot(doc, "b1")
    schema.set_draft(doc, "p1", "Truth first")
    schema.set_mission(doc, "We tell the truth,\ntogether.")
    schema.set_vision(doc, "A home where | everyone is heard.")
    schema.post_message(doc, "p1", "Hello *all*", message_id="m1", now=1_700_000_100)
    schema.post_message(doc, "p2", "Hi | there", message_id="m2", now=1_700_000_200)
    schema.set_stage(doc, "vision")


def check_family(report: dict) -> None:
    assert report["format"] == EXPORT_FORMAT
    assert report["title"] == "The Smiths"
    assert report["stage"] == "vision"
    assert sorted(p["id"] for p in report["participants"]) == ["f", "o", "p1", "p2"]
    assert report["selectors"] == 3
    values = {v["name"]: (v["rank"], v["count"], v["percent"]) for v in report["values"]}
    assert values == {
        "Honesty": (1, 3, 100.0),
        "Courage": (2, 1, 33.3),
        "Fun": (2, 1, 33.3),
        "Trust": (2, 1, 33.3),
    }
    assert report["values"][0]["participants"] == ["f", "p1", "p2"]
    honesty = next(m for m in report["matrix"] if m["name"] == "Honesty")
    assert (honesty["importance"], honesty["practice"], honesty["gap"], honesty["ratings"]) == (4.5, 2.5, 2.0, 2)
    [ballot] = report["ballots"]
    assert ballot["id"] == "b1" and ballot["open"] is False
    assert ballot["counts"] == [{"option": "Honesty", "count": 2}, {"option": "Trust", "count": 1}]
    assert (ballot["voters"], ballot["eligible"], ballot["turnout"], ballot["winners"]) == (3, 3, 1.0, ["Honesty"])
    assert report["mission"] == "We tell the truth,\ntogether."
    assert report["vision"] == "A home where | everyone is heard."
    drafts = {d["participant"]: d["text"] for d in report["drafts"]}
    assert drafts["p1"] == "Truth first"
    assert [(m["author_name"], m["text"]) for m in report["messages"]] == [("Ann", "Hello *all*"), ("Bob", "Hi | there")]


def check_family_markdown(text: str) -> None:
    assert text.startswith("# The Smiths\n")
    assert "| 1 | Honesty | 3 | 100.0 % |" in text
    assert "| 2 | Courage | 1 | 33.3 % |" in text
    assert "| Honesty | 4.50 | 2.50 | +2.00 | 2 |" in text
    assert "### Which value leads?" in text
    assert "| Honesty | 2 |" in text and "| Trust | 1 |" in text
    assert "Winner: **Honesty** · turnout 3 of 3 (100.0 %)" in text
    assert "## Mission\n\n> We tell the truth,\n> together.\n" in text
    assert "> A home where \\| everyone is heard." in text
    assert "> Truth first" in text
    assert "**Bob**" in text and "Hi \\| there" in text
    assert "Hello \\*all\\*" in text  # chat text stays literal


EVIL = ["**x** <script>alert(1)</script>", "[a](javascript:alert(1))", "# Heading", "- item", "1. first", "a & b"]


def evil_workshop(doc: Doc) -> None:
    """Every user string of the report set to something Markdown or HTML would act on."""
    name, link, heading, item, number, amp = EVIL
    schema.new_workshop(doc, title=heading, facilitator_id="f", facilitator_name=name, values=[link, item], now=1.0)
    schema.add_participant(doc, "p1", link, now=2.0)
    schema.select_value(doc, "p1", link, now=3.0)
    schema.select_value(doc, "f", heading, now=3.0)
    schema.rate_value(doc, "p1", link, importance=5, practice=1)
    schema.open_ballot(doc, "b1", name, [link, heading, number], stage="values-collective")
    schema.cast_vote(doc, "b1", "p1", link)
    schema.set_draft(doc, "p1", f"{heading}\n{item}\n{number}\n===\n{name}")
    schema.set_mission(doc, f"{heading}\n{amp}")
    schema.set_vision(doc, f"{item}\n{link}")
    schema.post_message(doc, "p1", f"{name} {link}", message_id="m1", now=4.0)


def test_markdown_escapes_every_user_string() -> None:
    doc = Doc()
    evil_workshop(doc)
    text = export_markdown(doc, workshop_id="w1")
    # the report itself writes no <, [ or &: every one left came from a user, escaped
    for special in ("<", "[", "]", "&", "`"):  # (">" starts the report's own quotes)
        unescaped = [m.start() for m in re.finditer(rf"(?<!\\){re.escape(special)}", text)]
        assert unescaped == ([] if special != "`" else [text.index("`w1`"), text.index("`w1`") + 3]), special
    assert "\\*\\*x\\*\\* \\<script\\>alert(1)\\</script\\>" in text  # a name, a ballot question
    assert "| \\[a\\](javascript:alert(1)) | 1 |" in text  # a value name, a ballot option
    assert text.startswith("# \\# Heading\n")  # the title is text, not a second heading
    # block quotes (drafts, mission, vision): no line starts a heading, a list or an underline
    assert "> \\# Heading\n> \\- item\n> 1\\. first\n> \\===\n" in text
    assert "> a \\& b" in text
    headings = [line.split(" ", 1)[0] for line in text.splitlines() if line.startswith("#")]
    assert set(headings) <= {"#", "##", "###"} and headings.count("#") == 1
    assert not [line for line in text.splitlines() if re.match(r"(> )?(- |\d+\. |=+$)", line) and "**" not in line]


def test_export_of_a_known_workshop() -> None:
    doc = Doc()
    build_family(doc)
    report = export_json(doc, workshop_id="w1", exported_at=1_700_001_000.0)
    check_family(report)
    assert report["workshop_id"] == "w1" and report["exported_at"] == 1_700_001_000.0
    check_family_markdown(export_markdown(doc, workshop_id="w1", exported_at=1_700_001_000.0))


def test_export_is_deterministic_and_json_round_trips() -> None:
    a, b = Doc(), Doc()
    build_family(a)
    b.apply_update(a.get_update())
    text = dumps_export(export_json(a))
    assert text == dumps_export(export_json(b))
    assert json.loads(text) == export_json(a)
    assert export_markdown(a) == export_markdown(b)


def test_export_of_an_empty_document() -> None:
    report = export_json(Doc())
    assert report["title"] is None and report["values"] == [] and report["ballots"] == []
    assert report["mission"] == "" and report["messages"] == []
    text = export_markdown(Doc())
    assert text.startswith("# Untitled workshop")
    assert "_No values chosen yet._" in text and "_No ballots._" in text


# -- over the wire ------------------------------------------------------------------------------


async def settle(*clients: YClient) -> None:
    """Wait until the server has committed every update each client sent."""
    for client in clients:
        await client.wait_for(lambda c=client: c.saved_count >= c.sent_updates)


@pytest.mark.anyio
async def test_workshop_built_over_the_wire_exports_by_http_and_cli(server) -> None:
    url = server.ws("smiths")
    async with YClient(url, saved=True) as fay, YClient(url, saved=True) as ann, YClient(url, saved=True) as bob:
        for c in (fay, ann, bob):
            await c.synced.wait()
        schema.new_workshop(fay.doc, title="The Smiths", facilitator_id="f", facilitator_name="Fay", values=["Honesty", "Courage", "Trust"])
        schema.add_participant(fay.doc, "o", "Olga", "observer")
        await settle(fay)
        for c in (ann, bob):
            await c.wait_for(lambda c=c: schema.read_workshop(c.doc).meta.get("title") == "The Smiths")
        schema.add_participant(ann.doc, "p1", "Ann")
        schema.add_participant(bob.doc, "p2", "Bob")
        schema.select_value(fay.doc, "f", "Honesty")
        schema.select_value(fay.doc, "f", "Trust")
        schema.select_value(ann.doc, "p1", "Honesty")
        schema.select_value(ann.doc, "p1", "Courage")
        schema.select_value(bob.doc, "p2", "honesty")
        schema.select_value(bob.doc, "p2", "Fun")
        schema.rate_value(ann.doc, "p1", "Honesty", importance=5, practice=3)
        schema.rate_value(bob.doc, "p2", "Honesty", importance=4, practice=2)
        schema.rate_value(fay.doc, "f", "Trust", importance=5, practice=5)
        schema.open_ballot(fay.doc, "b1", "Which value leads?", ["Honesty", "Trust"], stage="values-collective")
        await settle(fay, ann, bob)
        for c in (ann, bob):
            await c.wait_for(lambda c=c: "b1" in schema.read_workshop(c.doc).ballots)
        schema.cast_vote(fay.doc, "b1", "f", "Honesty")
        schema.cast_vote(ann.doc, "b1", "p1", "Honesty")
        schema.cast_vote(bob.doc, "b1", "p2", "Trust")
        schema.set_draft(ann.doc, "p1", "Truth first")
        schema.post_message(ann.doc, "p1", "Hello *all*", message_id="m1")
        await settle(fay, ann, bob)
        await fay.wait_for(lambda: len(schema.read_workshop(fay.doc).messages) == 1)
        schema.post_message(bob.doc, "p2", "Hi | there", message_id="m2")
        schema.close_ballot(fay.doc, "b1")
        schema.set_mission(fay.doc, "We tell the truth,\ntogether.")
        schema.set_vision(bob.doc, "A home where | everyone is heard.")
        schema.set_stage(fay.doc, "vision")
        await settle(fay, ann, bob)

    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        response = await http.get("/workshops/smiths/export")
        assert response.status_code == 200
        http_report = response.json()
        check_family(http_report)
        assert http_report["workshop_id"] == "smiths" and http_report["exported_at"] > 0
        response = await http.get("/workshops/smiths/export", params={"format": "md"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/markdown")
        check_family_markdown(response.text)
        assert (await http.get("/workshops/smiths/export", params={"format": "pdf"})).status_code == 400
        assert (await http.get("/workshops/nobody-here/export")).status_code == 404

    # The CLI reads the running server's database directly.
    out = server.db.parent / "smiths.json"
    result = await anyio.run_process(
        [sys.executable, "-m", "vmv_sync", "export", "smiths", "--db", str(server.db), "--out", str(out)],
        cwd=ROOT, check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    cli_report = json.loads(out.read_text(encoding="utf-8"))
    check_family(cli_report)
    assert {**cli_report, "exported_at": 0} == {**http_report, "exported_at": 0}
    result = await anyio.run_process(
        [sys.executable, "-m", "vmv_sync", "export", "smiths", "--format", "md", "--db", str(server.db)],
        cwd=ROOT, check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    check_family_markdown(result.stdout.decode())


def test_every_json_key_is_documented() -> None:
    from .conftest import ROOT

    docs = (ROOT / "docs" / "export.md").read_text(encoding="utf-8")
    doc = Doc()
    build_family(doc)
    report = export_json(doc)
    for key in report:
        assert f"| `{key}` |" in docs, f"docs/export.md does not document {key!r}"
    documented = [line.split("`")[1] for line in docs.splitlines() if line.startswith("| `")]
    assert [k for k in documented if k in report] == list(report)  # and in the same order


# -- issue 21 -----------------------------------------------------------------------------------


def test_chat_is_exported_in_written_order_after_an_outage() -> None:
    """Two replicas post concurrently (one offline); the export lists them by when they were written.

    Yjs puts concurrent appends in client-id order, so on main one of the two client-id
    orders exported the later message first.
    """
    for first_client, second_client in ((1, 2), (2, 1)):
        base = Doc()
        build_family(base)
        offline, online = Doc(client_id=first_client), Doc(client_id=second_client)
        for replica in (offline, online):
            replica.apply_update(base.get_update())
        schema.post_message(offline, "p1", "written first, offline", message_id="late", now=1_700_000_300)
        schema.post_message(online, "p2", "written a second later", message_id="early", now=1_700_000_301)
        offline.apply_update(online.get_update(offline.get_state()))
        texts = [m["text"] for m in export_json(offline)["messages"]]
        assert texts[-2:] == ["written first, offline", "written a second later"], (first_client, texts)
        md = export_markdown(offline)
        assert md.index("written first, offline") < md.index("written a second later")
        # a later reply, from a device whose clock is an hour behind, still comes last
        schema.post_message(online, "p2", "reply", message_id="reply", now=1_700_000_302 - 3600)
        offline.apply_update(online.get_update(offline.get_state()))
        assert [m["id"] for m in export_json(offline)["messages"]][-1] == "reply"


def test_one_selector_reads_as_one_participant() -> None:
    doc = Doc()
    schema.new_workshop(doc, title="Solo", facilitator_id="f", facilitator_name="Fay", now=1.0)
    schema.select_value(doc, "f", "Honesty", now=2.0)
    text = export_markdown(doc)
    assert "Ranked by how many of the 1 participant who chose values" not in text
    assert "the one participant who chose values" in text
