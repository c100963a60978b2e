"""Crash-proof: thousands of jobs through separate processes, each component SIGKILLed at
random moments several times and restarted. Nothing acknowledged is lost, nothing doubles, and
the read model equals a fresh replay of the log."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from jobline.children import store, store_uri
from jobline.cluster import Cluster
from jobline.components import COMPONENTS
from jobline.serving import free_port
from projections.jobs.replay import replay
from runtime.settings import Settings
from runtime.store import database
from schema import JobFailed, JobRequested, JobResolved
from tests.clients import api_client
from tests.cluster import environment
from tests.conftest import ROOT, StandInServer
from tests.logread import read_events
from tests.readmodel import counts_and_recount

JOBS = 2000
LOAD_SECONDS = 20.0
KILLS_PER_COMPONENT = 4
PROCESSES = ("api", *COMPONENTS)  # each runs as its own `jobline <name>` process


@pytest.fixture(scope="module")
def fresh_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A store of its own: SecantusDB's single-document writes slow down as it ages."""
    port = free_port()
    child = store(port, tmp_path_factory.mktemp("fault-store"))
    child.start()
    asyncio.run(child.wait_port("127.0.0.1", port))
    yield store_uri(port)
    asyncio.run(child.stop())


@pytest.fixture
async def cluster(settings: Settings, fresh_store: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    configured = settings.model_copy(
        update={
            "mongodb_uri": fresh_store,
            "delay_min_s": 0.1,
            "delay_max_s": 2.0,
            "delay_step_s": 0.1,
        }
    )
    running = Cluster(configured, environment(configured, fetch_concurrency=16), tmp_path)
    for name in PROCESSES:
        running.start(name)
    try:
        yield running
    finally:
        running.stop_all()


async def _create_all(cluster: Cluster, acknowledged: dict[str, str]) -> None:
    """Create JOBS jobs at a steady pace; retry each with its idempotency key until the API
    acknowledges it (the API may be dead or restarting at any moment)."""
    base = cluster.url("api")
    started = time.monotonic()
    slots = asyncio.Semaphore(16)

    async def create(http: httpx.AsyncClient, n: int) -> None:
        key = f"fault-{n}"
        await asyncio.sleep(max(0.0, started + n * LOAD_SECONDS / JOBS - time.monotonic()))
        async with slots:
            while True:
                try:
                    response = await http.post("/jobs", headers={"Idempotency-Key": key})
                except httpx.TransportError:
                    response = None
                if response is not None and response.status_code == 202:
                    acknowledged[key] = response.json()["id"]
                    return
                await asyncio.sleep(0.2)

    async with api_client(base, timeout=5) as http:
        await asyncio.gather(*(create(http, n) for n in range(JOBS)))


async def _kill_at_random(cluster: Cluster, rng: random.Random) -> None:
    schedule = [name for name in PROCESSES for _ in range(KILLS_PER_COMPONENT)]
    rng.shuffle(schedule)
    for name in schedule:
        await asyncio.sleep(rng.uniform(0.3, 1.6))
        cluster.kill(name)
        await asyncio.sleep(rng.uniform(0.1, 0.8))
        cluster.start(name)


async def _all_terminal(settings: Settings, job_ids: set[str], timeout_s: float) -> dict[str, Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.store_uri, tz_aware=True)
    jobs = database(client, settings)["jobs"]
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            docs = {d["_id"]: d async for d in jobs.find({"_id": {"$in": sorted(job_ids)}})}
            waiting = [
                i for i in job_ids if docs.get(i, {}).get("status") not in ("resolved", "failed")
            ]
            if not waiting:
                return docs
            assert time.monotonic() < deadline, f"{len(waiting)} jobs never finished: {waiting[:5]}"
            await asyncio.sleep(1)
    finally:
        await client.close()


@pytest.mark.timeout(900)  # 65-80 s on a quiet machine, 220 s seen with both cores busy
async def test_sigkill_every_component_repeatedly_loses_and_doubles_nothing(
    cluster: Cluster, stand_in: StandInServer
) -> None:
    rng = random.Random(int(os.environ.get("JOBLINE_FAULT_SEED", "20261122")))
    acknowledged: dict[str, str] = {}
    started = time.monotonic()
    await asyncio.gather(_create_all(cluster, acknowledged), _kill_at_random(cluster, rng))
    assert len(acknowledged) == JOBS
    docs = await _all_terminal(cluster.settings, set(acknowledged.values()), timeout_s=600)
    took = time.monotonic() - started

    events = await read_events(cluster.settings)
    jobs_per_key: defaultdict[str, set[str]] = defaultdict(set)
    outcomes: defaultdict[str, set[str]] = defaultdict(set)
    photos: defaultdict[str, set[str]] = defaultdict(set)
    for event in events:
        if isinstance(event, JobRequested) and event.idempotency_key:
            jobs_per_key[event.idempotency_key].add(event.job_id)
        if isinstance(event, JobResolved | JobFailed):
            outcomes[event.job_id].add(event.event_id)
        if isinstance(event, JobResolved):
            photos[event.job_id].add(event.photo.id)
    lost = [key for key, job_id in acknowledged.items() if job_id not in docs]
    doubled_jobs = [key for key, ids in jobs_per_key.items() if len(ids) > 1]
    doubled_outcomes = [job for job, ids in outcomes.items() if len(ids) > 1]
    two_photos = [job for job, ids in photos.items() if len(ids) > 1]
    verified = await replay(cluster.settings, lambda done, total: None, verify=True)
    counted, recount = await counts_and_recount(cluster.settings)

    report = {
        "jobs_acknowledged": len(acknowledged),
        "kills": dict(cluster.kills),
        "lost": len(lost),
        "doubled_jobs": len(doubled_jobs),
        "doubled_outcomes": len(doubled_outcomes),
        "jobs_with_two_photos": len(two_photos),
        "resolved": sum(d["status"] == "resolved" for d in docs.values()),
        "failed": sum(d["status"] == "failed" for d in docs.values()),
        "events_in_log": len(events),
        "unsplash_calls": stand_in.state.requests,
        "replay_differences": len(verified.differences),
        "counts": counted,
        "seconds": round(took, 1),
    }
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "fault-report.json").write_text(json.dumps(report, indent=2) + "\n")
    assert min(cluster.kills[name] for name in PROCESSES) >= KILLS_PER_COMPONENT
    assert lost == []
    assert doubled_jobs == []
    assert doubled_outcomes == []
    assert two_photos == []
    assert set(outcomes) == set(acknowledged.values())
    assert verified.differences == [], verified.differences[:5]
    assert counted == recount
