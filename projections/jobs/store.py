"""The jobs read model in MongoDB: batched, version-guarded writes and paginated reads."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from pymongo import DESCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from projections.jobs.view import STATUSES, JobView, evolve, plan
from runtime.backoff import ChunkSize, Retry, write_chunked
from runtime.store import Document
from schema import Event, JobRequested

DUPLICATE_KEY = 11000
# Most ops per bulk write. A write that fails (say, times out on a busy machine and an aged
# embedded store, seen below 70 upserts/s) halves the next one's size: see runtime/backoff.py.
BULK_OPS = 500
NEWEST_FIRST = [("created_at", DESCENDING), ("_id", DESCENDING)]
# The shape of the documents this code writes. Bump it when a change of `view.py` makes the
# stored documents stale; a projection that finds an older shape rebuilds them from the log.
# 1: no history. 2: each job keeps its event history.
SHAPE = 2
SHAPES = "read_model_shapes"  # {_id: read model's name, version: its documents' shape}


class InvalidCursor(ValueError):
    pass


class JobReadStore(Protocol):
    async def apply(self, events: Sequence[Event]) -> None: ...
    async def counts(self) -> dict[str, int]: ...
    async def get(self, job_id: str) -> JobView | None: ...
    async def page(
        self, limit: int, cursor: str | None, status: str | None
    ) -> tuple[list[JobView], str | None]: ...


class MongoJobViews:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection
        self.chunk = ChunkSize(BULK_OPS)

    async def prepare(self, name: str = "jobs") -> bool:
        """Indexes, and the shape check: True when the documents stored under `name` are
        of an older shape than SHAPE, so the read model must be rebuilt from the log. An
        empty read model is of the current shape from the start."""
        await self.ensure_indexes()
        shapes = self.collection.database[SHAPES]
        found = await shapes.find_one({"_id": name})
        if found is None and await self.collection.find_one({}, {"_id": 1}) is None:
            await shapes.update_one({"_id": name}, {"$setOnInsert": {"version": SHAPE}}, True)
            return False
        return found is None or found["version"] < SHAPE

    async def mark_current(self, name: str = "jobs") -> None:
        """Record that the documents under `name` are of the current shape."""
        shapes = self.collection.database[SHAPES]
        await shapes.update_one({"_id": name}, {"$max": {"version": SHAPE}}, upsert=True)

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(NEWEST_FIRST, name="newest_first")
        await self.collection.create_index(
            [("status", 1), *NEWEST_FIRST], name="status_newest_first"
        )

    async def apply(self, events: Sequence[Event], retry: Retry | None = None) -> None:
        """Apply a batch with one bulk write of one guarded upsert per job (see `Chain`).

        A job whose view is already at or past a chain's first version makes its upsert
        collide on `_id` (E11000): that event is already applied, so the chain is written
        again without it. Only jobs with redeliveries pay that second round.

        A failed write shrinks the next ones. Without `retry` it raises; with it (background
        writers), the failed chunk alone is written again, smaller, after a pause, until the
        store takes it (runtime/backoff.py)."""
        chains = plan(events)
        while chains:
            ops = [
                UpdateOne(
                    {"_id": chain.job_id, "version": {"$lt": chain.first}},
                    {"$set": chain.fields()},
                    upsert=True,
                )
                for chain in chains
            ]
            collided = await self._write(ops, retry)
            chains = [rest for i in collided if (rest := chains[i].rest()) is not None]

    async def _write(self, ops: list[UpdateOne], retry: Retry | None) -> list[int]:
        """Run the ops in bulk writes (runtime/backoff.py); return the indexes of those that
        collided on `_id`. A retried chunk is idempotent: the ops of it that did apply
        collide the second time."""
        collided: set[int] = set()

        async def write(start: int, end: int) -> None:
            try:
                await self.collection.bulk_write(ops[start:end], ordered=False)
            except BulkWriteError as error:
                errors = error.details["writeErrors"]
                if error.details.get("writeConcernErrors") or any(
                    e["code"] != DUPLICATE_KEY for e in errors
                ):
                    raise
                collided.update(start + e["index"] for e in errors)

        await write_chunked(len(ops), self.chunk, write, retry)
        return sorted(collided)

    async def insert_created(self, events: Sequence[JobRequested]) -> None:
        """Read-your-writes for new jobs: their first view, inserted in one write. A job whose
        view exists already (the projection was first, or this is a retried claim) keeps it:
        that view is at version 1 or later, so nothing is lost."""
        docs = [evolve(None, event) for event in events]
        if not docs:
            return
        try:
            await self.collection.insert_many(docs, ordered=False)
        except BulkWriteError as error:
            if error.details.get("writeConcernErrors") or any(
                e["code"] != DUPLICATE_KEY for e in error.details["writeErrors"]
            ):
                raise

    async def get_many(self, job_ids: Sequence[str]) -> dict[str, JobView]:
        if not job_ids:
            return {}
        found = self.collection.find({"_id": {"$in": list(job_ids)}})
        return {doc["_id"]: JobView.from_doc(doc) async for doc in found}

    async def counts(self) -> dict[str, int]:
        """How many jobs are in each status (every status present, zero or not)."""
        counted = dict.fromkeys(STATUSES, 0)
        pipeline = [{"$group": {"_id": "$status", "n": {"$sum": 1}}}]
        async for row in await self.collection.aggregate(pipeline):
            if row["_id"] in counted:
                counted[row["_id"]] = row["n"]
        return counted

    async def get(self, job_id: str) -> JobView | None:
        doc = await self.collection.find_one({"_id": job_id})
        return None if doc is None else JobView.from_doc(doc)

    async def page(
        self, limit: int, cursor: str | None, status: str | None
    ) -> tuple[list[JobView], str | None]:
        query: dict[str, Any] = {"created_at": {"$ne": None}}
        if status is not None:
            if status not in STATUSES:
                raise ValueError(f"unknown status {status!r}")
            query["status"] = status
        if cursor is not None:
            created_at, job_id = decode_cursor(cursor)
            query["$or"] = [
                {"created_at": {"$lt": created_at}},
                {"created_at": created_at, "_id": {"$lt": job_id}},
            ]
        docs = await self.collection.find(query).sort(NEWEST_FIRST).limit(limit + 1).to_list()
        views = [JobView.from_doc(doc) for doc in docs[:limit]]
        more = len(docs) > limit
        return views, encode_cursor(views[-1]) if more and views else None


def encode_cursor(view: JobView) -> str:
    assert view.created_at is not None
    raw = json.dumps([view.created_at.isoformat(), view.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, job_id = json.loads(raw)
        parsed = datetime.fromisoformat(created_at)
    except (binascii.Error, ValueError, TypeError) as error:
        raise InvalidCursor("cursor is not one this API issued") from error
    if not isinstance(job_id, str) or parsed.tzinfo is None:
        raise InvalidCursor("cursor is not one this API issued")
    return parsed, job_id
