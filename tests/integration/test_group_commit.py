"""Group commit of creations, on the real broker and store: one job per request or key
however many arrive together, and a broker cut fails the requests in flight, never an
acknowledged job."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from api.service import JobService
from jobline.components import groups
from runtime.archive import RECORDS, LogArchive
from runtime.settings import Settings
from runtime.store import database, open_store
from schema import JobRequested, decode
from tests.clients import api_client
from tests.conftest import SystemFactory, eventually
from tests.logread import read_events
from tests.proxy import TcpProxy

CONCURRENT = 300


async def _post_all(base_url: str, headers: list[dict[str, str]]) -> list[httpx.Response]:
    async with api_client(base_url, timeout=30) as http, asyncio.TaskGroup() as group:
        posts = [group.create_task(http.post("/jobs", headers=h)) for h in headers]
    return [post.result() for post in posts]


async def test_hundreds_of_concurrent_creations_give_one_job_per_request_or_key(
    make_system: SystemFactory,
) -> None:
    system = await make_system(delay_min_s=30, delay_max_s=30)  # nothing resolves meanwhile
    keys = [f"key-{i % 50}" for i in range(CONCURRENT // 2)]  # 50 keys, 3 requests each
    headers = [{}] * (CONCURRENT // 2) + [{"Idempotency-Key": k} for k in keys]
    responses = await _post_all(system.base_url, headers)

    assert [r.status_code for r in responses] == [202] * CONCURRENT
    unkeyed = [r.json()["id"] for r in responses[: CONCURRENT // 2]]
    by_key: dict[str, set[str]] = {}
    for key, response in zip(keys, responses[CONCURRENT // 2 :], strict=True):
        by_key.setdefault(key, set()).add(response.json()["id"])
    assert len(set(unkeyed)) == CONCURRENT // 2
    assert all(len(ids) == 1 for ids in by_key.values())
    created = set(unkeyed) | {i for ids in by_key.values() for i in ids}
    assert len(created) == CONCURRENT // 2 + 50

    service: JobService = system.api.app.services.jobs
    assert service.intake.batches < CONCURRENT, "no two creations were committed together"
    appended = Counter(
        e.job_id for e in await read_events(system.settings) if isinstance(e, JobRequested)
    )
    assert set(appended) == created
    assert set(appended.values()) == {1}, "a job was appended twice"
    for job_id in created:  # read-your-writes, for every one of them
        assert (await system.http.get(f"/jobs/{job_id}")).status_code == 200


async def test_a_broker_cut_fails_the_creations_in_flight_and_loses_no_acknowledged_job(
    proxied_broker: TcpProxy, make_system: SystemFactory, settings: Settings
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = open_store(settings)
    archive = LogArchive(
        settings, database(client, settings), groups(settings)
    )  # the API's durability
    system = await make_system(
        durability=archive,
        kafka_bootstrap_servers=f"127.0.0.1:{proxied_broker.port}",
        kafka_publish_timeout_s=1.5,
        delay_min_s=30,
        delay_max_s=30,
    )
    try:
        await system.create()  # connected and warm
        burst = asyncio.create_task(_post_all(system.base_url, [{}] * CONCURRENT))
        service: JobService = system.api.app.services.jobs
        await eventually(lambda: service.intake.committed >= 50, "50 creations committed")
        await proxied_broker.cut()
        responses = await burst
        await proxied_broker.restore()

        statuses = Counter(r.status_code for r in responses)
        assert set(statuses) <= {202, 503}, statuses
        assert statuses[202] >= 50
        assert statuses[503] > 0, "the cut failed nothing: it came too late to test anything"
        for response in responses:
            if response.status_code == 503:
                assert response.headers["Retry-After"]
        acknowledged = {r.json()["id"] for r in responses if r.status_code == 202}

        on_log = {
            e.job_id for e in await read_events(system.settings) if isinstance(e, JobRequested)
        }
        assert acknowledged <= on_log, "an acknowledged job is not on the log"
        archived = {
            decode(bytes(doc["value"])).job_id
            async for doc in database(client, settings)[RECORDS].find()
        }
        assert acknowledged <= archived, "an acknowledged job is not in the archive"
        assert (await system.create())["status"] == "pending"  # and creation goes on
    finally:
        await client.close()
