"""Subscribers of the same document share one execution of each change, and still each get
exactly their own selection (api/sharing.py); the messages they get are those Strawberry
would send."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack
from typing import Any

import pytest

from api import sharing
from tests.conftest import System
from tests.integration.test_pipeline import subscription

FULL = "subscription { jobUpdates { cursor job { id status version result { id } } } }"
SMALL = "subscription { jobUpdates { job { id status } } }"
OPTIONAL = """subscription($r: Boolean!) {
  jobUpdates { cursor job { id status result @include(if: $r) { id } } } }"""


async def _until_resolved(ws: Any, job_id: str) -> list[str]:
    """The raw `next` messages up to the job's resolution (after where the stream starts)."""
    messages: list[str] = []
    while True:
        raw = await asyncio.wait_for(ws.recv(), 30)
        message = json.loads(raw)
        assert message["type"] == "next", message
        job = message["payload"]["data"]["jobUpdates"]["job"]
        if job is None or job["id"] != job_id:
            continue
        messages.append(raw)
        if job["status"] == "RESOLVED":
            return messages


async def test_one_document_one_result_each_selection_its_own(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []
    execute = sharing.Direct._payload

    def counted(self: sharing.Direct, event: Any) -> Any:
        made.append(self.prefix)
        return execute(self, event)

    monkeypatch.setattr(sharing.Direct, "_payload", counted)
    subscribers = [
        (FULL, None),
        (FULL, None),
        (SMALL, None),
        (OPTIONAL, {"r": True}),
        (OPTIONAL, {"r": False}),
    ]
    async with AsyncExitStack() as stack:
        sockets = [
            await stack.enter_async_context(subscription(system, query, variables))
            for query, variables in subscribers
        ]
        for ws in sockets:  # where each stream starts
            json.loads(await asyncio.wait_for(ws.recv(), 30))
        job_id = (await system.http.post("/jobs")).json()["id"]
        got = await asyncio.gather(*(_until_resolved(ws, job_id) for ws in sockets))

    full, again = got[0], got[1]
    assert full == again  # the same messages, byte for byte
    # Each change made once per distinct (document, variables below the root): 4, not 5.
    assert len(made) == 4 * len(full)
    last = [json.loads(m[-1])["payload"]["data"]["jobUpdates"] for m in got]
    assert set(last[0]["job"]) == {"id", "status", "version", "result"}
    assert last[0]["job"]["result"]["id"]
    assert last[2] == {"job": {"id": job_id, "status": "RESOLVED"}}
    assert last[3]["job"]["result"] == last[0]["job"]["result"]
    assert "result" not in last[4]["job"]
    assert last[3]["cursor"] == last[4]["cursor"] == last[0]["cursor"]
