"""The page in real headless Chromium against the real system."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.conftest import System

pytestmark = pytest.mark.browser


async def test_create_on_the_page_and_see_the_photo_arrive_live(
    browser: Browser, system: System, artifacts: Path
) -> None:
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    await page.goto(system.base_url + "/")
    await expect(page.locator("#connection")).to_have_text("live")
    await expect(page.locator("#delay")).to_have_text("0.2\u00a0s to 1\u00a0s")
    await page.get_by_role("button", name="Create job").click()

    card = page.locator(".job").first
    await expect(card).to_have_attribute("data-status", "pending")
    photo = card.locator(".photo img")
    await expect(photo).to_be_visible(timeout=20_000)
    await expect(card).to_have_attribute("data-status", "resolved")
    await expect(card.locator(".credit")).to_contain_text("Photo by")
    await expect(card.locator(".credit")).to_contain_text("on Unsplash")
    assert await photo.evaluate("img => img.complete && img.naturalWidth > 0")
    credit_links = await card.locator(".credit a").evaluate_all("as => as.map(a => a.href)")
    assert all("utm_source=jobline" in h and "utm_medium=referral" in h for h in credit_links)

    job_id = (await card.get_attribute("id") or "").removeprefix("job-")
    job = (await system.http.get(f"/jobs/{job_id}")).json()
    assert job["status"] == "resolved"
    assert await photo.get_attribute("src") == job["result"]["urls"]["small"]
    assert len(navigations) == 1, "the page reloaded"
    assert errors == []
    await page.screenshot(path=str(artifacts / "board.png"), full_page=True)
