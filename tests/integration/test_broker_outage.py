"""The broker goes away (a cut network, not a lost log) and comes back: the API answers 503
in bounded time meanwhile, the processors ride it out without crashing, and every job goes on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jobline.children import broker
from jobline.serving import free_port
from tests.conftest import SystemFactory
from tests.proxy import TcpProxy


@pytest.fixture
async def proxied_broker(tmp_path: Path) -> AsyncIterator[TcpProxy]:
    port = free_port()
    proxy = TcpProxy(port)
    child = broker(port, tmp_path, advertised_port=proxy.port)  # clients only see the proxy
    child.start()
    await child.wait_port("127.0.0.1", port)
    await proxy.start()
    yield proxy
    await proxy.cut()
    await child.stop()


async def test_api_and_processors_ride_out_a_broker_outage(
    make_system: SystemFactory, proxied_broker: TcpProxy
) -> None:
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
