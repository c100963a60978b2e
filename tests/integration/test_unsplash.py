"""The fetcher as a client of Unsplash, over real HTTP against the stand-in made to misbehave
through its control routes: each class of fault retried (or not) as it should be, a failed
job's reason in the read model and in the log, the download event once per photo used, and
the access key in no answer, log line or page."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from jobline.serving import free_port
from processors.fetcher.downloads import BATCH, Downloads
from processors.fetcher.unsplash import Unsplash
from runtime.settings import Settings
from runtime.store import database, open_store
from schema import JobResolved, PhotoLinks
from tests.conftest import StandInServer, System, SystemFactory
from tests.unit.events import job_life

ATTEMPTS = 3


@dataclass(frozen=True)
class Fault:
    """A misbehaviour of the stand-in, how many requests the fetcher makes through it, and
    how the job ends (with this reason, if it fails)."""

    spec: dict[str, Any]
    requests: int
    status: str
    reason: str | None = None


FAULTS = {
    # Transient: retried with backoff, then the photo.
    "5xx, then fine": Fault({"status": 503, "times": ATTEMPTS - 1}, ATTEMPTS, "resolved"),
    "a timeout, then fine": Fault({"hang": True, "times": 1}, 2, "resolved"),
    # A rate limit waits for the allowance and costs no attempt.
    "rate limited": Fault({"status": 429, "times": ATTEMPTS + 1}, ATTEMPTS + 2, "resolved"),
    # Transient, until the bound: failed, saying why.
    "5xx for good": Fault({"status": 502}, ATTEMPTS, "failed", "answered 502 (Stand-in fault)"),
    "no answer": Fault({"hang": True}, ATTEMPTS, "failed", "did not answer within 0.5 s"),
    # Permanent: failed at once.
    "refused key": Fault({"status": 401}, 1, "failed", "refused the access key (401)"),
    "not found": Fault({"status": 404}, 1, "failed", "Unsplash answered 404"),
    "not JSON": Fault({"malformed": "json"}, 1, "failed", "a body that is not JSON"),
    "wrong shape": Fault({"malformed": "shape"}, 1, "failed", "photo in an unexpected shape"),
}


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
async def test_each_fault_is_retried_or_not_as_it_should_be(
    make_system: SystemFactory,
    stand_in: StandInServer,
    caplog: pytest.LogCaptureFixture,
    fault: Fault,
) -> None:
    caplog.set_level(logging.INFO)
    system = await make_system(  # a rate limit waits for the (short) window to end
        fetch_max_attempts=ATTEMPTS, unsplash_timeout_s=0.5, unsplash_window_s=0.3
    )
    await stand_in.faults(**fault.spec)
    job = await system.create()
    settled = await system.wait_for(job["id"])
    assert settled["status"] == fault.status, settled
    assert (await stand_in.stats())["requests"] == fault.requests
    if fault.reason is None:
        assert settled["result"]["urls"]["small"]
        return
    assert fault.reason in settled["error"]
    logged = [r for r in caplog.records if getattr(r, "outcome", None) == "JobFailed"]
    assert [(r.job_id, r.reason) for r in logged] == [(job["id"], settled["error"])]  # type: ignore[attr-defined]


async def test_every_photo_used_triggers_its_download_event_once(
    make_system: SystemFactory, stand_in: StandInServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    system = await make_system()
    await stand_in.faults(status=404)  # a job that fails: no photo, no event
    failed = await system.create()
    assert (await system.wait_for(failed["id"]))["status"] == "failed"
    await stand_in.faults(download_failures=2)  # the first two events fail: tried again
    jobs = [await system.create() for _ in range(6)]
    settled = [await system.wait_for(job["id"]) for job in jobs]
    used = {job["result"]["id"] for job in settled}
    assert len(used) == 6

    deadline = asyncio.get_running_loop().time() + 60
    while set((await stand_in.stats())["downloads"]) != used:
        assert asyncio.get_running_loop().time() < deadline, "a download event is missing"
        await asyncio.sleep(0.1)
    downloads = (await stand_in.stats())["downloads"]
    assert downloads == dict.fromkeys(used, 1)
    retried = [r for r in caplog.records if r.getMessage().startswith("download event failed")]
    assert len(retried) == 2


async def test_two_fetchers_trigger_a_burst_of_download_events_once_each(
    settings: Settings, stand_in: StandInServer
) -> None:
    """Photos used faster than one trigger at a time keeps up with: two fetchers' workers on
    the same pending triggers take them in leased batches, and every photo's event is sent
    once, the ones that failed too (later)."""
    at = datetime.now(UTC)
    resolved = []
    for n in range(3 * BATCH):
        outcome = job_life(f"job-{n}", at, photo_id=f"photo-{n}")[-1]
        assert isinstance(outcome, JobResolved)
        links = PhotoLinks(
            html=outcome.photo.links.html,
            download_location=f"{stand_in.url}/photos/photo-{n}/download",
        )
        resolved.append(
            dataclasses.replace(outcome, photo=dataclasses.replace(outcome.photo, links=links))
        )
    await stand_in.faults(download_failures=3)
    client = open_store(settings)
    unsplash = Unsplash(settings)
    workers = [Downloads(database(client, settings)["download_events"], unsplash) for _ in "ab"]
    try:
        await workers[0].prepare()
        await workers[0].record(resolved)
        deadline = asyncio.get_running_loop().time() + 60
        while len((await stand_in.stats())["downloads"]) < len(resolved):
            assert asyncio.get_running_loop().time() < deadline, "download events missing"
            # Both look at the same moment, so both find the same due triggers: only one
            # lease takes each.
            await asyncio.gather(*(worker._trigger_some() for worker in workers))
            await asyncio.sleep(0.1)  # (the failed ones are due again a second later)
        downloads = (await stand_in.stats())["downloads"]
        assert downloads == {f"photo-{n}": 1 for n in range(len(resolved))}
        pending = await database(client, settings)["download_events"].count_documents(
            {"done": False}
        )
        assert pending == 0
    finally:
        await unsplash.aclose()
        await client.close()


async def test_the_access_key_appears_in_no_answer_log_line_or_page(
    make_system: SystemFactory, stand_in: StandInServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = f"sk-{uuid.uuid4().hex}"
    system = await make_system(unsplash_access_key=SecretStr(key), fetch_max_attempts=2)
    resolved = await system.create()
    await system.wait_for(resolved["id"])
    await stand_in.faults(status=401)  # a refused key, said in the job's error
    refused = await system.create()
    await system.wait_for(refused["id"])
    await stand_in.faults(status=503)  # a server fault, said too
    broken = await system.create()
    await system.wait_for(broken["id"])
    await stand_in.clear_faults()

    answers = [
        await system.http.get(path)
        for path in (
            "/",
            "/static/app.js",
            "/config.json",
            "/jobs",
            "/job-counts",
            "/openapi.json",
            "/graphql",
            *(f"/jobs/{job['id']}" for job in (resolved, refused, broken)),
        )
    ]
    query = "{ jobs(first: 10) { edges { node { id error result { id } } } } }"
    answers.append(await system.http.post("/graphql", json={"query": query}))
    seen = [answer.text + json.dumps(dict(answer.headers)) for answer in answers]
    assert all(answer.status_code == 200 for answer in answers)
    assert "refused the access key" in "".join(seen)  # the errors are there, said
    assert not [text for text in seen if key in text]
    logged = [repr(record.__dict__) for record in caplog.records]
    assert logged
    assert not [line for line in logged if key in line]


async def _check(settings_env: dict[str, str]) -> tuple[int, str]:
    """`jobline unsplash-check` as a user runs it, configured by the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBLINE_")}
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "jobline"),
        "unsplash-check",
        env={**env, "JOBLINE_UNSPLASH_TIMEOUT_S": "5", **settings_env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    output, errors = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    assert b"Traceback" not in errors, errors.decode()
    return process.returncode, output.decode().strip()


async def test_unsplash_check_says_what_works_or_what_to_change(
    stand_in: StandInServer, system: System
) -> None:
    key = {"JOBLINE_UNSPLASH_ACCESS_KEY": "some-key", "JOBLINE_UNSPLASH_BASE_URL": stand_in.url}
    await stand_in.allowance(50, 3600)
    assert await _check(key) == (
        0,
        f"The key works: 49 of 50 requests left in this hour's window at {stand_in.url}.",
    )
    await stand_in.faults(status=401, times=1)
    code, said = await _check(key)
    assert (code, said.splitlines()[0]) == (1, said)  # one line
    assert said.startswith("Unsplash refused the access key (401): set JOBLINE_UNSPLASH_ACCESS")

    code, said = await _check({**key, "JOBLINE_UNSPLASH_BASE_URL": system.base_url})
    assert code == 1
    assert said.startswith(f"{system.base_url} does not answer like the Unsplash API")
    assert "JOBLINE_UNSPLASH_BASE_URL" in said

    closed = f"http://127.0.0.1:{free_port()}"
    code, said = await _check({**key, "JOBLINE_UNSPLASH_BASE_URL": closed})
    assert code == 1
    assert said.startswith(f"Could not reach {closed} (Unsplash could not be reached")
    assert "check the network" in said

    code, said = await _check({"JOBLINE_UNSPLASH_BASE_URL": stand_in.url})
    assert (code, said.split(":")[0]) == (1, "No Unsplash access key is set")
    assert "some-key" not in said


async def _burst(system: System, jobs: int) -> list[dict[str, Any]]:
    """`jobs` jobs created at once (in batches of 100), all due a second later, settled."""
    created: list[dict[str, Any]] = []
    while len(created) < jobs:
        answer = await system.http.post("/jobs", json={"count": min(100, jobs - len(created))})
        created += answer.json()["jobs"]
    return [await system.wait_for(job["id"], timeout_s=120) for job in created]


BURST = {"delay_min_s": 1.0, "delay_max_s": 1.0, "delay_step_s": 1.0}


async def test_a_burst_of_due_jobs_is_batched_and_waits_for_the_allowance(
    make_system: SystemFactory, stand_in: StandInServer
) -> None:
    # 4 requests in 1.5 s windows (3 with the reserve): 300 jobs, 10 requests, 4 windows.
    await stand_in.allowance(4, 1.5)
    system = await make_system(unsplash_window_s=1.5, **BURST)
    settled = await _burst(system, 300)
    assert {job["status"] for job in settled} == {"resolved"}  # none failed for quota
    assert len({job["result"]["id"] for job in settled}) == 300  # a photo of its own each
    stats = await stand_in.stats()
    assert stats["beyond_allowance"] == 0
    assert stats["counts"] == [30] * 10


async def test_two_fetchers_share_one_allowance(
    make_system: SystemFactory, stand_in: StandInServer
) -> None:
    await stand_in.allowance(4, 1.5)
    system = await make_system(unsplash_window_s=1.5, fetch_concurrency=2, **BURST)
    system.start("fetcher-2", component="fetcher")  # the same group: the partitions split
    settled = await _burst(system, 150)
    assert {job["status"] for job in settled} == {"resolved"}
    stats = await stand_in.stats()
    assert stats["beyond_allowance"] == 0
    assert sum(stats["counts"]) == 150


async def test_a_refused_key_fails_every_job_at_once_and_stalls_nothing(
    make_system: SystemFactory, stand_in: StandInServer
) -> None:
    # Answers without rate-limit headers teach the account nothing: the one request allowed
    # while the allowance is unknown must not hold its place for the hour.
    system = await make_system()  # the hour-long window of production
    await stand_in.faults(status=401)
    jobs = []
    for _ in range(3):  # one after another: each its own request
        jobs.append(await system.create())
        await system.wait_for(jobs[-1]["id"], timeout_s=30)
    await stand_in.clear_faults()
    settled = [await system.wait_for(job["id"], timeout_s=30) for job in jobs]
    assert [job["status"] for job in settled] == ["failed"] * 3
    assert all("refused the access key" in job["error"] for job in settled)
    fine = await system.create()
    assert (await system.wait_for(fine["id"], timeout_s=30))["status"] == "resolved"


async def test_a_job_waiting_for_the_allowance_says_until_when_on_both_faces(
    make_system: SystemFactory, stand_in: StandInServer
) -> None:
    await stand_in.allowance(2, 60)  # less the reserve: one request a minute
    system = await make_system(unsplash_window_s=60)
    first = await system.create()
    done = await system.wait_for(first["id"])
    assert done["status"] == "resolved"
    assert "waiting_until" not in done
    waiting = await system.create()
    deadline = asyncio.get_running_loop().time() + 30
    while "waiting_until" not in (job := (await system.http.get(f"/jobs/{waiting['id']}")).json()):
        assert asyncio.get_running_loop().time() < deadline, f"no wait shown: {job}"
        await asyncio.sleep(0.1)
    assert job["status"] == "processing"
    until = datetime.fromisoformat(job["waiting_until"])
    assert 0 < (until - datetime.now(UTC)).total_seconds() <= 60

    query = "query($id: ID!) { job(id: $id) { status waitingUntil } }"
    answer = await system.http.post(
        "/graphql", json={"query": query, "variables": {"id": waiting["id"]}}
    )
    shown = answer.json()["data"]["job"]
    assert shown["status"] == "PROCESSING"
    assert datetime.fromisoformat(shown["waitingUntil"]) == until
    listed = {j["id"]: j for j in (await system.http.get("/jobs")).json()["items"]}
    assert listed[waiting["id"]]["waiting_until"] == job["waiting_until"]
    assert "waiting_until" not in listed[first["id"]]
    assert (await stand_in.stats())["beyond_allowance"] == 0


async def test_a_photo_is_given_to_one_job_only_even_when_unsplash_repeats_it(
    make_system: SystemFactory, stand_in: StandInServer
) -> None:
    system = await make_system()
    await stand_in.control("POST", "photo", {"id": "the-same-photo"})  # every answer
    first = await system.create()
    assert (await system.wait_for(first["id"]))["result"]["id"] == "the-same-photo"
    second = await system.create()
    await system.wait_for(second["id"], ("processing",))
    asked = (await stand_in.stats())["requests"]
    deadline = asyncio.get_running_loop().time() + 30
    while (await stand_in.stats())["requests"] < asked + 2:  # asking again, not given it
        assert asyncio.get_running_loop().time() < deadline, "it did not ask again"
        await asyncio.sleep(0.1)
    assert (await system.http.get(f"/jobs/{second['id']}")).json()["status"] == "processing"
    await stand_in.control("POST", "photo", {})  # new photos again
    resolved = await system.wait_for(second["id"])
    assert resolved["result"]["id"] != "the-same-photo"
