"""The page under the server's Content-Security-Policy, in headless Chromium.

Chromium reports every blocked script, style, connection or worker as a
``securitypolicyviolation`` event; the pages must raise none, and still connect
their WebSocket (connect-src) and render.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.async_api import expect

pytestmark = pytest.mark.anyio

T = 10_000  # ms
RECORD = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(`${e.effectiveDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`);
});
"""


async def _violations(browser: Any, url: str, ready: str) -> list[str]:
    context = await browser.new_context()
    try:
        await context.add_init_script(RECORD)
        page = await context.new_page()
        console: list[str] = []
        page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)
        response = await page.goto(url)
        assert response is not None and "content-security-policy" in response.headers
        await expect(page.locator(ready)).to_be_visible(timeout=T)
        if "/w/" in url:  # join (no-auth mode asks for a name), then the WebSocket connects
            joining = page.locator("#join-name")
            await expect(joining.or_(page.locator('#conn[data-state="online"]'))).to_be_visible(timeout=T)
            if await joining.is_visible():
                await page.fill("#join-name", "Csp")
                await page.click("form.join button[type=submit]")
            await expect(page.locator("#conn")).to_have_attribute("data-state", "online", timeout=T)
            await page.fill("#chat-input", "styled by CSSOM, not attributes")  # author colours
            await page.press("#chat-input", "Enter")
            await expect(page.locator("#messages")).to_contain_text("styled by CSSOM", timeout=T)
        await page.wait_for_load_state("networkidle")
        found: list[str] = await page.evaluate("window.__csp")
        return found + console
    finally:
        await context.close()


async def test_pages_raise_no_csp_violation(server: Any, browser: Any) -> None:
    assert await _violations(browser, server.url + "/", "#create-form") == []
    workshop = "csp-" + httpx.get(server.url + "/healthz").json()["status"]
    assert await _violations(browser, f"{server.url}/w/{workshop}", "#stage-panel") == []


async def test_inline_script_is_blocked(server: Any, browser: Any) -> None:
    """The policy is live: a script injected into the page does not run."""
    context = await browser.new_context()
    try:
        await context.add_init_script(RECORD)
        page = await context.new_page()
        await page.goto(server.url + "/")
        await page.evaluate(
            "() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1';"
            " document.body.append(s); }"
        )
        assert await page.evaluate("window.__ran") is None
        found = await page.evaluate("window.__csp")
        assert any(v.startswith("script-src") for v in found), found
    finally:
        await context.close()
