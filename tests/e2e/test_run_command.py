"""`jobline run` as a user runs it: one command, everything up, Ctrl-C/SIGTERM stops it all."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from jobline.serving import free_port

pytestmark = pytest.mark.browser


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(p) for p in (task / "children").read_text().split()}
    return found


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBLINE_")}
    env |= {
        "JOBLINE_DATA_DIR": str(tmp_path),
        "JOBLINE_DELAY_MIN_S": "0.5",
        "JOBLINE_DELAY_MAX_S": "1",
        "JOBLINE_DELAY_STEP_S": "0.5",
    }
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "jobline", "run", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = ""
        deadline = time.monotonic() + 60
        while "Ctrl-C" not in banner:
            line = process.stdout.readline()
            assert line, f"jobline run exited early ({process.poll()}): {banner}"
            banner += line
            assert time.monotonic() < deadline, banner
        assert re.search(r"jobline is up in \d+\.\d s", banner)
        assert f"http://127.0.0.1:{port}/graphql" in banner
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


async def test_run_serves_everything_and_stops_cleanly(
    running: tuple[subprocess.Popen[str], str], browser: Browser
) -> None:
    process, base = running
    children = _children(process.pid)
    assert len(children) == 2  # the broker and the store, each its own process

    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        job = (await http.post("/jobs")).json()
        deadline = time.monotonic() + 30
        while (current := (await http.get(f"/jobs/{job['id']}")).json())["status"] != "resolved":
            assert time.monotonic() < deadline, current
            await asyncio.sleep(0.2)
        photo = await http.get(current["result"]["urls"]["small"])
        assert photo.status_code == 200

    page = await browser.new_page()
    await page.goto(base + "/graphql")
    await expect(page.get_by_test_id("graphiql-container")).to_be_visible(timeout=15_000)
    await expect(page.get_by_text("Prettify", exact=False).first).to_be_attached()

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert not [pid for pid in children if _alive(pid)], "a child outlived jobline run"
