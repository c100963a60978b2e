"""What an operator watches, in Prometheus's terms (prometheus_client, its default registry).

Every process serves these at `/metrics`: the API on its port, each processor on its own
(`jobline delay --port ...`), `jobline run` all of them at the API's. Each process counts what
it did itself; Prometheus sums over the instances (README, Production: what to watch).
"""

from __future__ import annotations

import asyncio

from prometheus_client import Counter, Gauge, Histogram

#: Sub-second buckets first: a timer, a push or a route is judged in milliseconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

EVENTS_APPENDED = Counter(
    "jobline_events_appended",
    "Events this process appended to the log, acknowledged (and durable), by type: "
    "JobRequested = jobs created, JobResolved / JobFailed / JobCancelled = jobs so ended.",
    ["type"],
)
DUE_LATENESS = Histogram(
    "jobline_due_lateness_seconds",
    "How long after its due time each JobDue was appended (the delay processor's timers).",
    buckets=LATENCY_BUCKETS,
)
TIMERS_PENDING = Gauge(
    "jobline_timers_pending",
    "Timers the delay processor holds armed (jobs waiting for their due time).",
)
UNSPLASH_SECONDS = Histogram(
    "jobline_unsplash_request_seconds",
    "Unsplash requests (GET /photos/random), by how they ended: the HTTP status, or 'unreachable'.",
    ["outcome"],
    buckets=LATENCY_BUCKETS,
)
UNSPLASH_REMAINING = Gauge(
    "jobline_unsplash_remaining",
    "Requests left in Unsplash's allowance, as its last answer here said (X-Ratelimit-Remaining).",
)
CONSUMER_LAG = Gauge(
    "jobline_consumer_lag",
    "Records of the log a consumer group's member has not finished with, per partition it "
    "holds: the partition's end minus the offset the member may commit.",
    ["group", "partition"],
)
DEAD_LETTERS = Counter(
    "jobline_dead_letters",
    "Records a consumer group could not process, sent to the dead-letter topic.",
    ["group"],
)
SUBSCRIBERS = Gauge(
    "jobline_subscribers",
    "Live subscribers of job changes on this API (GraphQL subscriptions and SSE streams).",
)
SUBSCRIBERS_DROPPED = Counter(
    "jobline_subscribers_dropped",
    "Subscribers dropped (told to resubscribe) for falling behind: their connection took "
    "no more and the changes queued for them reached JOBLINE_SUBSCRIBER_QUEUE.",
)
HTTP_SECONDS = Histogram(
    "jobline_http_request_duration_seconds",
    "HTTP requests to the API, by route (its path template), method and status.",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
#: Finer below 100 ms: the stages of a push are each a few to a few tens of milliseconds.
STAGE_BUCKETS = (
    *(0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1),
    *(0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
PROJECTION_WRITE_SECONDS = Histogram(
    "jobline_projection_write_seconds",
    "How long the projection took to write each batch it fetched to the read model (its "
    "transactions, and their retries, from the batch handed over to the last commit).",
    buckets=STAGE_BUCKETS,
)
PROJECTION_EVENT_AGE = Histogram(
    "jobline_projection_event_age_seconds",
    "How old each event was when the projection had committed it to the read model: from "
    "its occurred_at (stamped by whoever appended it) to the commit. The log's hop to the "
    "projection, its wait for the batch, the write: how stale the read model is.",
    buckets=STAGE_BUCKETS,
)
FEED_DELAY = Histogram(
    "jobline_feed_delay_seconds",
    "From a job change's commit in the read model (the store's wallTime of it) to this API "
    "having passed it to its subscribers (written to each connection's transport that took "
    "it at once; queued for the others): the store's change stream and the feed.",
    buckets=STAGE_BUCKETS,
)
EVENT_LOOP_LAG = Histogram(
    "jobline_event_loop_lag_seconds",
    "How late this process's event loop ran a timer due every EVENT_LOOP_TICK_S: how long "
    "other work held it, which every request and message it handles waited for too.",
    buckets=(0.001, 0.0025, *LATENCY_BUCKETS),
)
EVENT_LOOP_TICK_S = 0.05


async def watch_event_loop() -> None:
    """Observe EVENT_LOOP_LAG, until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + EVENT_LOOP_TICK_S
        await asyncio.sleep(EVENT_LOOP_TICK_S)
        EVENT_LOOP_LAG.observe(max(0.0, loop.time() - due))
