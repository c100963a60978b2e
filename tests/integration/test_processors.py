"""Processor guarantees on the real broker and store: restarts, redeliveries, poison records."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient

from jobline.components import COMPONENTS
from processors.fetcher.downloads import Downloads
from processors.fetcher.shell import FetchHandler
from processors.fetcher.shell import run as run_fetcher
from processors.fetcher.source import PhotoSource
from processors.fetcher.unsplash import Unsplash
from runtime.claims import ClaimStore
from runtime.clock import utc_now
from runtime.consuming import Consumed
from runtime.eventlog import (
    Appended,
    KafkaEventPublisher,
    consumer,
    ensure_topics,
    start_client,
    start_producer,
)
from runtime.offsets import OffsetTracker
from runtime.settings import Settings
from runtime.store import database, open_store
from schema import Event, JobDue, JobResolved, encode
from tests.conftest import StandInServer, System, SystemFactory, eventually
from tests.logread import read_events, read_topic
from tests.unit.events import job_life


async def test_delay_processor_restart_while_jobs_wait(make_system: SystemFactory) -> None:
    system = await make_system(delay_min_s=1.0, delay_max_s=3.0, delay_step_s=0.5)
    jobs = [await system.create() for _ in range(12)]
    await asyncio.sleep(0.5)
    await system.stop("delay")  # timers armed, none fired yet for most jobs
    await asyncio.sleep(2.0)  # some jobs fall due while nobody is watching
    system.start("delay")
    for job in jobs:
        assert (await system.wait_for(job["id"]))["status"] == "resolved"

    events = await read_events(system.settings)
    requested_due = {e.job_id: e.due_at for e in events if type(e).__name__ == "JobRequested"}
    for due in (e for e in events if isinstance(e, JobDue)):
        assert due.occurred_at >= requested_due[due.job_id], "a timer fired early"
    photos: defaultdict[str, set[str]] = defaultdict(set)
    for e in events:
        if isinstance(e, JobResolved):
            photos[e.job_id].add(e.photo.id)
    assert {j["id"] for j in jobs} == set(photos)
    assert all(len(p) == 1 for p in photos.values()), "a job got two different photos"


async def test_a_stopped_member_leaves_its_group_in_every_generation(settings: Settings) -> None:
    """The embedded broker numbers a group's first generation 0, where aiokafka leaves a
    group on stop only above 0: a stopped member stayed in the group for its session timeout,
    and a restarted processor waited for it (runtime.eventlog.GroupConsumer)."""
    await ensure_topics(settings)
    group = f"{settings.topic_prefix}.leaving"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await start_client(admin, admin.close)
    try:
        for generation in range(2):
            member = consumer(settings, group, settings.topics.jobs)
            await start_client(member, member.stop)
            try:
                while not member.assignment():
                    await member.getmany(timeout_ms=100)
                assert member._coordinator.generation == generation
                [described] = (await admin.describe_consumer_groups([group]))[0].groups
                assert len(described[5]) == 1, described  # (..., members)
            finally:
                await member.stop()
            [described] = (await admin.describe_consumer_groups([group]))[0].groups
            assert described[5] == [], f"generation {generation} did not leave: {described}"
    finally:
        await admin.close()


async def test_redelivered_job_due_calls_unsplash_once(
    system: System, stand_in: StandInServer
) -> None:
    job = await system.create()
    await system.wait_for(job["id"])
    events = await read_events(system.settings)
    due = next(e for e in events if isinstance(e, JobDue))
    producer = AIOKafkaProducer(bootstrap_servers=system.settings.bootstrap_servers)
    await producer.start()
    try:  # the same JobDue again, as a crash before its commit would redeliver it
        await producer.send_and_wait(
            system.settings.topics.jobs, encode(due), key=due.job_id.encode()
        )
    finally:
        await producer.stop()
    marker = await system.create()  # same pipeline, later: once it resolves, the dup was seen
    await system.wait_for(marker["id"])
    await asyncio.sleep(0.5)

    events = await read_events(system.settings)
    outcomes = [e for e in events if isinstance(e, JobResolved) and e.job_id == job["id"]]
    # The redelivery appends the claimed outcome again: a copy of the same event.
    assert len(outcomes) == 2
    assert outcomes[1] == outcomes[0]
    assert stand_in.state.photos == 2  # one photo per job, none for the redelivery
    assert (await system.http.get(f"/jobs/{job['id']}")).json()["status"] == "resolved"


async def test_a_job_due_copied_while_its_photo_is_fetched_calls_unsplash_once(
    settings: Settings, stand_in: StandInServer
) -> None:
    """A copy of a JobDue that arrives while the first is being fetched (the same event
    appended twice: concurrent retries of one job can do that; or redelivered) asks for no
    second photo, and its offset is released with the first's."""
    stand_in.state.fault_delay_s = 1.0  # Unsplash slow: the copy comes while it is asked
    due = job_life("copied", utc_now())[1]
    first, copy = Consumed(0, 0, due), Consumed(0, 1, due)
    tracker = OffsetTracker()
    async with _fetching(settings, tracker) as handler:
        for item in (first, copy):
            tracker.hold(item.partition, item.offset)
        await handler.handle([first])
        await eventually(lambda: stand_in.state.requests == 1, "its photo asked for")
        await handler.handle([copy])
        await eventually(lambda: tracker.committable(0) == 2, "both offsets released")
    assert stand_in.state.photos == 1, "a second photo for the copy"
    resolved = [e for e in await read_events(settings) if isinstance(e, JobResolved)]
    assert [e.job_id for e in resolved] == ["copied"]


async def test_racing_fetchers_publish_one_photo_per_job(
    system: System, stand_in: StandInServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A second fetcher in another group gets every JobDue too: both ask Unsplash for every
    # job. Unsplash answering slowly makes them ask at the same time however busy the
    # machine: both find no claim, both get a photo. The claim lets one through per job.
    caplog.set_level(logging.INFO, logger="runtime.consuming")
    await stand_in.faults(delay_s=3)
    group = f"{system.settings.topic_prefix}.fetcher-rival"
    rival = asyncio.create_task(run_fetcher(system.settings, name="fetcher-rival"))
    try:
        await eventually(
            lambda: any(getattr(r, "group", None) == group for r in caplog.records),
            "the rival fetcher joined its group",
        )
        jobs = [await system.create() for _ in range(10)]
        for job in jobs:
            assert (await system.wait_for(job["id"]))["status"] == "resolved"
        await eventually(
            lambda: stand_in.state.photos == 2 * len(jobs), "the slower fetchers got photos too"
        )
        await asyncio.sleep(0.5)  # and publishes the claimed winner, if it gets that far
    finally:
        rival.cancel()
        await asyncio.gather(rival, return_exceptions=True)

    events = await read_events(system.settings)
    photos: defaultdict[str, set[str]] = defaultdict(set)
    outcome_ids: defaultdict[str, set[str]] = defaultdict(set)
    for e in events:
        if isinstance(e, JobResolved):
            photos[e.job_id].add(e.photo.id)
            outcome_ids[e.job_id].add(e.event_id)
    assert stand_in.state.photos == 2 * len(jobs), "the fetchers did not race"
    assert {j["id"] for j in jobs} == set(photos)
    assert all(len(p) == 1 for p in photos.values()), "a job got two different photos"
    assert all(len(i) == 1 for i in outcome_ids.values())
    for job in jobs:
        view = (await system.http.get(f"/jobs/{job['id']}")).json()
        assert {view["result"]["id"]} == photos[job["id"]]


async def test_poison_records_go_to_dead_letters_and_partitions_move_on(
    system: System,
) -> None:
    topic = system.settings.topics.jobs
    poison = {
        b"\xff\xfe not json": "not JSON",
        json.dumps({"type": "JobExploded", "schema_version": 1}).encode(): "unknown event type",
        json.dumps({"type": "JobDue", "schema_version": 99}).encode(): "newer than this build",
    }
    producer = AIOKafkaProducer(bootstrap_servers=system.settings.bootstrap_servers)
    await producer.start()
    try:
        for partition in range(system.settings.topic_partitions):
            for value in poison:
                await producer.send_and_wait(topic, value, key=b"poison", partition=partition)
    finally:
        await producer.stop()
    jobs = [await system.create() for _ in range(6)]
    for job in jobs:
        assert (await system.wait_for(job["id"]))["status"] == "resolved"

    # A partition none of the jobs landed on may still be on its way past its poison.
    expected = len(poison) * system.settings.topic_partitions
    prefix = system.settings.topic_prefix
    every_group = {f"{prefix}.{n}": expected for n in ("delay", "fetcher", "projection")}
    async with asyncio.timeout(60):
        while True:
            dead = await read_topic(system.settings, system.settings.topics.dead_letters)
            per_consumer = Counter(dict(r.headers)["dead-letter-consumer"].decode() for r in dead)
            if per_consumer == every_group:
                break
            assert all(n <= expected for n in per_consumer.values()), per_consumer
            await asyncio.sleep(0.2)
    for record in dead:
        headers = dict(record.headers)
        assert record.value in poison
        assert poison[record.value] in headers["dead-letter-reason"].decode()
        assert headers["dead-letter-source"].decode().startswith(f"{topic}/")


async def test_the_projection_catches_up_after_a_store_outage(
    make_system: SystemFactory, stand_in: StandInServer
) -> None:
    # No job may fall due before the outage begins, however slowly the jobs are created.
    system = await make_system(delay_min_s=2.0, delay_max_s=3.0, delay_step_s=0.5)
    jobs = [await system.create() for _ in range(5)]
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(system.settings.store_uri)
    try:
        await client.admin.command(
            {
                "configureFailPoint": "failCommand",
                "mode": "alwaysOn",
                # The projection's writes (the fetcher keeps its quota in the store too)
                "data": {
                    "failCommands": ["update"],
                    "errorCode": 91,
                    "appName": "jobline-projection",
                },
            }
        )
        try:
            await eventually(  # every job falls due and is fetched meanwhile
                lambda: stand_in.state.photos == len(jobs), "every job fetched during the outage"
            )
            during = [(await system.http.get(f"/jobs/{j['id']}")).json() for j in jobs]
            assert {j["status"] for j in during} == {"pending"}  # reads still work
        finally:
            await client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    finally:
        await client.close()
    for job in jobs:
        assert (await system.wait_for(job["id"]))["status"] == "resolved"
    events = await read_events(system.settings)
    photos: defaultdict[str, set[str]] = defaultdict(set)
    for e in events:
        if isinstance(e, JobResolved):
            photos[e.job_id].add(e.photo.id)
    assert all(len(p) == 1 for p in photos.values())


async def test_processors_act_only_on_records_the_gate_lets_through(settings: Settings) -> None:
    """Under `jobline run` the gate is the archive: a record the embedded broker could still
    lose (not archived yet) must have no effect. Here the projection's gate holds: it has
    fetched the job's record and must not write the job until the gate opens."""
    requested = job_life("gated", utc_now())[0]
    asked: list[tuple[str, int, int]] = []
    opened = asyncio.Event()

    class Gate:
        async def appended(self, records: Sequence[Appended]) -> None:
            raise AssertionError("the projection appends nothing here")

        async def archived(self, records: Sequence[Any]) -> None:
            asked.extend((r.topic, r.partition, r.offset) for r in records)
            await opened.wait()

    await ensure_topics(settings)
    producer = await start_producer(settings, "test")
    try:
        await KafkaEventPublisher(producer, settings.topics.jobs).publish([requested])
    finally:
        await producer.stop()
    client: AsyncMongoClient[dict[str, Any]] = open_store(settings)
    jobs = database(client, settings)["jobs"]
    task = asyncio.create_task(COMPONENTS["projection"].run(settings, Gate()))
    try:
        await eventually(lambda: bool(asked), "the projection fetches the record")
        assert asked[-1][0] == settings.topics.jobs
        await asyncio.sleep(0.5)  # room for a write that must not happen
        assert await jobs.find_one({"_id": "gated"}) is None
        opened.set()
        async with asyncio.timeout(60):
            while await jobs.find_one({"_id": "gated"}) is None:
                assert not task.done(), task
                await asyncio.sleep(0.05)
    finally:
        opened.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()


@asynccontextmanager
async def _fetching(
    settings: Settings,
    tracker: OffsetTracker,
    concurrency: int = 8,
    counted: list[int] | None = None,
) -> AsyncIterator[FetchHandler]:
    """A FetchHandler on the test's broker, store and stand-in, running; `counted` gets the
    size of each append."""
    await ensure_topics(settings)
    producer = await start_producer(settings, "test")
    client: AsyncMongoClient[dict[str, Any]] = open_store(settings)
    unsplash = Unsplash(settings)
    appends = counted if counted is not None else []

    class Counted(KafkaEventPublisher):
        async def publish(self, events: Sequence[Event]) -> list[Appended]:
            appends.append(len(events))
            return await super().publish(events)

    handler = FetchHandler(
        publisher=Counted(producer, settings.topics.jobs),
        tracker=tracker,
        topic=settings.topics.jobs,
        photos=PhotoSource(unsplash, concurrency=concurrency),
        outcomes=ClaimStore(database(client, settings)["fetch_outcomes"]),
        downloads=Downloads(database(client, settings)["download_events"], unsplash),
        now=utc_now,
        handover_s=10,
    )
    committing = asyncio.create_task(handler.run())
    try:
        yield handler
    finally:
        committing.cancel()
        await asyncio.gather(committing, return_exceptions=True)
        await handler.aclose()
        await unsplash.aclose()
        await producer.stop()
        await client.close()


async def test_the_fetcher_commits_a_burst_of_outcomes_in_groups(
    settings: Settings, stand_in: StandInServer
) -> None:
    """100 jobs due at once: a photo each, every outcome on the log once, in far fewer appends
    than jobs; the same records again (a redelivery) cost no photo, and append copies of the
    claimed outcomes, not new ones."""
    now = utc_now()
    due = [job_life(f"burst-{n}", now)[1] for n in range(100)]
    batch = [Consumed(0, n, event) for n, event in enumerate(due)]
    tracker = OffsetTracker()
    appends: list[int] = []
    async with _fetching(settings, tracker, counted=appends) as handler:
        for delivery in (1, 2):
            for item in batch:
                tracker.hold(0, item.offset)
            await handler.handle(batch)
            await eventually(lambda: tracker.committable(0) == 100, "every offset released")
            assert stand_in.state.photos == 100, f"delivery {delivery}"
            if delivery == 1:
                assert sum(appends) == 100, "an outcome was appended twice"
                assert len(appends) < 50, f"outcomes were not grouped: {appends}"
    assert sum(appends) == 200
    outcomes: defaultdict[str, list[Event]] = defaultdict(list)
    for e in await read_events(settings):
        if isinstance(e, JobResolved):
            outcomes[e.job_id].append(e)
    assert set(outcomes) == {f"burst-{n}" for n in range(100)}
    assert all(len(copies) == 2 and copies[0] == copies[1] for copies in outcomes.values())


async def test_a_hand_over_fetches_no_photo_twice(
    settings: Settings, stand_in: StandInServer
) -> None:
    """40 jobs due at once on partitions 0 and 1, one request to Unsplash at a time (30 jobs
    to a request, each taking a second). Partition 1 is handed over while the first request
    is under way: its jobs that request carries are waited for and committed, the others are
    let go uncommitted, at once. The next owner fetches those: 40 photos in all, not one
    more, and each job resolved once."""
    stand_in.state.fault_delay_s = 1.0
    now = utc_now()
    batch = [
        Consumed(n % 2, n // 2, job_life(f"handed-{n}", now)[1]) for n in range(40)
    ]  # partition 0 has even n, partition 1 odd n, 20 each
    tracker = OffsetTracker()
    async with _fetching(settings, tracker, concurrency=1) as handler:
        for item in batch:
            tracker.hold(item.partition, item.offset)
        await handler.handle(batch)
        await eventually(lambda: stand_in.state.requests == 1, "the first request under way")
        await handler.revoked({1})
        # The first request's 30 jobs (15 of partition 1) settled, partition 1's other 5 not.
        assert tracker.committable(1) == 15
        leftover = [item for item in batch if item.partition == 1 and item.offset >= 15]
        await eventually(lambda: tracker.committable(0) == 20, "partition 0 settled")
    assert stand_in.state.photos == 35
    next_owner = OffsetTracker()
    async with _fetching(settings, next_owner) as handler:
        for item in leftover:
            next_owner.hold(1, item.offset)
        await handler.handle(leftover)
        await eventually(lambda: next_owner.committable(1) == 20, "the rest of partition 1")
    assert stand_in.state.photos == 40, "a photo fetched twice across the hand-over"
    resolved = Counter(e.job_id for e in await read_events(settings) if isinstance(e, JobResolved))
    assert resolved == Counter(f"handed-{n}" for n in range(40))
