"""The page in real headless Chromium against the real system."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect
from pydantic import SecretStr

from projections.jobs.replay import replay
from schema import JobRequested
from tests.conftest import StandInServer, System, SystemFactory
from tests.logread import read_events
from tests.proxy import TcpProxy

pytestmark = pytest.mark.browser


CARD_IDS = "cards => cards.map(c => c.id.slice(4))"  # job ids of the cards, in page order


async def _server_order(system: System) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        params = {"limit": 100} | ({"cursor": cursor} if cursor else {})
        listing = (await system.http.get("/jobs", params=params)).json()
        ids += [job["id"] for job in listing["items"]]
        if (cursor := listing["next_cursor"]) is None:
            return ids


async def test_create_on_the_page_and_see_the_photo_arrive_live(
    browser: Browser, make_system: SystemFactory, artifacts: Path
) -> None:
    # Pending long enough to be seen pending however long the page takes on a busy machine.
    system = await make_system(delay_min_s=2.0, delay_max_s=3.0, delay_step_s=0.5)
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    await page.goto(system.base_url + "/")
    await expect(page.locator("#connection")).to_have_text("live")
    await expect(page.locator("#delay")).to_have_text("2\u00a0s to 3\u00a0s")
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


async def test_several_jobs_at_once_and_the_counters_follow(
    browser: Browser, system: System, artifacts: Path
) -> None:
    page = await browser.new_page(viewport={"width": 1200, "height": 900}, reduced_motion="reduce")
    polled: list[str] = []
    page.on("request", lambda r: polled.append(r.url) if "/job-counts" in r.url else None)
    await page.goto(system.base_url + "/")
    await expect(page.locator("#connection")).to_have_text("live")
    await page.get_by_label("Jobs", exact=True).fill("4")
    await page.get_by_role("button", name="Create job").click()
    await expect(page.locator(".job")).to_have_count(4)
    await expect(page.locator("#count-resolved")).to_have_text("4", timeout=20_000)
    await expect(page.locator("#count-pending")).to_have_text("0")
    await expect(page.locator(".job .photo.loaded img")).to_have_count(4)
    assert polled == [], "counters are pushed over the subscription, not polled"
    await page.screenshot(path=str(artifacts / "board-desktop.png"), full_page=True)
    await page.emulate_media(color_scheme="dark")
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(27, 25, 22)", background  # the dark palette, not the light
    await page.screenshot(path=str(artifacts / "board-dark.png"), full_page=True)
    chosen = await page.locator(".job .photo img").evaluate_all("i => i.map(x => x.currentSrc)")
    assert all("w=400" in url for url in chosen), chosen  # a 270 px card: the small size
    phone = await browser.new_page(
        viewport={"width": 390, "height": 844},
        device_scale_factor=3,
        is_mobile=True,
        reduced_motion="reduce",
    )
    await phone.goto(system.base_url + "/")
    await expect(phone.locator(".job .photo.loaded img")).to_have_count(4)
    chosen = await phone.locator(".job .photo img").evaluate_all("i => i.map(x => x.currentSrc)")
    assert all("w=1080" in url for url in chosen), chosen  # full width at 3x: the regular size
    await expect(phone.locator("#count-resolved")).to_have_text("4")
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "the board overflows a phone's width"
    await phone.screenshot(path=str(artifacts / "board-phone.png"), full_page=True)


async def test_create_20_is_one_request_for_20_jobs(browser: Browser, system: System) -> None:
    page = await browser.new_page()
    posts: list[str | None] = []
    page.on(
        "request",
        lambda r: (
            posts.append(r.post_data) if r.method == "POST" and r.url.endswith("/jobs") else None
        ),
    )
    await page.goto(system.base_url + "/")
    await expect(page.locator("#connection")).to_have_text("live")
    await page.get_by_label("Jobs", exact=True).fill("20")
    await page.get_by_role("button", name="Create job").click()
    await expect(page.locator(".job")).to_have_count(20)
    await expect(page.locator('.job[data-status="queued"]')).to_have_count(0)
    assert [json.loads(p or "null") for p in posts] == [{"count": 20}]
    await expect(page.locator("#count-resolved")).to_have_text("20", timeout=30_000)
    assert (await system.http.get("/job-counts")).json()["total"] == 20


async def test_scrolling_loads_the_next_page(browser: Browser, system: System) -> None:
    created = [await system.create() for _ in range(35)]
    # Settled before the page opens: a live update of one of the 5 oldest jobs would add its
    # card below the first page (in order, deduped on scroll), and the count would not be 30.
    for job in created:
        await system.wait_for(job["id"], timeout_s=120)
    page = await browser.new_page()
    await page.goto(system.base_url + "/")
    await expect(page.locator(".job")).to_have_count(30)
    await page.locator("#more").scroll_into_view_if_needed()
    await expect(page.locator(".job")).to_have_count(35)
    await expect(page.locator("#more")).to_have_text("that is every job")
    shown = await page.locator(".job").evaluate_all(CARD_IDS)
    server = await _server_order(system)
    assert shown == server  # the page's order is the server's, same-millisecond ties included
    assert set(shown) == {job["id"] for job in created}


async def test_hostile_photo_fields_render_as_inert_text(
    browser: Browser, system: System, stand_in: StandInServer
) -> None:
    hostile_fields = {
        "alt_description": '"><img src=x onerror="window.pwned=1">',
        "user": {
            "name": "<script>window.pwned=2</script>",
            "links": {"html": "javascript:window.pwned=3"},
        },
        "links": {"html": "javascript:window.pwned=4"},
    }
    await stand_in.control("POST", "photo", hostile_fields)
    page = await browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await page.goto(system.base_url + "/")
    await expect(page.locator("#connection")).to_have_text("live")
    await page.get_by_role("button", name="Create job").click()
    card = page.locator(".job").first
    await expect(card).to_have_attribute("data-status", "resolved", timeout=20_000)
    credit = card.locator(".credit")
    await expect(credit).to_contain_text("<script>window.pwned=2</script>")  # shown, as text
    assert await credit.locator("a").count() == 0  # javascript: links are not links
    img = card.locator(".photo img")
    assert await img.get_attribute("alt") == '"><img src=x onerror="window.pwned=1">'
    await card.locator(".credit span").first.click()
    assert await page.evaluate("window.pwned") is None
    assert await page.locator("script").count() == 1  # only the page's own module
    assert dialogs == []


async def test_a_lost_connection_loses_nothing_and_doubles_nothing(
    browser: Browser, make_system: SystemFactory
) -> None:
    # Pending long enough to be seen pending however long the page takes on a busy machine.
    system = await make_system(delay_min_s=5.0, delay_max_s=6.0, delay_step_s=0.5)
    proxy = TcpProxy(system.api.port)
    await proxy.start()
    context = await browser.new_context()
    page = await context.new_page()
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    try:
        await page.goto(f"http://127.0.0.1:{proxy.port}/")
        await expect(page.locator("#connection")).to_have_text("live")
        await page.get_by_label("Jobs", exact=True).fill("2")
        await page.get_by_role("button", name="Create job").click()
        await expect(page.locator('.job[data-status="pending"]')).to_have_count(2)
        countdowns = page.locator('.job[data-status="pending"] .countdown')
        await expect(countdowns).to_have_text([re.compile(r"due in [1-6]\s+s")] * 2)

        await proxy.cut()  # drops the open WebSocket too, which set_offline alone would not
        await context.set_offline(True)
        await expect(page.locator("#connection")).not_to_have_text("live")
        await page.get_by_role("button", name="Create job").click()  # still 2 at a time
        await expect(page.locator('.job[data-status="queued"]')).to_have_count(2)
        queued = json.loads(await page.evaluate("localStorage.getItem('jobline.queue')"))
        assert [item["count"] for item in queued] == [2]  # one request, for both
        for _ in range(600):  # the first two resolve on the server meanwhile
            if (await system.http.get("/job-counts")).json()["resolved"] == 2:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the first two jobs did not resolve during the outage")

        await proxy.restore()
        await context.set_offline(False)
        await expect(page.locator("#connection")).to_have_text("live", timeout=15_000)
        await expect(page.locator('.job[data-status="resolved"]')).to_have_count(4, timeout=20_000)
        await expect(page.locator(".job")).to_have_count(4)  # no queued leftovers, no doubles
        assert await page.evaluate("localStorage.getItem('jobline.queue')") == "[]"
        assert len(navigations) == 1, "the page reloaded"
    finally:
        await context.close()
        await proxy.cut()

    events = await read_events(system.settings)
    requested = [e for e in events if isinstance(e, JobRequested)]
    assert len({e.job_id for e in requested}) == 4
    for item in queued:
        assert len({e.job_id for e in requested if e.idempotency_key == item["key"]}) == 2


async def _create_many(system: System, n: int) -> None:
    """Create n jobs elsewhere and let every one finish, so no live update of theirs can
    reach the page after its catch-up."""
    left = iter(range(n))

    async def client() -> None:
        for _ in left:
            await system.create()

    await asyncio.gather(*(client() for _ in range(8)))
    for _ in range(300):
        counts = (await system.http.get("/job-counts")).json()
        if counts["resolved"] + counts["failed"] == counts["total"]:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"jobs still open: {counts}")


async def test_jobs_created_elsewhere_while_offline_leave_no_gap(
    browser: Browser, system: System
) -> None:
    proxy = TcpProxy(system.api.port)
    await proxy.start()
    context = await browser.new_context()
    page = await context.new_page()
    listed: list[str] = []
    page.on("request", lambda r: listed.append(r.url) if "/jobs?" in r.url else None)
    cards = page.locator(".job")
    try:
        for _ in range(3):
            await system.create()
        await page.goto(f"http://127.0.0.1:{proxy.port}/")
        await expect(page.locator("#connection")).to_have_text("live")
        await expect(cards).to_have_count(3)

        await proxy.cut()  # meanwhile, 35 jobs from elsewhere: more than the page's 30
        await expect(page.locator("#connection")).not_to_have_text("live")
        await _create_many(system, 35)
        pages_read = len(listed)
        await proxy.restore()
        await expect(cards).to_have_count(38, timeout=15_000)
        assert await cards.evaluate_all(CARD_IDS) == await _server_order(system)
        assert len(listed) == pages_read, "it resumed from its cursor: no page re-read"

        # Then more than the catch-up pages, and a read model rebuilt meanwhile, so the page's
        # cursor is too old: it falls back to re-reading, and the older cards make way.
        await proxy.cut()
        await expect(page.locator("#connection")).not_to_have_text("live")
        assert (await replay(system.settings, lambda done, total: None)).swapped
        await _create_many(system, 305)
        await proxy.restore()
        await expect(page.locator("#connection")).to_have_text("live", timeout=15_000)
        await expect(cards).to_have_count(300, timeout=15_000)
        assert len(listed) > pages_read, "it fell back to re-reading the board"
        server = await _server_order(system)
        assert await cards.evaluate_all(CARD_IDS) == server[:300]
        for _ in range(5):  # scroll down as a reader would, a page at a time
            if await cards.count() == len(server):
                break
            await page.locator("#more").scroll_into_view_if_needed()
            await expect(page.locator("#more")).not_to_have_text("loading more…")
            await page.wait_for_timeout(100)
        assert await cards.evaluate_all(CARD_IDS) == server
    finally:
        await context.close()
        await proxy.cut()


async def test_with_an_api_token_the_page_asks_for_it_and_then_works(
    browser: Browser, make_system: SystemFactory
) -> None:
    system = await make_system(api_token=SecretStr("page-token"))
    page = await browser.new_page()
    await page.goto(system.base_url + "/")
    token = page.get_by_label("API token")
    await expect(token).to_be_visible()
    await page.get_by_role("button", name="Create job").click()  # refused: kept queued
    await expect(page.locator("#notice")).to_contain_text("needs an API token")
    await expect(page.locator('.job[data-status="queued"]')).to_have_count(1)
    assert (await system.http.get("/job-counts")).json()["total"] == 0

    await token.fill("page-token")
    await token.press("Enter")
    await expect(page.locator('.job[data-status="queued"]')).to_have_count(0, timeout=15_000)
    await expect(page.locator("#connection")).to_have_text("live", timeout=15_000)
    await expect(page.locator("#count-resolved")).to_have_text("1", timeout=20_000)  # pushed
    await expect(page.locator('.job[data-status="resolved"]')).to_have_count(1)
    assert (await system.http.get("/job-counts")).json()["total"] == 1  # Enter sent no job


async def test_a_job_waiting_for_unsplash_s_allowance_says_so(
    browser: Browser, make_system: SystemFactory, stand_in: StandInServer, artifacts: Path
) -> None:
    await stand_in.allowance(2, 60)  # less the reserve: one request a minute
    system = await make_system(unsplash_window_s=60)
    first = await system.create()
    await system.wait_for(first["id"])
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(system.base_url + "/")
        await expect(page.locator("#connection")).to_have_text("live")
        waiting = await system.create()
        card = page.locator(f"#job-{waiting['id']}")
        await expect(card).to_have_attribute("data-status", "processing", timeout=15_000)
        # Said by the change that made it processing or, if the API's reading of the
        # allowance (at most once a second) was older than the allowance's end, by the
        # page's own look at the allowance, every 10 s.
        await expect(card.locator(".photo")).to_contain_text(
            "waiting for Unsplash's allowance", timeout=15_000
        )
        await page.screenshot(path=str(artifacts / "board-waiting-for-allowance.png"))
    finally:
        await context.close()
