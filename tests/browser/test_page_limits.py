"""Issue 19, finding 6, on the page: honest large input gets an answer, not a loop.

Headless Chromium against the real server with authentication on. A mission pasted
under the text limit (100,000 characters) but over the server's frame limit (started
at 2 KiB here, 1 MiB by default) is refused with 4413: the page stops reconnecting,
says why in one sentence, and after a reload (IndexedDB still holds the refused edit)
is refused once more, not in a loop; its one action drops the unsaved edits and later
edits save. The text boxes hold the Python schema's limits and say so when full.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from playwright.async_api import Page, expect

from tests.browser.test_page_issue16 import T, close, create, join, new_page, open_as, wait_js

pytestmark = pytest.mark.anyio

FRAME_LIMIT = 2048  # bytes: VMV_MAX_MESSAGE_SIZE for the refusal test
#: the access log's line for each WebSocket closed with 4413 (vmv_sync.access)
CLOSED_4413 = re.compile(r"\bws /workshops/\S+ status=101 close=4413\b")
#: the page's y-websocket provider backs off at most this long between attempts (WorkshopClient)
MAX_BACKOFF_MS = 2500


def refusals(server: Any) -> int:
    return sum(1 for line in list(server.log) if CLOSED_4413.search(line))


def export(server: Any, wid: str, token: str) -> dict[str, Any]:
    r = httpx.get(f"{server.url}/workshops/{wid}/export", params={"token": token}, timeout=10)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


async def wait_refusals(server: Any, n: int) -> None:
    """The server has logged its n-th 4413 close (its access line follows the close)."""
    with anyio.fail_after(T / 1000):
        while refusals(server) < n:
            await anyio.sleep(0.05)


async def show_stage(page: Page, n: int, stage: str) -> None:
    await page.locator("#stages li").nth(n - 1).locator("button").click()
    await expect(page.locator("#stage-panel")).to_have_attribute("data-stage", stage)


async def expect_refused(page: Page) -> None:
    """The page says why in one sentence and offers one way out; it is not reconnecting."""
    conn = page.locator("#conn")
    await expect(conn).to_have_attribute("data-state", "refused", timeout=T)
    await expect(conn).to_have_text(
        "The server refused a change made here because it is too large to send (over 2,048 bytes): "
        "discard the unsaved changes, then make it in smaller parts."
    )
    await expect(page.locator("#refusal")).to_be_visible()
    await expect(page.locator("#refusal-discard")).to_have_text("Discard the unsaved change and reconnect")
    # y-websocket's own switch: nothing will reconnect (its scheduled setupWS is a no-op)
    assert await page.evaluate("vmv.provider.shouldConnect === false && vmv.provider.ws === null")
    assert await page.evaluate("vmv.client.refusal.edit === true && vmv.client.refusal.code === 4413")


async def test_refused_paste_is_not_resent_and_discard_lets_later_edits_save(
    server_factory: Any, browser: Any, artifacts: Path
) -> None:
    server = server_factory(env={"VMV_MAX_MESSAGE_SIZE": str(FRAME_LIMIT)}, args=())
    made = create(server)
    wid = made["workshop_id"]
    bob = join(server, wid, made["invite_code"], "Bob")
    ctx, page = await new_page(browser, "bob")
    await open_as(page, server, wid, bob["token"])
    await page.fill("#chat-input", "Before the paste")
    await page.press("#chat-input", "Enter")
    await wait_js(page, "vmv.client.pendingCount === 0")

    # Paste a mission far under the text limit but over the server's frame limit.
    await show_stage(page, 5, "mission-final")
    paste = ("We keep our promises to each other, in small things and large. " * 60)[:3500]
    assert len(paste) < 100_000 and len(paste.encode()) > FRAME_LIMIT
    await page.locator("#mission-editor").focus()
    await page.keyboard.insert_text(paste)
    await expect_refused(page)
    await wait_refusals(server, 1)
    # No loop: watch until the provider's longest backoff has passed on the page's clock
    # (a reconnect would have re-sent the paste by then), failing at the first new 4413.
    t0 = await page.evaluate("performance.now()")
    with anyio.fail_after(T / 1000):
        while await page.evaluate("performance.now()") < t0 + MAX_BACKOFF_MS + 500:
            assert refusals(server) == 1, "the refused paste was sent again"
            assert await page.evaluate("vmv.provider.ws === null")
            await anyio.sleep(0.1)
    assert await page.evaluate("vmv.provider.wsUnsuccessfulReconnects") == 1
    # The state line's sentence is one sentence, the page is read-only meanwhile.
    assert await page.evaluate("document.body.classList.contains('read-only')")

    # A reload: IndexedDB still holds the refused paste, so it is refused once more, and only once.
    await page.reload()
    await expect_refused(page)
    await wait_refusals(server, 2)
    # and then no loop either (a loaded machine may see one more attempt while the new
    # page starts, never a stream of them): watch past the longest backoff again
    settled = refusals(server)
    t0 = await page.evaluate("performance.now()")
    with anyio.fail_after(T / 1000):
        while await page.evaluate("performance.now()") < t0 + MAX_BACKOFF_MS + 500:
            assert refusals(server) == settled, "the refused paste was sent again after the reload"
            await anyio.sleep(0.1)
    assert settled <= 3, settled
    # on a phone the sentence and the button fit the screen
    await page.set_viewport_size({"width": 390, "height": 844})
    box = await page.locator("#refusal").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await page.screenshot(path=str(artifacts / "refused-edit-phone.png"))
    await page.set_viewport_size({"width": 1280, "height": 860})

    # The one action: drop the unsaved edits, resync from the server.
    await page.click("#refusal-discard")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "online", timeout=T)
    await expect(page.locator("#conn")).to_have_text("online · all changes saved")
    await expect(page.locator("#refusal")).to_be_hidden()
    await expect(page.locator("#activity")).to_contain_text(
        "The unsaved change made here was dropped; this page shows the workshop as the server has it."
    )
    assert await page.evaluate("vmv.doc.getText('mission').toString()") == ""
    assert await page.evaluate("vmv.client.pendingCount") == 0

    # Later edits save again: a chat message and a short mission, as the server has them.
    await page.fill("#chat-input", "After the discard")
    await page.press("#chat-input", "Enter")
    await show_stage(page, 5, "mission-final")
    await page.locator("#mission-editor").press_sequentially("We keep our promises.", delay=5)
    await wait_js(page, "vmv.client.pendingCount === 0 && vmv.client.status === 'connected'")
    state = httpx.get(
        f"{server.url}/workshops/{wid}/state", params={"token": made["token"], "messages": "1"}, timeout=10
    ).json()
    assert [m["text"] for m in state["messages"]] == ["Before the paste", "After the discard"]
    assert export(server, wid, made["token"])["mission"] == "We keep our promises."
    assert refusals(server) == settled  # the paste was never sent again
    await close(ctx)


async def test_text_boxes_hold_the_schema_limits(server_factory: Any, browser: Any, artifacts: Path) -> None:
    server = server_factory(args=())
    made = create(server)
    wid = made["workshop_id"]
    bob = join(server, wid, made["invite_code"], "Bob")
    ctx, page = await new_page(browser, "bob")
    await open_as(page, server, wid, bob["token"])
    chat, note = page.locator("#chat-input"), page.locator("#chat-limit")
    await expect(chat).to_have_attribute("maxlength", "4000")
    await expect(note).to_be_hidden()

    # A 4,001-character paste: the box holds 4,000 and says why.
    await chat.focus()
    await page.keyboard.insert_text("a" * 4001)
    assert len(await chat.input_value()) == 4000
    await expect(note).to_be_visible()
    await expect(note).to_have_text("A message can hold at most 4,000 characters.")
    await page.screenshot(path=str(artifacts / "chat-limit.png"))
    await page.press("#chat-input", "Backspace")
    await expect(note).to_be_hidden()

    # Past the box (a script, an extension): the action refuses, nothing is written or sent.
    await page.evaluate("document.getElementById('chat-input').value = 'b'.repeat(4001)")
    await page.click("#chat-form button[type=submit]")
    await expect(note).to_be_visible()
    await expect(note).to_have_text("A message can hold at most 4,000 characters.")
    assert len(await chat.input_value()) == 4001  # kept, to shorten
    error = await page.evaluate(
        "(() => { try { vmv.client.postMessage('c'.repeat(4001)); return null }"
        " catch (e) { return [e.name, e.message, e.limit, e.length] } })()"
    )
    assert error == ["TooLong", "a chat message may hold 4000 characters, not 4001; split it or shorten it", 4000, 4001]
    assert await page.evaluate("vmv.doc.getArray('messages').length") == 0
    # 4,000 characters are a message
    await page.fill("#chat-input", "d" * 4000)
    await page.press("#chat-input", "Enter")
    await wait_js(page, "vmv.client.pendingCount === 0 && vmv.doc.getArray('messages').length === 1")
    await expect(note).to_be_hidden()

    # The mission: 100,000 characters, said under the box when full; the action refuses more.
    await show_stage(page, 5, "mission-final")
    editor, mnote = page.locator("#mission-editor"), page.locator("#mission-limit")
    await expect(editor).to_have_attribute("maxlength", "100000")
    await expect(mnote).to_be_hidden()
    await editor.focus()
    await page.keyboard.insert_text("m" * 100_001)
    assert len(await editor.input_value()) == 100_000
    await expect(mnote).to_have_text("The mission can hold at most 100,000 characters.")
    await expect(mnote).to_be_visible()
    error = await page.evaluate(
        "(() => { try { vmv.client.editMission(0, { insert: 'x' }); return null }"
        " catch (e) { return [e.name, e.limit, e.length] } })()"
    )
    assert error == ["TooLong", 100_000, 100_001]
    # a full mission of honest size saves (100 kB, under the 1 MiB frame limit)
    await wait_js(page, "vmv.client.pendingCount === 0 && vmv.client.status === 'connected'")
    assert len(export(server, wid, made["token"])["mission"]) == 100_000
    # the draft box holds the same limit
    await show_stage(page, 4, "mission-draft")
    await expect(page.locator("#draft-editor")).to_have_attribute("maxlength", "100000")
    await close(ctx)


async def test_discard_with_a_second_tab_of_the_same_participant(server_factory: Any, browser: Any) -> None:
    """Another tab of the same participant (the same IndexedDB replica) keeps saving, also after a reload.

    y-indexeddb's clearData() deletes the database, which closed the other tab's connection
    to it: its later updates failed there and stopped its sync (its message never reached the
    server). The page empties the replica in place instead.
    """
    server = server_factory(env={"VMV_MAX_MESSAGE_SIZE": str(FRAME_LIMIT)}, args=())
    made = create(server)
    wid = made["workshop_id"]
    bob = join(server, wid, made["invite_code"], "Bob")
    ctx, page = await new_page(browser, "bob")
    await open_as(page, server, wid, bob["token"])
    other = await ctx.new_page()  # the same participant's second tab: the same IndexedDB replica
    other.on("pageerror", lambda exc: ctx.errors.append(f"other tab: page error {exc}"))
    await other.goto(f"{server.url}/w/{wid}")
    await expect(other.locator("#conn")).to_have_attribute("data-state", "online", timeout=T)
    await show_stage(page, 5, "mission-final")
    await page.locator("#mission-editor").focus()
    await page.keyboard.insert_text("x" * (FRAME_LIMIT + 500))
    await expect_refused(page)
    await expect(other.locator("#conn")).to_have_text("online · all changes saved")  # the other tab never had it
    await page.click("#refusal-discard")
    await expect(page.locator("#conn")).to_have_text("online · all changes saved", timeout=T)
    assert await page.evaluate("vmv.doc.getText('mission').toString()") == ""
    for tab, text in ((page, "Saved from the first tab"), (other, "Saved from the second tab")):
        await tab.fill("#chat-input", text)
        await tab.press("#chat-input", "Enter")
        await wait_js(tab, "vmv.client.pendingCount === 0 && vmv.client.status === 'connected'")
    got = [m["text"] for m in export(server, wid, made["token"])["messages"]]
    assert sorted(got) == ["Saved from the first tab", "Saved from the second tab"]
    # the second tab's replica still works: a reload opens it, and it saves again
    await other.reload()
    await expect(other.locator("#conn")).to_have_text("online · all changes saved", timeout=T)
    assert await other.evaluate("vmv.doc.getText('mission').toString()") == ""
    await other.fill("#chat-input", "And after its reload")
    await other.press("#chat-input", "Enter")
    await wait_js(other, "vmv.client.pendingCount === 0 && vmv.client.status === 'connected'")
    assert len(export(server, wid, made["token"])["messages"]) == 3
    assert refusals(server) == 1
    await close(ctx)


async def test_client_id_recovery_leaves_a_second_tab_saving(server_factory: Any, browser: Any) -> None:
    """The same in-place emptying for the "client id taken" recovery (freshReplica), which deleted the database."""
    server = server_factory(args=())
    made = create(server)
    wid = made["workshop_id"]
    ada, bo = join(server, wid, made["invite_code"], "Ada"), join(server, wid, made["invite_code"], "Bo")
    ctx_a, ada_page = await new_page(browser, "ada")
    await open_as(ada_page, server, wid, ada["token"])
    await ada_page.fill("#chat-input", "From Ada")
    await ada_page.press("#chat-input", "Enter")
    await wait_js(ada_page, "vmv.client.pendingCount === 0")
    ada_id = await ada_page.evaluate("vmv.doc.clientID")
    ctx, page = await new_page(browser, "bo")
    await open_as(page, server, wid, bo["token"])
    other = await ctx.new_page()  # Bo's second tab: the same IndexedDB replica
    other.on("pageerror", lambda exc: ctx.errors.append(f"other tab: page error {exc}"))
    await other.goto(f"{server.url}/w/{wid}")
    await expect(other.locator("#conn")).to_have_attribute("data-state", "online", timeout=T)
    # Bo's first tab writes under Ada's client id: refused (4403), its replica rewritten, reloaded
    await page.evaluate("(id) => { vmv.doc.clientID = id; vmv.client.postMessage('Under a taken id') }", ada_id)
    await expect(page.locator("#activity")).to_contain_text("it used an id that belongs to someone else", timeout=T)
    await expect(page.locator("#conn")).to_have_text("online · all changes saved", timeout=T)
    assert await page.evaluate("vmv.doc.clientID") != ada_id
    for tab, text in ((page, "From Bo's first tab"), (other, "From Bo's second tab")):
        await tab.fill("#chat-input", text)
        await tab.press("#chat-input", "Enter")
        await wait_js(tab, "vmv.client.pendingCount === 0 && vmv.client.status === 'connected'")
    got = [m["text"] for m in export(server, wid, made["token"])["messages"]]
    assert sorted(got) == ["From Ada", "From Bo's first tab", "From Bo's second tab"]
    await close(ctx, ctx_a)
