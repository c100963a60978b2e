"""Real components for integration and end-to-end tests.

One Tansu broker and one SecantusDB process per test session (each on a free loopback port,
stopped at the end); every test gets its own topic prefix and database, its own stand-in,
and its own API and processors.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
from pydantic import SecretStr

from api.app import create_app
from jobline.children import Child, broker, store, store_uri
from jobline.components import COMPONENTS
from jobline.serving import AppServer, free_port
from runtime.eventlog import Durability
from runtime.settings import Settings
from standin import StandIn
from standin import create_app as create_stand_in
from tests.clients import api_client
from tests.proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[1]

# Property tests check properties, not speed: on a machine whose cores are busy elsewhere a
# generated example can take longer than Hypothesis's 200 ms deadline, and generating inputs
# can trip its too-slow health check. Neither says anything about the code under test.
hypothesis.settings.register_profile(
    "jobline", deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow]
)
hypothesis.settings.load_profile("jobline")


#: Tests that run whole deployments (`jobline run`, a process per component, the benchmark
#: suite, a fuzzer) and keep both cores busy: marked `heavy`. `./dev test` runs the others on
#: a worker per core (pytest-xdist), then these two at a time (measured with both cores kept
#: busy by a CPU burner besides: 17 passed in 6.5-7 minutes, where one at a time took 9.5).
HEAVY = {
    "tests/e2e/test_bench_smoke.py",
    "tests/e2e/test_run_command.py",
    "tests/e2e/test_store_kill.py",
    "tests/e2e/test_topology.py",
    "tests/integration/test_faults.py",
    "tests/integration/test_fuzz.py",
    "tests/integration/test_store_durability.py",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.split("::")[0] in HEAVY:
            item.add_marker(pytest.mark.heavy)


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
    yield store_uri(port)
    asyncio.run(child.stop())


@dataclass
class StandInServer:
    """A stand-in on loopback, made to misbehave over HTTP (its control routes, as a stand-in
    in another process would be); `state` is read for its counters only."""

    url: str
    state: StandIn

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with httpx.AsyncClient(base_url=self.url) as http:
            response = await http.request(method, f"/_stand-in/{path}", json=body)
            response.raise_for_status()
            return response.json()

    async def faults(self, **spec: Any) -> None:
        """The next requests misbehave (standin/app.py: status, times, rate, delay_s, hang,
        malformed, download_failures)."""
        await self.control("POST", "faults", spec)

    async def clear_faults(self) -> None:
        await self.control("DELETE", "faults")

    async def allowance(self, limit: int, window_s: float) -> None:
        await self.control("POST", "allowance", {"limit": limit, "window_s": window_s})

    async def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = await self.control("GET", "stats")
        return stats


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
        create_rate_per_s=0,  # every client here is 127.0.0.1 (test_api_edges tests the limit)
        unsplash_access_key=SecretStr("test-key"),
        unsplash_base_url=stand_in.url,
        fetch_backoff_s=0.01,
        unsplash_ratelimit_pause_s=0.1,
        data_dir=tmp_path,
    )


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

    def start(self, name: str, component: str | None = None) -> None:
        """Start a component under `name` (another instance of `component`, in its group)."""
        run = COMPONENTS[component or name].run(self.settings)
        self.tasks[name] = asyncio.create_task(run, name=name)

    async def stop(self, name: str) -> None:
        task = self.tasks.pop(name)
        task.cancel()
        await _within(asyncio.gather(task, return_exceptions=True), f"stopping {name}")

    async def create(self, **headers: str) -> dict[str, Any]:
        response = await self.http.post("/jobs", headers=headers)
        assert response.status_code == 202, response.text
        job: dict[str, Any] = response.json()
        return job

    async def mutate(self, document: str, **variables: Any) -> dict[str, Any]:
        """Run a GraphQL mutation of one field; that field's payload."""
        response = await self.http.post(
            "/graphql", json={"query": document, "variables": variables}
        )
        assert response.status_code == 200, response.text
        (payload,) = response.json()["data"].values()
        assert isinstance(payload, dict), payload
        return payload

    async def wait_for(
        self, job_id: str, statuses: tuple[str, ...] = ("resolved", "failed"), timeout_s: float = 90
    ) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            job: dict[str, Any] = (await self.http.get(f"/jobs/{job_id}")).json()
            if job.get("status") in statuses:
                return job
            assert asyncio.get_running_loop().time() < deadline, f"job stuck: {job}"
            await asyncio.sleep(0.1)


async def failed_job(system: System, stand_in: StandInServer) -> dict[str, Any]:
    """A job whose fetch Unsplash refuses for good (a 404: the fetcher does not try again)."""
    await stand_in.faults(status=404)
    try:
        job = await system.create()
        failed = await system.wait_for(job["id"])
    finally:
        await stand_in.clear_faults()
    assert failed["status"] == "failed", failed
    return failed


async def eventually(condition: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    """Wait until `condition()` holds: a condition, never a guessed sleep, bounded generously
    for a machine whose cores are busy elsewhere."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.05)


async def _within(awaitable: Awaitable[Any], what: str, timeout_s: float = 15) -> None:
    """Await a shutdown step; if it hangs, show where every task is stuck and fail."""
    step = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait([step], timeout=timeout_s)
    if not done:
        for task in asyncio.all_tasks():
            print(f"{task!r}\n  " + "\n  ".join(_await_chain(task.get_coro())), file=sys.stderr)
        step.cancel()
        pytest.fail(f"{what} took over {timeout_s} s")
    step.result()


def _await_chain(coro: Any) -> list[str]:
    """Where a suspended coroutine waits: every frame down its chain of awaits."""
    frames = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            frames.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return frames


SystemFactory = Callable[..., Awaitable[System]]


@pytest.fixture
async def make_system(settings: Settings) -> AsyncIterator[SystemFactory]:
    """Start a system; keyword arguments override the test's settings. `durability` is
    the API's (the processors run without)."""
    started: list[System] = []

    async def start(durability: Durability | None = None, **overrides: Any) -> System:
        configured = settings.model_copy(update=overrides)
        api = AppServer(create_app(configured, durability), "127.0.0.1", 0)
        await api.start()
        http = api_client(f"http://127.0.0.1:{api.port}")
        running = System(configured, api, http)
        started.append(running)
        for name in COMPONENTS:
            running.start(name)
        return running

    try:
        yield start
    finally:
        for running in started:
            for name in list(running.tasks):
                await running.stop(name)
            await running.http.aclose()
            await _within(running.api.stop(), "stopping the API")


@pytest.fixture
async def system(make_system: SystemFactory) -> System:
    return await make_system()


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
