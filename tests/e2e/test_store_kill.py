"""Acknowledged means durable in the store too: SIGKILL the embedded store right after a burst
of acknowledged creations, restart `jobline run`, and find every acknowledged job once, its
outcome, and the photo it had.

The store holds part of what `jobline run` acknowledges: the archive of the broker's
in-memory log, the idempotency claims and the fetch outcomes. A store that acknowledged a
write it had not journaled loses it to a SIGKILL (SecantusDB's default write concern lost
9-19 of 1,000). Here a lost claim would show as a retried key creating a second job, a lost
outcome as a job whose photo changes, a lost archive record as a job that is gone.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from jobline.serving import free_port
from runtime.settings import Settings
from schema import JobRequested, JobResolved
from tests.clients import api_client
from tests.logread import read_events
from tests.readmodel import counts_and_recount
from tests.runs import child_pids, exit_code, read_until, start_jobline, stop

BURST = 300
CLIENTS = 16
SETTLED = ("resolved", "failed")


async def _create(http: httpx.AsyncClient, key: str) -> dict[str, Any]:
    response = await http.post("/jobs", headers={"Idempotency-Key": key})
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


async def _burst(http: httpx.AsyncClient, keys: list[str]) -> dict[str, str]:
    """Create a job per key from CLIENTS concurrent clients: key -> acknowledged job id."""
    acknowledged: dict[str, str] = {}
    queue = list(reversed(keys))

    async def client() -> None:
        while queue:
            key = queue.pop()
            acknowledged[key] = (await _create(http, key))["id"]

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return acknowledged


async def _burst_until_killed(
    http: httpx.AsyncClient, keys: list[str], kill: Callable[[], None], kill_after: int
) -> dict[str, str]:
    """Like `_burst`, but the store is killed once `kill_after` creations are acknowledged,
    while the others are in flight. Key -> job id of every creation acknowledged."""
    acknowledged: dict[str, str] = {}
    queue = list(reversed(keys))

    async def client() -> None:
        while queue:
            key = queue.pop()
            try:
                response = await http.post("/jobs", headers={"Idempotency-Key": key})
            except httpx.TransportError:
                return  # the system went down with the store
            if response.status_code != 202:
                return  # not acknowledged (503 while the store is gone)
            acknowledged[key] = response.json()["id"]
            if len(acknowledged) == kill_after:
                kill()

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    assert len(acknowledged) >= kill_after
    return acknowledged


async def _settled(http: httpx.AsyncClient, ids: list[str], timeout_s: float) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    jobs: dict[str, Any] = {}
    for job_id in ids:
        while (job := (await http.get(f"/jobs/{job_id}")).json()).get("status") not in SETTLED:
            assert asyncio.get_running_loop().time() < deadline, f"job never settled: {job}"
            await asyncio.sleep(0.2)
        jobs[job_id] = job
    return jobs


async def test_killing_the_store_after_a_burst_loses_no_acknowledged_job(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "JOBLINE_DATA_DIR": str(tmp_path / "data"),
        "JOBLINE_STAND_IN_HOURLY_LIMIT": str(10**9),  # (as FAST: bursts are not paced)
        "JOBLINE_DELAY_MIN_S": "0.5",
        "JOBLINE_DELAY_MAX_S": "3",
        "JOBLINE_DELAY_STEP_S": "0.5",
    }
    first = start_jobline(["run", "--port", str(port)], tmp_path, **env)
    try:
        read_until(first, "Ctrl-C")
        async with api_client(base, timeout=30) as http:
            early = await _burst(http, [f"early-{n}" for n in range(20)])
            before = await _settled(http, list(early.values()), timeout_s=120)
            # Mid-burst: the store dies while creations are in flight, and `jobline run`
            # with it. Every creation acknowledged before that must survive.
            (store,) = (p for p in child_pids(first.pid) if b"secantus" in _cmdline(p))
            burst = await _burst_until_killed(
                http,
                [f"burst-{n}" for n in range(BURST)],
                lambda: os.kill(store, signal.SIGKILL),
                kill_after=BURST // 2,
            )
        # (a busy machine is slow to stop)
        assert await asyncio.to_thread(exit_code, first, 180) == 1
    finally:
        stop(first)

    second = start_jobline(["run", "--port", str(port)], tmp_path, **env)
    try:
        banner = read_until(second, "Ctrl-C")
        async with api_client(base, timeout=30) as http:
            # Clients retry every key, answered or not: an acknowledged key gets its job back,
            # and no key ever gets a second job.
            retried = await _burst(http, [f"burst-{n}" for n in range(BURST)])
            assert {key: retried[key] for key in burst} == burst
            after = await _settled(http, [*early.values(), *retried.values()], timeout_s=180)
        for job_id, job in before.items():
            assert after[job_id]["result"]["id"] == job["result"]["id"], "a photo changed"
        assert all(job["status"] == "resolved" for job in after.values())

        broker = re.search(r"broker +(\S+)", banner)
        assert broker is not None
        events = await read_events(Settings(_env_file=None, kafka_bootstrap_servers=broker[1]))  # type: ignore[call-arg]
        jobs_per_key: defaultdict[str | None, set[str]] = defaultdict(set)
        for event in events:
            if isinstance(event, JobRequested):
                jobs_per_key[event.idempotency_key].add(event.job_id)
        photos = {(e.job_id, e.photo.id) for e in events if isinstance(e, JobResolved)}
        assert set(jobs_per_key) == set(early) | set(retried)
        assert [key for key, jobs in jobs_per_key.items() if len(jobs) > 1] == []
        assert len(photos) == len(after), "a job got two photos"
        store = re.search(r"store +(\S+)", banner)
        assert store is not None
        counted, recount = await counts_and_recount(
            Settings(_env_file=None, mongodb_uri=store[1])  # type: ignore[call-arg]
        )
        assert counted == recount
        assert counted["resolved"] == len(after)
        second.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(exit_code, second, 30) == 0
    finally:
        stop(second)


def _cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()
