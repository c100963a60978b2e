"""Timer precision at scale: many pending jobs, their JobDue lateness, the delay processor's
memory, and how long a restarted delay processor takes to re-arm every timer from the log.

    .venv/bin/python benchmarks/suite.py timers [--size smoke|default|full] [--json PATH]

On a throwaway embedded broker and store (child processes) it appends N JobRequested events
straight to the log, due over a spread of time, with `jobline delay` (its own process)
running. Halfway through the spread the delay processor is stopped (SIGTERM, as an
orchestrator does) and started again. When every job is due it reads the log back: for each
JobDue, lateness = the time it was appended (its record's timestamp) minus its `due_at`.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from processes import rss_mib
from running import ROOT, embedded_backends, environment

from jobline.serving import free_port
from runtime.eventlog import ensure_topics
from runtime.logreader import LogReader
from runtime.settings import Settings
from schema import JobDue, JobRequested, decode, encode, headers_for


@dataclass(frozen=True)
class TimerSize:
    jobs: int
    lead_s: float  # from the start of the appends to the first due time
    spread_s: float  # due times spread evenly over this
    grace_s: float  # after the last due time, for the last JobDues to land
    env: dict[str, str] = field(default_factory=dict)  # JOBLINE_* for the delay processor


#: Group joins in about a second (DESIGN.md §4): the smoke run is about working, not figures.
FAST_GROUPS = {
    "JOBLINE_KAFKA_SESSION_TIMEOUT_MS": "2000",
    "JOBLINE_KAFKA_HEARTBEAT_INTERVAL_MS": "300",
    "JOBLINE_KAFKA_REBALANCE_TIMEOUT_MS": "2000",
}
SIZES = {
    "smoke": TimerSize(jobs=2_000, lead_s=8, spread_s=12, grace_s=10, env=FAST_GROUPS),
    "default": TimerSize(jobs=20_000, lead_s=15, spread_s=60, grace_s=15),
    "full": TimerSize(jobs=100_000, lead_s=30, spread_s=180, grace_s=20),
}
TARGET_P99_MS = 100
TARGET_RSS_MIB = 300


class DelayProcess:
    """`jobline delay` as its own process, with its operator's routes on a free port."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> None:
        self.started = time.monotonic()
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and command
                [sys.executable, "-m", "jobline", "delay", "--port", str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=out,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> float:
        """SIGTERM; how long it took to exit."""
        assert self.process is not None
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)
        return time.monotonic() - began

    async def until_serving(self, http: httpx.AsyncClient) -> None:
        """Until its group is joined (its readiness says so, then a join's time)."""
        deadline = time.monotonic() + 60
        while await self.metric(http, "jobline_timers_pending") is None:
            assert time.monotonic() < deadline, "the delay processor did not start"
            await asyncio.sleep(0.2)
        await asyncio.sleep(2)

    async def metrics(self, http: httpx.AsyncClient) -> str:
        try:
            return (await http.get(f"http://127.0.0.1:{self.port}/metrics")).text
        except httpx.TransportError:
            return ""

    async def metric(self, http: httpx.AsyncClient, name: str) -> float | None:
        for line in (await self.metrics(http)).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None


async def append_jobs(settings: Settings, size: TimerSize, first_due: datetime) -> float:
    """N JobRequested events straight onto the log, due evenly over the spread; the rate."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=20
    )
    await producer.start()
    began = time.monotonic()
    try:
        step = size.spread_s / size.jobs
        pending = []
        for n in range(size.jobs):
            now = datetime.now(UTC)
            due_at = first_due + timedelta(seconds=n * step)
            event = JobRequested(
                event_id=str(uuid.uuid4()),
                job_id=str(uuid.uuid4()),
                occurred_at=now,
                due_at=due_at,
                delay_s=(due_at - now).total_seconds(),
                seq=n + 1,
            )
            pending.append(
                await producer.send(
                    settings.topics.jobs,
                    encode(event),
                    key=event.job_id.encode(),
                    headers=headers_for(event),
                )
            )
            if len(pending) >= 5_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return size.jobs / (time.monotonic() - began)


async def read_back(settings: Settings) -> tuple[dict[str, JobRequested], list[tuple[JobDue, int]]]:
    """Every JobRequested, and every JobDue with its record's timestamp (ms)."""
    requested: dict[str, JobRequested] = {}
    due: list[tuple[JobDue, int]] = []
    async for batch in LogReader(settings, settings.topics.jobs).batches():
        for record in batch:
            event = decode(record.value)
            if isinstance(event, JobRequested):
                requested[event.job_id] = event
            elif isinstance(event, JobDue):
                due.append((event, record.timestamp))
    return requested, due


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def lateness_figures(late_ms: list[float]) -> dict[str, Any]:
    return {
        "jobs": len(late_ms),
        "p50_ms": round(percentile(late_ms, 0.50), 1),
        "p99_ms": round(percentile(late_ms, 0.99), 1),
        "max_ms": round(max(late_ms, default=float("nan")), 1),
        "early": sum(1 for v in late_ms if v < 0),
    }


async def run_timers(size_name: str) -> dict[str, Any]:
    size = SIZES[size_name]
    report: dict[str, Any] = {"size": size_name, "parameters": asdict(size)}
    with tempfile.TemporaryDirectory(prefix="jobline-timers-") as tmp:
        async with embedded_backends(Path(tmp)) as settings:
            await ensure_topics(settings)
            delay = DelayProcess(environment(settings, **size.env), Path(tmp) / "delay.log")
            await _measure(settings, size, delay, report)
    return report


async def _measure(
    settings: Settings, size: TimerSize, delay: DelayProcess, report: dict[str, Any]
) -> None:
    delay.start()
    async with httpx.AsyncClient(timeout=2) as http:
        await delay.until_serving(http)
        first_due = datetime.now(UTC) + timedelta(seconds=size.lead_s)
        await _fill(settings, size, delay, first_due=first_due, report=report)
        restarted_at, resumed_at = await _restart(size, delay, http, first_due, report)
        end = first_due + timedelta(seconds=size.spread_s + size.grace_s)
        rss_after = rss_mib(delay.pid)
        while datetime.now(UTC) < end:
            rss_after = max(rss_after, rss_mib(delay.pid))
            await asyncio.sleep(0.5)
        report["rss_mib"]["peak_after_restart"] = round(rss_after, 1)
    delay.stop()
    print("== timers: reading the log back", flush=True)
    stopped_at = restarted_at - timedelta(seconds=report["stop_s"])
    report.update(await _lateness(settings, stopped_at, resumed_at))


async def _fill(
    settings: Settings,
    size: TimerSize,
    delay: DelayProcess,
    *,
    first_due: datetime,
    report: dict[str, Any],
) -> None:
    """Append the jobs; the delay processor's memory idle and with every timer armed."""
    idle_rss = rss_mib(delay.pid)
    print(f"== timers: appending {size.jobs} jobs due over {size.spread_s:g} s", flush=True)
    report["append_per_s"] = round(await append_jobs(settings, size, first_due))
    peak_rss = idle_rss
    halfway = first_due + timedelta(seconds=size.spread_s / 2)
    while datetime.now(UTC) < halfway:
        peak_rss = max(peak_rss, rss_mib(delay.pid))
        await asyncio.sleep(0.5)
    report["rss_mib"] = {"idle": round(idle_rss, 1), "peak": round(peak_rss, 1)}
    report["bytes_per_pending_timer"] = round((peak_rss - idle_rss) * 2**20 / size.jobs)


async def _restart(
    size: TimerSize,
    delay: DelayProcess,
    http: httpx.AsyncClient,
    first_due: datetime,
    report: dict[str, Any],
) -> tuple[datetime, datetime]:
    """Stop the delay processor halfway and start it again: how long until every timer not
    yet fired is armed again (or fired) by the new process."""
    print("== timers: restarting the delay processor halfway", flush=True)
    report["stop_s"] = round(delay.stop(), 2)
    restarted_at = datetime.now(UTC)
    expected = _due_after(first_due, size, restarted_at)
    delay.start()
    while True:  # until it holds partitions (it measures their lag)
        if "jobline_consumer_lag{" in await delay.metrics(http):
            break
        await asyncio.sleep(0.05)
    report["join_s"] = round(time.monotonic() - delay.started, 2)
    while True:
        pending = await delay.metric(http, "jobline_timers_pending")
        fired = await delay.metric(http, "jobline_due_lateness_seconds_count")
        if pending is not None and fired is not None and pending + fired >= expected:
            break
        await asyncio.sleep(0.05)
    report["rearm_s"] = round(time.monotonic() - delay.started, 2)
    report["rearmed_timers"] = expected
    return restarted_at, datetime.now(UTC)


async def _lateness(
    settings: Settings, stopped_at: datetime, resumed_at: datetime
) -> dict[str, Any]:
    """Per JobDue: appended minus due, for all, and apart for the jobs due while the delay
    processor restarted; jobs that never got one, and jobs that got two."""
    requested, due = await read_back(settings)
    per_job: dict[str, int] = {}
    late: dict[str, list[float]] = {"steady": [], "restart": [], "all": []}
    outliers: list[tuple[float, float]] = []  # steady jobs over a second late
    for event, timestamp_ms in due:
        per_job[event.job_id] = per_job.get(event.job_id, 0) + 1
        due_at = requested[event.job_id].due_at
        ms = timestamp_ms - due_at.timestamp() * 1000
        late["all"].append(ms)
        steady = not stopped_at <= due_at <= resumed_at
        late["steady" if steady else "restart"].append(ms)
        if steady and ms > 1000:
            outliers.append((ms, (due_at - stopped_at).total_seconds()))
    return {
        "lateness": {name: lateness_figures(values) for name, values in late.items()},
        # Which: each as (lateness ms, due time in s from the stop), the latest first.
        "steady_over_1s": len(outliers),
        "steady_over_1s_latest": [
            (round(ms), round(s, 2)) for ms, s in sorted(outliers, reverse=True)[:10]
        ],
        "missing": sum(1 for job in requested if job not in per_job),
        "fired_twice": sum(1 for n in per_job.values() if n > 1),
    }


def _due_after(first_due: datetime, size: TimerSize, at: datetime) -> int:
    step = size.spread_s / size.jobs
    already = int((at - first_due).total_seconds() / step) + 1
    return size.jobs - max(0, min(size.jobs, already))


def rows(report: dict[str, Any]) -> list[str]:
    steady, every = report["lateness"]["steady"], report["lateness"]["all"]
    jobs = report["parameters"]["jobs"]
    return [
        f"| JobDue lateness p50 / p99 / max, steady (ms), {jobs:,} pending | target p99 ≤ "
        f"{TARGET_P99_MS} | {steady['p50_ms']} / {steady['p99_ms']} / {steady['max_ms']} | |",
        f"| JobDue lateness p99 / max, across a restart (ms) | | "
        f"{every['p99_ms']} / {every['max_ms']} | |",
        f"| early / missing / fired twice | 0 / 0 / 0 | {every['early']} / {report['missing']} "
        f"/ {report['fired_twice']} | |",
        f"| delay processor RSS, idle → {jobs:,} pending (MiB) | target ≤ {TARGET_RSS_MIB} | "
        f"{report['rss_mib']['idle']} → {report['rss_mib']['peak']} | "
        f"{report['bytes_per_pending_timer']} B per timer |",
        f"| restart: stop / join the group / every timer re-armed (s), "
        f"{report['rearmed_timers']:,} timers | | {report['stop_s']} / {report['join_s']} / "
        f"{report['rearm_s']} | |",
    ]
