"""An operator's view on the real broker and store: /metrics after a known workload, /readyz
as the store goes away and comes back, `jobline status`, and the one-line start-up errors."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from jobline.children import Child, store, store_uri
from jobline.serving import free_port
from runtime.settings import Settings
from tests.cluster import environment
from tests.conftest import ROOT, StandInServer, System, SystemFactory, failed_job

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(base_url: str) -> Samples:
    async with httpx.AsyncClient(base_url=base_url) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def _poison(settings: Settings) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topics.jobs, b"\xff not an event", key=b"x")
    finally:
        await producer.stop()


async def test_metrics_and_status_after_a_known_workload(
    make_system: SystemFactory, stand_in: StandInServer
) -> None:
    # Waits long enough to cancel one job however busy the machine is.
    system = await make_system(delay_min_s=3.0, delay_max_s=3.0, delay_step_s=1.0)
    before = await scrape(system.base_url)  # (one registry per process: counted from here)
    await failed_job(system, stand_in)  # (first: every fetch fails while it waits)
    resolved = [await system.create() for _ in range(2)]
    cancelled = await system.create()
    assert (await system.http.post(f"/jobs/{cancelled['id']}/cancel")).status_code == 202
    for job in resolved:
        assert (await system.wait_for(job["id"]))["status"] == "resolved"
    await _poison(system.settings)
    async with system.http.stream("GET", "/jobs/events") as stream:  # one live subscriber
        await anext(stream.aiter_lines())
        during = await scrape(system.base_url)
    groups = [f"{system.settings.topic_prefix}.{n}" for n in ("delay", "fetcher", "projection")]

    after: Samples = {}

    async def settled() -> bool:
        nonlocal after
        after = await scrape(system.base_url)
        lags = [
            v
            for (name, labels), v in after.items()
            if name == "jobline_consumer_lag" and dict(labels)["group"] in groups
        ]
        dead = [grew(before, after, "jobline_dead_letters_total", group=g) for g in groups]
        return dead == [1, 1, 1] and bool(lags) and not any(lags)

    await _until(settled, "the poison dead-lettered by every group, and no lag")

    created = {"type": "JobRequested"}
    assert grew(before, after, "jobline_events_appended_total", **created) == 4
    assert grew(before, after, "jobline_events_appended_total", type="JobDue") == 3
    assert grew(before, after, "jobline_events_appended_total", type="JobResolved") == 2
    assert grew(before, after, "jobline_events_appended_total", type="JobFailed") == 1
    assert grew(before, after, "jobline_events_appended_total", type="JobCancelled") == 1
    assert grew(before, after, "jobline_due_lateness_seconds_count") == 3
    assert grew(before, after, "jobline_unsplash_request_seconds_count", outcome="200") >= 1
    assert grew(before, after, "jobline_unsplash_request_seconds_count", outcome="404") == 1
    assert value(after, "jobline_unsplash_remaining") > 0
    posts = {"route": "/jobs", "method": "POST", "status": "202"}
    assert grew(before, after, "jobline_http_request_duration_seconds_count", **posts) == 4
    cancels = {"route": "/jobs/{job_id}/cancel", "method": "POST", "status": "202"}
    assert grew(before, after, "jobline_http_request_duration_seconds_count", **cancels) == 1
    # The pipeline's stages, as its processes time them: every event appended was
    # committed to the read model (its age then observed once), in one batch write or
    # more; and the feed passed changes on to subscribers, at least each job's insert.
    appended = sum(
        grew(before, after, "jobline_events_appended_total", type=kind)
        for kind in ("JobRequested", "JobDue", "JobResolved", "JobFailed", "JobCancelled")
    )
    assert grew(before, after, "jobline_projection_event_age_seconds_count") >= appended
    assert grew(before, after, "jobline_projection_write_seconds_count") >= 1
    assert grew(before, after, "jobline_feed_delay_seconds_count") >= grew(
        before, after, "jobline_events_appended_total", **created
    )
    assert value(during, "jobline_subscribers") == value(before, "jobline_subscribers") + 1
    assert value(after, "jobline_subscribers") == value(before, "jobline_subscribers")
    for group in groups:  # every partition of every group measured, none behind
        measured = {
            dict(labels)["partition"]
            for name, labels in after
            if name == "jobline_consumer_lag" and ("group", group) in labels
        }
        assert measured == {str(p) for p in range(system.settings.topic_partitions)}

    said = await _jobline(["status"], environment(system.settings))
    assert said.returncode == 0, said.stdout + said.stderr
    lines = said.stdout.splitlines()
    for group in groups:  # one member each (this test's processors), nothing behind
        (line,) = [line for line in lines if line.startswith(group + " ")]
        assert line.split()[1:4] == ["Stable", "1", "0"], line
    assert "read model: 0 events behind the log" in lines
    assert f"dead letters: 3 records in {system.settings.topics.dead_letters}" in lines
    assert "jobs: 0 pending, 0 processing, 2 resolved, 1 failed, 1 cancelled" in lines


@pytest.fixture
async def own_store(tmp_path: Path) -> AsyncIterator[tuple[Child, str]]:
    """A store this test may stop and start again (on the same port, with the same data)."""
    port = free_port()
    child = store(port, tmp_path)
    child.start()
    await child.wait_port("127.0.0.1", port)
    yield child, store_uri(port)
    await child.stop()


async def _readiness(system: System) -> tuple[int, dict[str, str]]:
    response = await system.http.get("/readyz")
    body = response.json()
    return response.status_code, body["checks"]


async def test_readyz_follows_the_store_and_the_projection(
    make_system: SystemFactory, own_store: tuple[Child, str]
) -> None:
    child, uri = own_store
    system = await make_system(mongodb_uri=uri, ready_max_lag=0)
    assert (await system.http.get("/healthz")).json() == {"status": "ok"}
    assert await _readiness(system) == (200, {"broker": "ok", "store": "ok", "projection": "ok"})

    await child.stop()
    readiness: tuple[int, dict[str, str]] = (200, {})

    async def unready() -> bool:
        nonlocal readiness
        readiness = await _readiness(system)
        return readiness[0] == 503

    await _until(unready, "unready without the store")
    assert readiness[1]["store"] != "ok"
    assert readiness[1]["broker"] == "ok"
    assert (await system.http.get("/healthz")).status_code == 200  # alive all the same

    child.start()
    await _until(lambda: _is(system, 200), "ready again with the store back")

    await system.stop("projection")  # the read model falls behind the log
    await system.create()
    await _until(unready, "unready while the read model lags")
    assert re.fullmatch(
        r"the read model is [12] events behind the log \(JOBLINE_READY_MAX_LAG is 0\)",
        readiness[1]["projection"],
    )  # the job's JobRequested, and its JobDue once due
    system.start("projection")
    await _until(lambda: _is(system, 200), "ready once the projection caught up")


async def _is(system: System, status: int) -> bool:
    return (await _readiness(system))[0] == status


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"never: {what}"
        await asyncio.sleep(0.2)


async def _jobline(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "jobline", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
async def standalone_store(tmp_path: Path) -> AsyncIterator[str]:
    """A store that is not a replica set: no change streams."""
    port = free_port()
    child = store(port, tmp_path)
    child.argv.append("--standalone")
    child.start()
    await child.wait_port("127.0.0.1", port)
    yield store_uri(port)
    await child.stop()


async def test_each_start_up_error_is_one_line_naming_the_setting(
    settings: Settings, standalone_store: str
) -> None:
    closed = f"127.0.0.1:{free_port()}"  # nothing listens there
    cases = {
        "JOBLINE_KAFKA_IDEMPOTENCE": {"kafka_idempotence": "true"},  # the embedded broker
        "JOBLINE_KAFKA_BOOTSTRAP_SERVERS": {"kafka_bootstrap_servers": closed},
        "JOBLINE_MONGODB_URI": {"mongodb_uri": f"mongodb://{closed}/"},
        "replica set": {"mongodb_uri": standalone_store},
        "not a usable MongoDB URI": {"mongodb_uri": "http://example.com"},
        "JOBLINE_PORT": {"port": "eighty"},
    }
    runs = await asyncio.gather(
        *(
            _jobline(["delay"], environment(settings, startup_wait_s=1, **overrides))
            for overrides in cases.values()
        )
    )
    for (named, _), run in zip(cases.items(), runs, strict=True):
        assert run.returncode == 2, (named, run.stderr)
        assert "Traceback" not in run.stderr, run.stderr
        last = run.stderr.strip().splitlines()[-1]
        assert last.startswith("jobline: cannot start: "), last
        assert named in last, last
