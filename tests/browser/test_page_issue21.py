"""Issue 21 in headless Chromium against the real server (authentication on).

Every stage on a phone (measured against the screen, not the widened viewport), the
chat in written order, removing a participant from the People panel, invite codes
that follow in every open facilitator page, bad links, and the outcome view and
printable report.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.browser.test_page_issue16 import T, close, create, join, new_page, open_as, wait_js

pytestmark = pytest.mark.anyio

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
LONG_NAME = "Maximiliana Wolkenstein-Supercalifragilisticexpialidocious"
LONG_OPTION = "Honesty with each other even when it is uncomfortable for everyone at the table"
LONG_CHAT = "A long line without spaces: " + "solidarity" * 12 + " and then a few more words to wrap."


async def overflow(page: Page) -> list[str]:
    """What sticks out of the screen: measured against 390 px and the root's clientWidth.

    ``innerWidth`` is no measure: Chromium widens an emulated phone's layout viewport to
    the content (421 px on main), which hid the overflow from the issue 16 test.
    """
    return await page.evaluate(
        """() => {
             const w = Math.min(390, document.documentElement.clientWidth)
             const out = []
             if (document.documentElement.scrollWidth > w) out.push('document ' + document.documentElement.scrollWidth)
             for (const el of document.querySelectorAll('body *')) {
               const r = el.getBoundingClientRect(); const cs = getComputedStyle(el)
               if (r.width > 0 && r.right > w + 0.5 && cs.position !== 'fixed' && !el.closest('.stage-nav, .cursors'))
                 out.push(el.tagName + '#' + el.id + '.' + el.className + ' ' + Math.round(r.right))
             }
             return out.slice(0, 6)
           }"""
    )


async def seed_content(fay: Page, bob: Page) -> None:
    """Real content on every stage: picks, ratings, a ballot with long options, long chat."""
    for page in (fay, bob):
        for value in ("Courage", "Honesty", "Trust"):
            await page.locator("#value-chips li", has_text=value).locator("button").click()
    await fay.evaluate(
        """([opt]) => {
             vmv.client.openBallot('b-long', 'Which value should lead our family in the years to come?',
               [opt, 'Courage to try new things together', 'Trust'], { stage: 'values-collective' })
             vmv.client.openBallot('b-vision', 'Is this our vision?', ['Yes', 'Not yet: ' + opt], { stage: 'vision' })
             vmv.client.setMission('We tell the truth, ' + 'together '.repeat(30))
             vmv.client.setVision('A home where everyone is heard. '.repeat(8))
           }""",
        [LONG_OPTION],
    )
    for page in (fay, bob):
        await page.evaluate("for (const [v, i, p] of [['Courage', 5, 2], ['Honesty', 4, 4], ['Trust', 3, 1]]) vmv.client.rateValue(v, i, p)")
        await page.evaluate("vmv.client.setDraft('Our draft: ' + 'kindness and courage '.repeat(12))")
        await page.evaluate("(t) => vmv.client.postMessage(t)", LONG_CHAT)
    await bob.evaluate("(o) => vmv.client.castVote('b-long', o)", LONG_OPTION)
    for page in (fay, bob):
        await wait_js(page, "vmv.client.pendingCount === 0")


async def check_every_stage(page: Page, who: str) -> None:
    for n in range(1, 7):
        await page.click(".panes button[data-pane=task]")
        await page.locator("#stages li").nth(n - 1).locator("button").click()
        await expect(page.locator("#stage-h")).to_contain_text(f"{n}.")
        await wait_js(page, "document.fonts.status === 'loaded'")
        assert await overflow(page) == [], (who, n)
        if n == 2:  # the ranking's bars are visible, not 0 px wide
            bars = await page.locator("#ranking li .bar").evaluate_all("(els) => els.map((e) => e.getBoundingClientRect().width)")
            assert bars and min(bars) > 40, (who, bars)
            # the long ballot option reads in at most two lines, not squeezed into 8rem
            option = page.locator("fieldset.ballot .option", has_text=LONG_OPTION)
            box = await option.bounding_box()
            assert box is not None and box["width"] > 200, (who, box)
        if n == 1:  # value chips share rows evenly instead of stacking in ragged widths
            widths = await page.locator("#value-chips li .chip").evaluate_all(
                "(els) => els.map((e) => e.getBoundingClientRect().width)"
            )
            assert widths and min(widths) > 100, (who, widths)
    for pane in ("people", "chat"):
        await page.click(f".panes button[data-pane={pane}]")
        assert await overflow(page) == [], (who, pane)
    await page.click(".panes button[data-pane=task]")


async def test_every_stage_fits_a_phone_as_participant_and_facilitator(server_factory: Any, browser: Any) -> None:
    server = server_factory(args=())
    made = create(server, "Our family", ("Courage", "Honesty", "Trust", "Respect", "Curiosity", "Kindness"))
    wid = made["workshop_id"]
    bob_token = join(server, wid, made["invite_code"], LONG_NAME)["token"]
    ctx_f, fay = await new_page(browser, "fay-phone", **PHONE)
    ctx_b, bob = await new_page(browser, "bob-phone", **PHONE)
    await open_as(fay, server, wid, made["token"])
    await open_as(bob, server, wid, bob_token)
    await seed_content(fay, bob)
    await check_every_stage(bob, "participant")
    await check_every_stage(fay, "facilitator")
    await close(ctx_f, ctx_b)
