"""Push latency: many live subscribers on one API while jobs resolve, against a plain
WebSocket (and SSE) endpoint sending one pre-serialized message to every connection.

    .venv/bin/python benchmarks/suite.py push [--size smoke|default|full] [--json PATH]

On a throwaway embedded broker and store it runs jobline as deployed (jobline/cluster.py):
`jobline api` in a process of its own, each processor and the Unsplash stand-in in theirs
(delays of 0.5-3 s, so jobs resolve as fast as they are created), and measures, one phase
after another:

1. Quiet: creations at the rate below and paced reads, no subscriber: the API's usual
   latencies.
2. GraphQL: N clients subscribed to `jobUpdates` (graphql-transport-ws, the page's selection),
   the same creations and reads.
3. SSE: N clients on `GET /jobs/events`, the same again.

Push latency is each subscriber's receipt of a job's resolution minus the time its JobResolved
was appended (its record's timestamp, read back from the log at the end); a resolution a
subscriber never got is dropped. The pipeline's stages are timed by a probe: a change stream
of this process's own on the read model, which gives each resolution's commit in the store
(the change's `wallTime`, stamped by the store when the projection's transaction commits) and
the moment a change-stream reader got it, beside the API's own stream.

Then the baseline, the bare app (benchmarks/bare.py: the same uvicorn settings, its own
process): N plain WebSocket clients, then N SSE clients, sent as many messages per second as
each GraphQL subscriber was meant to get (every change of every job: the rate times the
changes per job), of the GraphQL messages' size; latency from the moment each was sent. Each
phase reports the CPU its server process used. The clients are raw sockets
(benchmarks/wsclient.py), so that this process can keep up with them.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from histograms import Buckets, quantile_ms, read_buckets
from loadclient import Answer, paced
from processes import process_tree_cpu
from running import (
    LOAD_SETTINGS,
    SHORT_DELAYS,
    embedded_backends,
    environment,
    serving_stack,
    start_bare,
    stop,
    wait_until_up,
)
from timers import FAST_GROUPS, lateness_figures, percentile
from wsclient import EventStream, WebSocket, open_event_stream, open_websocket

from jobline.cluster import Cluster
from jobline.serving import free_port, until_answers
from projections.jobs.model import ReadModel
from projections.jobs.view import JobStatus
from runtime.aio import cancel_all, wait_event
from runtime.eventlog import ensure_topics
from runtime.logreader import LogReader
from runtime.settings import Settings
from runtime.store import database, open_store
from schema import JobResolved, decode


@dataclass(frozen=True)
class PushSize:
    subscribers: int
    rate: float  # jobs created (and so, soon after, resolved) per second
    seconds: float  # how long creations run in each phase
    read_rate: float = 10  # paced reads per second (GET /jobs, GET /jobs/{id} in turn)
    #: After the last creation: the last delays (3 s) and fetches, then every push.
    settle_s: float = 8
    env: dict[str, str] = field(default_factory=dict)


SIZES = {
    "smoke": PushSize(subscribers=50, rate=5, seconds=4, settle_s=5, env=FAST_GROUPS),
    "default": PushSize(subscribers=1_000, rate=20, seconds=30),
    "full": PushSize(subscribers=1_000, rate=20, seconds=120),
}
TARGET_RATIO = 1.5
JOB_FIELDS = (
    "id status version seq createdAt dueAt updatedAt error waitingUntil "
    "result { id altDescription color blurHash width height urls { small regular } "
    "links { html } user { name username links { html } } }"
)
UPDATES = f"subscription {{ jobUpdates {{ cursor job {{ {JOB_FIELDS} }} }} }}"
CONNECT_AT_ONCE = 50


@dataclass
class Subscribers:
    """What every connection received: per connection, job id -> arrival of its resolution;
    and the messages' sizes."""

    resolved: list[dict[str, float]] = field(default_factory=list)
    messages: int = 0
    sizes: list[int] = field(default_factory=list)
    ended: int = 0  # connections that ended before the phase did (an error, a drop)

    def taker(self, parse: Callable[[bytes], tuple[str, str] | None]) -> Callable[..., None]:
        got: dict[str, float] = {}
        self.resolved.append(got)

        def take(arrived: float, payload: bytes) -> None:
            self.messages += 1
            parsed = parse(payload)
            if parsed is None:
                return
            if len(self.sizes) < 1000:
                self.sizes.append(len(payload))
            if parsed[1] == "resolved":
                got.setdefault(parsed[0], arrived)

        return take


def graphql_job(payload: bytes) -> tuple[str, str] | None:
    if b'"RESOLVED"' not in payload:  # (parsing only what is looked at keeps this cheap)
        return None
    message = json.loads(payload)
    if message.get("type") != "next":
        return None
    job = message["payload"]["data"]["jobUpdates"]["job"]
    return (job["id"], job["status"].lower()) if job else None


def sse_job(event: bytes) -> tuple[str, str] | None:
    if b'"resolved"' not in event:
        return None
    for line in event.split(b"\n"):
        if line.startswith(b"data: "):
            job = json.loads(line[6:])
            return (job["id"], job["status"]) if "status" in job else None
    return None


def bare_message(stamps: dict[str, float]) -> Callable[[bytes], tuple[str, str] | None]:
    """The baseline's messages: each is its number; the time it was sent goes to `stamps`."""

    def parse(payload: bytes) -> tuple[str, str] | None:
        if payload.startswith(b"retry:"):
            return None
        if payload.startswith(b"event:"):
            payload = payload.split(b"data: ", 1)[1]
        message = json.loads(payload)
        stamps[str(message["n"])] = message["sent"]
        return str(message["n"]), "resolved"

    return parse


# -- connecting -------------------------------------------------------------------------


async def graphql_subscribers(port: int, subscribers: Subscribers, n: int) -> list[WebSocket]:
    """N graphql-transport-ws connections, each subscribed to `jobUpdates` and past the
    first update (where its stream starts)."""

    async def one() -> WebSocket:
        started = asyncio.get_running_loop().create_future()
        take = subscribers.taker(graphql_job)

        def on_message(arrived: float, payload: bytes) -> None:
            if started.done():
                take(arrived, payload)
            elif b'"next"' in payload:
                started.set_result(None)
            elif b'"connection_ack"' in payload:
                socket.send(
                    json.dumps(
                        {"id": "1", "type": "subscribe", "payload": {"query": UPDATES}}
                    ).encode()
                )

        socket = await open_websocket(
            "127.0.0.1", port, "/graphql", on_message, "graphql-transport-ws"
        )
        socket.send(b'{"type":"connection_init","payload":{}}')
        await asyncio.wait_for(started, 30)
        return socket

    return await _in_batches(one, n)


async def sse_subscribers(port: int, subscribers: Subscribers, n: int) -> list[EventStream]:
    async def one() -> EventStream:
        take = subscribers.taker(sse_job)
        return await open_event_stream("127.0.0.1", port, "/jobs/events", take)

    return await _in_batches(one, n)


async def bare_subscribers(
    port: int, path: str, subscribers: Subscribers, stamps: dict[str, float], n: int
) -> list[Any]:
    async def one() -> Any:
        take = subscribers.taker(bare_message(stamps))
        if path == "/ws":
            return await open_websocket("127.0.0.1", port, path, take)
        return await open_event_stream("127.0.0.1", port, path, take)

    return await _in_batches(one, n)


async def _in_batches(connect: Callable[[], Awaitable[Any]], n: int) -> list[Any]:
    connections: list[Any] = []
    while len(connections) < n:
        batch = min(CONNECT_AT_ONCE, n - len(connections))
        connections += await asyncio.gather(*(connect() for _ in range(batch)))
    return connections


# -- the phases on jobline --------------------------------------------------------------


@dataclass
class Phase:
    name: str
    subscribers: Subscribers = field(default_factory=Subscribers)
    created: list[str] = field(default_factory=list)
    creations: list[Answer] = field(default_factory=list)
    reads: list[Answer] = field(default_factory=list)
    seconds: float = 0.0
    #: CPU seconds each process (this one, the clients, too) used while the load ran.
    cpu_s: dict[str, float] = field(default_factory=dict)
    #: The probe's: job id -> (its resolution's commit in the store, the probe's receipt), s.
    committed: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: The processes' own histograms of the stages (METERED), over the phase: p50, p99 ms.
    metered: dict[str, dict[str, float | None]] = field(default_factory=dict)


async def load(base_url: str, size: PushSize, phase: Phase) -> None:
    """Creations at the size's rate for its seconds, paced reads meanwhile, then a settle."""
    stop_creating, stop_reading = asyncio.Event(), asyncio.Event()
    async with httpx.AsyncClient(base_url=base_url) as http:
        some = (await http.post("/jobs")).json()["id"]
    reads = asyncio.gather(
        paced(base_url, "GET", "/jobs?limit=30", rate=size.read_rate / 2, stop=stop_reading),
        paced(base_url, "GET", f"/jobs/{some}", rate=size.read_rate / 2, stop=stop_reading),
    )
    creating = asyncio.create_task(
        paced(base_url, "POST", "/jobs", rate=size.rate, stop=stop_creating, connections=16)
    )
    began = time.monotonic()
    await asyncio.sleep(size.seconds)
    stop_creating.set()
    phase.creations = await creating
    phase.seconds = time.monotonic() - began
    phase.created = [json.loads(a.body)["id"] for a in phase.creations if a.status == 202]
    await asyncio.sleep(size.settle_s)
    stop_reading.set()
    phase.reads = [answer for route in await reads for answer in route]


COMPONENTS = ("delay", "fetcher", "projection", "api")
RESOLVED = {"updateDescription.updatedFields.status": JobStatus.RESOLVED.value}
RESOLVED_CHANGES = [{"$match": RESOLVED}]


#: Stage -> (the component that observes it, its histogram): the projection's write of each
#: batch, each event's age once committed (from its occurred_at), and the API's feed delay
#: (from a change's commit to its subscribers), as the processes themselves measure them.
METERED = {
    "projection_write": ("projection", "jobline_projection_write_seconds"),
    "event_age_at_commit": ("projection", "jobline_projection_event_age_seconds"),
    "feed_delay": ("api", "jobline_feed_delay_seconds"),
}


async def read_metered(cluster: Cluster) -> dict[str, Buckets]:
    async with httpx.AsyncClient() as http:
        return {
            stage: await read_buckets(http, f"{cluster.url(component)}/metrics", name)
            for stage, (component, name) in METERED.items()
        }


def metered_figures(
    before: dict[str, Buckets], after: dict[str, Buckets]
) -> dict[str, dict[str, float | None]]:
    return {
        stage: {
            "p50_ms": quantile_ms(before[stage], after[stage], 0.5),
            "p99_ms": quantile_ms(before[stage], after[stage], 0.99),
        }
        for stage in METERED
    }


async def probe(settings: Settings, phase: Phase, watching: asyncio.Event) -> None:
    """Until cancelled: each resolution's commit in the store and its receipt here, from a
    change stream on the read model (the collection the API's feed watches)."""
    client = open_store(settings, bounded=False, component="bench-probe")
    try:
        located = await ReadModel(database(client, settings)).located(fresh=True)
        collection = database(client, settings)[located.collection]
        async with await collection.watch(RESOLVED_CHANGES, max_await_time_ms=200) as stream:
            watching.set()
            async for change in stream:
                received = time.time()
                committed = change["wallTime"].timestamp()
                phase.committed[change["documentKey"]["_id"]] = (committed, received)
    finally:
        await client.close()


async def on_cluster(settings: Settings, size: PushSize, logs: Path) -> list[Phase]:
    """The phases on jobline as deployed: the API alone in its process, each processor and
    the Unsplash stand-in in its own (jobline/cluster.py)."""
    stand_in = free_port()
    env = environment(
        settings,
        **SHORT_DELAYS | LOAD_SETTINGS | size.env,
        JOBLINE_UNSPLASH_BASE_URL=f"http://127.0.0.1:{stand_in}",
        JOBLINE_UNSPLASH_ACCESS_KEY="bench",
    )
    cluster = Cluster(settings, env, logs, ports={"stand-in": stand_in})
    await ensure_topics(settings)
    phases = [Phase("quiet"), Phase("graphql"), Phase("sse")]
    try:
        cluster.start("stand-in")
        await until_answers(f"{cluster.url('stand-in')}/@adabaker", cluster.processes["stand-in"])
        for name in COMPONENTS:
            cluster.start(name)
        for name in COMPONENTS:
            await cluster.ready(name)
        port = cluster.ports["api"]
        for phase in phases:
            print(f"== push: {phase.name}", flush=True)
            connections: list[WebSocket] | list[EventStream]
            if phase.name == "graphql":
                connections = await graphql_subscribers(port, phase.subscribers, size.subscribers)
            elif phase.name == "sse":
                connections = await sse_subscribers(port, phase.subscribers, size.subscribers)
            else:  # one subscriber: the latency of the pipeline alone
                connections = await graphql_subscribers(port, phase.subscribers, 1)
            watching = asyncio.Event()
            probing = asyncio.create_task(probe(settings, phase, watching))
            if not await wait_event(watching, 30):
                failed = probing.exception() if probing.done() else None
                await cancel_all(probing)
                raise RuntimeError("the probe's change stream did not open") from failed
            cpu = process_tree_cpu(os.getpid())
            metered = await read_metered(cluster)
            await load(cluster.url("api"), size, phase)
            phase.cpu_s = _used(cpu, process_tree_cpu(os.getpid()))
            phase.metered = metered_figures(metered, await read_metered(cluster))
            if probing.done():
                probing.result()  # it failed during the phase: its error, not empty stages
            await cancel_all(probing)
            phase.subscribers.ended = sum(1 for c in connections if c.closed.done())
            for connection in connections:
                connection.close()
            await asyncio.sleep(1)
    finally:
        for name in reversed(list(cluster.processes)):
            await cluster.stop(name)
    return phases


async def resolutions(settings: Settings) -> dict[str, int]:
    """Each job's JobResolved record's timestamp (ms), from the log."""
    appended: dict[str, int] = {}
    async for batch in LogReader(settings, settings.topics.jobs).batches():
        for record in batch:
            if b"JobResolved" in record.value:
                event = decode(record.value)
                if isinstance(event, JobResolved):
                    appended[event.job_id] = record.timestamp
    return appended


def push_figures(phase: Phase, appended: dict[str, int]) -> dict[str, Any]:
    """Latency from each JobResolved appended to each subscriber's receipt, and its two
    parts: to the first subscriber that got it (the pipeline: projection, store, change
    stream, the API), and from there to each (the API's fan-out, which the baseline's
    figure is comparable to)."""
    resolved = [job for job in phase.created if job in appended]
    latencies: list[float] = []
    first: list[float] = []
    fan_out: list[float] = []
    stages: dict[str, list[float]] = {name: [] for name in STAGES}
    dropped = 0
    for job in resolved:
        arrivals = [got.get(job) for got in phase.subscribers.resolved]
        received = [a for a in arrivals if a is not None]
        dropped += len(arrivals) - len(received)
        if not received:
            continue
        earliest = min(received)
        first.append(earliest * 1000 - appended[job])
        if job in phase.committed:
            committed, probed = phase.committed[job]
            stages["to_commit"].append(committed * 1000 - appended[job])
            stages["commit_to_stream"].append((probed - committed) * 1000)
            stages["commit_to_first"].append((earliest - committed) * 1000)
        for arrived in received:
            latencies.append(arrived * 1000 - appended[job])
            fan_out.append((arrived - earliest) * 1000)
    figures = lateness_figures(latencies)
    subscribers = len(phase.subscribers.resolved)
    return {
        "subscribers": subscribers,
        "jobs_resolved": len(resolved),
        "messages_per_job": round(phase.subscribers.messages / subscribers / len(phase.created), 2)
        if subscribers and phase.created
        else 0,
        "deliveries": figures.pop("jobs"),
        **figures,
        "to_first": _spread(first),
        "fan_out": _spread(fan_out),
        "stages": {name: _spread(ms) for name, ms in stages.items()},
        "dropped": dropped,
        "connections_ended": phase.subscribers.ended,
        "message_bytes": _mean(phase.subscribers.sizes),
    }


#: The pipeline's stages, from the probe: the JobResolved record to its commit in the read
#: model (the broker's hop to the projection, its batch's transaction); from the commit to a
#: change stream reader (the probe); and from the commit to the first subscriber (the API's
#: own stream, its feed and the socket).
STAGES = ("to_commit", "commit_to_stream", "commit_to_first")


def _spread(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(ms, 0.5), 1), "p99_ms": round(percentile(ms, 0.99), 1)}


def _used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds used between two readings, by process (named without its pid)."""
    return {
        name.split(" (pid")[0]: round(seconds - before.get(name, 0.0), 2)
        for name, seconds in after.items()
    }


def serving_figures(phase: Phase) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, answers in (("creations", phase.creations), ("reads", phase.reads)):
        ms = [a.latency * 1000 for a in answers]
        out[name] = {
            "rate": round(len(answers) / phase.seconds, 1) if name == "creations" else None,
            "p50_ms": round(percentile(ms, 0.5), 1),
            "p99_ms": round(percentile(ms, 0.99), 1),
            "errors": sum(1 for a in answers if a.status >= 400),
        }
    return out


def _mean(values: list[int]) -> int:
    return round(statistics.mean(values)) if values else 0


# -- the baseline -----------------------------------------------------------------------


async def on_bare(size: PushSize, message_bytes: int, log: Path) -> dict[str, Any]:
    """The bare app: plain WebSocket, then SSE, the same number of connections and messages."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    process = start_bare(port, log)
    padding = "x" * max(0, message_bytes - 60)
    message = json.dumps({"id": "1", "type": "next", "payload": {"padding": padding}})
    report: dict[str, Any] = {}
    try:
        await wait_until_up(base_url, process)
        for name, path in (("websocket", "/ws"), ("sse", "/events")):
            print(f"== push: baseline {name}, {size.subscribers} connections", flush=True)
            subscribers, stamps = Subscribers(), dict[str, float]()
            connections = await bare_subscribers(port, path, subscribers, stamps, size.subscribers)
            order = {"rate": size.rate, "seconds": size.seconds, "message": message}
            cpu = sum(process_tree_cpu(process.pid).values())
            async with httpx.AsyncClient(base_url=base_url) as http:
                await http.post("/broadcast", json=order)
            await asyncio.sleep(size.seconds + 3)
            report[name] = _bare_figures(subscribers, stamps, size.seconds)
            used = sum(process_tree_cpu(process.pid).values()) - cpu
            report[name]["cpu_percent"] = round(100 * used / (size.seconds + 3))
            for connection in connections:
                connection.close()
            await asyncio.sleep(1)
    finally:
        stop(process)
    return report


def _bare_figures(
    subscribers: Subscribers, stamps: dict[str, float], seconds: float
) -> dict[str, Any]:
    """The baseline's figures. It sends on schedule only as fast as it can: `sent_per_s` is
    the rate it kept, and a message is dropped if some connection got it and another not."""
    latencies = [
        (arrived - stamps[n]) * 1000 for got in subscribers.resolved for n, arrived in got.items()
    ]
    figures = lateness_figures(latencies)
    sent = len(stamps)
    return {
        "subscribers": len(subscribers.resolved),
        "sent_per_s": round(sent / seconds, 1),
        "deliveries": figures.pop("jobs"),
        **figures,
        "dropped": sent * len(subscribers.resolved) - len(latencies),
        "message_bytes": _mean(subscribers.sizes),
    }


async def run_push(size_name: str) -> dict[str, Any]:
    size = SIZES[size_name]
    report: dict[str, Any] = {
        "size": size_name,
        "parameters": asdict(size),
        "stack": serving_stack(),
    }
    print("== push on {event_loop} and {http}".format(**report["stack"]), flush=True)
    with tempfile.TemporaryDirectory(prefix="jobline-push-") as tmp:
        async with embedded_backends(Path(tmp)) as settings:
            phases = await on_cluster(settings, size, Path(tmp))
            print("== push: reading the log back", flush=True)
            appended = await resolutions(settings)
        for phase in phases:
            report[phase.name] = {
                "serving": serving_figures(phase),
                "cpu_percent": {
                    name: round(100 * used / (phase.seconds + size.settle_s))
                    for name, used in phase.cpu_s.items()
                },
            }
            report[phase.name]["push"] = push_figures(phase, appended)
            report[phase.name]["push"]["metered"] = phase.metered
        graphql = report["graphql"]["push"]
        messages = PushSize(
            subscribers=size.subscribers,
            rate=size.rate * (graphql["messages_per_job"] or 1),
            seconds=size.seconds,
        )
        report["baseline"] = await on_bare(
            messages, graphql["message_bytes"], Path(tmp) / "bare.log"
        )
    return report


def stage_row(report: dict[str, Any], phase: str) -> str:
    push = report[phase]["push"]
    probed = " / ".join(
        f"{push['stages'][name]['p50_ms']}, {push['stages'][name]['p99_ms']}" for name in STAGES
    )
    metered = " / ".join(
        f"{push['metered'][name]['p50_ms']}, {push['metered'][name]['p99_ms']}" for name in METERED
    )
    return (
        f"| pipeline stages p50, p99 (ms), {phase} phase: probed (record → commit / commit → "
        f"a change stream reader / commit → first subscriber); metered (projection batch "
        f"write / event age at commit / API feed delay) | | {probed}; {metered} | |"
    )


def rows(report: dict[str, Any]) -> list[str]:
    n = report["parameters"]["subscribers"]
    floor = report["quiet"]["push"]
    out = [
        f"| push p50 / p99 (ms), 1 GraphQL subscriber: the pipeline alone | | "
        f"{floor['p50_ms']} / {floor['p99_ms']} | |",
        *(stage_row(report, name) for name in ("quiet", "graphql", "sse")),
    ]
    for name, base in (("graphql", "websocket"), ("sse", "sse")):
        push, baseline = report[name]["push"], report["baseline"][base]
        ratio = push["p99_ms"] / baseline["p99_ms"] if baseline["p99_ms"] > 0 else float("nan")
        spread = push["fan_out"]["p99_ms"] / baseline["p99_ms"] if baseline["p99_ms"] else 0
        face = "GraphQL jobUpdates" if name == "graphql" else "SSE /jobs/events"
        out += [
            f"| push p50 / p99 (ms), {n:,} {face} subscribers, plain {base} beside "
            f"| {baseline['p50_ms']} / {baseline['p99_ms']} | {push['p50_ms']} / "
            f"{push['p99_ms']} | x{ratio:.2f} (target ≤ x{TARGET_RATIO}) |",
            f"| … of which pipeline (to the first subscriber) / fan-out (first to each), "
            f"p99 (ms) | | {push['to_first']['p99_ms']} / {push['fan_out']['p99_ms']} "
            f"| fan-out x{spread:.2f} |",
            f"| dropped deliveries, {face} (of {push['deliveries'] + push['dropped']:,}) "
            f"| {baseline['dropped']} | {push['dropped']} | |",
            f"| CPU of the server process (%), {face} | {baseline['cpu_percent']} | "
            f"{report[name]['cpu_percent'].get('jobline api', 0)} | |",
        ]
    quiet = report["quiet"]["serving"]
    for name in ("graphql", "sse"):
        busy = report[name]["serving"]
        out.append(
            f"| creations/s, p99 creation / read (ms), errors: quiet → {name} subscribers "
            f"| {quiet['creations']['rate']}, {quiet['creations']['p99_ms']} / "
            f"{quiet['reads']['p99_ms']}, {quiet['creations']['errors'] + quiet['reads']['errors']}"
            f" | {busy['creations']['rate']}, {busy['creations']['p99_ms']} / "
            f"{busy['reads']['p99_ms']}, {busy['creations']['errors'] + busy['reads']['errors']}"
            " | |"
        )
    return out
