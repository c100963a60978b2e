"""MongoDB client (PyMongo's async API)."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from runtime.settings import Settings

Document = dict[str, Any]
DUPLICATE_KEY = 11000


def open_store(
    settings: Settings, *, bounded: bool = True, component: str = "api"
) -> AsyncMongoClient[Document]:
    """A client whose every operation gives up after JOBLINE_MONGODB_TIMEOUT_MS; `bounded=False`
    for long polls such as change streams, which that bound would cut every few seconds.

    Every write is journaled (`j: true`) before the store acknowledges it: the store holds
    parts of what jobline acknowledges (idempotency claims, fetch outcomes, the embedded
    log's archive and group checkpoints, read-model writes that a checkpoint vouches for),
    and without the journal a killed store loses the last writes it acknowledged (measured
    on SecantusDB: 9-19 of 1,000; MongoDB flushes its journal only every 100 ms). With no
    `w` given, MongoDB applies its default (majority on a replica set) on top."""
    # tz_aware: timestamps come back as aware UTC datetimes, equal to the events' own.
    # A 1 s heartbeat (default 10 s) finds a recovered store again within a request's timeout.
    # serverSelectionTimeoutMS bounds what timeoutMS does not: `close()` ends its sessions
    # on a server it first selects, and with the default 30 s a dead store held every
    # component's shutdown (and so `jobline run`'s exit) for that long per client.
    return AsyncMongoClient(
        settings.store_uri,
        journal=True,
        tz_aware=True,
        serverSelectionTimeoutMS=settings.mongodb_timeout_ms,
        timeoutMS=settings.mongodb_timeout_ms if bounded else None,
        heartbeatFrequencyMS=1000,
        appname=f"jobline-{component}",  # the store's logs and currentOp say whose it is
    )


def database(client: AsyncMongoClient[Document], settings: Settings) -> AsyncDatabase[Document]:
    return client[settings.mongodb_database]


async def insert_new(collection: AsyncCollection[Document], docs: list[Document]) -> list[int]:
    """Insert the documents in one unordered write; return the indexes of those whose `_id`
    was taken already (left as stored). Any other failure raises."""
    if not docs:
        return []
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as error:
        if not only_duplicates(error):
            raise
        return sorted(e["index"] for e in error.details["writeErrors"])
    return []


def only_duplicates(error: DuplicateKeyError | BulkWriteError) -> bool:
    """Whether a write failed only because `_id`s (or other unique keys) were taken."""
    if isinstance(error, DuplicateKeyError):
        return True
    details = error.details
    return not details.get("writeConcernErrors") and all(
        e["code"] == DUPLICATE_KEY for e in details.get("writeErrors", [])
    )
