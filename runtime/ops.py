"""An operator's routes, served by every process: `/healthz` (alive), `/readyz` (its broker
and store answer, and the read model keeps up with the log), `/metrics` (Prometheus)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo.asynchronous.database import AsyncDatabase
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from runtime.positions import LogPositions
from runtime.settings import Settings
from runtime.store import Document, database, open_store

Check = Callable[[], Awaitable[None]]
#: How long one check may take before it counts as failed.
CHECK_TIMEOUT_S = 2.0
#: A readiness answer is reused this long: probes from many places cost one round of checks.
CACHE_S = 1.0


class NotReady(Exception):
    """A check's reason, said to the operator as it is."""


class Readiness:
    """Named checks, each bounded in time; ready when every one passes."""

    def __init__(self, checks: Mapping[str, Check]) -> None:
        self._checks = dict(checks)
        self._last: tuple[float, bool, dict[str, str]] | None = None
        self._lock = asyncio.Lock()

    async def report(self) -> tuple[bool, dict[str, str]]:
        async with self._lock:
            if self._last is not None and time.monotonic() - self._last[0] < CACHE_S:
                return self._last[1], self._last[2]
            results = await asyncio.gather(*(_run(c) for c in self._checks.values()))
            said = dict(zip(self._checks, results, strict=True))
            ready = all(result == "ok" for result in results)
            self._last = (time.monotonic(), ready, said)
            return ready, said


async def _run(check: Check) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await check()
    except NotReady as reason:
        return str(reason)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:g} s"
    except Exception as error:  # whatever it is, it is why the process is not ready
        return f"{type(error).__name__}: {error}"
    return "ok"


def standard_checks(
    settings: Settings,
    positions: LogPositions,
    db: AsyncDatabase[Document],
    *,
    projection_group: str | None,
) -> dict[str, Check]:
    """The broker and the store answer; with `projection_group`, the read model is no more
    than JOBLINE_READY_MAX_LAG events behind the log."""

    async def store() -> None:
        await db.command("ping")

    checks: dict[str, Check] = {"broker": positions.reachable, "store": store}
    if projection_group is not None:
        bound = settings.ready_max_lag

        async def projection() -> None:
            lag = sum(p.lag for p in await positions.lags(projection_group, settings.topics.jobs))
            if lag > bound:
                raise NotReady(
                    f"the read model is {lag} events behind the log "
                    f"(JOBLINE_READY_MAX_LAG is {bound})"
                )

        checks["projection"] = projection
    return checks


def ops_routes(readiness: Callable[[], Readiness | None]) -> list[Route]:
    """The routes, asking `readiness()` for the process's checks (None: not started yet)."""

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        current = readiness()
        if current is None:
            return JSONResponse({"status": "unready", "checks": {"process": "starting"}}, 503)
        ready, checks = await current.report()
        return JSONResponse(
            {"status": "ready" if ready else "unready", "checks": checks}, 200 if ready else 503
        )

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz, include_in_schema=False),
        Route("/readyz", readyz, include_in_schema=False),
        Route("/metrics", metrics, include_in_schema=False),
    ]


def ops_app(readiness: Readiness) -> Starlette:
    """A processor's HTTP face: the operator's routes and nothing else."""
    return Starlette(routes=ops_routes(lambda: readiness))


@asynccontextmanager
async def readiness_of(
    settings: Settings,
    component: str,
    *,
    projection_group: str | None,
    db: AsyncDatabase[Document] | None = None,
) -> AsyncIterator[Readiness]:
    """The standard checks of one process, with the clients they use, closed on exit (the
    store's client is the caller's, if it gives its database)."""
    positions = LogPositions(settings, client_id=f"{settings.topic_prefix}.{component}.ops")
    await positions.start()
    client = open_store(settings, component=component) if db is None else None
    try:
        checked = database(client, settings) if client is not None else db
        assert checked is not None
        yield Readiness(
            standard_checks(settings, positions, checked, projection_group=projection_group)
        )
    finally:
        if client is not None:
            await client.close()
        await positions.close()
