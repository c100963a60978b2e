"""How fast the board loads in headless Chromium, as ratios against a bare page.

Starts `jobline run` (embedded broker and store, throwaway data dir) on a free loopback port,
creates jobs, then loads `/` in fresh browser contexts (empty caches). It times, on the page's own
clock from the start of navigation, the moment the first page of cards is in the document and
the moment the page is live (subscribed), and counts the bytes the board transfers (photos
aside). The baseline is the same browser loading `/healthz`, a page with no script, to its
load event: what any page load costs here. It prints figures; it
asserts no timing.

    python benchmarks/page_load.py [--jobs N] [--loads N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

import httpx
from playwright.async_api import Browser, async_playwright
from running import on_jobline_run

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic"]


# Runs in the page before its own scripts: notes, on the page's own clock (ms since the
# navigation started), when the awaited card is in the document and when the page is live.
WATCH = """
new MutationObserver(() => {
  const marks = (window.__marks ||= {});
  if (!marks.shown && document.querySelector(window.__ready)) marks.shown = performance.now();
  if (!marks.live && document.querySelector("#connection.live")) marks.live = performance.now();
}).observe(document, { subtree: true, childList: true, attributes: true });
"""


async def load_ms(browser: Browser, url: str, ready: str | None) -> tuple[float, float, int]:
    """(ms to `ready` in the document, ms to live, bytes of non-image responses) for one cold
    load; for a page without `ready`, ms to its load event."""
    context = await browser.new_context()
    page = await context.new_page()
    sizes: list[int] = []

    async def count(response: object) -> None:
        request = response.request  # type: ignore[attr-defined]
        if request.resource_type != "image":
            sizes.append(len(await response.body()))  # type: ignore[attr-defined]

    page.on("response", lambda r: asyncio.ensure_future(count(r)))
    await page.add_init_script(f"window.__ready = {ready!r};" + WATCH if ready else "")
    await page.goto(url)
    if ready is None:
        load = await page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
        await context.close()
        return load, load, sum(sizes)
    await page.locator("#connection.live").wait_for()
    await page.wait_for_load_state("networkidle")
    marks = await page.evaluate("window.__marks")
    await context.close()
    return marks["shown"], marks["live"], sum(sizes)


async def measure(base_url: str, jobs: int, loads: int) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        for _ in range(jobs):
            (await http.post("/jobs")).raise_for_status()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            await load_ms(browser, f"{base_url}/", ".job:nth-child(30)")  # warm the server
            bare = [await load_ms(browser, f"{base_url}/healthz", None) for _ in range(loads)]
            board = [
                await load_ms(browser, f"{base_url}/", ".job:nth-child(30)") for _ in range(loads)
            ]
        finally:
            await browser.close()
    floor = statistics.median(b[0] for b in bare)
    shown = statistics.median(b[0] for b in board)
    live = statistics.median(b[1] for b in board)
    size = statistics.median(b[2] for b in board)
    print(f"{loads} cold loads each, {jobs} jobs in the store")
    print(f"bare page (/healthz) loaded   {floor:7.1f} ms   x 1.0")
    print(f"board: 30 cards in the page   {shown:7.1f} ms   x{shown / floor:4.1f}")
    print(f"board: live (subscribed)      {live:7.1f} ms   x{live / floor:4.1f}")
    print(f"board transfer, photos aside  {size / 1024:7.1f} KiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--loads", type=int, default=10)
    args = parser.parse_args()
    on_jobline_run(lambda base_url: measure(base_url, args.jobs, args.loads))


if __name__ == "__main__":
    main()
