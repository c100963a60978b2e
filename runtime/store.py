"""MongoDB client (PyMongo's async API)."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from runtime.settings import Settings

Document = dict[str, Any]


def open_store(settings: Settings) -> AsyncMongoClient[Document]:
    # tz_aware: timestamps come back as aware UTC datetimes, equal to the events' own.
    return AsyncMongoClient(
        settings.store_uri, tz_aware=True, serverSelectionTimeoutMS=10_000, appname="jobline"
    )


def database(client: AsyncMongoClient[Document], settings: Settings) -> AsyncDatabase[Document]:
    return client[settings.mongodb_database]
