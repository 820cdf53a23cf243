"""End to end in headless Chromium: two browser participants and a Python client.

The facilitator (browser A) creates the workshop on ``/``, Bob (browser B) joins
on ``/w/{id}``, and a Python peer (``tests/yclient.py``) writes through
``vmv_sync.schema``. Each step checks what people see on the pages (presence, chat,
typing, value percentages, tallies, the co-edited mission, cursors) against the
Python replica and the server's derived state; then Bob goes offline, edits,
comes back, and everyone converges. Screenshots land in ``test-artifacts/``.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from playwright.async_api import Page, expect
from starlette.applications import Starlette

from tests.yclient import YClient
from vmv_sync.schema import add_participant, bind_roots, cast_vote, edit_mission, post_message, select_value
from vmv_sync.server.web import web_routes

pytestmark = pytest.mark.anyio

PY_ID = "py-1"
T = 10_000  # ms, for Playwright's expectations


def py_awareness(stage: str, typing: bool = False) -> dict[str, Any]:
    return {
        "user": {"id": PY_ID, "name": "Pyra", "color": "#2ca02c", "role": "participant"},
        "stage": stage,
        "online_at": time.time(),
        "typing": typing,
        "typing_at": time.time() if typing else None,
        "cursor": None,
    }


async def new_page(browser: Any, name: str) -> tuple[Any, Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-GB")
    page = await context.new_page()
    page.on("pageerror", lambda exc: pytest.fail(f"{name}: page error {exc}"))
    return context, page


async def chip_stat(page: Page, value: str) -> Any:
    return page.locator("#value-chips li", has_text=value).locator(".stat")


async def test_workshop_page_end_to_end(server: Any, browser: Any, artifacts: Path) -> None:
    ctx_a, fay = await new_page(browser, "fay")
    ctx_b, bob = await new_page(browser, "bob")

    # Fay creates the workshop on the home page (no-auth mode: she is the facilitator).
    await fay.goto(server.url + "/")
    await fay.fill("#create-form [name=title]", "Team Aurora")
    await fay.fill("#create-form [name=name]", "Fay")
    await fay.fill("#create-form [name=values]", "Courage\nHonesty\nTrust\nRespect")
    await fay.click("#create-form button[type=submit]")
    await fay.wait_for_url("**/w/**")
    await expect(fay.locator("#conn")).to_have_attribute("data-state", "online", timeout=T)
    await expect(fay.locator("#title")).to_have_text("Team Aurora")
    wid = fay.url.rsplit("/w/", 1)[1].split("?")[0]

    # Bob joins with the in-page form.
    await bob.goto(f"{server.url}/w/{wid}")
    await bob.fill("#join-name", "Bob")
    await bob.click("form.join button[type=submit]")
    await expect(bob.locator("#conn")).to_have_attribute("data-state", "online", timeout=T)
    fay_id = await fay.evaluate("vmv.me.id")
    bob_id = await bob.evaluate("vmv.me.id")

    async with YClient(server.ws(wid)) as py:
        with anyio.fail_after(10):
            await py.synced.wait()
        add_participant(py.doc, PY_ID, "Pyra")
        await py.set_awareness(py_awareness("values-select"))

        # Presence: everyone online with a green dot, and "X joined".
        for page in (fay, bob):
            for pid in (fay_id, bob_id, PY_ID):
                await expect(page.locator(f'#participants li[data-key="{pid}"]')).to_have_attribute("data-online", "true", timeout=T)
        await expect(fay.locator("#activity")).to_contain_text("Bob joined", timeout=T)
        await expect(fay.locator("#activity")).to_contain_text("Pyra joined", timeout=T)
        await expect(bob.locator("#online-count")).to_have_text("(3 online)")
        await expect(fay.locator("#by-stage li", has_text="Select values").locator(".scount")).to_have_text("2")
        await py.wait_for(lambda: {s["user"]["id"] for s in py.awareness.values() if s and "user" in s} >= {fay_id, bob_id})

        # Chat both ways.
        await bob.fill("#chat-input", "Hello from Bob")
        await bob.press("#chat-input", "Enter")
        await expect(fay.locator("#messages")).to_contain_text("Hello from Bob", timeout=T)
        await py.wait_for(lambda: "Hello from Bob" in [m["text"] for m in bind_roots(py.doc).messages.to_py()])
        post_message(py.doc, PY_ID, "Hi, Pyra here")
        await expect(bob.locator("#messages")).to_contain_text("Hi, Pyra here", timeout=T)
        await expect(bob.locator("#messages li", has_text="Hi, Pyra here").locator(".author")).to_have_text("Pyra")

        # Typing: shown to others, sent to Python, cleared 3 s after the last keystroke.
        await fay.locator("#chat-input").press_sequentially("Welc", delay=40)
        await expect(bob.locator("#typing")).to_have_text("Fay is typing...", timeout=T)
        await py.wait_for(lambda: any(s and s.get("user", {}).get("id") == fay_id and s.get("typing") for s in py.awareness.values()))
        await py.set_awareness(py_awareness("values-select", typing=True))
        await expect(fay.locator("#typing")).to_have_text("Pyra is typing...", timeout=T)
        started = time.monotonic()
        await expect(bob.locator("#typing")).to_have_text("", timeout=T)  # Fay stopped typing
        assert time.monotonic() - started > 1.5  # not cleared at once: it lasts about 3 s
        await expect(fay.locator("#typing")).to_have_text("", timeout=T)  # Pyra's flag went stale
        await fay.fill("#chat-input", "")

        # Value picks: 3 selectors -> Courage 3 (100.0%), Honesty 1 (33.3%), Trust 1 (33.3%).
        await fay.locator("#value-chips li", has_text="Courage").locator("button").click()
        await fay.locator("#value-chips li", has_text="Honesty").locator("button").click()
        await bob.locator("#value-chips li", has_text="Courage").locator("button").click()
        select_value(py.doc, PY_ID, "  courage ")
        select_value(py.doc, PY_ID, "TRUST")
        for page in (fay, bob):
            await expect(await chip_stat(page, "Courage")).to_have_text("3 people selected · 100.0%", timeout=T)
            await expect(await chip_stat(page, "Honesty")).to_have_text("1 person selected · 33.3%", timeout=T)
            await expect(await chip_stat(page, "Trust")).to_have_text("1 person selected · 33.3%", timeout=T)
        await expect(bob.locator("#value-chips li", has_text="Courage").locator("button")).to_have_attribute("aria-pressed", "true")
        await expect(bob.locator("#value-chips li", has_text="Honesty").locator("button")).to_have_attribute("aria-pressed", "false")
        async with httpx.AsyncClient(base_url=server.url) as http:
            served = (await http.get(f"/workshops/{wid}/state")).json()
        assert await fay.evaluate("vmv.derived()") == served
        await fay.screenshot(path=str(artifacts / "01-values-select.png"))

        # Stage navigation: the facilitator advances the workshop; everyone follows.
        await fay.click("#advance-stage")
        await expect(bob.locator("#stages button[aria-current=step]")).to_contain_text("Collective values", timeout=T)
        await py.wait_for(lambda: bind_roots(py.doc).meta.get("stage") == "values-collective")
        await expect(bob.locator("#ranking li").first).to_contain_text("Courage")
        await expect(bob.locator("#facilitator-bar")).to_be_hidden()

        # A ballot with a live tally (votes from both browsers and Python).
        await fay.click("#new-ballot summary")
        await fay.fill("#ballot-form [name=question]", "Which value first?")
        await fay.fill("#ballot-form [name=options]", "Courage, Honesty, Trust")
        await fay.click("#ballot-form button[type=submit]")
        ballot = bob.locator("fieldset.ballot", has_text="Which value first?")
        await expect(ballot).to_be_visible(timeout=T)
        await ballot.get_by_label("Honesty").check()
        await fay.locator("fieldset.ballot").get_by_label("Courage").check()
        await py.wait_for(lambda: len(bind_roots(py.doc).ballots) == 1)
        bid = next(iter(bind_roots(py.doc).ballots.keys()))
        await py.wait_for(lambda: len(bind_roots(py.doc).votes[bid]) == 2)
        cast_vote(py.doc, bid, PY_ID, "Courage")
        for page in (fay, bob):
            b = page.locator("fieldset.ballot")
            await expect(b.locator("li", has_text="Courage").locator(".votes")).to_have_text("2 votes", timeout=T)
            await expect(b.locator("li", has_text="Honesty").locator(".votes")).to_have_text("1 vote")
            await expect(b.locator(".turnout")).to_have_text("3 of 3 voted (turnout 100.0%)")
            await expect(b.locator(".winners")).to_have_text("Leading: Courage")

        # Matrix: live means and gap.
        await fay.click("#advance-stage")
        await expect(bob.locator("#stage-panel")).to_have_attribute("data-stage", "values-matrix", timeout=T)
        for page, (imp, prac) in ((fay, ("5", "2")), (bob, ("4", "4"))):
            row = page.locator("#rate-rows tr", has_text="Courage")
            await row.get_by_label("Importance of Courage").select_option(imp)
            await row.get_by_label("Practice of Courage").select_option(prac)
        summary = fay.locator("#matrix-summary tr", has_text="Courage").locator("td")
        await expect(summary).to_have_text(["4.5", "3", "1.5", "2"], timeout=T)

        # Mission: one shared text co-edited by both browsers and Python.
        await fay.click("#advance-stage")
        await fay.click("#advance-stage")
        await expect(bob.locator("#stage-panel")).to_have_attribute("data-stage", "mission-final", timeout=T)
        await fay.locator("#mission-editor").press_sequentially("We build trust.", delay=10)
        await expect(bob.locator("#mission-editor")).to_have_value("We build trust.", timeout=T)
        await bob.locator("#mission-editor").click()
        await bob.keyboard.press("End")
        await bob.locator("#mission-editor").press_sequentially(" Every day.", delay=10)
        await py.wait_for(lambda: str(bind_roots(py.doc).mission) == "We build trust. Every day.")
        edit_mission(py.doc, 0, insert="Together, ")
        expected = "Together, We build trust. Every day."
        for page in (fay, bob):
            await expect(page.locator("#mission-editor")).to_have_value(expected, timeout=T)

        # Cursors: Bob's pointer shows on Fay's page with his name; at most 10 sends/s.
        sends_before = await bob.evaluate("vmv.presence.cursorSends")
        started = time.monotonic()
        for i in range(40):
            await bob.mouse.move(300 + i * 5, 400 + i * 2)
        await bob.wait_for_timeout(150)
        elapsed = time.monotonic() - started
        sends = await bob.evaluate("vmv.presence.cursorSends") - sends_before
        assert 1 <= sends <= elapsed * 10 + 2, (sends, elapsed)
        cursor = fay.locator(f'#cursors .cursor[data-user="{bob_id}"]')
        await expect(cursor).to_have_text("Bob", timeout=T)
        await py.wait_for(lambda: any(s and s.get("user", {}).get("id") == bob_id and s.get("cursor") for s in py.awareness.values()))
        await fay.mouse.move(640, 300)
        await fay.wait_for_timeout(300)
        await bob.screenshot(path=str(artifacts / "02-mission-cursors.png"))

        # Offline: Bob loses the network, keeps editing, comes back; all converge.
        await ctx_b.set_offline(True)
        await expect(bob.locator("#conn")).to_have_attribute("data-state", "offline", timeout=T)
        await bob.locator("#mission-editor").click()
        await bob.keyboard.press("End")
        await bob.locator("#mission-editor").press_sequentially(" Offline words.", delay=10)
        await bob.fill("#chat-input", "written offline")
        await bob.press("#chat-input", "Enter")
        await expect(bob.locator("#conn")).to_contain_text("kept on this device")
        await fay.locator("#mission-editor").click()
        await fay.keyboard.press("Home")
        await fay.keyboard.type("Now: ")
        await bob.screenshot(path=str(artifacts / "03-offline.png"))
        assert "Offline words" not in str(bind_roots(py.doc).mission)
        await ctx_b.set_offline(False)
        await expect(bob.locator("#conn")).to_have_attribute("data-state", "online", timeout=T)
        expected = "Now: Together, We build trust. Every day. Offline words."
        await py.wait_for(lambda: str(bind_roots(py.doc).mission) == expected)
        for page in (fay, bob):
            await expect(page.locator("#mission-editor")).to_have_value(expected, timeout=T)
            await expect(page.locator("#messages")).to_contain_text("written offline", timeout=T)

        # Offline edits survive a closed tab (IndexedDB) and are sent on the next visit.
        await ctx_b.set_offline(True)
        await expect(bob.locator("#conn")).to_have_attribute("data-state", "offline", timeout=T)
        await bob.fill("#chat-input", "kept in IndexedDB")
        await bob.press("#chat-input", "Enter")
        await bob.wait_for_timeout(300)  # let y-indexeddb store the update
        await bob.close()
        await ctx_b.set_offline(False)
        bob = await ctx_b.new_page()
        await bob.goto(f"{server.url}/w/{wid}")
        await expect(bob.locator("#conn")).to_have_attribute("data-state", "online", timeout=T)
        await expect(fay.locator("#messages")).to_contain_text("kept in IndexedDB", timeout=T)
        await py.wait_for(lambda: "kept in IndexedDB" in [m["text"] for m in bind_roots(py.doc).messages.to_py()])

        # Everyone has the same document and the same derived numbers.
        async with httpx.AsyncClient(base_url=server.url) as http:
            served = (await http.get(f"/workshops/{wid}/state")).json()
        assert await fay.evaluate("vmv.derived()") == served
        assert await bob.evaluate("vmv.derived()") == served
        assert served["ballots"][bid]["winners"] == ["Courage"]
        await fay.screenshot(path=str(artifacts / "04-converged.png"))
    # The Python peer left: the browsers show it offline and say so.
    await expect(fay.locator(f'#participants li[data-key="{PY_ID}"]')).to_have_attribute("data-online", "false", timeout=T)
    await expect(fay.locator("#activity")).to_contain_text("Pyra left")
    await ctx_a.close()
    await ctx_b.close()


async def test_page_says_when_the_bundle_is_missing(tmp_path: Path) -> None:
    """Without web/dist the shells still load and tell the user to run scripts/setup."""
    src = Path(__file__).resolve().parents[2] / "web" / "src"
    (tmp_path / "src").mkdir()
    for name in ("index.html", "workshop.html"):
        (tmp_path / "src" / name).write_text((src / name).read_text(encoding="utf-8"), encoding="utf-8")
    app = Starlette(routes=web_routes(tmp_path))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        for path in ("/", f"/w/{uuid.uuid4().hex[:8]}"):
            page = await http.get(path)
            assert page.status_code == 200
            assert "run <code>scripts/setup</code>" in page.text
        assert (await http.get("/static/app.js")).status_code == 404
        assert (await http.get("/web/config")).json()["bundle"] is False
        assert (await http.get("/w/not%20valid")).status_code == 400


async def test_page_with_authentication(server_factory: Any, browser: Any, artifacts: Path) -> None:
    """Auth on: create through the API, join with the invite link; tokens carry identity."""
    server = server_factory(args=())
    ctx_a, fay = await new_page(browser, "fay")
    ctx_b, bob = await new_page(browser, "bob")
    await fay.goto(server.url + "/")
    await fay.fill("#create-form [name=title]", "Secured team")
    await fay.fill("#create-form [name=name]", "Fay")
    await fay.click("#create-form button[type=submit]")
    await fay.wait_for_url("**/w/**")
    await expect(fay.locator("#conn")).to_have_attribute("data-state", "online", timeout=T)
    assert "token" not in fay.url  # the token never shows in the address bar
    await expect(fay.locator("#me")).to_have_text("Fay (facilitator)")
    await expect(fay.locator("#invite input")).to_have_value(re.compile("code="), timeout=T)
    invite = await fay.locator("#invite input").input_value()
    assert "code=" in invite

    await bob.goto(invite)
    await bob.fill("#join-form [name=name]", "Bob")
    await bob.click("#join-form button[type=submit]")
    await bob.wait_for_url("**/w/**")
    await expect(bob.locator("#conn")).to_have_attribute("data-state", "online", timeout=T)
    await expect(bob.locator("#me")).to_have_text("Bob (participant)")
    await bob.locator("#value-chips li", has_text="Trust").locator("button").click()
    await bob.fill("#chat-input", "hello with a token")
    await bob.press("#chat-input", "Enter")
    await expect(fay.locator("#messages")).to_contain_text("hello with a token", timeout=T)
    await expect(fay.locator('#participants li[data-online="true"]')).to_have_count(2, timeout=T)
    await expect(await chip_stat(fay, "Trust")).to_have_text("1 person selected · 100.0%", timeout=T)
    await fay.click("#advance-stage")
    await expect(bob.locator("#stage-panel")).to_have_attribute("data-stage", "values-collective", timeout=T)
    await expect(bob.locator("#facilitator-bar")).to_be_hidden()
    # Neither socket was refused (e.g. 4403 for an awareness state that is not ours).
    await expect(bob.locator("#conn")).to_have_attribute("data-state", "online")
    assert not [line for line in server.log if "code=4403" in line or "code=4401" in line]
    await fay.screenshot(path=str(artifacts / "05-auth.png"))
    await ctx_a.close()
    await ctx_b.close()
