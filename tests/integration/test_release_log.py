"""A log written by release 0.1, appended as it was to the real broker, projects to the very
documents release 0.1's projection stored from it, live and by replay (tests/fixtures)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from jobline.components import COMPONENTS
from projections.jobs.replay import replay
from projections.jobs.store import MongoJobViews
from projections.jobs.view import STATUSES
from runtime.eventlog import ensure_topics
from runtime.settings import Settings
from runtime.store import database
from tests.readmodel import current
from tests.unit.test_release_log import FIXTURE, records

STORED = FIXTURE / "stored.json"


async def append_release_log(settings: Settings) -> None:
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for record in records():
            await producer.send_and_wait(
                settings.topics.jobs,
                record["value"].encode(),
                key=record["key"].encode(),
                headers=[(k, v.encode()) for k, v in record["headers"]],
            )
    finally:
        await producer.stop()


async def stored_views(settings: Settings) -> list[dict[str, Any]]:
    """The job documents, as JSON values (timestamps as ISO text)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.store_uri, tz_aware=True)
    try:
        jobs = await current(database(client, settings))
        docs = await jobs.find({"version": {"$exists": True}}).sort("_id").to_list()
        return [json.loads(json.dumps(doc, default=_iso)) for doc in docs]
    finally:
        await client.close()


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


async def project_release_log(settings: Settings) -> list[dict[str, Any]]:
    """Run the projection over the appended log until every job reaches its last version."""
    expected = {r["key"] for r in records()}
    task = asyncio.create_task(COMPONENTS["projection"].run(settings))
    try:
        async with asyncio.timeout(60):
            while True:
                views = await stored_views(settings)
                if {v["_id"] for v in views} == expected and _settled(views):
                    return views
                assert not task.done(), task
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _settled(views: list[dict[str, Any]]) -> bool:
    """Every job at the version its last record carries."""
    last = {}
    for record in records():
        last[record["key"]] = json.loads(record["value"])["version"]
    return all(v["version"] >= last[v["_id"]] for v in views)


async def test_release_0_1_log_projects_to_the_documents_it_stored(settings: Settings) -> None:
    await append_release_log(settings)
    expected = json.loads(STORED.read_text())
    assert await project_release_log(settings) == expected

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.store_uri)
    try:
        counts = await MongoJobViews(database(client, settings)["jobs"]).counts()
    finally:
        await client.close()
    statuses = [v["status"] for v in expected]
    assert counts == {s: statuses.count(s) for s in STATUSES}

    result = await replay(settings, lambda done, total: None)
    assert result.swapped
    assert await stored_views(settings) == expected
