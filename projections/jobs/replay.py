"""Rebuild the jobs read model from the log: a fresh collection, then an atomic swap.

The API keeps serving the old collection until `renameCollection` replaces it in one step, so
no reader sees a half-built model. Events the live projection applied to the old collection
during the swap window are applied again by a catch-up pass from where the rebuild stopped
(version guards make the overlap harmless). Replay only reads the log and writes the store:
it calls Unsplash zero times and appends no events.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from pymongo.asynchronous.collection import AsyncCollection

from projections.jobs.store import MongoJobViews, is_counts
from runtime.eventlog import is_gap
from runtime.logreader import LogReader
from runtime.settings import Settings
from runtime.store import Document, database, open_store
from schema import PoisonRecord, decode

Progress = Callable[[int, int], None]
MAX_REPORTED = 50


@dataclass
class ReplayResult:
    events: int = 0
    skipped: int = 0  # poison records; the consumers dead-lettered them
    documents: int = 0
    differences: list[str] = field(default_factory=list)
    swapped: bool = False


async def replay(settings: Settings, progress: Progress, *, verify: bool = False) -> ReplayResult:
    client = open_store(settings, component="replay")
    try:
        db = database(client, settings)
        scratch = db[f"jobs_rebuild_{uuid.uuid4().hex[:12]}"]
        result = ReplayResult()
        try:
            rebuilt = MongoJobViews(scratch)
            await rebuilt.ensure_indexes()
            reader = LogReader(settings, settings.topics.jobs)
            await _apply(reader, rebuilt, result, progress)
            result.documents = await scratch.count_documents({"version": {"$exists": True}})
            if verify:
                result.differences = await differences(db["jobs"], scratch)
                return result
            await client.admin.command(
                {
                    "renameCollection": f"{db.name}.{scratch.name}",
                    "to": f"{db.name}.jobs",
                    "dropTarget": True,
                }
            )
            result.swapped = True
            await rebuilt.mark_current()
        finally:
            if not result.swapped:
                await scratch.drop()
        catch_up = LogReader(settings, settings.topics.jobs, start=reader.positions)
        await _apply(catch_up, MongoJobViews(db["jobs"]), result, lambda done, total: None)
        return result
    finally:
        await client.close()


async def _apply(
    reader: LogReader, views: MongoJobViews, result: ReplayResult, progress: Progress
) -> None:
    async for records in reader.batches():
        events = []
        for record in records:
            if is_gap(record):
                continue
            try:
                events.append(decode(record.value))
            except PoisonRecord:
                result.skipped += 1
        await views.apply(events)
        result.events += len(events)
        progress(reader.done, reader.total)


async def differences(
    live: AsyncCollection[Document], rebuilt: AsyncCollection[Document]
) -> list[str]:
    """Every job whose document differs between the two collections, and any count that
    differs, said plainly. (The count documents are compared by their totals: how a count
    is spread over its shards depends on which writer counted what.)"""
    found: list[str] = []
    live_docs = {d["_id"]: d async for d in live.find() if not is_counts(d)}
    live_counts = await MongoJobViews(live).counts()
    rebuilt_counts = await MongoJobViews(rebuilt).counts()
    found += [
        f"count of {status} jobs: {live_counts[status]} live, {n} rebuilt"
        for status, n in rebuilt_counts.items()
        if live_counts[status] != n
    ]
    async for doc in rebuilt.find():
        if is_counts(doc):
            continue
        other = live_docs.pop(doc["_id"], None)
        if other is None:
            found.append(f"{doc['_id']}: only in the rebuilt model")
        elif other != doc:
            fields = sorted(k for k in doc.keys() | other.keys() if doc.get(k) != other.get(k))
            found.append(f"{doc['_id']}: differs in {', '.join(fields)}")
    found += [f"{job_id}: only in the live model" for job_id in live_docs]
    return found
