"""The jobs read model in MongoDB: transactional batches that keep counts exact, and pages
that cost O(page) on every backend.

Reads. Each job has `seq`, its dense place in creation order (view.py `order_key`). A page
is read as windows of `seq` from the top down (`{seq: {$gte: lo, $lte: hi}}`, with `status`
if filtered), each window served by an index range and holding at most its width in jobs:
O(page) on MongoDB and on the embedded store alike, which answers a sorted read of "the
newest 30" only by reading every document (DESIGN.md section 4). Windows grow fourfold while
they come back short (a rare status, or seq numbers a failed creation never used).

Counts. Beside the jobs live a few count documents (`~counts/<shard>`), changed in the same
transaction as the jobs of a batch: each batch reads the stored views of its jobs, folds
their events over them (`evolve` skips what a view has applied), writes each change guarded
by the version read, and adds the status changes to one shard.
Redelivery, replay and crashes therefore cannot count a change twice or miss one, and
reading the counts is a handful of `_id` lookups. The API inserts a new job's view for
read-your-writes and counts it in the same way (`insert_created`). A view marked
`counted: false` (the API's inserts before that) is counted by the projection when it first
sees it.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import fields, is_dataclass
from typing import Any, Protocol

from pymongo import ASCENDING, DESCENDING, InsertOne, ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError
from pymongo.results import BulkWriteResult

from projections.jobs.view import STATUSES, HistoryEntry, JobStatus, JobView, evolve
from runtime.backoff import ChunkSize, Retry, write_chunked
from runtime.store import Document, insert_new, only_duplicates
from schema import Event, JobRequested, photo_from_dict

# Most jobs per transaction. A write that fails (say, times out on a busy machine and an aged
# embedded store) halves the next one's size: see runtime/backoff.py.
BULK_OPS = 500
# The shape of the documents this code writes. Bump it when a change of `view.py` makes the
# stored documents stale; a projection that finds an older shape rebuilds them from the log.
# 1: no history. 2: each job keeps its event history. 3: `seq`, `counted`, count documents.
SHAPE = 3
SHAPES = "read_model_shapes"  # {_id: a collection of a model, version: its documents' shape}
COUNTERS = "counters"  # {_id: "jobs", seq: the last seq the API handed out}
COUNTS_PREFIX = "~counts/"
COUNT_SHARDS = [f"{COUNTS_PREFIX}{n}" for n in range(8)]
COUNTED = "counted"
RETIRED = "retired"  # on a count document: its model was swapped out (model.py)
WRITES = "writes"  # on a count document: transactions that wrote through it
#: Jobs deleted in one write when a whole model goes (`delete_jobs`).
DELETE_WINDOW = 1000
ONLY_ID = {"_id": 1}
FIRST_WINDOW_FILTERED = 4  # a status-filtered page starts with a window of 4 pages


class InvalidCursor(ValueError):
    """A cursor this API did not issue (the API says so as invalid input)."""


class StaleRead(PyMongoError):
    """A job changed between a batch's read and its write; the batch is written again."""


class ModelRetired(Exception):
    """The model written to was swapped out by a replay (projections/jobs/model.py); the
    write did not commit, and belongs in the model that replaced it."""


#: A write of a bulk to the model.
Write = InsertOne[Document] | UpdateOne


def is_counts(doc: Mapping[str, Any]) -> bool:
    return str(doc["_id"]).startswith(COUNTS_PREFIX)


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

    async def prepare(self) -> bool:
        """Indexes, and the shape check: True when the documents stored here are of an
        older shape than SHAPE, so the read model must be rebuilt from the log. An empty
        read model is of the current shape from the start."""
        await self.ensure_indexes()
        shapes = self.collection.database[SHAPES]
        name = self.collection.name
        found = await shapes.find_one({"_id": name})
        if found is None and await self.collection.find_one({}, {"_id": 1}) is None:
            await shapes.update_one({"_id": name}, {"$setOnInsert": {"version": SHAPE}}, True)
            return False
        return found is None or found["version"] < SHAPE

    async def mark_current(self) -> None:
        """Record that the documents stored here are of the current shape."""
        shapes = self.collection.database[SHAPES]
        await shapes.update_one(
            {"_id": self.collection.name}, {"$max": {"version": SHAPE}}, upsert=True
        )

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("seq", DESCENDING)], name="by_seq")
        await self.collection.create_index(
            [("status", ASCENDING), ("seq", DESCENDING)], name="by_status_seq"
        )

    # -- writes -------------------------------------------------------------------------

    async def apply(self, events: Sequence[Event], retry: Retry | None = None) -> None:
        """Apply a batch: per job, its events folded (`evolve`) over its stored view, in log
        order, the change written as one update guarded by the version read, in transactions
        of at most `chunk.size` jobs, each with its count changes.

        A failed transaction shrinks the next ones. Without `retry` it raises; with it
        (background writers), the failed chunk alone is written again, smaller, after a
        pause, until the store takes it (runtime/backoff.py)."""
        by_job: dict[str, list[Event]] = {}
        for event in events:
            by_job.setdefault(event.job_id, []).append(event)
        jobs = list(by_job.items())

        async def write(start: int, end: int) -> None:
            await self._transaction(lambda session: self._apply_jobs(jobs[start:end], session))

        await write_chunked(len(jobs), self.chunk, write, retry)

    async def _apply_jobs(
        self, jobs: list[tuple[str, list[Event]]], session: AsyncClientSession
    ) -> None:
        ids = [job_id for job_id, _ in jobs]
        stored = {
            doc["_id"]: doc
            async for doc in self.collection.find({"_id": {"$in": ids}}, session=session)
        }
        ops: list[UpdateOne] = []
        delta: Counter[str] = Counter()
        seqs: list[int] = []
        for job_id, job_events in jobs:
            doc = stored.get(job_id)
            before = from_document(doc) if doc is not None else None
            counted = doc is not None and doc.get(COUNTED, True)
            after = before
            for event in job_events:
                after = evolve(after, event)
            if after is None or after == before or after.version == 0:  # nothing applied
                if doc is not None and not counted:  # inserted by the API, counted now
                    delta[doc["status"]] += 1
                    guard = {"_id": job_id, "version": doc["version"]}
                    ops.append(UpdateOne(guard, {"$set": {COUNTED: True}}))
                continue
            if before is not None and counted:
                delta[before.status] -= 1
            delta[after.status] += 1
            if after.seq is not None and (before is None or before.seq != after.seq):
                seqs.append(after.seq)
            if before is None:
                fields = {**to_document(after), COUNTED: True}
                ops.append(UpdateOne({"_id": job_id}, {"$set": fields}, upsert=True))
            else:
                update = document_update(to_document(before), to_document(after))
                update.setdefault("$set", {})[COUNTED] = True
                ops.append(UpdateOne({"_id": job_id, "version": before.version}, update))
        if ops:
            result = await self._write_counted(ops, session, delta, seqs)
            if result.matched_count + result.upserted_count != len(ops) + 1:  # (+ the count)
                raise StaleRead("a job changed while its batch was written")

    async def insert_folded(self, views: Sequence[JobView], retry: Retry | None = None) -> None:
        """Insert whole views, folded elsewhere, into a collection no one else writes (a
        rebuild), in unordered inserts of at most `chunk.size` (shrunk while the store is
        slow; a chunk written again after a timeout finds some of its documents there
        already). Their counts are the caller's to add, once (`add_counts`)."""
        docs = [{**to_document(view), COUNTED: True} for view in views]

        async def write(start: int, end: int) -> None:
            await insert_new(self.collection, docs[start:end])

        await write_chunked(len(docs), self.chunk, write, retry)

    async def add_counts(self, statuses: Counter[str], seqs: Sequence[int]) -> None:
        """Count jobs in these statuses, and the range of `seq` they hold (one write)."""
        await self._write_counted([], None, statuses, [min(seqs), max(seqs)] if seqs else [])

    async def _write_counted(
        self,
        ops: Sequence[Write],
        session: AsyncClientSession | None,
        delta: Counter[str],
        seqs: Sequence[int],
    ) -> BulkWriteResult:
        """`ops` and their count change in one bulk write: the status changes, and the range
        of `seq` written, added to one of the count documents (a random one: concurrent
        writers rarely touch the same).

        Every transaction that writes jobs comes here and changes a count document whatever
        the counts, and raises ModelRetired (aborting the transaction) if the model was
        retired: a swap's own change of the document conflicts with this one otherwise, so
        nothing commits to a model after it was swapped out (model.py). The change is
        guarded by the document not being retired: a retired one does not match, so the
        upsert inserts its `_id` again and the store refuses the duplicate.

        With the jobs' updates, one round trip (inserts are a command of their own). By
        `_id`, not a find-and-modify: SecantusDB (0.7) runs a findAndModify by scanning the
        whole collection (its write re-asserts the query beside the `_id` found, which no
        index serves): 270 ms at 20,000 jobs."""
        changes: Document = {"$inc": {WRITES: 1}}
        changes["$inc"] |= {f"counts.{status}": n for status, n in delta.items() if n}
        if seqs:
            changes["$max"] = {"top": max(seqs)}
            changes["$min"] = {"bottom": min(seqs)}
        guard = {"_id": random.choice(COUNT_SHARDS), RETIRED: {"$ne": True}}
        count = UpdateOne(guard, changes, upsert=True)
        try:  # (ordered: in a transaction the first error ends it, and the commands after
            # it, a bulk of inserts and updates being two, would find it gone)
            return await self.collection.bulk_write([*ops, count], session=session)
        except BulkWriteError as error:
            if any(e["index"] == len(ops) for e in error.details.get("writeErrors", [])):
                raise ModelRetired(f"{self.collection.name} was swapped out by a replay") from None
            raise

    async def insert_created(self, events: Sequence[JobRequested]) -> None:
        """Read-your-writes for new jobs: their first views, inserted and counted in one
        transaction, so the projection, finding them at version 1 and counted, has nothing
        to write for them. A job whose view exists already (the projection was first, or
        this is a retried claim) keeps it, as counted by whoever wrote it: that view is at
        version 1 or later, so nothing is lost."""
        docs = {e.job_id: {**to_document(evolve(None, e)), COUNTED: True} for e in events}

        async def write(session: AsyncClientSession, look_first: bool) -> None:
            stored: set[str] = set()
            if look_first:
                found = self.collection.find(
                    {"_id": {"$in": list(docs)}}, {"_id": 1}, session=session
                )
                stored = {doc["_id"] async for doc in found}
            new = [doc for job_id, doc in docs.items() if job_id not in stored]
            if not new:
                return
            inserts = [InsertOne(doc) for doc in new]
            seqs = [doc["seq"] for doc in new]
            await self._write_counted(
                inserts, session, Counter({JobStatus.PENDING: len(new)}), seqs
            )

        if not docs:
            return
        try:  # new jobs, almost always: no read first
            await self._transaction(lambda session: write(session, False), tries=1)
        except (DuplicateKeyError, BulkWriteError) as error:
            if not only_duplicates(error):
                raise
            await self._transaction(lambda session: write(session, True))

    async def _transaction(
        self, write: Callable[[AsyncClientSession], Awaitable[None]], tries: int = 5
    ) -> None:
        """Run `write` in a transaction, again while it finds a document it read as absent
        inserted meanwhile (MongoDB reports that as a transient write conflict and the
        driver retries; a store may report the duplicate key instead)."""
        for attempt in range(tries):
            try:
                async with self.collection.database.client.start_session() as session:
                    await session.with_transaction(write)
            except (DuplicateKeyError, BulkWriteError) as error:
                if attempt + 1 == tries or not only_duplicates(error):
                    raise
            else:
                return

    async def delete_jobs(self) -> int:
        """Delete every job, leaving the count documents; how many. A window of `seq` at a
        time (an index range: each a short write, the store answering others in between;
        the embedded store takes a long `$in` of ids in time quadratic in its length), then
        any job the windows missed (from before `seq`) a few ids at a time."""
        _, top, _ = await self._tallies()
        deleted = 0
        for lo in range(1, top + 1, DELETE_WINDOW):
            window = {"seq": {"$gte": lo, "$lt": lo + DELETE_WINDOW}}
            deleted += (await self.collection.delete_many(window)).deleted_count
        jobs = {"_id": {"$nin": COUNT_SHARDS}}
        while ids := [doc["_id"] async for doc in self.collection.find(jobs, ONLY_ID).limit(100)]:
            deleted += (await self.collection.delete_many({"_id": {"$in": ids}})).deleted_count
        return deleted

    async def raise_counter(self) -> None:
        """Make sure the API never hands out a seq the read model already holds (a store
        whose counter was lost, or a read model rebuilt from the log elsewhere)."""
        _, top, _ = await self._tallies()
        if top > 0:
            await self.collection.database[COUNTERS].update_one(
                {"_id": "jobs"}, {"$max": {"seq": top}}, upsert=True
            )

    # -- reads --------------------------------------------------------------------------

    async def counts(self) -> dict[str, int]:
        """How many jobs are in each status (every status present, zero or not)."""
        counted, _, _ = await self._tallies()
        return counted

    async def _tallies(self) -> tuple[dict[str, int], int, int]:
        """(counts, the highest seq projected, the lowest) from the count documents."""
        shards = await self._count_documents()
        tops = [doc["top"] for doc in shards if "top" in doc]
        bottoms = [doc["bottom"] for doc in shards if "bottom" in doc]
        return sum_counts(shards), max(tops, default=0), min([1, *bottoms])

    async def _count_documents(self) -> list[Document]:
        return await self.collection.find({"_id": {"$in": COUNT_SHARDS}}).to_list()

    async def snapshot(self, count: int) -> tuple[list[JobView], bool, list[Document]]:
        """The newest `count` jobs, whether they are all the jobs there are, and the count
        documents (what the API's board loads: api/board.py)."""
        shards = await self._count_documents()
        views, more = await self.page(count, None, None)
        return views, more is None, shards

    async def get(self, job_id: str) -> JobView | None:
        if job_id.startswith(COUNTS_PREFIX):
            return None
        doc = await self.collection.find_one({"_id": job_id})
        return None if doc is None else from_document(doc)

    async def get_many(self, job_ids: Sequence[str]) -> dict[str, JobView]:
        wanted = [i for i in job_ids if not i.startswith(COUNTS_PREFIX)]
        if not wanted:
            return {}
        found = self.collection.find({"_id": {"$in": wanted}})
        return {doc["_id"]: from_document(doc) async for doc in found}

    async def page(
        self, limit: int, cursor: str | None, status: str | None
    ) -> tuple[list[JobView], str | None]:
        """Up to `limit` jobs, newest first, after `cursor`; and the cursor of the next page
        (None on the last). Read in windows of `seq`, from the top down (see the module)."""
        after = decode_cursor(cursor) if cursor is not None else None
        _, projected_top, bottom = await self._tallies()
        hi = after[0] if after is not None else await self._top(projected_top)
        found = await self._windows(limit + 1, status, bottom, hi, after, down=True)
        views = [from_document(doc) for doc in found[:limit]]
        more = len(found) > limit
        return views, encode_cursor(views[-1]) if more and views else None

    async def page_before(
        self, limit: int, cursor: str | None, status: str | None
    ) -> tuple[list[JobView], bool]:
        """The `limit` jobs just newer than `cursor` (without one, the oldest `limit` jobs),
        newest first as every page is; and whether newer ones exist beyond them. Read in
        windows of `seq`, from the bottom up."""
        before = decode_cursor(cursor) if cursor is not None else None
        _, projected_top, bottom = await self._tallies()
        lo = before[0] if before is not None else bottom
        top = await self._top(projected_top)
        found = await self._windows(limit + 1, status, lo, top, before, down=False)
        views = [from_document(doc) for doc in reversed(found[:limit])]
        return views, len(found) > limit

    async def _top(self, projected_top: int) -> int:
        """The highest seq there may be: handed out by the API, if not projected yet."""
        counter = await self.collection.database[COUNTERS].find_one({"_id": "jobs"})
        return max(projected_top, int(counter["seq"])) if counter else projected_top

    async def _windows(
        self,
        want: int,
        status: str | None,
        lo: int,
        hi: int,
        past: tuple[int, str] | None,
        *,
        down: bool,
    ) -> list[Document]:
        """Up to `want` documents with `seq` in [lo, hi] beyond position `past` (below it
        going down, above it going up), nearest first: windows from one end, each an index
        range, growing fourfold while they come back short. A window never spans both the
        sequenced jobs (from 1, dense) and the jobs from before `seq` (keys far below 0,
        view.py `order_key`): crossing the gap between them, windows start small again."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        first_width = want * (FIRST_WINDOW_FILTERED if status is not None else 1)
        width = first_width
        found: list[Document] = []
        while len(found) < want and lo <= hi:
            if down:
                start, end = max(lo, 1 if hi >= 1 else lo, hi - width + 1), hi
                crossed = start == 1
            else:
                start, end = lo, min(hi, 0 if lo <= 0 else hi, lo + width - 1)
                crossed = end == 0
            query: Document = {"seq": {"$gte": start, "$lte": end}}
            if status is not None:
                query["status"] = status
            window = await self.collection.find(query).to_list()
            window.sort(key=lambda d: (d["seq"], d["_id"]), reverse=down)
            if past is not None:
                window = [d for d in window if _beyond((d["seq"], d["_id"]), past, down)]
            found += window
            if down:
                hi = start - 1
            else:
                lo = end + 1
            width = first_width if crossed else width * 4
        return found[:want]


async def allocate(db: AsyncDatabase[Document], count: int) -> range:
    """Hand out `count` new seq numbers (one write, whatever the count). The counter is the
    database's, whichever collection holds the model. (A find-and-modify, which SecantusDB
    runs by scanning the collection: this one holds one document.)"""
    counter = await db[COUNTERS].find_one_and_update(
        {"_id": "jobs"},
        {"$inc": {"seq": count}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    assert counter is not None  # upserted
    last = int(counter["seq"])
    return range(last - count + 1, last + 1)


def _beyond(position: tuple[int, str], past: tuple[int, str], down: bool) -> bool:
    return position < past if down else position > past


# -- views as documents: the only place that knows how a view is stored ------------------


def to_document(view: JobView) -> Document:
    """The view as stored: fields not set yet are absent (not null), the history a document
    keyed by version (so an event's entry is one path: `history.<version>`)."""
    doc: Document = {"_id": view.id, "status": view.status.value, "version": view.version}
    optional = {
        "seq": view.seq,
        "created_at": view.created_at,
        "due_at": view.due_at,
        "delay_s": view.delay_s,
        "updated_at": view.updated_at,
        "result": plain(view.result) if view.result is not None else None,
        "error": view.error,
    }
    doc |= {name: value for name, value in optional.items() if value is not None}
    doc[HISTORY] = {str(e.version): plain(e) for e in view.history}
    return doc


def plain(value: Any) -> Any:
    """A dataclass as nested dicts, as `dataclasses.asdict` makes it but without its deep
    copies of every leaf (the values are immutable): a replay writes one per job, and
    asdict was a third of its time. Each class's field names are looked up once (the
    lookup, `fields` and `is_dataclass` per value, was a fifth of a replay's CPU)."""
    kind = type(value)
    names = _FIELD_NAMES.get(kind, ())
    if names == ():
        dataclass = is_dataclass(value) and not isinstance(value, type)
        names = _FIELD_NAMES[kind] = tuple(f.name for f in fields(value)) if dataclass else None
    if names is None:
        return value
    return {name: plain(getattr(value, name)) for name in names}


#: The field names of each type `plain` has met (None: not a dataclass).
_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}


def from_document(doc: Mapping[str, Any]) -> JobView:
    result = doc.get("result")
    entries = (doc.get(HISTORY) or {}).values()
    return JobView(
        id=doc["_id"],
        status=JobStatus(doc["status"]),
        version=doc["version"],
        created_at=doc.get("created_at"),
        due_at=doc.get("due_at"),
        updated_at=doc.get("updated_at"),
        delay_s=doc.get("delay_s"),
        seq=doc.get("seq"),
        result=photo_from_dict(result) if result is not None else None,
        error=doc.get("error"),
        history=tuple(sorted((HistoryEntry(**e) for e in entries), key=lambda e: e.version)),
    )


def document_update(old: Mapping[str, Any], new: Mapping[str, Any]) -> Document:
    """The update that turns stored document `old` into `new`: fields that changed set, and a
    document field (the history) key by key, so a job's next event writes its own entry and
    the fields it changed, not the whole job; fields gone unset."""
    sets: Document = {}
    unsets: Document = {}
    for name, value in new.items():
        before = old.get(name, _ABSENT)
        if isinstance(value, dict) and isinstance(before, dict) and name == HISTORY:
            sets |= {f"{name}.{k}": v for k, v in value.items() if before.get(k, _ABSENT) != v}
            unsets |= {f"{name}.{k}": "" for k in before.keys() - value.keys()}
        elif before != value:
            sets[name] = value
    unsets |= dict.fromkeys(old.keys() - new.keys(), "")
    update: Document = {}
    if sets:
        update["$set"] = sets
    if unsets:
        update["$unset"] = unsets
    return update


HISTORY = "history"
_ABSENT = object()


def sum_counts(shards: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many jobs are in each status (every status present), from the count documents."""
    counted: dict[str, int] = {status.value: 0 for status in STATUSES}
    for shard in shards:
        for status, n in (shard.get("counts") or {}).items():
            if status in counted:
                counted[status] += n
    return counted


def encode_cursor(view: JobView) -> str:
    assert view.seq is not None
    return encode_position(view.seq, view.id)


def encode_position(seq: int, job_id: str) -> str:
    """The cursor of the page that goes on below (seq, job_id): `seq.id`. Every string of
    that shape (CURSOR_PATTERN) is a position, so any cursor that matches the pattern the
    API documents pages from somewhere; clients should still treat cursors as opaque."""
    return f"{seq}.{job_id}"


#: What a cursor looks like: a job's seq (negative for the jobs from before seq), a dot,
#: and a job id (none: below every job of that seq).
CURSOR_PATTERN = r"^-?[0-9]{1,18}\.[0-9A-Za-z_-]{0,64}$"
_CURSOR = re.compile(CURSOR_PATTERN)


def decode_cursor(cursor: str) -> tuple[int, str]:
    if not _CURSOR.fullmatch(cursor):
        raise InvalidCursor("cursor is not one this API issued")
    seq, _, job_id = cursor.partition(".")
    return int(seq), job_id
