"""A replay's swap of the read model (projections/jobs/model.py), on the real store: one write
moves every reader and writer, nothing commits to the model swapped out, a swap whose replay
stopped half-way is finished by the projection, and the old model goes once no one reads it."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from jobline.components import COMPONENTS
from projections.jobs.model import (
    LEGACY,
    MODELS,
    Located,
    ReadModel,
    SwapConflict,
    collection_of,
    next_generation,
    remove_retired,
    swap,
)
from projections.jobs.store import COUNT_SHARDS, RETIRED, SHAPES, ModelRetired, MongoJobViews
from runtime.clock import utc_now
from runtime.eventlog import KafkaEventPublisher, ensure_topics, start_producer
from runtime.settings import Settings
from runtime.store import Document, database, open_store
from schema.events import JobRequested
from tests.unit.events import job_life


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[AsyncDatabase[Document]]:
    client = open_store(settings)
    try:
        yield database(client, settings)
    finally:
        await client.close()


async def _swapped(db: AsyncDatabase[Document], old: Located, caught_up: bool = True) -> Located:
    """An empty model of a new generation, swapped in for `old`."""
    generation = await next_generation(db)
    new = Located(collection_of(generation), generation, {}, caught_up)
    await MongoJobViews(db[new.collection]).ensure_indexes()
    await swap(db, old, new)
    return new


async def test_a_write_to_a_swapped_out_model_goes_to_the_new_one(
    db: AsyncDatabase[Document],
) -> None:
    first, second = job_life("a", utc_now())[:2]
    model = ReadModel(db, ttl_s=3600)  # it would not look again of itself for an hour
    await model.write(lambda views: views.apply([first]))
    assert (await model.views()).collection.name == LEGACY.collection

    new = await _swapped(db, LEGACY)
    with pytest.raises(ModelRetired):
        await MongoJobViews(db[LEGACY.collection]).apply([second])
    await model.write(lambda views: views.apply([second]))  # to the new model, found anew

    assert (await model.views()).collection.name == new.collection
    old_doc = await db[LEGACY.collection].find_one({"_id": "a"})
    new_doc = await db[new.collection].find_one({"_id": "a"})
    assert old_doc is not None
    assert old_doc["version"] == 1, "nothing written to the old model"
    assert new_doc is not None
    assert (new_doc["version"], new_doc["status"]) == (2, "processing"), "written to the new"
    assert await db[MODELS].find_one({"_id": "jobs"}, {"_id": 0, "collection": 1}) == {
        "collection": new.collection
    }


async def test_a_write_begun_before_the_swap_and_finished_after_it_does_not_commit(
    db: AsyncDatabase[Document],
) -> None:
    """The race the fence is for: a projection's transaction has read the old model (its
    snapshot is from before the swap) and writes after the swap committed. It must not
    commit there: it conflicts with the swap, is run again, and finds the model retired."""
    requested, due = job_life("b", utc_now())[:2]
    old = MongoJobViews(db[LEGACY.collection])
    await old.apply([requested])
    swapped = asyncio.Event()
    runs = 0

    async def write(session: AsyncClientSession) -> None:
        nonlocal runs
        runs += 1
        await old.collection.find_one({"_id": "b"}, session=session)  # the snapshot
        if runs == 1:
            await swapped.wait()
        await old._apply_jobs([("b", [due])], session)

    async def swap_meanwhile() -> None:
        await asyncio.sleep(0.2)  # while the write's transaction is open
        await _swapped(db, LEGACY)
        swapped.set()

    swapping = asyncio.create_task(swap_meanwhile())
    with pytest.raises(ModelRetired):
        await old._transaction(write)
    await swapping
    assert runs == 2, "the write conflicted with the swap and was run again"
    doc = await db[LEGACY.collection].find_one({"_id": "b"})
    assert doc is not None
    assert doc["version"] == 1


async def test_a_swap_its_replay_did_not_finish_is_caught_up_when_the_projection_starts(
    settings: Settings, db: AsyncDatabase[Document]
) -> None:
    """As if `jobline replay` was killed between the swap and its catch-up: the model
    swapped in lacks what the log holds after `since`. The projection, starting, finishes."""
    await ensure_topics(settings)
    producer = await start_producer(settings, "test")
    try:
        await KafkaEventPublisher(producer, settings.topics.jobs).publish(job_life("c", utc_now()))
    finally:
        await producer.stop()
    new = await _swapped(db, LEGACY, caught_up=False)  # since {}: the log from its start

    task = asyncio.create_task(COMPONENTS["projection"].run(settings))
    try:
        async with asyncio.timeout(60):
            while (await ReadModel(db).located(fresh=True)) != Located(
                new.collection, new.generation, {}, True
            ):
                assert not task.done(), task
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    doc = await db[new.collection].find_one({"_id": "c"})
    assert doc is not None
    assert doc["status"] == "resolved"


async def test_the_old_model_is_deleted_after_the_grace_and_its_fence_kept(
    db: AsyncDatabase[Document],
) -> None:
    jobs = [job_life(f"d{n}", utc_now())[0] for n in range(5)]
    await MongoJobViews(db[LEGACY.collection]).apply(jobs)
    await MongoJobViews(db[LEGACY.collection]).mark_current()
    second = await _swapped(db, LEGACY)
    await MongoJobViews(db[second.collection]).apply(jobs)
    later_scratch = db[collection_of(second.generation + 5)]  # a replay under way
    await later_scratch.insert_one({"_id": "building"})

    assert await remove_retired(db, LEGACY, grace_s=0) == len(jobs)
    tombstone = await db[LEGACY.collection].find().to_list()
    assert sorted(d["_id"] for d in tombstone) == COUNT_SHARDS
    assert all(d[RETIRED] for d in tombstone)
    assert await db[SHAPES].find_one({"_id": LEGACY.collection}) is None

    third = await _swapped(db, second)
    assert await remove_retired(db, second, grace_s=0) == len(jobs)
    names = set(await db.list_collection_names())
    assert LEGACY.collection not in names, "the tombstone of the model before is dropped"
    assert {second.collection, later_scratch.name} <= names
    assert await db[third.collection].count_documents({}) == 0


async def test_a_second_swap_from_the_same_model_is_refused(
    db: AsyncDatabase[Document],
) -> None:
    await _swapped(db, LEGACY)
    with pytest.raises(SwapConflict):
        await _swapped(db, LEGACY)
    first = await ReadModel(db).located(fresh=True)
    await _swapped(db, first)
    with pytest.raises(SwapConflict):
        await _swapped(db, first)


class _Commands(monitoring.CommandListener):
    """The name and target of every command a client sends."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.seen.append((event.command_name, event.command.get(event.command_name)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_the_model_is_written_without_a_find_and_modify(settings: Settings) -> None:
    """Every write to a model changes a count document (the fence); a findAndModify for it
    would cost a scan of the whole model on SecantusDB (its write re-asserts the query beside
    the `_id`, which no index serves: 270 ms a write at 20,000 jobs, the soak's collapse)."""
    commands = _Commands()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        settings.store_uri, event_listeners=[commands], tz_aware=True
    )
    try:
        db = database(client, settings)
        views = MongoJobViews(db[LEGACY.collection])
        created, *rest = job_life("fam", utc_now())
        assert isinstance(created, JobRequested)
        await views.insert_created([created])  # the API's write
        await views.apply(rest)  # the projection's
        await views.add_counts(Counter({"resolved": 1}), [1])  # a rebuild's
    finally:
        await client.close()
    written = {name for name, target in commands.seen if target == LEGACY.collection}
    assert {"insert", "update"} <= written
    assert "findAndModify" not in written
