"""Resuming live updates from a position, on the real store's change history: exactly the
changes missed, then live, nothing twice at the seam; a position too old is a typed error."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from api import sse
from projections.jobs.replay import replay
from tests.conftest import System, SystemFactory
from tests.integration.test_operations import scrape, value
from tests.integration.test_pipeline import subscription

UPDATES = """subscription($since: String) {
  jobUpdates(since: $since) { cursor job { id status version } }
}"""
#: Every field a job update shows (the bigger the messages, the sooner a connection is full).
FULL = """subscription {
  jobUpdates { cursor job { id status version seq createdAt dueAt updatedAt error } }
}"""


async def _next(ws: Any, timeout_s: float = 20) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
    return message


async def _updates_until(ws: Any, done: set[str]) -> list[dict[str, Any]]:
    """Updates until every job in `done` is seen resolved."""
    seen: list[dict[str, Any]] = []
    resolved: set[str] = set()
    while not done <= resolved:
        message = await _next(ws)
        assert message["type"] == "next", message
        update = message["payload"]["data"]["jobUpdates"]
        if update["job"] is None:  # the mark of where a subscription starts
            continue
        seen.append(update)
        if update["job"]["status"] == "RESOLVED":
            resolved.add(update["job"]["id"])
    return seen


async def test_resuming_from_the_last_cursor_misses_nothing_and_repeats_nothing(
    system: System,
) -> None:
    first = await system.create()
    async with subscription(system, UPDATES) as ws:
        seen = await _updates_until(ws, {first["id"]})
    cursor = seen[-1]["cursor"]

    # Away: jobs are created and resolve meanwhile, hundreds of changes (positions are
    # compared only for equality: the embedded store's do not sort as strings).
    batch = await system.http.post("/jobs", json={"count": 100})
    missed_jobs = [*batch.json()["jobs"], *[await system.create() for _ in range(3)]]
    for job in missed_jobs:
        await system.wait_for(job["id"])
    # Jobs keep coming while the subscriber resumes: some changes land during its catch-up.
    during: list[dict[str, Any]] = []

    async def keep_creating() -> None:
        for _ in range(12):
            during.append(await system.create())
            await asyncio.sleep(0.05)

    creating = asyncio.create_task(keep_creating())
    await asyncio.sleep(0.2)
    async with subscription(system, UPDATES, {"since": cursor}) as ws:
        await creating
        resumed = await _updates_until(ws, {j["id"] for j in [*missed_jobs, *during]})

    changes = [(u["job"]["id"], u["job"]["version"]) for u in resumed]
    assert len(changes) == len(set(changes)), "a change came twice"
    for job in [*missed_jobs, *during]:
        versions = [v for job_id, v in changes if job_id == job["id"]]
        assert versions == sorted(versions)
        assert versions[-1] == 3
    assert first["id"] not in {job_id for job_id, _ in changes}  # before the cursor
    cursors = [u["cursor"] for u in resumed]
    assert len(cursors) == len(set(cursors))
    assert cursor not in cursors  # (positions are opaque: compared only for equality)


async def test_a_subscriber_that_got_no_change_resumes_from_where_it_started(
    system: System,
) -> None:
    async with subscription(system, UPDATES) as ws:
        start = (await _next(ws, 10))["payload"]["data"]["jobUpdates"]
    assert start["job"] is None
    missed = await system.create()  # while away, before any change reached the subscriber
    await system.wait_for(missed["id"])
    async with subscription(system, UPDATES, {"since": start["cursor"]}) as ws:
        resumed = await _updates_until(ws, {missed["id"]})
    # The history shows each job as it is now: changes missed together may come as one.
    versions = [u["job"]["version"] for u in resumed]
    assert versions == sorted(set(versions))
    assert versions[-1] == 3
    assert {u["job"]["id"] for u in resumed} == {missed["id"]}


def _errors(message: dict[str, Any]) -> list[dict[str, Any]]:
    assert message["type"] in ("next", "error"), message
    errors: list[dict[str, Any]] = (
        message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    )
    return errors


async def test_a_position_the_server_cannot_serve_is_a_typed_error(system: System) -> None:
    async with subscription(system, UPDATES, {"since": "not-a-position"}) as ws:
        (error,) = _errors(await _next(ws, 10))
        assert "since is not a position" in error["message"]
        assert error["extensions"] == {"code": "BAD_USER_INPUT"}

    first = await system.create()
    async with subscription(system, UPDATES) as ws:
        cursor = (await _updates_until(ws, {first["id"]}))[-1]["cursor"]
    assert (await replay(system.settings, lambda done, total: None)).swapped  # a new history
    async with subscription(system, UPDATES, {"since": cursor}) as ws:
        (error,) = _errors(await _next(ws, 10))
        assert error["extensions"] == {"code": "POSITION_TOO_OLD"}
        assert "read the jobs again" in error["message"]
        assert (await _next(ws, 10))["type"] == "complete"


async def test_a_subscription_open_through_a_replay_goes_on_with_the_rebuilt_model(
    system: System,
) -> None:
    before = await system.create()
    async with subscription(system, UPDATES) as ws:
        cursor = (await _updates_until(ws, {before["id"]}))[-1]["cursor"]
        assert (await replay(system.settings, lambda done, total: None)).swapped
        after = await system.create()  # written to the rebuilt model; told from its stream
        updates = await _updates_until(ws, {after["id"]})
    assert [u["job"]["status"] for u in updates if u["job"]["id"] == after["id"]][-1] == (
        "RESOLVED"
    )
    assert not cursor.startswith("g")
    assert updates[-1]["cursor"].startswith("g"), "a position in the rebuilt model's history"
    missed = await system.create()
    await system.wait_for(missed["id"])
    async with subscription(system, UPDATES, {"since": updates[-1]["cursor"]}) as ws:
        resumed = await _updates_until(ws, {missed["id"]})  # a position after the swap
    assert {u["job"]["id"] for u in resumed} == {missed["id"]}


async def _sse_events(lines: AsyncIterator[str], resolved: set[str]) -> list[dict[str, str]]:
    """Parse events (and comments) off an SSE stream until every job in `resolved` was seen
    resolved."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    waiting = set(resolved)
    async for line in lines:
        if not line:
            if current:
                events.append(current)
                if current.get("event") == "job":
                    job = json.loads(current["data"])
                    if job["status"] == "resolved":
                        waiting.discard(job["id"])
                current = {}
            if not waiting:
                return events
            continue
        field, _, value = line.partition(":")
        current[field or "comment"] = value.removeprefix(" ")
    raise AssertionError(f"the stream ended after {events}")


async def test_server_sent_events_resume_from_last_event_id(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sse, "KEEP_ALIVE_S", 0.2)
    first = await system.create()
    async with system.http.stream("GET", "/jobs/events", timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = await _sse_events(response.aiter_lines(), {first["id"]})
    jobs = [e for e in events if e.get("event") == "job"]
    assert {json.loads(e["data"])["id"] for e in jobs} == {first["id"]}
    assert events[1].keys() == {"id"}  # where it started
    assert events[1]["id"] not in {e["id"] for e in jobs}
    last_id = jobs[-1]["id"]

    missed = [await system.create() for _ in range(2)]
    for job in missed:
        await system.wait_for(job["id"])
    headers = {"Last-Event-ID": last_id}
    async with system.http.stream("GET", "/jobs/events", headers=headers, timeout=30) as response:
        lines = response.aiter_lines()
        events = await _sse_events(lines, {job["id"] for job in missed})
        await asyncio.sleep(0.5)  # idle: comments keep the connection open
        more = await _sse_events(lines, set())
    resumed = [json.loads(e["data"]) for e in events if e.get("event") == "job"]
    seen = [(j["id"], j["version"]) for j in resumed]
    assert len(seen) == len(set(seen)), "an event came twice"
    assert {j["id"] for j in resumed} == {job["id"] for job in missed}
    assert last_id not in {e["id"] for e in events if e.get("event") == "job"}
    assert any("comment" in e for e in [*events, *more]), "no keep-alive comment"

    gone = await system.http.get("/jobs/events", params={"since": "zz"})
    assert (gone.status_code, gone.json()["detail"]) == (
        422,
        "since is not a position this API gave",
    )


async def test_a_subscriber_that_cannot_keep_up_is_ended_with_a_clear_last_message(
    make_system: SystemFactory,
) -> None:
    # A GraphQL subscriber and an SSE stream that read nothing while jobs keep coming:
    # once their connections take no more, the one change each may have waiting
    # (subscriber_queue=1) overflows and the API drops them. (Changes that find a
    # subscriber waiting are written at once, api/wire.py: only a full connection makes
    # one fall behind. The kernel would buffer megabytes first; these connections' send
    # buffers are made small, as on a slow link.)
    system = await make_system(subscriber_queue=1)
    dropped = await _dropped(system)
    async with system.http.stream("GET", "/jobs/events", timeout=30) as response:
        async with subscription(system, FULL, max_queue=1) as ws:
            await _next(ws)  # (subscribed)
            _small_send_buffers(system)
            for _ in range(40):  # (at most 2,000 jobs: far more changes than fit)
                if await _dropped(system) >= dropped + 2:
                    break
                await system.http.post("/jobs", json={"count": 50})
            else:
                raise AssertionError("the subscribers were never dropped")
            message = await _next(ws)
            while message["type"] == "next" and "errors" not in message["payload"]:
                message = await _next(ws)
            (error,) = _errors(message)
            assert "resubscribe" in error["message"]
            assert error["extensions"] == {"code": "SUBSCRIBER_TOO_SLOW"}
        events: list[str] = []
        async for line in response.aiter_lines():
            events.append(line)
    assert events[-3:] == [
        "event: error",
        'data: {"detail": "updates came faster than this subscriber read them; resubscribe", '
        '"code": "SUBSCRIBER_TOO_SLOW"}',
        "",
    ]


def _small_send_buffers(system: System) -> None:
    """The API's connections get 4 KiB kernel send buffers (loopback's grow to 4 MiB)."""
    for connection in system.api._server.server_state.connections:
        sock = connection.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)


async def _dropped(system: System) -> float:
    """The API's count of subscribers dropped for falling behind (its /metrics)."""
    return value(await scrape(system.base_url), "jobline_subscribers_dropped_total")
