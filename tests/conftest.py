"""Real components for integration and end-to-end tests.

One Tansu broker and one SecantusDB process per test session (each on a free loopback port,
stopped at the end); every test gets its own topic prefix and database, its own stand-in,
and its own API and processors.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from api.app import create_app
from jobline.children import Child, broker, store
from jobline.serving import AppServer, free_port
from jobline.standin import StandIn
from jobline.standin import create_app as create_stand_in
from processors.delay.shell import run as run_delay
from processors.fetcher.shell import run as run_fetcher
from projections.jobs.runner import run as run_projection
from runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _start_child(child: Child, port: int) -> Child:
    child.start()
    asyncio.run(child.wait_port("127.0.0.1", port))
    return child


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    child = _start_child(broker(port, tmp_path_factory.mktemp("broker")), port)
    yield f"127.0.0.1:{port}"
    asyncio.run(child.stop())


@pytest.fixture(scope="session")
def mongo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    child = store(port, tmp_path_factory.mktemp("store"))
    child.argv.append("--enable-test-commands")
    _start_child(child, port)
    yield f"mongodb://127.0.0.1:{port}/?directConnection=true"
    asyncio.run(child.stop())


@dataclass
class StandInServer:
    url: str
    state: StandIn


@pytest.fixture
async def stand_in() -> AsyncIterator[StandInServer]:
    state = StandIn()
    server = AppServer(create_stand_in(state), "127.0.0.1", 0)
    await server.start()
    yield StandInServer(f"http://127.0.0.1:{server.port}", state)
    await server.stop()


@pytest.fixture
def settings(kafka: str, mongo: str, stand_in: StandInServer, tmp_path: Path) -> Settings:
    name = f"t{uuid.uuid4().hex[:10]}"
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        kafka_bootstrap_servers=kafka,
        kafka_idempotence=False,
        kafka_session_timeout_ms=2000,
        kafka_heartbeat_interval_ms=300,
        kafka_rebalance_timeout_ms=2000,
        topic_prefix=name,
        topic_partitions=3,
        mongodb_uri=mongo,
        mongodb_database=name,
        delay_min_s=0.2,
        delay_max_s=1.0,
        delay_step_s=0.2,
        unsplash_access_key=SecretStr("test-key"),
        unsplash_base_url=stand_in.url,
        fetch_backoff_s=0.01,
        unsplash_ratelimit_pause_s=0.1,
        data_dir=tmp_path,
    )


COMPONENTS = {"delay": run_delay, "fetcher": run_fetcher, "projection": run_projection}


@dataclass
class System:
    """The API (over real HTTP on loopback) and the processors, as tasks of the test's loop."""

    settings: Settings
    api: AppServer
    http: httpx.AsyncClient
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api.port}"

    def start(self, name: str) -> None:
        self.tasks[name] = asyncio.create_task(COMPONENTS[name](self.settings), name=name)

    async def stop(self, name: str) -> None:
        task = self.tasks.pop(name)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def create(self, **headers: str) -> dict[str, Any]:
        response = await self.http.post("/jobs", headers=headers)
        assert response.status_code == 202, response.text
        job: dict[str, Any] = response.json()
        return job

    async def wait_for(
        self, job_id: str, statuses: tuple[str, ...] = ("resolved", "failed"), timeout_s: float = 30
    ) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            job: dict[str, Any] = (await self.http.get(f"/jobs/{job_id}")).json()
            if job.get("status") in statuses:
                return job
            assert asyncio.get_running_loop().time() < deadline, f"job stuck: {job}"
            await asyncio.sleep(0.1)


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[System]:
    api = AppServer(create_app(settings), "127.0.0.1", 0)
    await api.start()
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.port}", timeout=10)
    running = System(settings, api, http)
    for name in COMPONENTS:
        running.start(name)
    try:
        yield running
    finally:
        for name in list(running.tasks):
            await running.stop(name)
        await http.aclose()
        await api.stop()
