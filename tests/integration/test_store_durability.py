"""Every write jobline's store client acknowledges survives a SIGKILL of the store process.

Measured on SecantusDB with the default write concern: a SIGKILL right after a burst of 1,000
acknowledged single writes lost 7 to 19 of them. jobline's client journals every write
(`j: true`), so none may be lost. The burst goes through the real adapters (idempotency
claims, their publication marks, read-model batches) at the concurrency the API uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from pymongo.errors import PyMongoError

from jobline.children import Child, store, store_uri
from jobline.serving import free_port
from projections.jobs.store import MongoJobViews
from runtime.claims import ClaimStore
from runtime.clock import utc_now
from runtime.settings import Settings
from runtime.store import database, open_store
from tests.unit.events import job_life

CLAIMS = 1000
WORKERS = 16


@pytest.fixture
async def own_store(tmp_path: Path) -> AsyncIterator[tuple[Child, int]]:
    """A store of this test's own, since the test kills it."""
    port = free_port()
    child = store(port, tmp_path / "store")
    child.start()
    await child.wait_port("127.0.0.1", port)
    yield child, port
    await child.stop()


async def test_acknowledged_writes_survive_a_sigkill_of_the_store(
    own_store: tuple[Child, int], settings: Settings
) -> None:
    child, port = own_store
    configured = settings.model_copy(
        update={
            "mongodb_uri": store_uri(port),
            "mongodb_timeout_ms": 10_000,  # a busy machine is no reason to fail a write here
        }
    )

    async def kill() -> None:  # right after the last acknowledgement
        child.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(child.process.wait)

    await _write_then(configured, kill)
    # PyMongo's close() leaves some sockets of connections to a dead server for the garbage
    # collector: a ResourceWarning in whichever later test the collector runs. Collected
    # here, where they belong to this test's killed store.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()

    child.start()  # the same data directory
    await child.wait_port("127.0.0.1", port)
    client = open_store(configured)
    try:
        db = database(client, configured)
        published = await db["idempotency_keys"].count_documents({"published": True})
        resolved = await db["jobs"].count_documents({"status": "resolved", "version": 3})
    finally:
        await client.close()
    assert (published, resolved) == (CLAIMS, CLAIMS)


async def _write_then(settings: Settings, kill: Callable[[], Awaitable[None]]) -> None:
    """Claims, read-model batches and publication marks from WORKERS concurrent writers,
    then `kill()` the store and close the client."""
    client = open_store(settings)
    db = database(client, settings)
    claims, views = ClaimStore(db["idempotency_keys"]), MongoJobViews(db["jobs"])
    lives = {f"key-{n}": job_life(f"job-{n}", utc_now()) for n in range(CLAIMS)}
    keys = list(lives)

    async def worker() -> None:
        while keys:
            key = keys.pop()
            requested, *_ = lives[key]
            await claims.claim(key, requested, "fingerprint")
            await views.apply(lives[key])
            await claims.mark_published(key)

    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    await kill()
    with contextlib.suppress(PyMongoError):  # lets the pool close its dead connections
        await db.command("ping")
    await client.close()
