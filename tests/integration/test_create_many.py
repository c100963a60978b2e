"""Creating many jobs in one request: `POST /jobs {"count": n}` and `createJobs(count)`, each
appended as one batch, exactly once per idempotency key, on the real broker and store."""

from __future__ import annotations

import asyncio
from typing import Any

from api.service import MAX_CREATE, JobService
from schema import JobRequested
from tests.conftest import System
from tests.logread import read_events

CREATE_JOBS = """mutation($n: Int!, $key: String) {
  createJobs(count: $n, idempotencyKey: $key) {
    jobs { id seq status }
    errors { __typename message }
  }
}"""


def _intake(system: System) -> JobService:
    service: JobService = system.api.app.services.jobs
    return service


async def _graphql(system: System, count: Any, key: str | None = None) -> dict[str, Any]:
    response = await system.http.post(
        "/graphql", json={"query": CREATE_JOBS, "variables": {"n": count, "key": key}}
    )
    body: dict[str, Any] = response.json()
    return body


async def test_post_jobs_with_a_count_creates_them_in_one_batch(system: System) -> None:
    batches = _intake(system).intake.batches
    response = await system.http.post("/jobs", json={"count": 50})
    assert response.status_code == 202, response.text
    jobs = response.json()["jobs"]
    assert len(jobs) == 50
    assert _intake(system).intake.batches == batches + 1, "not one batch"
    assert {j["status"] for j in jobs} == {"pending"}
    seqs = [j["seq"] for j in jobs]
    assert seqs == list(range(seqs[0], seqs[0] + 50)), "not in creation order"
    listed = (await system.http.get("/jobs", params={"limit": 100})).json()["items"]
    assert {j["id"] for j in listed} == {j["id"] for j in jobs}
    requested = [e for e in await read_events(system.settings) if isinstance(e, JobRequested)]
    assert sorted(e.job_id for e in requested) == sorted(j["id"] for j in jobs)
    for job in jobs:
        await system.wait_for(job["id"])
    counts = (await system.http.get("/job-counts")).json()
    assert counts["resolved"] + counts["failed"] == counts["total"] == 50


async def test_create_jobs_by_graphql_with_a_key_gives_the_same_jobs_on_every_retry(
    system: System,
) -> None:
    first = await _graphql(system, 50, "party-12")
    ids = [j["id"] for j in first["data"]["createJobs"]["jobs"]]
    assert len(set(ids)) == 50
    retries = await asyncio.gather(
        *(_graphql(system, 50, "party-12") for _ in range(5)),
        *(
            system.http.post("/jobs", json={"count": 50}, headers={"Idempotency-Key": "party-12"})
            for _ in range(5)
        ),
    )
    for retry in retries[:5]:
        assert [j["id"] for j in retry["data"]["createJobs"]["jobs"]] == ids  # type: ignore[index]
    for response in retries[5:]:
        assert response.status_code == 202  # type: ignore[union-attr]
        assert [j["id"] for j in response.json()["jobs"]] == ids  # type: ignore[union-attr]
    requested = [e for e in await read_events(system.settings) if isinstance(e, JobRequested)]
    assert {e.job_id for e in requested} == set(ids)


async def test_concurrent_first_requests_with_one_key_agree_on_the_jobs(system: System) -> None:
    responses = await asyncio.gather(
        *(
            system.http.post("/jobs", json={"count": 7}, headers={"Idempotency-Key": "burst-7"})
            for _ in range(20)
        )
    )
    assert {r.status_code for r in responses} == {202}
    answers = {tuple(j["id"] for j in r.json()["jobs"]) for r in responses}
    assert len(answers) == 1
    (ids,) = answers
    assert len(set(ids)) == 7
    requested = [e for e in await read_events(system.settings) if isinstance(e, JobRequested)]
    assert {e.job_id for e in requested} == set(ids)


async def test_a_key_reused_with_another_count_is_refused(system: System) -> None:
    headers = {"Idempotency-Key": "order-3"}
    assert (await system.http.post("/jobs", json={"count": 3}, headers=headers)).status_code == 202
    again = await system.http.post("/jobs", json={"count": 4}, headers=headers)
    assert again.status_code == 422
    assert "already used" in again.json()["detail"]
    single = await system.http.post("/jobs", headers=headers)
    assert single.status_code == 422
    refused = (await _graphql(system, 4, "order-3"))["data"]["createJobs"]
    assert refused["jobs"] == []
    assert refused["errors"][0]["__typename"] == "ConflictError"
    assert "already used" in refused["errors"][0]["message"]


async def test_a_count_out_of_bounds_or_of_the_wrong_type_is_refused(system: System) -> None:
    for count in (0, MAX_CREATE + 1, -5, "5", 2.5, True, None, [3]):
        response = await system.http.post("/jobs", json={"count": count})
        assert response.status_code == 422, (count, response.text)
        assert f"from 1 to {MAX_CREATE}" in response.json()["detail"]
    for count in (0, MAX_CREATE + 1):
        refused = (await _graphql(system, count))["data"]["createJobs"]
        assert refused["errors"][0]["__typename"] == "InvalidInputError"
        assert f"from 1 to {MAX_CREATE}" in refused["errors"][0]["message"]
    assert (await _graphql(system, "five"))["errors"]  # not an Int: refused by the schema
    assert (await system.http.get("/job-counts")).json()["total"] == 0
