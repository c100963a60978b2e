"""Replaying the log rebuilds exactly the same read model, calls Unsplash zero times, appends
nothing, and swaps the rebuilt model in without a moment of half-built reads."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from jobline.components import COMPONENTS
from projections.jobs.replay import replay
from projections.jobs.store import COUNT_SHARDS, SHAPE, SHAPES, MongoJobViews
from runtime.clock import utc_now
from runtime.eventlog import KafkaEventPublisher, ensure_topics, start_producer
from runtime.settings import Settings
from runtime.store import database
from tests.conftest import StandInServer, System
from tests.logread import read_topic
from tests.readmodel import current
from tests.unit.events import job_life


async def _jobs_with_history(system: System, stand_in: StandInServer) -> list[dict[str, Any]]:
    jobs = [await system.create() for _ in range(8)]
    for job in jobs:
        await system.wait_for(job["id"])
    await stand_in.faults(status=503)  # the next job fails
    jobs.append(await system.create())
    await system.wait_for(jobs[-1]["id"])
    await stand_in.clear_faults()
    producer = AIOKafkaProducer(bootstrap_servers=system.settings.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(system.settings.topics.jobs, b"not an event", key=b"x")
    finally:
        await producer.stop()
    for job in jobs:
        await system.wait_for(job["id"])
    await asyncio.sleep(0.5)  # let the projection apply the last outcomes
    return jobs


async def _snapshot(system: System) -> list[dict[str, Any]]:
    """The job documents (not the counts)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        system.settings.store_uri, tz_aware=True
    )
    try:
        jobs = await current(database(client, system.settings))
        return await jobs.find({"version": {"$exists": True}}).sort("_id").to_list()
    finally:
        await client.close()


async def _counts(system: System) -> dict[str, int]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(system.settings.store_uri)
    try:
        return await MongoJobViews(await current(database(client, system.settings))).counts()
    finally:
        await client.close()


async def test_dropping_and_replaying_rebuilds_the_same_documents(
    system: System, stand_in: StandInServer
) -> None:
    jobs = await _jobs_with_history(system, stand_in)
    before = await _snapshot(system)
    assert {d["status"] for d in before} == {"resolved", "failed"}
    counts_before = await _counts(system)
    assert counts_before == {
        "pending": 0,
        "processing": 0,
        "resolved": sum(d["status"] == "resolved" for d in before),
        "failed": sum(d["status"] == "failed" for d in before),
        "cancelled": 0,
    }
    log_before = len(await read_topic(system.settings, system.settings.topics.jobs))
    calls_before = stand_in.state.requests

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(system.settings.store_uri)
    await (await current(database(client, system.settings))).drop()
    await client.close()
    seen: list[tuple[int, int]] = []
    result = await replay(system.settings, lambda done, total: seen.append((done, total)))

    assert result.swapped
    assert result.documents == len(jobs)
    assert result.skipped == 1
    assert list(result.phases) == [
        "read and fold",
        "... of which waiting for the log",
        "last writes",
        "index",
        "catch-up",
        "swap",
        "catch-up after the swap",
        "old model removed",
    ], "where the time went, in order (waiting for the store only when the writes fell behind)"
    assert all(seconds >= 0 for seconds in result.phases.values())
    assert seen[-1][0] == seen[-1][1] == log_before
    assert await _snapshot(system) == before
    assert await _counts(system) == counts_before
    assert stand_in.state.requests == calls_before, "replay called Unsplash"
    assert len(await read_topic(system.settings, system.settings.topics.jobs)) == log_before


async def test_the_api_serves_every_job_throughout_a_replay(
    system: System, stand_in: StandInServer
) -> None:
    jobs = await _jobs_with_history(system, stand_in)
    statuses: list[int] = []
    stop = asyncio.Event()

    async def read_continuously() -> None:
        while not stop.is_set():
            for job in jobs:
                statuses.append((await system.http.get(f"/jobs/{job['id']}")).status_code)

    reader = asyncio.create_task(read_continuously())
    for _ in range(3):
        replayed = await replay(system.settings, lambda done, total: None)
        assert replayed.removed == len(jobs), "the old model's jobs deleted, a window at a time"
    stop.set()
    await reader
    assert len(statuses) > len(jobs)
    assert set(statuses) == {200}


async def test_verify_reports_a_tampered_document(system: System, stand_in: StandInServer) -> None:
    jobs = await _jobs_with_history(system, stand_in)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBLINE_")} | {
        "JOBLINE_KAFKA_BOOTSTRAP_SERVERS": system.settings.bootstrap_servers,
        "JOBLINE_MONGODB_URI": system.settings.store_uri,
        "JOBLINE_MONGODB_DATABASE": system.settings.mongodb_database,
        "JOBLINE_TOPIC_PREFIX": system.settings.topic_prefix,
    }

    def verify() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "jobline", "replay", "--verify"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    clean = await asyncio.to_thread(verify)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert f"verified {len(jobs)} jobs" in clean.stdout
    assert "0 differences" in clean.stdout
    assert "events" in clean.stderr  # progress lines (not a terminal here)

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(system.settings.store_uri)
    await (await current(database(client, system.settings))).update_one(
        {"_id": jobs[0]["id"]}, {"$set": {"status": "pending"}}
    )
    await client.close()
    tampered = await asyncio.to_thread(verify)
    assert tampered.returncode == 1
    assert f"{jobs[0]['id']}: differs in status" in tampered.stdout
    assert "1 differences" in tampered.stdout


async def test_a_read_model_of_an_older_shape_is_rebuilt_when_the_projection_starts(
    system: System, stand_in: StandInServer
) -> None:
    jobs = await _jobs_with_history(system, stand_in)
    current_docs = await _snapshot(system)
    assert all(len(doc["history"]) == 3 for doc in current_docs)
    await system.stop("projection")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(system.settings.store_uri)
    db = database(client, system.settings)
    try:
        # What the code before per-job history wrote: no history, no shape record.
        await db["jobs"].update_many({}, {"$unset": {"history": ""}})
        await db[SHAPES].delete_many({})
        calls_before = stand_in.state.requests

        system.start("projection")
        for _ in range(300):
            model = await current(db)
            if await model.count_documents({"history": {"$exists": True}}) == len(jobs):
                break
            await asyncio.sleep(0.1)
        assert await _snapshot(system) == current_docs
        assert model.name != "jobs"
        assert await db[SHAPES].find({}).to_list() == [{"_id": model.name, "version": SHAPE}]
        # The old model's jobs deleted while the projection goes on (its count documents
        # stay, retired: the fence against a writer that has not looked at the pointer).
        for _ in range(300):
            left = await db["jobs"].find({}, {"_id": 1}).to_list()
            if {doc["_id"] for doc in left} <= set(COUNT_SHARDS):
                break
            await asyncio.sleep(0.1)
        assert {doc["_id"] for doc in left} <= set(COUNT_SHARDS)
        assert stand_in.state.requests == calls_before, "the rebuild called Unsplash"
    finally:
        await client.close()


async def test_a_projection_restarted_between_two_copies_of_an_event_matches_a_replay(
    settings: Settings,
) -> None:
    """The schedule the random-kill test once hit: the delay processor emits a JobDue twice
    (killed before its commit), the copies differing in `occurred_at`, and the projection is
    stopped right after applying the first copy. Restarted, its first batch starts with the
    second copy. The live read model must still equal a replay of the log."""
    requested, due, resolved = job_life("twice-due", utc_now())
    again = replace(due, occurred_at=due.occurred_at + timedelta(seconds=2))
    await ensure_topics(settings)
    producer = await start_producer(settings, "test")
    publisher = KafkaEventPublisher(producer, settings.topics.jobs)
    try:
        await publisher.publish([requested, due])
        await _project_until(settings, "twice-due", version=2)
        await publisher.publish([again, resolved])
        await _project_until(settings, "twice-due", version=3)
    finally:
        await producer.stop()
    verified = await replay(settings, lambda done, total: None, verify=True)
    assert verified.differences == []
    assert verified.documents == 1


async def _project_until(settings: Settings, job_id: str, version: int) -> None:
    """Run the projection until the job's view reaches `version`, then stop it (it commits
    what it applied as it stops)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.store_uri)
    task = asyncio.create_task(COMPONENTS["projection"].run(settings))
    try:
        async with asyncio.timeout(60):
            while True:
                doc = await (await current(database(client, settings))).find_one({"_id": job_id})
                if doc is not None and doc["version"] >= version:
                    break
                assert not task.done(), task
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
