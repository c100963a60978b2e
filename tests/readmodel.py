"""Checks of the jobs read model that several tests make."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from projections.jobs.model import ReadModel
from projections.jobs.store import COUNTED, MongoJobViews
from projections.jobs.view import STATUSES
from runtime.settings import Settings
from runtime.store import Document, database


async def current(db: AsyncDatabase[Document]) -> AsyncCollection[Document]:
    """The collection the jobs read model is in now (a replay swaps another one in)."""
    return (await ReadModel(db).views(fresh=True)).collection


async def counts_and_recount(settings: Settings) -> tuple[dict[str, int], dict[str, int]]:
    """The counts the read model keeps, and a recount of its counted job documents (a view
    marked `counted: false`, as the API of an earlier release inserted them, is counted once
    the projection has seen it): always equal."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.store_uri)
    try:
        jobs = await current(database(client, settings))
        counted = await MongoJobViews(jobs).counts()
        recount = dict.fromkeys(STATUSES, 0)
        query = {"version": {"$exists": True}, COUNTED: True}
        async for doc in jobs.find(query, {"status": 1}):
            recount[doc["status"]] += 1
        return counted, recount
    finally:
        await client.close()
