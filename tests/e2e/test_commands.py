"""Cancel and retry on the page, in real headless Chromium against the real system: from the
board and from the job view, and made offline (queued with its key like a creation)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, Request, expect

from schema import JobCancelled, JobRetried
from tests.conftest import (
    StandInServer,
    SystemFactory,
    failed_job,
)
from tests.logread import read_events
from tests.proxy import TcpProxy
from tests.unit.events import RETRIED_AND_RESOLVED

pytestmark = pytest.mark.browser


def _commands_sent(page: Page) -> list[tuple[str, str | None]]:
    """(path, Idempotency-Key) of every command request the page sends."""
    sent: list[tuple[str, str | None]] = []

    def seen(request: Request) -> None:
        if request.method == "POST" and request.url.endswith(("/cancel", "/retry")):
            sent.append((request.url.split("/", 3)[3], request.headers.get("idempotency-key")))

    page.on("request", seen)
    return sent


def _errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return errors


async def test_cancel_and_retry_from_the_board(
    browser: Browser, make_system: SystemFactory, stand_in: StandInServer, artifacts: Path
) -> None:
    # A wait long enough to cancel in however long a busy machine takes; a retry's too.
    system = await make_system(delay_min_s=4.0, delay_max_s=4.0, delay_step_s=1.0)
    failed = await failed_job(system, stand_in)
    waiting = await system.create()
    page = await browser.new_page()
    errors = _errors(page)
    sent = _commands_sent(page)
    await page.goto(system.base_url + "/")
    await expect(page.locator("#connection")).to_have_text("live")

    card = page.locator(f"#job-{waiting['id']}")
    await expect(card).to_have_attribute("data-status", "pending")
    await card.get_by_role("button", name="Cancel").click()
    await expect(card).to_have_attribute("data-status", "cancelled")
    await expect(card.get_by_role("button")).to_have_count(0)  # nothing more to do with it
    await expect(page.locator("#count-cancelled")).to_have_text("1")

    failed_card = page.locator(f"#job-{failed['id']}")
    await expect(failed_card).to_have_attribute("data-status", "failed")
    await expect(failed_card.locator(".error")).to_contain_text("404")
    await page.screenshot(path=str(artifacts / "board-commands.png"), full_page=True)
    await failed_card.get_by_role("button", name="Retry").click()
    await expect(failed_card).to_have_attribute("data-status", "pending")
    await expect(failed_card.locator(".countdown")).to_be_visible()
    await expect(failed_card).to_have_attribute("data-status", "resolved", timeout=30_000)
    await expect(failed_card.locator(".photo img")).to_be_visible()

    assert [path for path, _ in sent] == [
        f"jobs/{waiting['id']}/cancel",
        f"jobs/{failed['id']}/retry",
    ]
    assert all(key for _, key in sent), "each command carries its idempotency key"
    await system.wait_for(waiting["id"], ("cancelled",))
    assert await page.evaluate("localStorage.getItem('jobline.queue')") == "[]"
    assert errors == []


async def test_cancel_and_retry_from_the_job_view_with_every_attempt_in_the_history(
    browser: Browser, make_system: SystemFactory, stand_in: StandInServer
) -> None:
    system = await make_system(delay_min_s=4.0, delay_max_s=4.0, delay_step_s=1.0)
    failed = await failed_job(system, stand_in)
    page = await browser.new_page()
    errors = _errors(page)
    await page.goto(f"{system.base_url}/job/{failed['id']}")
    detail = page.locator("#detail")
    status = detail.get_by_label("Job fields").locator(".status")
    await expect(status).to_have_text("failed")
    await detail.get_by_role("button", name="Retry").click()
    await expect(status).to_have_text("pending")
    await expect(detail.locator(".history li").last).to_have_attribute("data-type", "JobRetried")
    await expect(status).to_have_text("resolved", timeout=30_000)
    history = detail.locator(".history li")
    await expect(history).to_have_count(6)
    assert (
        await history.evaluate_all("items => items.map(i => i.dataset.type)")
        == RETRIED_AND_RESOLVED
    )
    await expect(history.nth(2)).to_contain_text("attempt 1 failed")
    await expect(history.nth(4)).to_contain_text("attempt 2")
    await expect(detail.locator(".photo img")).to_be_visible()

    waiting = await system.create()
    await page.goto(f"{system.base_url}/job/{waiting['id']}")
    await expect(status).to_have_text("pending")
    await detail.get_by_role("button", name="Cancel").click()
    await expect(status).to_have_text("cancelled")
    await expect(detail.get_by_role("button")).to_have_count(0)
    await expect(detail.locator(".history li").last).to_contain_text("no photo is fetched")
    await system.wait_for(waiting["id"], ("cancelled",))  # the log took it
    assert errors == []


async def test_a_cancel_made_offline_is_queued_and_sent_once_when_back(
    browser: Browser, make_system: SystemFactory
) -> None:
    # Long enough to stay pending through the outage however busy the machine is.
    system = await make_system(delay_min_s=60.0, delay_max_s=60.0, delay_step_s=1.0)
    job = await system.create()
    proxy = TcpProxy(system.api.port)
    await proxy.start()
    context = await browser.new_context()
    page = await context.new_page()
    sent = _commands_sent(page)
    try:
        await page.goto(f"http://127.0.0.1:{proxy.port}/")
        await expect(page.locator("#connection")).to_have_text("live")
        card = page.locator(f"#job-{job['id']}")
        await expect(card).to_have_attribute("data-status", "pending")

        await proxy.cut()
        await context.set_offline(True)
        await expect(page.locator("#connection")).not_to_have_text("live")
        await card.get_by_role("button", name="Cancel").click()
        await expect(card.get_by_role("button")).to_have_text("Cancelling…")
        await expect(card.get_by_role("button")).to_be_disabled()
        queued = json.loads(await page.evaluate("localStorage.getItem('jobline.queue')"))
        assert [(q["command"], q["id"]) for q in queued] == [("cancel", job["id"])]
        assert (await system.http.get(f"/jobs/{job['id']}")).json()["status"] == "pending"

        await proxy.restore()
        await context.set_offline(False)
        await expect(page.locator("#connection")).to_have_text("live", timeout=15_000)
        await expect(card).to_have_attribute("data-status", "cancelled", timeout=15_000)
        assert await page.evaluate("localStorage.getItem('jobline.queue')") == "[]"
    finally:
        await context.close()
        await proxy.cut()

    assert {key for _, key in sent} == {queued[0]["key"]}  # however often it was sent
    events = [e for e in await read_events(system.settings) if e.job_id == job["id"]]
    assert len({e.event_id for e in events if isinstance(e, JobCancelled)}) == 1
    assert not any(isinstance(e, JobRetried) for e in events)


async def test_a_command_the_job_has_outrun_is_explained(
    browser: Browser, make_system: SystemFactory
) -> None:
    """A page showing a job as pending after it resolved (as after a lost update) offers
    cancel; the server refuses, and the page says why and shows the job as it is."""
    system = await make_system(delay_min_s=3.0, delay_max_s=3.0, delay_step_s=1.0)
    job = await system.create()
    page = await browser.new_page()
    await page.route_web_socket("**/graphql", lambda socket: None)  # a socket that never answers
    await page.goto(system.base_url + "/")
    card = page.locator(f"#job-{job['id']}")
    await expect(card).to_have_attribute("data-status", "pending")
    await system.wait_for(job["id"])
    await card.get_by_role("button", name="Cancel").click()
    await expect(page.locator("#notice")).to_contain_text("only a pending job can be cancelled")
    await expect(card).to_have_attribute("data-status", "resolved")
