"""The whole pipeline on the real broker and store: REST, GraphQL, subscriptions, failures."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import websockets

from schema import JobDue, JobRequested, JobResolved
from tests.conftest import StandInServer, System, SystemFactory
from tests.logread import read_events

PHOTO_KEYS = {
    "id",
    "urls",
    "alt_description",
    "width",
    "height",
    "color",
    "blur_hash",
    "links",
    "user",
}


async def test_rest_job_resolves_with_a_photo_from_the_stand_in(system: System) -> None:
    response = await system.http.post("/jobs")
    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/jobs/{job['id']}"
    assert job["status"] == "pending"
    assert set(job) == {
        "id", "status", "seq", "created_at", "due_at", "delay_s", "updated_at", "version",
        "history",
    }  # fmt: skip
    assert isinstance(job["seq"], int)
    assert job["seq"] >= 1
    assert [entry["type"] for entry in job["history"]] == ["JobRequested"]

    # Read-your-writes: the creator can read the job at once, not after projection lag.
    read = await system.http.get(f"/jobs/{job['id']}")
    assert read.status_code == 200
    assert read.json() == job

    resolved = await system.wait_for(job["id"])
    assert resolved["status"] == "resolved"
    assert "error" not in resolved
    photo = resolved["result"]
    assert set(photo) == PHOTO_KEYS
    assert set(photo["urls"]) == {"raw", "full", "regular", "small", "thumb"}
    assert set(photo["user"]) == {"name", "username", "links"}
    image = await system.http.get(photo["urls"]["small"])
    assert image.status_code == 200
    assert image.headers["content-type"].startswith("image/svg+xml")

    events = [e for e in await read_events(system.settings) if e.job_id == job["id"]]
    assert resolved["history"] == [
        {
            "type": e.TYPE,
            "version": e.version,
            "event_id": e.event_id,
            "occurred_at": e.occurred_at.isoformat().replace("+00:00", "Z"),
        }
        for e in events
    ]
    assert [e.TYPE for e in events] == ["JobRequested", "JobDue", "JobResolved"]

    listed = (await system.http.get("/jobs")).json()
    assert listed["items"] == [{k: v for k, v in resolved.items() if k != "history"}]
    assert listed["next_cursor"] is None


async def test_due_is_never_early_and_each_job_resolves_once(system: System) -> None:
    jobs = [await system.create() for _ in range(6)]
    for job in jobs:
        await system.wait_for(job["id"])
    events = await read_events(system.settings)
    requested = {e.job_id: e for e in events if isinstance(e, JobRequested)}
    for due in (e for e in events if isinstance(e, JobDue)):
        assert due.occurred_at >= requested[due.job_id].due_at
    resolutions = Counter(e.job_id for e in events if isinstance(e, JobResolved))
    assert resolutions == dict.fromkeys((j["id"] for j in jobs), 1)


async def test_pagination_filters_and_errors(system: System) -> None:
    created = [await system.create() for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await system.http.get("/jobs", params=params)).json()
        seen += [job["id"] for job in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [job["id"] for job in reversed(created)]

    for job in created:
        await system.wait_for(job["id"])
    resolved = (await system.http.get("/jobs", params={"status": "resolved"})).json()
    assert len(resolved["items"]) == 5
    assert (await system.http.get("/jobs", params={"status": "pending"})).json()["items"] == []
    counts = {"pending": 0, "processing": 0, "resolved": 5, "failed": 0, "cancelled": 0, "total": 5}
    assert (await system.http.get("/job-counts")).json() == counts
    graphql_counts = await _graphql(
        system, "{ jobCounts { pending processing resolved failed cancelled total } }"
    )
    assert graphql_counts == {"jobCounts": counts}

    unknown = await system.http.get("/jobs/no-such-job")
    assert unknown.status_code == 404
    assert "no-such-job" in unknown.json()["detail"]
    bad_cursor = await system.http.get("/jobs", params={"cursor": "garbage!"})
    assert bad_cursor.status_code == 422
    assert "cursor" in bad_cursor.json()["detail"]
    for params in ({"limit": 0}, {"limit": 1000}, {"status": "nope"}, {"limit": "x"}):
        assert (await system.http.get("/jobs", params=params)).status_code == 422


async def test_stand_in_failure_becomes_a_failed_job_with_a_reason(
    system: System, stand_in: StandInServer
) -> None:
    await stand_in.faults(status=503)
    job = await system.create()
    failed = await system.wait_for(job["id"])
    assert failed["status"] == "failed"
    assert "503" in failed["error"]
    assert "result" not in failed
    assert stand_in.state.requests == system.settings.fetch_max_attempts


async def test_graphql_create_query_and_subscription(system: System) -> None:
    query = "subscription { jobUpdates { cursor job { id status result { id } } } }"
    async with subscription(system, query) as ws:
        await asyncio.sleep(0.2)

        created = await _graphql(system, "mutation { createJob { job { id status dueAt } } }")
        job = created["createJob"]["job"]
        assert job["status"] == "PENDING"

        statuses = []
        while not statuses or statuses[-1] not in ("RESOLVED", "FAILED"):
            message = json.loads(await asyncio.wait_for(ws.recv(), 20))
            assert message["type"] == "next", message
            update = message["payload"]["data"]["jobUpdates"]["job"]
            if update is not None and update["id"] == job["id"]:
                statuses.append(update["status"])
        assert statuses[-1] == "RESOLVED"
        assert statuses == sorted(statuses, key=["PENDING", "PROCESSING", "RESOLVED"].index)

    one = await _graphql(
        system,
        "query($id: ID!) { job(id: $id) { id status version delaySeconds result { id "
        "altDescription user { name links { html } } } history { type version } } }",
        {"id": job["id"]},
    )
    assert one["job"]["status"] == "RESOLVED"
    assert one["job"]["result"]["user"]["name"]
    assert one["job"]["version"] == 3
    assert one["job"]["delaySeconds"] > 0
    assert [(e["type"], e["version"]) for e in one["job"]["history"]] == [
        ("JobRequested", 1),
        ("JobDue", 2),
        ("JobResolved", 3),
    ]
    page = await _graphql(
        system,
        "{ jobs(first: 1) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }",
    )
    assert page["jobs"]["edges"][0]["node"]["id"] == job["id"]
    (edge,) = page["jobs"]["edges"]
    assert page["jobs"]["pageInfo"] == {"hasNextPage": False, "endCursor": edge["cursor"]}
    missing = await _graphql(system, '{ job(id: "nope") { id } }')
    assert missing == {"job": None}


async def test_subscription_to_one_job_starts_with_its_state(system: System) -> None:
    job = await system.create()
    await system.wait_for(job["id"])
    query = "subscription($id: ID) { jobUpdates(id: $id) { job { id status } } }"
    async with subscription(system, query, {"id": job["id"]}) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert first["payload"]["data"]["jobUpdates"]["job"] == {
            "id": job["id"],
            "status": "RESOLVED",
        }


async def test_count_subscription_sends_counts_now_then_as_jobs_change(system: System) -> None:
    query = "subscription { jobCounts { pending processing resolved failed cancelled total } }"
    async with subscription(system, query) as ws:

        async def counts() -> dict[str, int]:
            message = json.loads(await asyncio.wait_for(ws.recv(), 20))
            assert message["type"] == "next", message
            counted: dict[str, int] = message["payload"]["data"]["jobCounts"]
            return counted

        assert await counts() == dict.fromkeys(
            ("pending", "processing", "resolved", "failed", "cancelled", "total"), 0
        )
        jobs = [await system.create() for _ in range(3)]
        seen = [await counts()]
        while seen[-1]["resolved"] < len(jobs):
            seen.append(await counts())
        assert seen[-1] == {
            "pending": 0,
            "processing": 0,
            "resolved": 3,
            "failed": 0,
            "cancelled": 0,
            "total": 3,
        }
        assert all(c["total"] == sum(v for k, v in c.items() if k != "total") for c in seen)
        assert (await system.http.get("/job-counts")).json() == seen[-1]  # REST agrees


@asynccontextmanager
async def subscription(
    system: System,
    query: str,
    variables: dict[str, Any] | None = None,
    init: dict[str, Any] | None = None,
    **connect: Any,
) -> AsyncIterator[Any]:
    """A graphql-transport-ws connection to the API (`init`: its connection_init payload;
    `connect`: more arguments of websockets.connect) with one subscription started."""
    url = f"ws://127.0.0.1:{system.api.port}/graphql"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"], **connect) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": init or {}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        payload = {"query": query, "variables": variables or {}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        yield ws


async def _graphql(system: System, query: str, variables: dict[str, Any] | None = None) -> Any:
    response = await system.http.post("/graphql", json={"query": query, "variables": variables})
    body = response.json()
    assert response.status_code == 200, body
    assert "errors" not in body, body
    return body["data"]


async def test_the_update_feed_outlives_the_store_operation_timeout(
    make_system: SystemFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # A change stream is a long poll: the per-operation store timeout must not cut it.
    system = await make_system(mongodb_timeout_ms=300)
    async with subscription(system, "subscription { jobUpdates { job { id status } } }") as ws:
        start = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert start["payload"]["data"]["jobUpdates"]["job"] is None  # where it starts
        await asyncio.sleep(1.5)
        job = await system.create()
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert message["payload"]["data"]["jobUpdates"]["job"]["id"] == job["id"]
    assert "change stream lost" not in caplog.text
