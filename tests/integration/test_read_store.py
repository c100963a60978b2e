"""Contract of the jobs read model, against the real store (Mongo wire protocol)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from functools import reduce

import pytest
from pymongo import AsyncMongoClient

from projections.jobs.store import MongoJobViews
from projections.jobs.view import JobView, evolve
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
    return await views.collection.find().sort("_id").to_list()


async def test_applying_events_twice_or_out_of_order_changes_nothing(
    views: MongoJobViews,
) -> None:
    lives = [job_life(f"job-{i}", utc_now(), resolved=i % 2 == 0) for i in range(4)]
    events = [e for life in lives for e in life]
    await views.apply(events)
    once = await _docs(views)
    assert [d["status"] for d in once] == ["resolved", "failed", "resolved", "failed"]

    await views.apply(events)  # redelivery of the whole batch
    await views.apply(list(reversed(events)))  # stale versions after newer ones
    for life in lives:
        await views.apply(life[:2])  # an old prefix again
    assert await _docs(views) == once


async def test_the_store_holds_what_a_fold_of_evolve_gives(views: MongoJobViews) -> None:
    life = job_life("folded", utc_now())
    for event in life:
        await views.apply([event, *life])  # each new event with redeliveries of all
    stored = await views.get("folded")
    assert stored == JobView.from_doc(reduce(evolve, life, None))  # type: ignore[arg-type]
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


async def test_pages_are_newest_first_with_stable_cursors(views: MongoJobViews) -> None:
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
