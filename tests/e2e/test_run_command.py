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
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, expect
from pymongo import AsyncMongoClient

from jobline.serving import free_port
from runtime.settings import Settings
from schema import JobDue, JobFailed, JobRequested, JobResolved
from tests.clients import api_client
from tests.conftest import StandInServer
from tests.logread import read_events
from tests.readmodel import counts_and_recount
from tests.runs import (
    FAST,
    alive,
    child_pids,
    exit_code,
    read_until,
    start_jobline,
    still_running,
    stop,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    process = start_jobline(
        ["run", "--port", str(port)], tmp_path, JOBLINE_DATA_DIR=str(tmp_path), **FAST
    )
    try:
        banner = read_until(process, "Ctrl-C")
        assert re.search(r"jobline is up in \d+\.\d s", banner)
        assert f"http://127.0.0.1:{port}/graphql" in banner
        yield process, f"http://127.0.0.1:{port}"
    finally:
        stop(process)


async def _resolves(base: str) -> dict[str, object]:
    async with api_client(base) as http:
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
    children = child_pids(process.pid)
    assert len(children) == 2  # the broker and the store, each its own process
    await _resolves(base)

    page = await browser.new_page()
    async with page.expect_response(
        lambda r: r.url.endswith("/graphql") and "__schema" in (r.request.post_data or "")
    ) as introspection:
        await page.goto(base + "/graphql")
    await expect(page.get_by_test_id("graphiql-container")).to_be_visible(timeout=15_000)
    await expect(page.get_by_text("Prettify", exact=False).first).to_be_attached()
    schema = await (await introspection.value).json()  # within the depth and cost limits
    assert "errors" not in schema, schema.get("errors")
    assert schema["data"]["__schema"]["queryType"]["name"] == "Query"

    process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(process.wait, 30) == 0
    assert not [pid for pid in children if alive(pid)], "a child outlived jobline run"


async def test_run_uses_configured_broker_and_store_and_starts_no_embedded_ones(
    tmp_path: Path, kafka: str, mongo: str, stand_in: StandInServer
) -> None:
    port = free_port()
    process = start_jobline(
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
        banner = read_until(process, "Ctrl-C")
        assert f"broker    {kafka}" in banner
        assert f"store     {mongo}" in banner
        assert f"photos    Unsplash ({stand_in.url})" in banner
        assert child_pids(process.pid) == set()
        await _resolves(f"http://127.0.0.1:{port}")
        assert stand_in.state.photos == 1
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 30) == 0
    finally:
        stop(process)


def test_stand_in_command_answers_like_unsplash(tmp_path: Path) -> None:
    port = free_port()
    process = start_jobline(["stand-in", "--port", str(port)], tmp_path)
    try:
        read_until(process, "listening")
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
        assert exit_code(process, 15) == 0
    finally:
        stop(process)


async def test_run_killed_with_jobs_pending_restarts_and_resolves_each_once(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {
        "JOBLINE_DATA_DIR": str(tmp_path / "data"),
        "JOBLINE_DELAY_MIN_S": "2",
        "JOBLINE_DELAY_MAX_S": "4",
        "JOBLINE_DELAY_STEP_S": "0.5",
    }
    base = f"http://127.0.0.1:{port}"
    first = start_jobline(["run", "--port", str(port)], tmp_path, **env)
    try:
        read_until(first, "Ctrl-C")
        children = child_pids(first.pid)
        done_before = [await _resolves(base) for _ in range(3)]
        async with api_client(base) as http:
            pending = [(await http.post("/jobs")).json() for _ in range(15)]
        await asyncio.sleep(1.2)
        first.send_signal(signal.SIGKILL)
        first.wait()
        deadline = time.monotonic() + 10
        while lingering := still_running(children):  # they die with it
            assert time.monotonic() < deadline, f"children outlived a killed run: {lingering}"
            await asyncio.sleep(0.1)
    finally:
        stop(first)

    second = start_jobline(["run", "--port", str(port)], tmp_path, **env)
    try:
        banner = read_until(second, "Ctrl-C")
        async with api_client(base) as http:
            for job in done_before:
                again = (await http.get(f"/jobs/{job['id']}")).json()
                assert again["result"]["id"] == job["result"]["id"]  # type: ignore[index]
            for job in pending:
                deadline = time.monotonic() + 60
                while (now := (await http.get(f"/jobs/{job['id']}")).json())[
                    "status"
                ] != "resolved":
                    assert time.monotonic() < deadline, now
                    await asyncio.sleep(0.2)
        broker = re.search(r"broker +(\S+)", banner)
        assert broker is not None
        events = await read_events(Settings(_env_file=None, kafka_bootstrap_servers=broker[1]))  # type: ignore[call-arg]
        outcomes: dict[str, set[str]] = {}
        due_at = {e.job_id: e.due_at for e in events if isinstance(e, JobRequested)}
        for event in events:
            if isinstance(event, JobResolved | JobFailed):
                outcomes.setdefault(event.job_id, set()).add(event.event_id)
            if isinstance(event, JobDue):
                assert event.occurred_at >= due_at[event.job_id], "a job fell due early"
        ids = {j["id"] for j in pending} | {str(j["id"]) for j in done_before}
        assert set(outcomes) == ids
        assert all(len(o) == 1 for o in outcomes.values())
        second.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(exit_code, second, 30) == 0
    finally:
        stop(second)


async def test_run_refuses_checkpoints_past_the_end_of_a_reset_log(
    tmp_path: Path, mongo: str
) -> None:
    env = {
        "JOBLINE_DATA_DIR": str(tmp_path),
        "JOBLINE_MONGODB_URI": mongo,
        "JOBLINE_MONGODB_DATABASE": tmp_path.name,
        **FAST,
    }
    port = free_port()
    first = start_jobline(["run", "--port", str(port)], tmp_path, **env)
    try:
        read_until(first, "Ctrl-C")
        for _ in range(3):
            await _resolves(f"http://127.0.0.1:{port}")
        await asyncio.sleep(1.5)  # the archiver keeps the groups' checkpoints
        first.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(exit_code, first, 30) == 0
    finally:
        stop(first)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo)
    try:  # the log is lost, its archive too; the checkpoints remain
        await client[tmp_path.name]["log_archive"].drop()
        assert await client[tmp_path.name]["log_archive_groups"].count_documents({}) > 0
    finally:
        await client.close()

    clean = {k: v for k, v in os.environ.items() if not k.startswith("JOBLINE_")}
    second = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "jobline", "run", "--port", str(free_port())],
        cwd=tmp_path,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode == 1
    assert "checkpoints past the end of the log" in second.stderr
    assert "refusing to start" in second.stderr


def test_run_stops_with_a_clear_error_when_its_broker_dies(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBLINE_")}
    with (tmp_path / "stderr.log").open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "jobline", "run", "--port", str(free_port())],
            cwd=tmp_path,
            env=env | {"JOBLINE_DATA_DIR": str(tmp_path)},
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            read_until(process, "Ctrl-C")
            children = child_pids(process.pid)
            tansu = next(p for p in children if "tansu" in Path(f"/proc/{p}/cmdline").read_text())
            os.kill(tansu, signal.SIGKILL)
            assert exit_code(process, 30) == 1
        finally:
            stop(process)
    assert "broker (Tansu) stopped" in (tmp_path / "stderr.log").read_text()
    assert "exited unexpectedly" in (tmp_path / "stderr.log").read_text()
    assert not [pid for pid in children if alive(pid)]


async def test_run_killed_mid_burst_keeps_every_acknowledged_creation(tmp_path: Path) -> None:
    """SIGKILL of `jobline run` while 50 clients create jobs, many batches in flight: after
    a restart every acknowledged job is there (log, archive, read model) and resolves once."""
    port = free_port()
    env = {"JOBLINE_DATA_DIR": str(tmp_path / "data"), **FAST}
    base = f"http://127.0.0.1:{port}"
    acknowledged: list[str] = []
    first = start_jobline(["run", "--port", str(port)], tmp_path, **env)
    try:
        read_until(first, "Ctrl-C")

        async def client(http: httpx.AsyncClient) -> None:
            for _ in range(40):
                try:
                    response = await http.post("/jobs")
                except httpx.TransportError:
                    return  # killed: this one's answer never came
                if response.status_code == 202:
                    acknowledged.append(response.json()["id"])

        async with api_client(base, timeout=30, connections=50) as http:
            clients = [asyncio.create_task(client(http)) for _ in range(50)]
            deadline = time.monotonic() + 60
            while len(acknowledged) < 300:
                assert time.monotonic() < deadline, f"only {len(acknowledged)} creations"
                assert not all(c.done() for c in clients), "the burst ended before the kill"
                await asyncio.sleep(0.01)
            first.send_signal(signal.SIGKILL)
            first.wait()
            await asyncio.gather(*clients)
    finally:
        stop(first)
    assert 300 <= len(acknowledged) < 2000

    second = start_jobline(["run", "--port", str(port)], tmp_path, **env)
    try:
        banner = read_until(second, "Ctrl-C")
        async with api_client(base) as http:
            for job_id in acknowledged:
                deadline = time.monotonic() + 120
                while (now := (await http.get(f"/jobs/{job_id}")).json()).get(
                    "status"
                ) != "resolved":
                    assert time.monotonic() < deadline, now
                    await asyncio.sleep(0.2)
        broker = re.search(r"broker +(\S+)", banner)
        assert broker is not None
        events = await read_events(Settings(_env_file=None, kafka_bootstrap_servers=broker[1]))  # type: ignore[call-arg]
        requested = {e.job_id for e in events if isinstance(e, JobRequested)}
        assert set(acknowledged) <= requested
        outcomes: dict[str, set[str]] = {}
        for event in events:
            if isinstance(event, JobResolved | JobFailed):
                outcomes.setdefault(event.job_id, set()).add(event.event_id)
        assert all(len(outcomes[job_id]) == 1 for job_id in acknowledged)
        store = re.search(r"store +(\S+)", banner)
        assert store is not None
        counted, recount = await counts_and_recount(
            Settings(_env_file=None, mongodb_uri=store[1])  # type: ignore[call-arg]
        )
        assert counted == recount
        second.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(exit_code, second, 30) == 0
    finally:
        stop(second)
