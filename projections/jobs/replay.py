"""Rebuild the jobs read model from the log: a fresh collection, then an atomic swap.

The API keeps serving the old model until the pointer names the new one (one write: see
model.py), so no reader sees a half-built model. What the log gained during the rebuild is
applied before the swap; what the live projection applied to the old model in the moment
before it, after (from where the first catch-up ended: a view applies each event once).
Writers that had not committed by the swap write to the new model (model.py's fence). The
old model is deleted a slice at a time once no reader can be using it. Replay only reads the
log and writes the store: it calls Unsplash zero times and appends no events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pymongo
from pymongo.asynchronous.collection import AsyncCollection

from projections.jobs.model import (
    POINTER_TTL_S,
    Located,
    ReadModel,
    collection_of,
    mark_caught_up,
    next_generation,
    remove_retired,
    swap,
)
from projections.jobs.store import MongoJobViews, is_counts
from projections.jobs.view import JobStatus, JobView, evolve
from runtime.aio import cancel_all
from runtime.backoff import ChunkSize, Retry
from runtime.eventlog import is_gap
from runtime.logreader import LogReader
from runtime.settings import Settings
from runtime.store import Document, database, open_store
from schema import Event, PoisonRecord, decode

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]
MAX_REPORTED = 50


@dataclass
class ReplayResult:
    events: int = 0
    skipped: int = 0  # poison records; the consumers dead-lettered them
    documents: int = 0
    differences: list[str] = field(default_factory=list)
    swapped: bool = False
    removed: int = 0  # jobs of the model swapped out, deleted
    retired: Located | None = None  # the model swapped out, if left for the caller to delete
    #: Seconds per phase, in order: where a replay's time goes (printed by `jobline replay`).
    phases: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        self.phases.setdefault(phase, 0.0)  # in the order they begin
        started = time.monotonic()
        try:
            yield
        finally:
            self.phases[phase] = self.phases.get(phase, 0.0) + time.monotonic() - started


async def replay(
    settings: Settings, progress: Progress, *, verify: bool = False, remove_old: bool = True
) -> ReplayResult:
    """Rebuild the read model from the log and swap it in (with `verify`, compare it with
    the live one instead); then, unless told not to (`remove_old`: the result names the
    model swapped out for the caller to remove), delete the old model's jobs."""
    client = open_store(settings, component="replay")
    try:
        db = database(client, settings)
        old = await ReadModel(db).located(fresh=True)
        generation = await next_generation(db)
        scratch = db[collection_of(generation)]
        result = ReplayResult()
        rebuilt = MongoJobViews(scratch)
        # One insert a batch: each round trip is a moment the store waits for this process
        # (its loop folding) or this process for the store.
        rebuilt.chunk = ChunkSize(WRITE_BATCH)
        try:
            reader = LogReader(settings, settings.topics.jobs)
            result.documents = await _rebuild(reader, rebuilt, result, progress)
            if verify:
                result.differences = await differences(db[old.collection], scratch)
                return result
            # Indexed once filled: one index build costs the store less than keeping two
            # indexes up to date through every insert. Unbounded by
            # JOBLINE_MONGODB_TIMEOUT_MS: a large model takes the store longer than a
            # request may, and a build given up half-way would leave the rebuild to be
            # done again.
            with pymongo.timeout(INDEX_TIMEOUT_S), result.timed("index"):
                await rebuilt.ensure_indexes()
            await rebuilt.mark_current()
            # What the log gained while the model was built and indexed, applied before the
            # swap: the model swapped in is as fresh as the one it replaces, give or take
            # what comes next.
            with result.timed("catch-up"):
                since = await _catch_up(settings, reader.positions, rebuilt, result)
            new = Located(scratch.name, generation, since, caught_up=False)
            with result.timed("swap"):
                await swap(db, old, new)
            result.swapped = True
        finally:
            if not result.swapped:
                await scratch.drop()
        # What reached the old model before the swap, from where the new one was caught up.
        with result.timed("catch-up after the swap"):
            await _catch_up(settings, new.since, rebuilt, result)
            await mark_caught_up(db, new)
        if not remove_old:
            result.retired = old
            return result
        with result.timed(REMOVAL):
            result.removed = await remove_retired(db, old, retire_grace_s(settings))
        return result
    finally:
        await client.close()


async def finish_swap(settings: Settings, model: ReadModel) -> None:
    """A swap whose replay stopped before its catch-up was done (killed, say): done now.
    (A replay still under way may be doing it too: both apply the same events, and a view
    applies each once.)"""
    located = await model.located(fresh=True)
    if located.caught_up:
        return
    log.warning("finishing a replay's swap", extra={"collection": located.collection})
    await _catch_up(settings, located.since, await model.views(), ReplayResult())
    await mark_caught_up(model.db, located)


def retire_grace_s(settings: Settings) -> float:
    """How long a swapped-out model stays whole: until every reader has looked at the
    pointer again (POINTER_TTL_S) and finished a read it began before (a read gives up
    after JOBLINE_MONGODB_TIMEOUT_MS), with a second to spare."""
    return POINTER_TTL_S + settings.mongodb_timeout_ms / 1000 + 1.0


async def _catch_up(
    settings: Settings, start: Mapping[int, int], views: MongoJobViews, result: ReplayResult
) -> dict[int, int]:
    """The log from `start` to its end now, applied to `views`; where it ended."""
    reader = LogReader(settings, settings.topics.jobs, start=dict(start))
    retry = Retry(log, "catch-up write failed; retrying")  # (a view applies each event once)
    async for records in reader.batches():
        events = _decoded(records, result)
        await views.apply(events, retry)
        result.events += len(events)
    return dict(reader.positions)


async def _rebuild(
    reader: LogReader, views: MongoJobViews, result: ReplayResult, progress: Progress
) -> int:
    """The whole log folded into a fresh collection, each job written once (as fast as the
    store inserts, where applying batch by batch would write each job once per event);
    how many jobs it holds."""
    fold = Fold()
    retry = Retry(log, "rebuild write failed; retrying")
    # One write under way while the next events are read and folded: the store inserts on
    # one core while this process decodes on the other.
    writing: asyncio.Task[None] | None = None
    try:
        with result.timed("read and fold"):
            batches = reader.batches()
            while True:
                with result.timed("... of which waiting for the log"):
                    records = await anext(batches, None)
                if records is None:
                    break
                events = _decoded(records, result)
                for event in events:
                    fold.take(event)
                if len(fold.done) >= WRITE_BATCH:
                    if writing is not None:
                        with result.timed("... of which waiting for the store"):
                            await writing
                    writing = asyncio.create_task(views.insert_folded(fold.take_done(), retry))
                result.events += len(events)
                progress(reader.done, reader.total)
        with result.timed("last writes"):
            if writing is not None:
                await writing
            await views.insert_folded([*fold.take_done(), *fold.take_open()], retry)
            await views.add_counts(fold.statuses, fold.seqs)
            await views.apply(fold.late)
    finally:
        if writing is not None:
            await cancel_all(writing)
    return len(fold.written)


def _decoded(records: list[Any], result: ReplayResult) -> list[Event]:
    events = []
    for record in records:
        if is_gap(record):
            continue
        try:
            events.append(decode(record.value))
        except PoisonRecord:
            result.skipped += 1
    return events


#: The last phase, after the rebuilt model serves: deleting the one it replaced.
REMOVAL = "old model removed"
#: How long building the rebuilt model's indexes may take.
INDEX_TIMEOUT_S = 600
#: Views written to a rebuild in one insert.
WRITE_BATCH = 5000
#: States no event moves a job out of: its view is final, and written at once.
FINAL = frozenset({JobStatus.RESOLVED, JobStatus.CANCELLED})


class Fold:
    """Each job's events folded (`evolve`) in memory, in log order. A job in a final state
    is done (written, then forgotten but for its version); the others stay until the end.
    An event for a job already written that is newer than what was written (none, while
    final states are final) is kept to be applied to the stored view afterwards."""

    def __init__(self) -> None:
        self.open: dict[str, JobView] = {}
        self.done: list[JobView] = []
        self.written: dict[str, int] = {}  # job id -> the version written
        self.late: list[Event] = []
        self.statuses: Counter[str] = Counter()  # of the views taken to be written
        self.seqs: list[int] = []  # the lowest and highest seq of those views

    def take(self, event: Event) -> None:
        written = self.written.get(event.job_id)
        if written is not None:
            if event.version > written:
                self.late.append(event)
            return
        view = evolve(self.open.get(event.job_id), event)
        if view.version == 0:  # an event that makes no job of nothing
            return
        if view.status in FINAL:
            self.open.pop(event.job_id, None)
            self.done.append(view)
            self.written[event.job_id] = view.version
        else:
            self.open[event.job_id] = view

    def take_done(self) -> list[JobView]:
        done, self.done = self.done, []
        self._counted(done)
        return done

    def take_open(self) -> list[JobView]:
        views = list(self.open.values())
        self.written.update((view.id, view.version) for view in views)
        self.open.clear()
        self._counted(views)
        return views

    def _counted(self, views: list[JobView]) -> None:
        self.statuses.update(view.status.value for view in views)
        seqs = [*self.seqs, *(view.seq for view in views if view.seq is not None)]
        self.seqs = [min(seqs), max(seqs)] if seqs else []


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
