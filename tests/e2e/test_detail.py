"""The page's job view at its own address, its BlurHash placeholders, and keyboard use."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import blurhash
import pytest
from playwright.async_api import Browser, Page, expect

from tests.conftest import StandInServer, System, SystemFactory

pytestmark = pytest.mark.browser

EVENTS = ["JobRequested", "JobDue", "JobResolved"]


def _errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return errors


async def _mark(page: Page) -> None:
    """Mark the loaded document: a reload would lose the mark (pushState keeps it)."""
    await page.evaluate("window.sameDocument = true")


async def _not_reloaded(page: Page) -> bool:
    return bool(await page.evaluate("window.sameDocument === true"))


async def _expect_detail_of(page: Page, job: dict[str, Any]) -> None:
    detail = page.locator("#detail")
    await expect(detail).to_be_visible()
    await expect(page.locator("#board")).to_be_hidden()
    await expect(detail.get_by_role("heading", level=2)).to_have_text(f"Job {job['id'][:8]}")
    fields = detail.get_by_label("Job fields")
    await expect(fields).to_contain_text(job["id"])
    await expect(fields.locator(".status")).to_have_text(job["status"])
    history = detail.locator(".history li")
    await expect(history).to_have_count(len(job["history"]))
    for item, event in zip(await history.all(), job["history"], strict=True):
        await expect(item).to_have_attribute("data-type", event["type"])
        await expect(item.locator(".event-id")).to_contain_text(event["event_id"])
    if job["status"] == "resolved":
        photo = job["result"]
        await expect(detail.locator(".photo img")).to_have_attribute(
            "src", photo["urls"]["regular"]
        )
        await expect(detail.get_by_label("Photo fields")).to_contain_text(photo["blur_hash"])
        await expect(detail.locator(".credit")).to_contain_text(f"Photo by {photo['user']['name']}")


async def test_a_job_has_its_own_address_that_reloads(
    browser: Browser, system: System, artifacts: Path
) -> None:
    page = await browser.new_page(viewport={"width": 1200, "height": 900}, reduced_motion="reduce")
    errors = _errors(page)
    await page.goto(system.base_url + "/")
    await _mark(page)
    await expect(page.locator("#connection")).to_have_text("live")
    await page.get_by_role("button", name="Create job").click()
    card = page.locator(".job").first
    await expect(card).to_have_attribute("data-status", "resolved", timeout=20_000)
    job_id = (await card.get_attribute("id") or "").removeprefix("job-")

    await card.get_by_role("link", name=f"Details of job {job_id}").click()
    await expect(page).to_have_url(f"{system.base_url}/job/{job_id}")
    job = (await system.http.get(f"/jobs/{job_id}")).json()
    assert [event["type"] for event in job["history"]] == EVENTS
    await _expect_detail_of(page, job)
    await expect(page.locator("#detail h2")).to_be_focused()
    assert await _not_reloaded(page), "opening a job reloaded the page"
    await expect(page.locator("#detail .photo")).to_have_class("photo loaded")
    await page.screenshot(path=str(artifacts / "job-detail.png"), full_page=True)

    await page.reload()
    await _expect_detail_of(page, job)
    await _mark(page)
    await expect(page).to_have_title(f"Job {job_id[:8]} · jobline")

    await page.get_by_role("link", name="← All jobs").click()
    await expect(page).to_have_url(f"{system.base_url}/")
    await expect(page.locator("#board")).to_be_visible()
    await expect(page.locator(f"#job-{job_id}")).to_have_attribute("data-status", "resolved")
    await page.go_back()
    await _expect_detail_of(page, job)
    await page.get_by_role("button", name="Create job").click()  # from a job's view
    await expect(page).to_have_url(f"{system.base_url}/")  # the board, to see the new one
    await expect(page.locator(".job")).to_have_count(2)
    assert await _not_reloaded(page)
    assert errors == []

    phone = await browser.new_page(
        viewport={"width": 390, "height": 844}, is_mobile=True, reduced_motion="reduce"
    )
    await phone.goto(f"{system.base_url}/job/{job_id}")
    await _expect_detail_of(phone, job)
    await expect(phone.locator("#detail .photo")).to_have_class("photo loaded")
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "a job's view overflows a phone's width"
    await phone.screenshot(path=str(artifacts / "job-detail-phone.png"), full_page=True)


async def test_the_job_view_follows_the_job_live(
    browser: Browser, make_system: SystemFactory
) -> None:
    # Pending long enough to be seen pending however long the page takes on a busy machine.
    system = await make_system(delay_min_s=8.0, delay_max_s=8.0, delay_step_s=1.0)
    job = await system.create()
    page = await browser.new_page()
    errors = _errors(page)
    await page.goto(f"{system.base_url}/job/{job['id']}")  # straight in, by address
    await _mark(page)
    detail = page.locator("#detail")
    await expect(detail.locator(".status")).to_have_text("pending")
    await expect(detail.locator(".countdown")).to_have_text(re.compile(r"due in [1-8]\s+s"))
    waited = detail.get_by_role("progressbar", name="Time waited")
    before = float(await waited.evaluate("bar => bar.value"))
    await page.wait_for_timeout(1100)
    after = float(await waited.evaluate("bar => bar.value"))
    assert 0 < before < after <= 1, (before, after)  # the bar fills as the due time nears
    long_wait = await page.evaluate(
        """async () => (await import("/static/dom.js")).countdown(
            { due_at: new Date(Date.now() + 152_400).toISOString() })"""
    )
    assert long_wait == "due in 2\u00a0min 33\u00a0s"
    await expect(detail.locator(".status")).to_have_text("resolved", timeout=60_000)
    resolved = (await system.http.get(f"/jobs/{job['id']}")).json()
    await _expect_detail_of(page, resolved)
    assert await _not_reloaded(page)
    assert errors == []


async def test_an_unknown_address_says_so(browser: Browser, system: System) -> None:
    page = await browser.new_page()
    errors = _errors(page)
    await page.goto(system.base_url + "/job/%E0%A4%A")  # not even percent-encoding
    await expect(page.locator("#detail code")).to_have_text("%E0%A4%A")
    await page.goto(system.base_url + "/job/no-such-job")
    await expect(page.get_by_role("heading", level=2)).to_have_text("Job not found")
    await expect(page.locator("#detail")).to_contain_text("There is no job with this ID.")
    await expect(page.locator("#detail code")).to_have_text("no-such-job")
    assert [e for e in errors if "404" not in e] == []  # the browser logs the 404 it fetched
    await page.get_by_role("link", name="← All jobs").click()
    await expect(page.locator("#board")).to_be_visible()


async def test_the_placeholder_is_the_photos_blur_hash(
    browser: Browser, system: System, stand_in: StandInServer
) -> None:
    job = await system.create()
    photo = (await system.wait_for(job["id"]))["result"]
    page = await browser.new_page()
    await page.goto(system.base_url + "/")
    card = page.locator(f"#job-{job['id']}")
    await expect(card.locator(".photo canvas")).to_have_count(1)
    await expect(card.locator(".photo")).to_have_class("photo loaded")

    width, height = 8, 6
    decoded = await page.evaluate(
        """async ([hash, w, h]) => {
            const { decode } = await import("/static/blurhash.js");
            return Array.from(decode(hash, w, h));
        }""",
        [photo["blur_hash"], width, height],
    )
    expected = blurhash.decode(photo["blur_hash"], width, height)
    for y in range(height):
        for x in range(width):
            at = 4 * (x + y * width)
            assert all(abs(decoded[at + c] - expected[y][x][c]) <= 1 for c in range(3)), (
                x,
                y,
                decoded[at : at + 3],
                expected[y][x],
            )
    painted = await card.locator(".photo canvas").evaluate(
        "c => new Set(c.getContext('2d').getImageData(0, 0, c.width, c.height).data).size"
    )
    assert painted > 10, "the placeholder is one flat colour"

    await stand_in.control(
        "POST", "photo", {"blur_hash": "<b>not a hash", "color": "red;x:url(//e)"}
    )
    errors = _errors(page)
    hostile = await system.create()
    await system.wait_for(hostile["id"])
    card = page.locator(f"#job-{hostile['id']}")
    await expect(card).to_have_attribute("data-status", "resolved", timeout=20_000)
    await expect(card.locator(".photo canvas")).to_have_count(0)  # no placeholder, no error
    assert await card.locator(".photo").evaluate("p => p.style.backgroundColor") == ""
    assert errors == []


async def _focused(page: Page) -> dict[str, Any]:
    return await page.evaluate(
        """() => {
            const e = document.activeElement;
            const label = e.getAttribute("aria-label")
                || [...(e.labels || [])].map((l) => l.textContent).join(" ")
                || e.textContent;
            return { tag: e.tagName, id: e.id, cls: e.className, name: label.trim(),
                     outline: getComputedStyle(e).outlineStyle };
        }"""
    )


async def _tab_to(page: Page, name: str, key: str = "Tab", limit: int = 40) -> list[dict[str, Any]]:
    """Tab until the focused element's name starts with `name`; every stop on the way."""
    stops = []
    for _ in range(limit):
        await page.keyboard.press(key)
        stops.append(await _focused(page))
        if stops[-1]["name"].startswith(name):
            return stops
    raise AssertionError(f"Tab never reached {name!r}; stops: {stops}")


async def test_everything_works_from_the_keyboard(browser: Browser, system: System) -> None:
    page = await browser.new_page()
    await page.goto(system.base_url + "/")
    await expect(page.locator("#connection")).to_have_text("live")

    stops = await _tab_to(page, "Jobs")
    await page.keyboard.press("Control+A")
    await page.keyboard.type("2")
    stops += await _tab_to(page, "Create job")
    await page.keyboard.press("Enter")
    await expect(page.locator('.job[data-status="resolved"]')).to_have_count(2, timeout=20_000)

    newest = (await page.locator(".job").first.get_attribute("id") or "").removeprefix("job-")
    stops += await _tab_to(page, f"Details of job {newest}")
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(f"{system.base_url}/job/{newest}")
    await expect(page.locator("#detail h2")).to_be_focused()  # focus moves to the view it opened
    await page.keyboard.press("Shift+Tab")
    back = await _focused(page)
    assert back["name"] == "← All jobs"
    stops += [back, *await _tab_to(page, "photo page")]  # through the credit and the fields
    stops += await _tab_to(page, "← All jobs", key="Shift+Tab")
    await page.keyboard.press("Enter")
    await expect(page.locator("#board")).to_be_visible()
    back_on = page.get_by_role("link", name=f"Details of job {newest}")
    await expect(back_on).to_be_focused()  # back where we were

    assert all(stop["name"] for stop in stops), [s for s in stops if not s["name"]]
    assert all(stop["outline"] != "none" for stop in stops), [
        s for s in stops if s["outline"] == "none"
    ]


_VIOLATION = """(make) => new Promise((resolve) => {
    document.addEventListener("securitypolicyviolation",
        (e) => resolve(e.violatedDirective), { once: true });
    const node = document.createElement(make.tag);
    Object.assign(node, make.props);
    document.body.append(node);
})"""


async def test_the_page_policy_forbids_inline_script_and_foreign_images(
    browser: Browser, system: System
) -> None:
    photo_host = "{0.scheme}://{0.netloc}".format(urlsplit(system.settings.unsplash_base_url))
    for path in ("/", "/job/some-id"):
        policy = (await system.http.get(path)).headers["content-security-policy"]
        rules = dict(rule.split(" ", 1) for rule in policy.split("; "))
        assert rules["script-src"] == "'self'"
        assert rules["img-src"] == f"'self' https://images.unsplash.com {photo_host}"
    page = await browser.new_page()
    await page.goto(system.base_url + "/")
    inline = {"tag": "script", "props": {"textContent": "window.ran = true"}}
    assert await page.evaluate(_VIOLATION, inline) == "script-src-elem"
    assert await page.evaluate("window.ran") is None
    foreign = {"tag": "img", "props": {"src": "http://192.0.2.1/x.png"}}
    assert await page.evaluate(_VIOLATION, foreign) == "img-src"
