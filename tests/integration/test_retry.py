"""Retrying a failed job, and commands repeated with an idempotency key, on the real broker,
store and stand-in: a new attempt recorded as the job's next versions, every attempt in the
history, one attempt for concurrent retries, clear errors on both faces, and a replay that
gives the same documents as the projection wrote."""

from __future__ import annotations

import asyncio

from projections.jobs.replay import replay
from schema import JobDue, JobRetried
from tests.conftest import (
    StandInServer,
    System,
    SystemFactory,
    eventually,
    failed_job,
)
from tests.logread import read_events
from tests.unit.events import RETRIED_AND_RESOLVED

RETRY = """mutation($id: ID!, $key: String) {
  retryJob(id: $id, idempotencyKey: $key) {
    job { id status version dueAt }
    errors { __typename message ... on WrongStateError { status } ... on NotFoundError { id } }
  }
}"""


async def test_a_failed_job_retried_resolves_and_its_history_keeps_every_attempt(
    make_system: SystemFactory, stand_in: StandInServer
) -> None:
    system = await make_system(delay_min_s=1.0, delay_max_s=1.0, delay_step_s=0.5)
    failed = await failed_job(system, stand_in)
    assert "404" in failed["error"]

    response = await system.http.post(f"/jobs/{failed['id']}/retry")
    assert response.status_code == 202, response.text
    retried = response.json()
    assert (retried["status"], retried["version"]) == ("pending", 4)
    assert "error" not in retried
    assert retried["due_at"] > failed["updated_at"]  # a wait of its own, from now
    await system.stop("delay")  # the retry's timer is re-armed from the log
    system.start("delay")

    resolved = await system.wait_for(failed["id"], ("resolved",))
    assert resolved["version"] == 6
    assert resolved["result"]["id"]
    assert [e["type"] for e in resolved["history"]] == RETRIED_AND_RESOLVED
    assert [e["version"] for e in resolved["history"]] == [1, 2, 3, 4, 5, 6]
    counts = (await system.http.get("/job-counts")).json()
    assert (counts["failed"], counts["resolved"], counts["pending"]) == (0, 1, 0)

    cancelled = await system.create()  # and a cancel on the same log, for the replay
    assert (await system.http.post(f"/jobs/{cancelled['id']}/cancel")).status_code == 202
    await system.wait_for(cancelled["id"], ("cancelled",))
    verified = await replay(system.settings, lambda done, total: None, verify=True)
    assert verified.differences == []


async def test_concurrent_retries_of_one_failure_make_one_attempt(
    system: System, stand_in: StandInServer
) -> None:
    failed = await failed_job(system, stand_in)
    photos = stand_in.state.photos
    by_rest, by_graphql, again = await asyncio.gather(
        system.http.post(f"/jobs/{failed['id']}/retry"),
        system.mutate(RETRY, id=failed["id"]),
        system.http.post(f"/jobs/{failed['id']}/retry"),
    )
    assert by_rest.status_code == again.status_code == 202
    assert by_graphql["errors"] == []
    # One decision for version 4, one wait, whoever asked.
    assert by_rest.json()["due_at"] == again.json()["due_at"]
    assert by_graphql["job"]["version"] == by_rest.json()["version"] == 4
    assert (await system.wait_for(failed["id"], ("resolved",)))["version"] == 6

    events = [e for e in await read_events(system.settings) if e.job_id == failed["id"]]
    assert len({e.event_id for e in events if isinstance(e, JobRetried)}) == 1
    assert len({e.event_id for e in events if isinstance(e, JobDue)}) == 2  # two attempts
    await eventually(lambda: stand_in.state.photos == photos + 1, "one photo for the retry")


async def test_retry_errors_are_clear_on_both_faces(
    system: System, stand_in: StandInServer
) -> None:
    job = await system.create()
    pending = await system.http.post(f"/jobs/{job['id']}/retry")
    assert pending.status_code == 409
    assert "only a failed job can be retried" in pending.json()["detail"]
    resolved = await system.wait_for(job["id"])
    (error,) = (await system.mutate(RETRY, id=resolved["id"]))["errors"]
    assert (error["__typename"], error["status"]) == ("WrongStateError", "RESOLVED")

    assert (await system.http.post("/jobs/no-such-job/retry")).status_code == 404
    (error,) = (await system.mutate(RETRY, id="no-such-job"))["errors"]
    assert (error["__typename"], error["id"]) == ("NotFoundError", "no-such-job")
    bad_key = await system.http.post(f"/jobs/{job['id']}/retry", headers={"Idempotency-Key": ""})
    assert bad_key.status_code == 422
    retries = [e for e in await read_events(system.settings) if isinstance(e, JobRetried)]
    assert retries == []  # refusals append nothing


async def test_a_command_repeated_with_its_key_gets_the_job_as_it_is_now(
    system: System, stand_in: StandInServer
) -> None:
    """As a page resending a queued retry or cancel whose answer it never got."""
    failed = await failed_job(system, stand_in)
    key = {"Idempotency-Key": "retry-once"}
    first = await system.http.post(f"/jobs/{failed['id']}/retry", headers=key)
    assert first.status_code == 202, first.text
    await system.wait_for(failed["id"], ("resolved",))
    repeated = await system.http.post(f"/jobs/{failed['id']}/retry", headers=key)
    assert repeated.status_code == 202, repeated.text
    assert (repeated.json()["status"], repeated.json()["version"]) == ("resolved", 6)
    unkeyed = await system.http.post(f"/jobs/{failed['id']}/retry")
    assert unkeyed.status_code == 409

    job = await system.create()
    cancel_key = {"Idempotency-Key": "cancel-once"}
    for _ in range(2):
        cancelled = await system.http.post(f"/jobs/{job['id']}/cancel", headers=cancel_key)
        assert cancelled.status_code == 202, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
    await system.wait_for(job["id"], ("cancelled",))
    again = await system.http.post(f"/jobs/{job['id']}/cancel", headers=cancel_key)
    assert (again.status_code, again.json()["version"]) == (202, 2)

    # A key names one request: another job, another command or a creation is refused.
    other = await system.create()
    for path in (f"/jobs/{other['id']}/cancel", f"/jobs/{job['id']}/retry", "/jobs"):
        reused = await system.http.post(path, headers=cancel_key)
        assert reused.status_code == 422, (path, reused.text)
        assert "already used" in reused.json()["detail"]
    assert (await system.http.get(f"/jobs/{other['id']}")).json()["status"] != "cancelled"
    retries = [e for e in await read_events(system.settings) if isinstance(e, JobRetried)]
    assert len({e.event_id for e in retries}) == 1
