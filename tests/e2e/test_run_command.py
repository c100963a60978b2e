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
from tests.conftest import StandInServer

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


def _start(args: list[str], cwd: Path, **env: str) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JOBLINE_")}
    return subprocess.Popen(
        [sys.executable, "-m", "jobline", *args],
        cwd=cwd,
        env=clean | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _read_until(process: subprocess.Popen[str], marker: str) -> str:
    assert process.stdout is not None
    output = ""
    deadline = time.monotonic() + 60
    while marker not in output:
        line = process.stdout.readline()
        assert line, f"exited early ({process.poll()}): {output}"
        output += line
        assert time.monotonic() < deadline, output
    return output


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


FAST = {"JOBLINE_DELAY_MIN_S": "0.5", "JOBLINE_DELAY_MAX_S": "1", "JOBLINE_DELAY_STEP_S": "0.5"}


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    process = _start(["run", "--port", str(port)], tmp_path, JOBLINE_DATA_DIR=str(tmp_path), **FAST)
    try:
        banner = _read_until(process, "Ctrl-C")
        assert re.search(r"jobline is up in \d+\.\d s", banner)
        assert f"http://127.0.0.1:{port}/graphql" in banner
        yield process, f"http://127.0.0.1:{port}"
    finally:
        _stop(process)


async def _resolves(base: str) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        job = (await http.post("/jobs")).json()
        deadline = time.monotonic() + 30
        while (current := (await http.get(f"/jobs/{job['id']}")).json())["status"] != "resolved":
            assert time.monotonic() < deadline, current
            await asyncio.sleep(0.2)
        photo = await http.get(current["result"]["urls"]["small"])
        assert photo.status_code == 200
        return current


async def test_run_serves_everything_and_stops_cleanly(
    running: tuple[subprocess.Popen[str], str], browser: Browser
) -> None:
    process, base = running
    children = _children(process.pid)
    assert len(children) == 2  # the broker and the store, each its own process
    await _resolves(base)

    page = await browser.new_page()
    await page.goto(base + "/graphql")
    await expect(page.get_by_test_id("graphiql-container")).to_be_visible(timeout=15_000)
    await expect(page.get_by_text("Prettify", exact=False).first).to_be_attached()

    process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(process.wait, 30) == 0
    assert not [pid for pid in children if _alive(pid)], "a child outlived jobline run"


async def test_run_uses_configured_broker_and_store_and_starts_no_embedded_ones(
    tmp_path: Path, kafka: str, mongo: str, stand_in: StandInServer
) -> None:
    port = free_port()
    process = _start(
        ["run", "--port", str(port)],
        tmp_path,
        JOBLINE_KAFKA_BOOTSTRAP_SERVERS=kafka,
        JOBLINE_KAFKA_IDEMPOTENCE="false",
        JOBLINE_MONGODB_URI=mongo,
        JOBLINE_MONGODB_DATABASE=tmp_path.name,
        JOBLINE_TOPIC_PREFIX=tmp_path.name,
        JOBLINE_UNSPLASH_ACCESS_KEY="a-real-key",
        JOBLINE_UNSPLASH_BASE_URL=stand_in.url,
        JOBLINE_DATA_DIR=str(tmp_path),
        **FAST,
    )
    try:
        banner = _read_until(process, "Ctrl-C")
        assert f"broker    {kafka}" in banner
        assert f"store     {mongo}" in banner
        assert f"photos    Unsplash ({stand_in.url})" in banner
        assert _children(process.pid) == set()
        await _resolves(f"http://127.0.0.1:{port}")
        assert stand_in.state.photos == 1
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 30) == 0
    finally:
        _stop(process)


def test_stand_in_command_answers_like_unsplash(tmp_path: Path) -> None:
    port = free_port()
    process = _start(["stand-in", "--port", str(port)], tmp_path)
    try:
        _read_until(process, "listening")
        base = f"http://127.0.0.1:{port}"
        refused = httpx.get(f"{base}/photos/random", params={"query": "food"})
        assert refused.status_code == 401
        answer = httpx.get(
            f"{base}/photos/random",
            params={"query": "food"},
            headers={"Authorization": "Client-ID k", "Accept-Version": "v1"},
        )
        assert answer.status_code == 200
        assert int(answer.headers["x-ratelimit-remaining"]) < int(
            answer.headers["x-ratelimit-limit"]
        )
        photo = answer.json()
        assert photo["urls"]["small"].startswith(base)
        assert photo["links"]["download_location"]
        image = httpx.get(photo["urls"]["small"])
        assert image.headers["content-type"].startswith("image/svg+xml")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        _stop(process)
