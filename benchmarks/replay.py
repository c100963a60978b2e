"""Replay at size: a log of N jobs' events rebuilt into a fresh read model by `jobline replay`,
beside the store's raw `insert_many` rate in the same run, the progress bar's ETA against the
real time, and the API's reads throughout the replay and its swap.

    .venv/bin/python benchmarks/suite.py replay [--size smoke|default|full] [--json PATH]

On a throwaway embedded broker and store it appends the events straight to the log (two
jobs in three resolve at once, one in three fails, is retried and then resolves: four events
a job on average), builds the read model once with `jobline replay`, then measures a second
`jobline replay` while `jobline api` serves reads of the model being replaced.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient
from running import ROOT, embedded_backends, environment

from jobline.serving import free_port, until_answers
from projections.jobs.store import to_document
from projections.jobs.view import evolve
from runtime.eventlog import ensure_topics
from runtime.settings import Settings
from schema import (
    Event,
    JobDue,
    JobFailed,
    JobRequested,
    JobResolved,
    JobRetried,
    Photo,
    PhotoLinks,
    PhotoUrls,
    PhotoUser,
    UserLinks,
    encode,
    headers_for,
)

SIZES = {"smoke": 2_000, "default": 25_000, "full": 250_000}  # jobs
CHUNK = 10_000  # jobs whose events are appended interleaved, as a live system writes them
INSERT_BATCH = 5_000
TARGET_RATIO = 2.0
TARGET_ETA_ERROR = 0.20


def _photo(n: int) -> Photo:
    base = f"https://images.unsplash.com/photo-{n}"
    return Photo(
        id=f"photo{n:08d}",
        urls=PhotoUrls(raw=base, full=base, regular=base, small=base, thumb=base),
        alt_description="a bowl of ramen on a wooden table",
        width=4000,
        height=3000,
        color="#d9a673",
        blur_hash="LKO2?V%2Tw=w]~RBVZRi};RPxuwH",
        links=PhotoLinks(html=f"https://unsplash.com/photos/{n}"),
        user=PhotoUser(
            name="Ada Baker", username="ada", links=UserLinks(html="https://unsplash.com/@ada")
        ),
    )


def job_events(n: int, at: datetime) -> list[list[Event]]:
    """Job n's events in the waves a live system appends them in (requested, due, outcome,
    then for a retried job: retry, due, outcome)."""
    job_id = str(uuid.uuid4())

    def eid() -> str:
        return str(uuid.uuid4())

    due_at = at + timedelta(seconds=5)
    waves: list[list[Event]] = [
        [
            JobRequested(
                event_id=eid(), job_id=job_id, occurred_at=at, due_at=due_at, delay_s=5, seq=n + 1
            )
        ],
        [JobDue(event_id=eid(), job_id=job_id, version=2, occurred_at=due_at, due_at=due_at)],
    ]
    if n % 3:
        waves.append(
            [
                JobResolved(
                    event_id=eid(), job_id=job_id, version=3, occurred_at=due_at, photo=_photo(n)
                )
            ]
        )
        return waves
    again = due_at + timedelta(seconds=10)
    waves.append(
        [
            JobFailed(
                event_id=eid(), job_id=job_id, version=3, occurred_at=due_at, reason="Unsplash 503"
            ),
            JobRetried(
                event_id=eid(),
                job_id=job_id,
                version=4,
                occurred_at=due_at,
                due_at=again,
                delay_s=10,
            ),
        ]
    )
    waves.append(
        [
            JobDue(event_id=eid(), job_id=job_id, version=5, occurred_at=again, due_at=again),
            JobResolved(
                event_id=eid(), job_id=job_id, version=6, occurred_at=again, photo=_photo(n)
            ),
        ]
    )
    return waves


async def append_log(settings: Settings, jobs: int) -> tuple[int, str]:
    """Every job's events onto the log; how many events, and one job's id."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=20
    )
    await producer.start()
    events, some_job = 0, ""
    try:
        at = datetime.now(UTC)
        for start in range(0, jobs, CHUNK):
            lives = [job_events(n, at) for n in range(start, min(jobs, start + CHUNK))]
            some_job = some_job or lives[0][0][0].job_id
            for wave in range(4):
                sent = [
                    await producer.send(
                        settings.topics.jobs,
                        encode(e),
                        key=e.job_id.encode(),
                        headers=headers_for(e),
                    )
                    for life in lives
                    if wave < len(life)
                    for e in life[wave]
                ]
                await asyncio.gather(*sent)
                events += len(sent)
    finally:
        await producer.stop()
    return events, some_job


async def insert_many_rate(settings: Settings, jobs: int) -> float:
    """The store's raw rate for documents like the read model's: insert_many, batched."""
    view = None
    for wave in job_events(1, datetime.now(UTC)):
        for event in wave:
            view = evolve(view, event)
    assert view is not None
    sample = to_document(view)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.store_uri)
    try:
        scratch = client["baseline"]["docs"]
        began = time.monotonic()
        for start in range(0, jobs, INSERT_BATCH):
            batch = [
                {**sample, "_id": f"job-{n}"} for n in range(start, min(jobs, start + INSERT_BATCH))
            ]
            await scratch.insert_many(batch, ordered=False)
        took = time.monotonic() - began
        await scratch.drop()
    finally:
        await client.close()
    return jobs / took


@dataclass
class Replayed:
    seconds: float
    progress: list[tuple[float, int, int, float]]  # (at, done, total, eta_s) per line
    output: str


async def jobline_replay(env: dict[str, str]) -> Replayed:
    """`jobline replay`, its progress lines read as they come (off a terminal: plain lines,
    at most one a second)."""
    began = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jobline", "replay",
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    progress, said = [], []
    async for raw in process.stderr:
        line = raw.decode()
        words = line.split()
        if len(words) >= 6 and words[1] == "events" and words[-3] == "ETA":
            done, total = (int(x) for x in words[0].split("/"))
            progress.append((time.monotonic() - began, done, total, float(words[-2])))
        else:
            said.append(line)
    out, _ = await process.communicate()
    assert process.returncode == 0, out.decode() + "".join(said[-80:])
    return Replayed(time.monotonic() - began, progress, out.decode())


def eta_errors(replayed: Replayed) -> dict[str, float]:
    """How far each ETA the bar showed was from the time the events really took to read,
    as a share of the time that was left then: at a quarter, half, three quarters, and the
    worst from a tenth on."""
    lines = replayed.progress
    if not lines:
        return {}
    finished = next((at for at, done, total, _ in lines if done >= total), lines[-1][0])
    errors = [
        (done / total, abs(eta - (finished - at)) / max(finished - at, 1e-9))
        for at, done, total, eta in lines
        if total and done < total and done / total >= 0.1
    ]
    out: dict[str, float] = {}
    for mark in (0.25, 0.5, 0.75):
        near = min(errors, key=lambda e: abs(e[0] - mark), default=None)
        if near is not None:
            out[f"at_{int(mark * 100)}pct"] = round(near[1], 3)
    out["worst_from_10pct"] = round(max((e for _, e in errors), default=0.0), 3)
    return out


async def read_throughout(
    base_url: str, job_id: str, stop: asyncio.Event, failed: list[tuple[float, str, str]]
) -> dict[str, int]:
    """GET /jobs and GET /jobs/{id}, over and over, until `stop`: answers by status; each
    one not answered (200) added to `failed` as (when it was asked, monotonic; the path;
    the status)."""
    statuses: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        while not stop.is_set():
            for path in ("/jobs?limit=30", f"/jobs/{job_id}"):
                asked = time.monotonic()
                try:
                    status = str((await http.get(path)).status_code)
                except httpx.TransportError as error:
                    status = type(error).__name__
                statuses[status] = statuses.get(status, 0) + 1
                if status != "200":
                    failed.append((asked, path.split("?")[0], status))
            await asyncio.sleep(0.02)
    return statuses


async def run_replay(size_name: str) -> dict[str, Any]:
    jobs = SIZES[size_name]
    report: dict[str, Any] = {"size": size_name, "jobs": jobs}
    with tempfile.TemporaryDirectory(prefix="jobline-replay-") as tmp:
        async with embedded_backends(Path(tmp)) as settings:
            await ensure_topics(settings)
            print(f"== replay: appending {jobs:,} jobs' events", flush=True)
            report["events"], job_id = await append_log(settings, jobs)
            print("== replay: the store's raw insert_many (baseline)", flush=True)
            report["insert_many_docs_per_s"] = round(await insert_many_rate(settings, jobs))
            env = environment(settings)
            print("== replay: a first replay builds the read model", flush=True)
            first = await jobline_replay(env)
            report["first_replay_s"] = round(first.seconds, 1)
            await _measured(settings, env, job_id, report)
    return report


async def _measured(
    settings: Settings, env: dict[str, str], job_id: str, report: dict[str, Any]
) -> None:
    port = free_port()
    api = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jobline", "api", "--port", str(port),
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base_url = f"http://127.0.0.1:{port}"
        # /healthz: no projection runs here, so /readyz would say the read model lags the
        # log (its group has committed nothing), though replay made it.
        await until_answers(f"{base_url}/healthz")
        stop = asyncio.Event()
        failed: list[tuple[float, str, str]] = []
        reads = asyncio.create_task(read_throughout(base_url, job_id, stop, failed))
        print("== replay: measured, while the API serves reads", flush=True)
        began = time.monotonic()
        replayed = await jobline_replay(env)
        await asyncio.sleep(1)  # reads after the swap, too
        stop.set()
        report["reads_during_replay"] = await reads
        # When each read not answered was asked, in seconds from the command's start (to
        # set beside its phases).
        report["reads_failed_at"] = [[round(at - began, 1), *what] for at, *what in failed]
    finally:
        api.terminate()
        await asyncio.wait_for(api.wait(), 30)
    # Timed from the command's start to the moment the rebuilt model serves (swapped in
    # and caught up); deleting the old model after that is reported beside it.
    removed = re.search(r"the old one in ([0-9.]+) s", replayed.output)
    assert removed is not None, replayed.output
    report["replay_s"] = round(replayed.seconds, 1)
    report["old_model_removed_s"] = float(removed.group(1))
    report["serving_after_s"] = round(replayed.seconds - report["old_model_removed_s"], 1)
    report["events_per_s"] = round(report["events"] / report["serving_after_s"])
    report["ratio"] = round(report["events_per_s"] / report["insert_many_docs_per_s"], 2)
    report["eta_error"] = eta_errors(replayed)
    report["progress"] = [  # (seconds since the command began, events done, total, ETA s)
        [round(at, 2), done, total, eta] for at, done, total, eta in replayed.progress
    ]
    report["output"] = replayed.output.strip().splitlines()


def rows(report: dict[str, Any]) -> list[str]:
    reads = report["reads_during_replay"]
    failed = sum(n for status, n in reads.items() if status != "200")
    eta = report["eta_error"]
    return [
        f"| replay: {report['events']:,} events ({report['jobs']:,} jobs), events/s to "
        f"serving the rebuilt model | insert_many {report['insert_many_docs_per_s']:,} docs/s "
        f"| {report['events_per_s']:,} ({report['serving_after_s']} s; the old model deleted "
        f"in {report['old_model_removed_s']} s more) | {report['ratio']}x "
        f"(target ≥ {TARGET_RATIO:g}x) |",
        f"| replay: ETA error at 25 / 50 / 75 % of the events | target ≤ "
        f"{TARGET_ETA_ERROR:.0%} | {eta.get('at_25pct')} / {eta.get('at_50pct')} / "
        f"{eta.get('at_75pct')} | worst {eta.get('worst_from_10pct')} |",
        f"| replay: API reads during the replay and swap, failed / all | 0 | "
        f"{failed} / {sum(reads.values())} | |",
    ]
