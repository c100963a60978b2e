"""The broker goes away (a cut network, not a lost log) and comes back: the API answers 503
in bounded time meanwhile, the processors ride it out without crashing, and every job goes on."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pymongo import AsyncMongoClient

from tests.conftest import SystemFactory
from tests.proxy import TcpProxy


async def test_api_and_processors_ride_out_a_broker_outage(
    proxied_broker: TcpProxy, make_system: SystemFactory
) -> None:  # the broker first: it is torn down after the processors that use it
    system = await make_system(
        kafka_bootstrap_servers=f"127.0.0.1:{proxied_broker.port}",
        kafka_publish_timeout_s=1.5,
        delay_min_s=2.0,
        delay_max_s=3.0,
        delay_step_s=0.5,
    )
    waiting = [await system.create() for _ in range(5)]

    await proxied_broker.cut()
    started = time.monotonic()
    refused = await system.http.post("/jobs")
    assert refused.status_code == 503
    assert "log is unavailable" in refused.json()["detail"]
    assert time.monotonic() - started < 5
    await asyncio.sleep(4)  # longer than the groups' session timeout: members are evicted
    assert all(not task.done() for task in system.tasks.values()), "a processor crashed"
    await proxied_broker.restore()

    after = await system.create()
    for job in [*waiting, after]:
        assert (await system.wait_for(job["id"], timeout_s=60))["status"] == "resolved"
    assert all(not task.done() for task in system.tasks.values())


async def test_processors_stop_promptly_while_the_broker_is_away(
    proxied_broker: TcpProxy, make_system: SystemFactory
) -> None:
    system = await make_system(kafka_bootstrap_servers=f"127.0.0.1:{proxied_broker.port}")
    await system.wait_for((await system.create())["id"])  # all joined and committed once
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(system.settings.store_uri)
    try:  # hold the projection's next write, so it has applied but not committed records
        await client.admin.command(
            {
                "configureFailPoint": "failCommand",
                "mode": {"times": 2},
                "data": {"failCommands": ["update"], "blockConnection": True, "blockTimeMS": 1500},
            }
        )
        creating = asyncio.create_task(system.http.post("/jobs"))
        await asyncio.sleep(0.7)
        await proxied_broker.cut()  # the commit after that write finds no coordinator
        await asyncio.sleep(1.5)
    finally:
        await client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
        await client.close()
    await asyncio.gather(creating, return_exceptions=True)
    started = time.monotonic()
    await system.stop("projection")
    assert time.monotonic() - started < 10, "the projection hung on its final commit"
    await proxied_broker.restore()
