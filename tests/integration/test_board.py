"""The API serves the board's reads from memory (api/board.py): what it answers is what the
store holds, page for page, including below the board and after the store's changes."""

from __future__ import annotations

import asyncio
from typing import Any

from pymongo import AsyncMongoClient

from projections.jobs.store import MongoJobViews
from projections.jobs.view import STATUSES
from runtime.store import Document, database, open_store
from tests.conftest import SystemFactory


async def _api_pages(http: Any, limit: int, status: str | None) -> list[str]:
    found: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        if status is not None:
            params["status"] = status
        page = (await http.get("/jobs", params=params)).json()
        found += [job["id"] for job in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


async def _store_pages(views: MongoJobViews, limit: int, status: str | None) -> list[str]:
    found: list[str] = []
    cursor: str | None = None
    while True:
        page, cursor = await views.page(limit, cursor, status)
        found += [v.id for v in page]
        if cursor is None:
            return found


async def test_pages_counts_and_jobs_from_the_board_equal_the_store(
    make_system: SystemFactory,
) -> None:
    system = await make_system(board_jobs=7)  # most jobs lie below the board
    done = [await system.create() for _ in range(14)]
    for job in done:
        await system.wait_for(job["id"])
    await system.stop("delay")  # the next ones stay pending: every status on the board
    waiting = [await system.create() for _ in range(9)]
    client: AsyncMongoClient[Document] = open_store(system.settings)
    try:
        views = MongoJobViews(database(client, system.settings)["jobs"])
        deadline = asyncio.get_running_loop().time() + 30
        while (await system.http.get("/job-counts")).json()["total"] != 23:
            assert asyncio.get_running_loop().time() < deadline, "the board's counts lag"
            await asyncio.sleep(0.05)
        counts = (await system.http.get("/job-counts")).json()
        assert {s: counts[s] for s in STATUSES} == await views.counts()
        for status in (None, *STATUSES):
            for limit in (1, 3, 5, 30):
                assert await _api_pages(system.http, limit, status) == await _store_pages(
                    views, limit, status
                ), (status, limit)
        for job in done + waiting:  # the oldest lie below the board: read from the store
            got = (await system.http.get(f"/jobs/{job['id']}")).json()
            stored = await views.get(job["id"])
            assert stored is not None
            assert (got["status"], got["version"]) == (stored.status, stored.version)
    finally:
        await client.close()
