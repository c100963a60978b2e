"""Contract of the jobs read model, against the real store (Mongo wire protocol)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from functools import reduce
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from projections.jobs.store import COUNTED, MongoJobViews, encode_cursor, to_document
from projections.jobs.view import STATUSES, evolve
from runtime.backoff import ChunkSize
from runtime.clock import utc_now
from runtime.settings import Settings
from runtime.store import Document, database, open_store
from tests.unit.events import job_life


@pytest.fixture
async def views(settings: Settings) -> AsyncIterator[MongoJobViews]:
    client: AsyncMongoClient[Document] = open_store(settings)
    store = MongoJobViews(database(client, settings)["jobs"])
    await store.ensure_indexes()
    yield store
    await client.close()


async def _docs(views: MongoJobViews) -> list[Document]:
    """The job documents (not the counts), as stored."""
    return await views.collection.find({"version": {"$exists": True}}).sort("_id").to_list()


async def _counted(views: MongoJobViews) -> dict[str, int]:
    """The counts the read model keeps, once checked against a recount of its jobs."""
    recount = dict.fromkeys(STATUSES, 0)
    for doc in await _docs(views):
        recount[doc["status"]] += 1
    counted = await views.counts()
    assert counted == recount
    return counted


async def test_applying_events_twice_or_out_of_order_changes_nothing(
    views: MongoJobViews,
) -> None:
    lives = [job_life(f"job-{i}", utc_now(), resolved=i % 2 == 0) for i in range(4)]
    events = [e for life in lives for e in life]
    await views.apply(events)
    once = await _docs(views)
    assert [d["status"] for d in once] == ["resolved", "failed", "resolved", "failed"]

    assert await _counted(views) == {
        "pending": 0,
        "processing": 0,
        "resolved": 2,
        "failed": 2,
        "cancelled": 0,
    }

    await views.apply(events)  # redelivery of the whole batch
    await views.apply(list(reversed(events)))  # stale versions after newer ones
    for life in lives:
        await views.apply(life[:2])  # an old prefix again
    assert await _docs(views) == once
    await _counted(views)  # still equal to a recount


async def test_the_store_holds_what_a_fold_of_evolve_gives(views: MongoJobViews) -> None:
    life = job_life("folded", utc_now())
    for event in life:
        await views.apply([event, *life])  # each new event with redeliveries of all
    stored = await views.get("folded")
    assert stored == reduce(evolve, life, None)
    assert [entry.type for entry in stored.history] == [e.TYPE for e in life]


async def test_one_batch_equals_one_event_at_a_time(
    views: MongoJobViews,
) -> None:
    at = utc_now()
    await views.apply(job_life("together", at, photo_id="same"))
    for event in job_life("apart", at, photo_id="same"):
        await views.apply([event])
    apart, together = await _docs(views)
    assert apart.pop("_id") == "apart"
    assert together.pop("_id") == "together"
    for doc in (apart, together):
        for entry in doc["history"].values():
            entry.pop("event_id")  # job_life derives event ids from job ids
    assert together == apart


async def test_a_re_emitted_event_after_a_cut_leaves_the_first_copy(
    views: MongoJobViews,
) -> None:
    """The log that once made the live read model differ from a replay: a JobDue emitted
    twice (a delay processor killed after publishing it, before committing), the copies
    differing in `occurred_at`, and the projection's batches cut right after the first copy.
    The second batch starts with the second copy and holds the outcome."""
    requested, due, resolved = job_life("cut", utc_now())
    again = replace(due, occurred_at=due.occurred_at + timedelta(seconds=3))
    log = [requested, due, again, resolved]
    await views.apply(log[:2])
    await views.apply(log[2:])
    live = await views.collection.find_one({"_id": "cut"})
    await views.collection.delete_many({})
    await views.apply(log)  # a replay reads the same log in one batch
    assert await views.collection.find_one({"_id": "cut"}) == live
    assert live is not None
    assert live["history"]["2"]["occurred_at"] == due.occurred_at
    assert live["version"] == 3


async def test_collisions_are_retried_across_bulk_chunks(views: MongoJobViews) -> None:
    """More jobs than one bulk write takes, every other one already at version 1: the
    collided chains, wherever they sit in the chunks, are written again without their
    first event."""
    views.chunk = ChunkSize(40)
    lives = [job_life(f"many-{i:04}", utc_now()) for i in range(40 * 2 + 10)]
    await views.apply([life[0] for life in lives[::2]])
    await views.apply([event for life in lives for event in life[:2]])
    docs = await _docs(views)
    assert len(docs) == len(lives)
    assert {(d["status"], d["version"], len(d["history"])) for d in docs} == {("processing", 2, 2)}


async def test_jobs_requested_before_seq_are_listed_by_creation_time(
    views: MongoJobViews,
) -> None:
    """v1 JobRequested events carry no `seq`: such jobs keep their creation order."""
    start = utc_now()
    for i in range(7):
        await views.apply(job_life(f"j{i}", start + timedelta(seconds=i // 2))[:1])
    ids, cursor = [], None
    while True:
        page, cursor = await views.page(3, cursor, None)
        ids += [v.id for v in page]
        if cursor is None:
            break
    assert ids == ["j6", "j5", "j4", "j3", "j2", "j1", "j0"]
    assert (await views.page(10, None, "resolved"))[0] == []
    assert await views.get("nope") is None


async def _all_pages(
    views: MongoJobViews, limit: int, status: str | None, between: Any = None
) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        page, cursor = await views.page(limit, cursor, status)
        ids += [v.id for v in page]
        if cursor is None:
            return ids
        if between is not None:
            await between()


async def test_pages_equal_a_plain_sort_across_inserts_made_while_paging(
    views: MongoJobViews,
) -> None:
    """Every page of every status, walked with cursors while new jobs arrive, is exactly a
    plain sort (newest first) of the jobs there were when the walk began: seq gaps (numbers
    a failed creation never used) and all."""
    start = utc_now()
    seqs = [n for n in range(1, 140) if n % 11]  # gaps
    lives = {n: job_life(f"job-{n:03}", start, resolved=n % 3 == 0, seq=n) for n in seqs}
    batch = []
    for n, life in lives.items():  # a mix of pending, processing, resolved and failed
        batch += life[: 1 + n % 4] if n % 4 < 3 else life
    await views.apply(batch)
    later = itertools.count(1000)
    inserted: list[str] = []

    async def insert_one() -> None:
        n = next(later)
        inserted.append(f"new-{n}")
        await views.apply(job_life(inserted[-1], utc_now(), seq=n)[:1])

    async def plain(status: str | None) -> list[str]:
        chosen = [d for d in await _docs(views) if status is None or d["status"] == status]
        return [d["_id"] for d in sorted(chosen, key=lambda d: d["seq"], reverse=True)]

    for status in (None, *STATUSES):
        for limit in (1, 7, 30):
            expected = await plain(status)  # the jobs there are as the walk begins
            assert await _all_pages(views, limit, status, insert_one) == expected, (
                status,
                limit,
            )
    first, _ = await views.page(5, None, None)
    assert [v.id for v in first] == inserted[::-1][:5]  # the newest: inserted while paging


async def test_counts_equal_a_recount_after_api_inserts_and_redeliveries(
    views: MongoJobViews,
) -> None:
    start = utc_now()
    lives = [job_life(f"c{n}", start, resolved=n % 2 == 0, seq=n) for n in range(1, 41)]
    requested = [life[0] for life in lives]
    await views.insert_created(requested[:25])  # read-your-writes: inserted and counted
    assert await _counted(views) == {
        "pending": 25,
        "processing": 0,
        "resolved": 0,
        "failed": 0,
        "cancelled": 0,
    }
    await views.apply([e for life in lives[:10] for e in life[:2]])
    await views.apply(requested)
    await views.insert_created(requested[30:])  # after the projection: changes nothing
    await views.apply([e for life in lives for e in life])
    await views.apply([e for life in lives[::3] for e in life])  # redelivered
    assert await _counted(views) == {
        "pending": 0,
        "processing": 0,
        "resolved": 20,
        "failed": 20,
        "cancelled": 0,
    }


async def test_views_the_previous_release_inserted_uncounted_are_counted_once(
    views: MongoJobViews,
) -> None:
    start = utc_now()
    lives = [job_life(f"u{n}", start, resolved=True, seq=n) for n in range(1, 11)]
    # The API of the previous release inserted new jobs' views marked `counted: false`.
    uncounted = [{**to_document(evolve(None, life[0])), COUNTED: False} for life in lives]
    await views.collection.insert_many(uncounted)
    await views.apply([life[0] for life in lives[:5]])  # counted now, nothing else changes
    await views.apply([e for life in lives for e in life])
    await views.apply([e for life in lives for e in life])  # redelivered
    assert await _counted(views) == {
        "pending": 0,
        "processing": 0,
        "resolved": 10,
        "failed": 0,
        "cancelled": 0,
    }


async def test_the_api_and_the_projection_writing_the_same_new_jobs_at_once_count_each_once(
    views: MongoJobViews,
) -> None:
    start = utc_now()
    for round_ in range(5):
        lives = [job_life(f"r{round_}-{n}", start, seq=100 * round_ + n) for n in range(40)]
        requested = [life[0] for life in lives]
        await asyncio.gather(
            views.insert_created(requested),
            views.apply([e for life in lives[::2] for e in life[:2]]),
            views.apply(requested[::-1]),
        )
    counted = await _counted(views)
    assert sum(counted.values()) == 200
    assert counted["processing"] == 100


async def test_two_writers_taking_turns_on_the_same_jobs_count_each_change_once(
    views: MongoJobViews,
) -> None:
    """A partition that changed hands: two writers apply overlapping batches of the same
    jobs; each change is counted once and the documents are the fold of the log."""
    other = MongoJobViews(views.collection)
    start = utc_now()
    lives = [job_life(f"s{n}", start, resolved=n % 2 == 0, seq=n) for n in range(1, 21)]
    await views.apply([e for life in lives for e in life[:2]])  # remembers version 2
    await other.apply([life[2] for life in lives[:10]])  # moves half of them on, to 3
    await views.apply([life[2] for life in lives])  # ten of them moved on already
    await views.apply([e for life in lives for e in life])  # redelivered
    await other.apply([e for life in lives for e in life])
    assert await _counted(views) == {
        "pending": 0,
        "processing": 0,
        "resolved": 10,
        "failed": 10,
        "cancelled": 0,
    }
    stored = {d["_id"]: d for d in await _docs(views)}
    for life in lives:
        view = reduce(evolve, life, None)
        assert view is not None
        doc = to_document(view)
        assert {k: v for k, v in stored[doc["_id"]].items() if k != COUNTED} == doc


async def test_paging_backwards_meets_the_same_jobs_in_the_same_order(
    views: MongoJobViews,
) -> None:
    """From the oldest page up, each page the one before the last: the same jobs as paging
    down, status by status, across seq gaps and the jobs from before seq (keys far below)."""
    start = utc_now()
    batch = []
    for n in (n for n in range(1, 60) if n % 7):
        batch += job_life(f"job-{n:03}", start, resolved=n % 2 == 0, seq=n)[: 1 + n % 3]
    for i in range(3):
        batch += job_life(f"legacy-{i}", start + timedelta(seconds=i))[: 1 + i]
    await views.apply(batch)
    for status in (None, *STATUSES):
        for limit in (1, 4, 25):
            backwards: list[str] = []
            page, newer = await views.page_before(limit, None, status)
            while True:
                backwards = [v.id for v in page] + backwards
                if not newer:
                    break
                page, newer = await views.page_before(limit, encode_cursor(page[0]), status)
            assert backwards == await _all_pages(views, limit, status), (status, limit)
