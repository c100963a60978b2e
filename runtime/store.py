"""MongoDB client (PyMongo's async API)."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from runtime.settings import Settings

Document = dict[str, Any]


def open_store(settings: Settings, *, bounded: bool = True) -> AsyncMongoClient[Document]:
    """A client whose every operation gives up after JOBLINE_MONGODB_TIMEOUT_MS; `bounded=False`
    for long polls such as change streams, which that bound would cut every few seconds."""
    # tz_aware: timestamps come back as aware UTC datetimes, equal to the events' own.
    # A 1 s heartbeat (default 10 s) finds a recovered store again within a request's timeout.
    return AsyncMongoClient(
        settings.store_uri,
        tz_aware=True,
        timeoutMS=settings.mongodb_timeout_ms if bounded else None,
        heartbeatFrequencyMS=1000,
        appname="jobline",
    )


def database(client: AsyncMongoClient[Document], settings: Settings) -> AsyncDatabase[Document]:
    return client[settings.mongodb_database]
