"""Cancelling a pending job, on the real broker, store and stand-in: no photo for it, ever;
a race with its JobDue decided by the log, the same for the fetcher, the read model and a
replay; clear errors on both faces."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from api.commands import request_job
from jobline.components import COMPONENTS
from projections.jobs.replay import replay
from runtime.clock import utc_now
from runtime.eventlog import Appended, KafkaEventPublisher, start_producer
from runtime.settings import Settings
from schema import Event, JobCancelled, JobDue, JobResolved, derived_event_id
from tests.conftest import StandInServer, System, SystemFactory, eventually
from tests.logread import read_events

CANCEL = """mutation($id: ID!) {
  cancelJob(id: $id) {
    job { id status version }
    errors { __typename message ... on WrongStateError { status } ... on NotFoundError { id } }
  }
}"""


async def test_a_cancelled_job_gets_no_photo_even_across_a_restart_of_the_delay_processor(
    make_system: SystemFactory, stand_in: StandInServer
) -> None:
    system = await make_system(delay_min_s=2.0, delay_max_s=2.0, delay_step_s=0.5)
    job, other = await system.create(), await system.create()
    response = await system.http.post(f"/jobs/{job['id']}/cancel")
    assert response.status_code == 202, response.text
    assert (response.json()["status"], response.json()["version"]) == ("cancelled", 2)
    await system.stop("delay")  # its timer re-armed from the log, then dropped again
    system.start("delay")
    assert (await system.wait_for(other["id"]))["status"] == "resolved"  # its time came
    cancelled = await system.wait_for(job["id"], ("cancelled",))
    assert [e["type"] for e in cancelled["history"]] == ["JobRequested", "JobCancelled"]
    await asyncio.sleep(1.0)  # well past the cancelled job's due time too

    events = [e for e in await read_events(system.settings) if e.job_id == job["id"]]
    assert [type(e).__name__ for e in events] == ["JobRequested", "JobCancelled"]
    assert stand_in.state.photos == 1  # the other job's
    counts = (await system.http.get("/job-counts")).json()
    assert (counts["cancelled"], counts["resolved"], counts["total"]) == (1, 1, 2)
    listed = (await system.http.get("/jobs", params={"status": "cancelled"})).json()["items"]
    assert [j["id"] for j in listed] == [job["id"]]


async def test_cancel_errors_are_clear_on_both_faces(system: System) -> None:
    job = await system.create()
    by_graphql = await system.mutate(CANCEL, id=job["id"])
    assert by_graphql["job"] == {"id": job["id"], "status": "CANCELLED", "version": 2}
    assert by_graphql["errors"] == []
    await system.wait_for(job["id"], ("cancelled",))

    again = await system.http.post(f"/jobs/{job['id']}/cancel")
    assert again.status_code == 409
    assert "cancelled" in again.json()["detail"]
    again_by_graphql = await system.mutate(CANCEL, id=job["id"])
    assert again_by_graphql["job"] is None
    (error,) = again_by_graphql["errors"]
    assert (error["__typename"], error["status"]) == ("WrongStateError", "CANCELLED")

    done = await system.create()
    await system.wait_for(done["id"])
    refused = await system.http.post(f"/jobs/{done['id']}/cancel")
    assert refused.status_code == 409
    assert "only a pending job" in refused.json()["detail"]

    missing = await system.http.post("/jobs/no-such-job/cancel")
    assert missing.status_code == 404
    (error,) = (await system.mutate(CANCEL, id="no-such-job"))["errors"]
    assert (error["__typename"], error["id"]) == ("NotFoundError", "no-such-job")
    cancels = [e for e in await read_events(system.settings) if isinstance(e, JobCancelled)]
    assert len(cancels) == 1  # refusals append nothing


# -- the race with JobDue, decided by the log ---------------------------------------------


async def _append(settings: Settings, events: list[Event]) -> list[Appended]:
    producer = await start_producer(settings, "test")
    try:
        return list(await KafkaEventPublisher(producer, settings.topics.jobs).publish(events))
    finally:
        await producer.stop()


def _rivals(job_id: str) -> tuple[Event, JobCancelled, JobDue]:
    """A job requested an hour from now (the delay processor will not fire it), a cancel and
    a JobDue both for version 2, as an API and a delay processor would emit them at once."""
    requested = request_job(
        job_id=job_id, event_id=f"r-{job_id}", now=utc_now(), delay_s=3600, idempotency_key=None
    )
    cancel = JobCancelled(
        event_id=derived_event_id(job_id, "cancel@2"),
        job_id=job_id,
        version=2,
        occurred_at=utc_now(),
    )
    due = JobDue(
        event_id=derived_event_id(job_id, "due"),
        job_id=job_id,
        version=2,
        occurred_at=utc_now(),
        due_at=requested.due_at,  # type: ignore[attr-defined]
    )
    return requested, cancel, due


async def _handled_by_fetcher(settings: Settings, record: Appended) -> None:
    """Wait until the fetcher's group has committed past `record`."""
    group = COMPONENTS["fetcher"].group(settings)
    tp = TopicPartition(record.topic, record.partition)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        for _ in range(600):
            committed = await admin.list_consumer_group_offsets(group, partitions=[tp])
            if tp in committed and committed[tp].offset > record.offset:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"the fetcher never got past offset {record.offset}")
    finally:
        await admin.close()


async def _verified_by_replay(settings: Settings) -> None:
    verified = await replay(settings, lambda done, total: None, verify=True)
    assert verified.differences == []


async def test_a_cancel_first_on_the_log_means_no_unsplash_call(
    system: System, stand_in: StandInServer
) -> None:
    requested, cancel, due = _rivals("cancel-first")
    *_, due_record = await _append(system.settings, [requested, cancel, due])
    await _handled_by_fetcher(system.settings, due_record)
    view = await system.wait_for("cancel-first", ("cancelled",))
    assert view["history"][-1]["event_id"] == cancel.event_id
    assert stand_in.state.requests == 0
    await _verified_by_replay(system.settings)


async def test_a_cancel_read_before_a_fetcher_restart_still_stops_the_fetch(
    system: System, stand_in: StandInServer
) -> None:
    requested, cancel, due = _rivals("restart-between")
    *_, cancel_record = await _append(system.settings, [requested, cancel])
    await _handled_by_fetcher(system.settings, cancel_record)
    await system.stop("fetcher")  # whatever it knew in memory is gone
    (due_record,) = await _append(system.settings, [due])
    system.start("fetcher")
    await _handled_by_fetcher(system.settings, due_record)
    await system.wait_for("restart-between", ("cancelled",))
    assert stand_in.state.requests == 0
    await _verified_by_replay(system.settings)


async def test_a_job_due_first_on_the_log_wins_and_the_cancel_changes_nothing(
    system: System, stand_in: StandInServer
) -> None:
    requested, cancel, due = _rivals("due-first")
    await _append(system.settings, [requested, due, cancel])
    view = await system.wait_for("due-first")
    assert view["status"] == "resolved"
    assert [e["type"] for e in view["history"]] == ["JobRequested", "JobDue", "JobResolved"]
    await eventually(lambda: stand_in.state.photos == 1, "one photo")
    events = [e for e in await read_events(system.settings) if e.job_id == "due-first"]
    assert sum(isinstance(e, JobResolved) for e in events) == 1
    await _verified_by_replay(system.settings)
