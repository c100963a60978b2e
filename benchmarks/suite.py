"""The benchmark suite: intake, growth, keeping up and reads at size, each beside its baseline
measured in the same run. Prints a table and writes a JSON report. Asserts no timing.

    .venv/bin/python benchmarks/suite.py [load] [--size smoke|default|full] [--json PATH]
                                         [--only intake|pipeline|growth ...]
    .venv/bin/python benchmarks/suite.py timers|replay|push|soak [--size ...] [--json PATH]
    .venv/bin/python benchmarks/suite.py timers push replay soak --size full --json all.json

`timers`, `replay`, `push` and `soak` are their own benchmarks (benchmarks/timers.py,
replay.py, push.py, soak.py); named together they run one after another, and the report
holds each under its name. What follows is `load`, the default.

It starts what it needs on free loopback ports and stops it: a bare FastAPI app (the ceiling
of one uvicorn worker here, the intake baseline), then `jobline run` on the embedded default
(a throwaway data dir). Every load comes from this process over keep-alive connections
(benchmarks/loadclient.py), and every phase is bounded in count and time.

1. Intake: `POST /jobs` from 50 clients, then from one, against the bare endpoint.
2. Growth: 50 clients create jobs up to the size (250,000 for `full`) while the earlier ones
   come due and resolve; rate, p99 and 5xx answers per chunk (10,000 jobs for `full`).
3. Keeping up: a GraphQL subscription (`jobUpdates`) sees every change; for each job that was
   due during the run, the lag from `due_at` to its resolution arriving there.
4. Reads at size: at the first chunk and at the end, with a steady 50 creations/s running,
   each read route from 8 clients; the baseline is the same route at the first size.
5. The resident memory of every process of `jobline run` at the end.
6. Pipeline: jobs created at once with 0.5-3 s delays, followed until every one is resolved:
   resolutions/s, and the store's requests and operations per job end to end (its
   serverStatus counters); the baseline is the store's raw `insert_many` in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import push
import replay
import soak
import timers
from loadclient import Load, paced, read_response, request_bytes, run_load
from processes import descendants, process_tree_cpu, process_tree_rss
from pymongo import AsyncMongoClient
from running import GRAPHQL_JOBS, SHORT_DELAYS, start, start_bare, stop, wait_until_up
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException
from websockets.typing import Subprotocol

from jobline.children import store_uri
from jobline.serving import free_port


@dataclass(frozen=True)
class Size:
    jobs: int  # jobs in the store at the end of growth
    chunk: int  # growth is reported per this many creations
    intake_s: float
    read_s: float
    steady_rate: float  # creations/s while reads are measured
    grace_s: float  # how long after growth to wait for jobs that were due during it
    pipeline_jobs: int  # jobs created at once and followed until all are resolved
    env: dict[str, str] = field(default_factory=dict)
    # Growth stops after the chunk that ends past this (None: no bound but the size); the
    # reads, RSS and keeping-up figures are then taken at the size it reached.
    growth_budget_s: float | None = None


DEFAULT = Size(
    jobs=20_000,
    chunk=5_000,
    intake_s=10,
    read_s=5,
    steady_rate=50,
    grace_s=30,
    pipeline_jobs=3_000,
)
SIZES = {
    # Short delays, so jobs resolve within a smoke run.
    "smoke": Size(
        jobs=600,
        chunk=200,
        intake_s=1,
        read_s=1,
        steady_rate=20,
        grace_s=20,
        pipeline_jobs=300,
        env=SHORT_DELAYS,
    ),
    "default": DEFAULT,
    # The same loads, to the size of issue 9.
    # On the embedded broker and store creation slows with size (README, Known limits): the
    # time budget keeps a run within an hour.
    "full": replace(
        DEFAULT, jobs=250_000, chunk=10_000, pipeline_jobs=10_000, growth_budget_s=40 * 60
    ),
}
CLIENTS = 50
# Batch creation ({"count": BATCH} per request) from a few clients: what one intake queue
# holds (api/service.py MAX_QUEUED) in jobs, not 50 clients' worth of 100-job requests.
BATCH, BATCH_CLIENTS = 100, 8
READ_CLIENTS = 8
PAGE = 30
DEEP_PAGES = 100
JSON_HEADERS = {"Content-Type": "application/json"}


def figures(load: Load) -> dict[str, Any]:
    """Rate and latencies of the successful answers (None when none succeeded)."""
    errors = sum(n for status, n in load.statuses.items() if status >= 500)
    answered = bool(load.latencies)
    return {
        "rate": round(load.rate, 1),
        "p50_ms": round(load.percentile(0.50) * 1000, 2) if answered else None,
        "p99_ms": round(load.percentile(0.99) * 1000, 2) if answered else None,
        "answers": sum(load.statuses.values()),
        "5xx": errors,
        "statuses": {str(k): v for k, v in sorted(load.statuses.items())},
    }


# -- the bare baseline ------------------------------------------------------------------


async def bare_intake(size: Size) -> dict[str, Any]:
    port = free_port()
    process = start_bare(port)
    try:
        await wait_until_up(f"http://127.0.0.1:{port}", process)
        base = f"http://127.0.0.1:{port}"
        await run_load(base, "POST", "/jobs", connections=CLIENTS, seconds=1)  # warm-up
        many = await run_load(base, "POST", "/jobs", connections=CLIENTS, seconds=size.intake_s)
        one = await run_load(base, "POST", "/jobs", connections=1, seconds=size.intake_s)
    finally:
        stop(process)
    return {"clients_50": figures(many), "clients_1": figures(one)}


# -- the live feed: when each job resolves in the read model ----------------------------


@dataclass
class Feed:
    due: dict[str, datetime] = field(default_factory=dict)
    settled: dict[str, float] = field(default_factory=dict)  # job id -> wall time seen
    resolved_at: list[float] = field(default_factory=list)
    reconnects: int = 0

    async def follow(self, base_url: str) -> None:
        url = base_url.replace("http://", "ws://") + "/graphql"
        query = "subscription { jobUpdates { job { id status dueAt } } }"
        while True:
            try:
                async with connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
                    await ws.send(json.dumps({"type": "connection_init"}))
                    await ws.recv()
                    await ws.send(
                        json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}})
                    )
                    async for raw in ws:
                        message = json.loads(raw)
                        if message.get("type") == "ping":
                            await ws.send(json.dumps({"type": "pong"}))
                        self._take(message)
            except (OSError, ValueError, RuntimeError, WebSocketException) as error:
                print(f"  feed: {error!r}; resubscribing", file=sys.stderr)
            self.reconnects += 1
            await asyncio.sleep(0.2)

    def _take(self, message: dict[str, Any]) -> None:
        if message.get("type") != "next":
            if message.get("type") == "error":
                raise RuntimeError(str(message.get("payload")))
            return
        job = message["payload"]["data"]["jobUpdates"]["job"]
        if job is None:  # the mark of where the stream starts
            return
        job_id = job["id"]
        if job.get("dueAt"):
            self.due.setdefault(job_id, datetime.fromisoformat(job["dueAt"]))
        if job["status"] in ("RESOLVED", "FAILED") and job_id not in self.settled:
            now = time.time()
            self.settled[job_id] = now
            self.resolved_at.append(now)

    def lags(self, due_before: float) -> tuple[list[float], int]:
        """Lag (s) of each job due before `due_before` (wall time), and how many of those
        have not resolved at all."""
        lags, missing = [], 0
        for job_id, due in self.due.items():
            if due.timestamp() >= due_before:
                continue
            if job_id in self.settled:
                lags.append(self.settled[job_id] - due.timestamp())
            else:
                missing += 1
        return lags, missing

    def peak_rate(self, window_s: float = 10) -> float:
        times = sorted(self.resolved_at)
        best, j = 0, 0
        for i, t in enumerate(times):
            while times[j] < t - window_s:
                j += 1
            best = max(best, i - j + 1)
        return best / window_s


# -- growth -----------------------------------------------------------------------------


@dataclass
class Answer:
    at: float  # monotonic time it came
    latency: float
    status: int


async def create(base_url: str, count: int, connections: int) -> list[Answer]:
    """`count` creations from `connections` keep-alive clients; answers in arrival order."""
    host, port, request = request_bytes(base_url, "POST", "/jobs")
    answers: list[Answer] = []
    left = iter(range(count))

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for _ in left:
                started = time.perf_counter()
                writer.write(request)
                status, _ = await read_response(reader)
                answers.append(Answer(time.monotonic(), time.perf_counter() - started, status))
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    return answers


def chunk_figures(answers: list[Answer], started: float, stored_before: int) -> dict[str, Any]:
    ok = [a for a in answers if 200 <= a.status < 300]
    latencies = sorted(a.latency for a in answers)
    seconds = answers[-1].at - started
    return {
        "jobs_stored_at_end": stored_before + len(ok),
        "rate": round(len(ok) / seconds, 1) if seconds else 0.0,
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 2),
        "5xx": sum(1 for a in answers if a.status >= 500),
        "non_2xx": len(answers) - len(ok),
    }


async def grow(
    base_url: str, upto: int, stored: int, size: Size, deadline: float = float("inf")
) -> tuple[list[dict[str, Any]], int]:
    """Create jobs until `upto` are stored (or a chunk ends past `deadline`, monotonic),
    reporting per chunk; returns (chunks, stored)."""
    chunks = []
    while stored < upto and time.monotonic() < deadline:
        count = min(size.chunk, upto - stored)
        started = time.monotonic()
        answers = await create(base_url, count, CLIENTS)
        chunk = chunk_figures(answers, started, stored)
        stored = chunk["jobs_stored_at_end"]
        chunks.append(chunk)
        print(
            f"  growth: {stored:>7} jobs  {chunk['rate']:7.1f} jobs/s  "
            f"p99 {chunk['p99_ms']:7.1f} ms  5xx {chunk['5xx']}",
            flush=True,
        )
    return chunks, stored


# -- reads at size ----------------------------------------------------------------------


async def steady_creations(base_url: str, rate: float, stop_event: asyncio.Event) -> int:
    """Create `rate` jobs/s (paced) until told to stop; returns how many were acknowledged."""
    answers = await paced(base_url, "POST", "/jobs", rate=rate, stop=stop_event)
    return sum(1 for answer in answers if 200 <= answer.status < 300)


async def read_routes(base_url: str, job_id: str) -> dict[str, tuple[str, str, bytes]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        cursor = None  # the cursor of page DEEP_PAGES + 1 (or of the last page, if fewer)
        for _ in range(DEEP_PAGES):
            params = {"limit": PAGE} | ({"cursor": cursor} if cursor else {})
            following = (await http.get("/jobs", params=params)).json().get("next_cursor")
            if following is None:
                break
            cursor = following
    return {
        "GET /jobs (first page)": ("GET", f"/jobs?limit={PAGE}", b""),
        f"GET /jobs ({DEEP_PAGES} pages deep)": ("GET", f"/jobs?limit={PAGE}&cursor={cursor}", b""),
        "GET /jobs?status=resolved": ("GET", f"/jobs?limit={PAGE}&status=resolved", b""),
        "GET /jobs?status=pending": ("GET", f"/jobs?limit={PAGE}&status=pending", b""),
        "GET /jobs/{id}": ("GET", f"/jobs/{job_id}", b""),
        "GET /job-counts": ("GET", "/job-counts", b""),
        "GraphQL jobs(first: 30)": ("POST", "/graphql", GRAPHQL_JOBS.encode()),
    }


async def reads(base_url: str, job_id: str, size: Size) -> tuple[dict[str, Any], int]:
    """Each read route under load, while steady creations run; returns (figures, created)."""
    stop_event = asyncio.Event()
    creator = asyncio.create_task(steady_creations(base_url, size.steady_rate, stop_event))
    try:
        routes = await read_routes(base_url, job_id)
        out = {}
        for name, (method, path, body) in routes.items():
            headers = JSON_HEADERS if body else None
            load = await run_load(
                base_url,
                method,
                path,
                connections=READ_CLIENTS,
                seconds=size.read_s,
                headers=headers,
                body=body,
            )
            out[name] = figures(load)
            print(
                f"  read {name:<32} p50 {out[name]['p50_ms']} ms  "
                f"p99 {out[name]['p99_ms']} ms  non-2xx "
                f"{out[name]['answers'] - len(load.latencies)}",
                flush=True,
            )
    finally:
        stop_event.set()
        created = await creator
    return out, created


# -- the pipeline: store work per job, end to end --------------------------------------


def store_port(pid: int) -> str:
    """The embedded store's port, from the command line of its process under `pid`."""
    for proc in descendants(pid):
        try:
            words = Path(f"/proc/{proc}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if "secantus" in words and "--port" in words:
            return words[words.index("--port") + 1]
    raise SystemExit("no embedded store below jobline run")


async def store_counters(client: AsyncMongoClient[dict[str, Any]]) -> dict[str, int]:
    status = await client.admin.command("serverStatus")
    return {"requests": status["network"]["numRequests"], **status["opcounters"]}


async def raw_inserts(client: AsyncMongoClient[dict[str, Any]], count: int) -> float:
    """The store's own pace: `count` small documents by insert_many of 500, docs/s."""
    collection = client["bench_baseline"]["raw"]
    docs = [{"_id": i, "status": "pending", "n": i} for i in range(count)]
    started = time.perf_counter()
    for first in range(0, count, 500):
        await collection.insert_many(docs[first : first + 500])
    rate = count / (time.perf_counter() - started)
    await client.drop_database("bench_baseline")
    return rate


async def pipeline(base_url: str, pid: int, size: Size) -> dict[str, Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(store_uri(store_port(pid)))
    try:
        baseline = await raw_inserts(client, size.pipeline_jobs)
        print(f"  store's raw insert_many: {baseline:.0f} docs/s", flush=True)
        before = await store_counters(client)
        cpu_before = process_tree_cpu(pid)
        started = time.monotonic()
        answers = await create(base_url, size.pipeline_jobs, CLIENTS)
        created = sum(1 for a in answers if 200 <= a.status < 300)
        created_in = time.monotonic() - started
        settled, last_change, seen = 0, time.monotonic(), -1
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
            while settled < created and time.monotonic() - last_change < 60:
                counts = (await http.get("/job-counts")).json()
                settled = counts.get("resolved", 0) + counts.get("failed", 0)
                if settled != seen:
                    seen, last_change = settled, time.monotonic()
                await asyncio.sleep(0.5)
        took = time.monotonic() - started
        after = await store_counters(client)
        cpu_after = process_tree_cpu(pid)
    finally:
        await client.close()
    per_job = {k: round((after[k] - before[k]) / max(1, created), 2) for k in after}
    out = {
        "jobs": created,
        "settled": settled,
        "creation_s": round(created_in, 1),
        "all_settled_s": round(took, 1),
        "resolutions_per_s": round(settled / took, 1),
        "store_per_job": per_job,
        "cpu_ms_per_job": {
            name: round((cpu_after[name] - cpu_before.get(name, 0)) * 1000 / max(1, created), 2)
            for name in cpu_after
        },
        "store_raw_insert_docs_per_s": round(baseline, 1),
    }
    print(
        f"  {settled} of {created} settled in {took:.1f} s ({out['resolutions_per_s']}/s); "
        f"store per job: {per_job}; CPU ms per job: {out['cpu_ms_per_job']}",
        flush=True,
    )
    return out


# -- the run ----------------------------------------------------------------------------


async def on_jobline(
    size: Size,
    measure: Callable[[str, int], Awaitable[None]],
    env: dict[str, str] | None = None,
) -> None:
    """A fresh `jobline run` (throwaway data dir) for `measure(base_url, pid)`."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="jobline-bench-") as data_dir:
        process = start(port, data_dir, size.env if env is None else env)
        try:
            await wait_until_up(base_url, process)
            await measure(base_url, process.pid)
        finally:
            stop(process)


PHASES = ("intake", "pipeline", "growth")


async def run(size_name: str, phases: tuple[str, ...] = PHASES) -> dict[str, Any]:
    size = SIZES[size_name]
    report: dict[str, Any] = {
        "size": size_name,
        "parameters": asdict(size),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
    }

    async def intake(base_url: str, pid: int) -> None:
        print("== jobline run: intake", flush=True)
        await run_load(base_url, "POST", "/jobs", connections=CLIENTS, seconds=1)  # warm-up
        many = await run_load(base_url, "POST", "/jobs", connections=CLIENTS, seconds=size.intake_s)
        one = await run_load(base_url, "POST", "/jobs", connections=1, seconds=size.intake_s)
        batch = await run_load(
            base_url,
            "POST",
            "/jobs",
            connections=BATCH_CLIENTS,
            seconds=size.intake_s,
            headers=JSON_HEADERS,
            body=json.dumps({"count": BATCH}).encode(),
        )
        report["intake"] = {
            "clients_50": figures(many),
            "clients_1": figures(one),
            "batches": figures(batch) | {"jobs_per_s": round(batch.rate * BATCH, 1)},
        }

    async def growth(base_url: str, pid: int) -> None:
        feed = Feed()
        follower = asyncio.create_task(feed.follow(base_url))
        try:
            await _growth(base_url, pid, size, feed, report)
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)

    async def flow(base_url: str, pid: int) -> None:
        print(f"== jobline run: pipeline, {size.pipeline_jobs} jobs due in 0.5-3 s", flush=True)
        report["pipeline"] = await pipeline(base_url, pid, size)

    if "intake" in phases:
        print(f"== bare FastAPI endpoint (baseline), {size.intake_s:g} s per load", flush=True)
        report["bare"] = await bare_intake(size)
        await on_jobline(size, intake)
    if "pipeline" in phases:
        await on_jobline(size, flow, SHORT_DELAYS)
    if "growth" in phases:
        await on_jobline(size, growth)  # a fresh one each: growth starts from an empty store
    return report


async def _growth(base_url: str, pid: int, size: Size, feed: Feed, report: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        job_id = (await http.post("/jobs")).json()["id"]
    stored = 1
    budget = f", at most {size.growth_budget_s / 60:g} min" if size.growth_budget_s else ""
    print(f"== jobline run: growth to {size.jobs} jobs, {CLIENTS} clients{budget}", flush=True)
    growth_started = time.time()
    deadline = time.monotonic() + (size.growth_budget_s or float("inf"))
    chunks, stored = await grow(base_url, size.chunk, stored, size)
    report["reads"] = {}
    print(f"== reads at {stored} jobs", flush=True)
    report["reads"][str(stored)], created = await reads(base_url, job_id, size)
    stored += created
    more, stored = await grow(base_url, size.jobs, stored, size, deadline)
    chunks += more
    report["growth"] = chunks
    report["growth_stopped_by_budget"] = stored < size.jobs
    growth_ended = time.time()
    print(f"== reads at {stored} jobs", flush=True)
    report["reads"][str(stored)], created = await reads(base_url, job_id, size)
    stored += created
    report["rss_mib"] = process_tree_rss(pid)

    # Jobs due during growth: wait (bounded) for the last of them to resolve.
    for _ in range(int(size.grace_s * 2)):
        if not feed.lags(growth_ended)[1]:
            break
        await asyncio.sleep(0.5)
    lags, missing = feed.lags(growth_ended)
    lags.sort()
    report["keeping_up"] = {
        "jobs_due_during_growth": len(lags) + missing,
        "unresolved_after_grace": missing,
        "lag_p50_s": round(lags[len(lags) // 2], 3) if lags else None,
        "lag_p99_s": round(lags[min(len(lags) - 1, int(len(lags) * 0.99))], 3) if lags else None,
        "lag_max_s": round(lags[-1], 3) if lags else None,
        "resolutions_per_s_peak_10s": round(feed.peak_rate(), 1),
        "resolutions_per_s_mean": round(
            sum(1 for t in feed.resolved_at if t >= growth_started)
            / max(1e-9, time.time() - growth_started),
            1,
        ),
        "feed_resubscriptions": feed.reconnects,
    }


# -- the table --------------------------------------------------------------------------


TABLE_HEAD = ["| benchmark | baseline (same run) | jobline | ratio |", "|---|---|---|---|"]


def table(report: dict[str, Any]) -> str:
    rows = list(TABLE_HEAD)
    if "intake" in report:
        rows += _intake_rows(report)
    if "pipeline" in report:
        rows += _pipeline_rows(report["pipeline"])
    if "growth" in report:
        rows += _growth_rows(report)
    return "\n".join(rows)


def _intake_rows(report: dict[str, Any]) -> list[str]:
    bare, intake = report["bare"], report["intake"]
    return [
        _row(name, bare[load][figure], intake[load][figure], "bare FastAPI")
        for name, load, figure in (
            ("POST /jobs, 50 clients: req/s", "clients_50", "rate"),
            ("POST /jobs, 50 clients: p99 ms", "clients_50", "p99_ms"),
            ("POST /jobs, 1 client: p50 ms", "clients_1", "p50_ms"),
        )
    ] + [
        _row(
            f"POST /jobs {{count: {BATCH}}}, {BATCH_CLIENTS} clients: jobs/s",
            intake["clients_50"]["rate"],
            intake["batches"]["jobs_per_s"],
            "single POST /jobs, 50 clients",
        )
    ]


def _pipeline_rows(flow: dict[str, Any]) -> list[str]:
    rows = [
        _row(
            f"pipeline: resolutions/s, {flow['jobs']} jobs due in 0.5-3 s",
            flow["store_raw_insert_docs_per_s"],
            flow["resolutions_per_s"],
            "the store's raw inserts/s",
        )
    ]
    work = flow["store_per_job"]
    rows.append(
        f"| pipeline: store requests per job (insert/query/update/getmore/command ops) | | "
        f"{work['requests']} ({work['insert']}/{work['query']}/{work['update']}/"
        f"{work['getmore']}/{work['command']}) | |"
    )
    for name, ms in flow["cpu_ms_per_job"].items():
        rows.append(f"| pipeline: CPU per job, {name} | | {ms} ms | |")
    return rows


def _growth_rows(report: dict[str, Any]) -> list[str]:
    growth = report["growth"]
    first, last = growth[0], growth[-1]
    up = report["keeping_up"]
    rows = [
        _row(
            f"growth: jobs/s, last chunk (to {last['jobs_stored_at_end']}) vs first",
            first["rate"],
            last["rate"],
            "first chunk",
        ),
        f"| growth: 5xx answers in all | | {sum(c['5xx'] for c in growth)} | |",
        *(
            [f"| growth: stopped by its time budget at {last['jobs_stored_at_end']} jobs | | | |"]
            if report.get("growth_stopped_by_budget")
            else []
        ),
        f"| keeping up: lag p99 from due_at to resolved in the read model | | "
        f"{up['lag_p99_s']} s ({up['jobs_due_during_growth']} jobs, "
        f"{up['unresolved_after_grace']} unresolved) | |",
        f"| keeping up: resolutions/s (peak 10 s / mean) | | "
        f"{up['resolutions_per_s_peak_10s']} / {up['resolutions_per_s_mean']} | |",
    ]
    sizes = list(report["reads"])
    small, large = report["reads"][sizes[0]], report["reads"][sizes[-1]]
    for name in large:
        rows.append(
            _row(
                f"{name}: p99 ms at {sizes[-1]} jobs",
                small[name]["p99_ms"],
                large[name]["p99_ms"],
                f"same at {sizes[0]} jobs",
            )
        )
    for name, rss in report["rss_mib"].items():
        rows.append(f"| RSS of {name} | | {rss} MiB | |")
    return rows


def _row(name: str, baseline: float | None, figure: float | None, of: str) -> str:
    if figure is None:
        return f"| {name} | {baseline} | every answer failed | |"
    ratio = f"x{figure / baseline:.2f} of {of}" if baseline else "n/a"
    return f"| {name} | {baseline} | {figure} | {ratio} |"


Benchmark = Callable[[str], Coroutine[Any, Any, dict[str, Any]]]
#: The suite's other benchmarks, each its own subcommand: how to run it, its table rows.
BENCHMARKS: dict[str, tuple[Benchmark, Callable[..., list[str]]]] = {
    "timers": (timers.run_timers, timers.rows),
    "replay": (replay.run_replay, replay.rows),
    "push": (push.run_push, push.rows),
    "soak": (soak.run_soak, soak.rows),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "benchmark",
        nargs="*",  # (not `choices`: Python 3.11's argparse then refuses none given)
        metavar="{load,timers,replay,push,soak}",
        help="load (intake, growth, reads, pipeline: the default), timers, replay, push or "
        "soak; several run one after another, their reports under their names",
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--json", type=Path, help="where to write the report (default: print)")
    parser.add_argument(
        "--only",
        choices=PHASES,
        action="append",
        help="load: run this phase (repeatable; default: all)",
    )
    args = parser.parse_args()
    names = list(dict.fromkeys(args.benchmark or ["load"]))
    if unknown := [name for name in names if name != "load" and name not in BENCHMARKS]:
        parser.error(f"no such benchmark: {', '.join(unknown)}")
    reports = {}
    for name in names:
        if name in BENCHMARKS:
            measure, rows = BENCHMARKS[name]
            report = asyncio.run(measure(args.size))
            report["table"] = "\n".join([*TABLE_HEAD, *rows(report)])
        else:
            report = asyncio.run(run(args.size, tuple(args.only or PHASES)))
            report["table"] = table(report)
        print()
        print(report["table"], flush=True)
        reports[name] = report
    if len(names) > 1:
        report = {**reports, "table": "\n\n".join(r["table"] for r in reports.values())}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nreport written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
