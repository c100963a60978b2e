"""Soak: the whole embedded system at a steady rate of creations, for long, sampled as it goes.

    .venv/bin/python benchmarks/suite.py soak [--size smoke|default|full] [--json PATH]

`jobline run` on the embedded default (a throwaway data dir; delays as configured: 5 s to
5 min by default), jobs created at a steady rate and every read route asked at a steady
rate meanwhile, from keep-alive connections (benchmarks/loadclient.py). Every sample period
(a minute at full size): each process's resident memory and CPU, each route's latency
(p50, p99) and errors (any answer but 2xx, or no answer), the jobs in each status, and how
late `jobline run`'s event loop ran its ticks (p50, p99: every component shares it). At the
end, the trend: each series' least-squares slope per minute, and its last third against
its first (after the first sample period, while the first delays are still running out).
The target is no growth trend in memory or latency and no errors; nothing is asserted.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from histograms import Buckets, observed, read_buckets
from loadclient import Answer, paced
from processes import process_tree_cpu, process_tree_rss
from running import GRAPHQL_JOBS, start, stop, wait_until_up
from timers import percentile

from jobline.serving import free_port


@dataclass(frozen=True)
class SoakSize:
    minutes: float
    rate: float  # creations per second
    sample_s: float
    read_rate: float = 4  # per read route, per second
    env: dict[str, str] = field(default_factory=dict)


SIZES = {
    "smoke": SoakSize(
        minutes=0.5,
        rate=10,
        sample_s=10,
        env={"JOBLINE_DELAY_MIN_S": "1", "JOBLINE_DELAY_MAX_S": "10", "JOBLINE_DELAY_STEP_S": "1"},
    ),
    "default": SoakSize(minutes=10, rate=50, sample_s=60),
    "full": SoakSize(minutes=30, rate=50, sample_s=60),
}
CREATORS = 64


def routes(job_id: str) -> dict[str, tuple[str, str, bytes]]:
    return {
        "GET /jobs": ("GET", "/jobs?limit=30", b""),
        "GET /jobs?status=resolved": ("GET", "/jobs?limit=30&status=resolved", b""),
        "GET /jobs/{id}": ("GET", f"/jobs/{job_id}", b""),
        "GET /job-counts": ("GET", "/job-counts", b""),
        "GraphQL jobs(first: 30)": ("POST", "/graphql", GRAPHQL_JOBS.encode()),
    }


async def run_soak(size_name: str) -> dict[str, Any]:
    size = SIZES[size_name]
    report: dict[str, Any] = {"size": size_name, "parameters": asdict(size)}
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="jobline-soak-") as data_dir:
        process = start(port, data_dir, size.env)
        try:
            await wait_until_up(base_url, process)
            report |= await _soak(base_url, process.pid, size)
        finally:
            stop(process)
    report["trend"] = trend(report["samples"], size.sample_s)
    return report


async def _soak(base_url: str, pid: int, size: SoakSize) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        job_id = (await http.post("/jobs")).json()["id"]
        stop_event = asyncio.Event()
        load = {
            # Enough connections that a slow answer does not slow the creations down: the
            # rate is offered whatever the latency (up to CREATORS / rate seconds).
            "POST /jobs": paced(
                base_url, "POST", "/jobs", rate=size.rate, stop=stop_event, connections=CREATORS
            ),
            **{
                name: paced(
                    base_url,
                    method,
                    path,
                    rate=size.read_rate,
                    stop=stop_event,
                    body=body,
                    connections=2,
                )
                for name, (method, path, body) in routes(job_id).items()
            },
        }
        running = asyncio.gather(*load.values())
        began = time.monotonic()
        samples: list[dict[str, Any]] = []
        cpu_before = process_tree_cpu(pid)
        lag_before = await _loop_lag(http)
        ends = began + size.minutes * 60
        while (now := time.monotonic()) < ends:
            await asyncio.sleep(min(size.sample_s, ends - now))
            cpu = process_tree_cpu(pid)
            counts = await _counts(http)
            lag = await _loop_lag(http)
            samples.append(
                {
                    "at_s": round(time.monotonic() - began, 1),
                    "rss_mib": process_tree_rss(pid),
                    "cpu_s": {n: round(c - cpu_before.get(n, 0.0), 2) for n, c in cpu.items()},
                    "jobs": counts,
                    "event_loop_lag": _lag_figures(lag_before, lag),
                }
            )
            cpu_before, lag_before = cpu, lag
            print(f"  soak: {samples[-1]['at_s']:7.1f} s  {counts}", flush=True)
        stop_event.set()
        answers = dict(zip(load, await running, strict=True))
    for sample, start_s in zip(samples, [0.0, *(s["at_s"] for s in samples)], strict=False):
        sample["routes"] = {
            name: _figures([a for a in got if start_s <= a.at - began < sample["at_s"]])
            for name, got in answers.items()
        }
    return {
        "samples": samples,
        "totals": {name: _figures(got) for name, got in answers.items()},
    }


async def _counts(http: httpx.AsyncClient) -> dict[str, int] | str:
    try:
        counts: dict[str, int] = (await http.get("/job-counts")).json()
    except (httpx.HTTPError, ValueError) as error:
        return repr(error)
    return counts


async def _loop_lag(http: httpx.AsyncClient) -> Buckets:
    """`jobline run`'s event loop lag so far (jobline_event_loop_lag_seconds: every
    component shares that loop), as its cumulative buckets."""
    return await read_buckets(http, "/metrics", "jobline_event_loop_lag_seconds")


def _lag_figures(before: Buckets, after: Buckets) -> dict[str, Any]:
    """The lag of the ticks between two readings: p50 and p99 as the upper bound of the
    bucket each falls in (ms), and the share of ticks over 100 ms."""
    counts = observed(before, after)
    ticks = counts[-1][1] if counts else 0.0

    def bound(q: float) -> float | None:
        found = next((le for le, n in counts if n >= q * ticks), None)
        return None if found is None or not ticks else round(found * 1000, 1)

    over = ticks - next((n for le, n in counts if le >= 0.1), ticks)
    return {
        "ticks": int(ticks),
        "p50_ms": bound(0.5),
        "p99_ms": bound(0.99),
        "over_100ms": round(over / ticks, 3) if ticks else None,
    }


def _figures(answers: list[Answer]) -> dict[str, Any]:
    ok = [a.latency * 1000 for a in answers if 200 <= a.status < 300]
    failed = Counter(str(a.status) for a in answers if not 200 <= a.status < 300)
    return {
        "answers": len(answers),
        "p50_ms": round(percentile(ok, 0.5), 1),
        "p99_ms": round(percentile(ok, 0.99), 1),
        "errors": len(answers) - len(ok),
        "failed": dict(failed),  # by status; "0": no answer
    }


def trend(samples: list[dict[str, Any]], sample_s: float) -> dict[str, Any]:
    """Per series (each process's RSS, each route's p99): slope per minute, and the mean
    of its last third over that of its first, leaving out the first sample (warm-up)."""
    kept = samples[1:] if len(samples) > 3 else samples
    series: dict[str, list[tuple[float, float]]] = {}
    for sample in kept:
        minute = sample["at_s"] / 60
        for name, mib in sample["rss_mib"].items():
            series.setdefault(f"RSS MiB: {name.split(' (pid')[0]}", []).append((minute, mib))
        for name, route in sample.get("routes", {}).items():
            if route["answers"]:
                series.setdefault(f"p99 ms: {name}", []).append((minute, route["p99_ms"]))
        lag = sample.get("event_loop_lag", {}).get("p99_ms")
        if lag is not None:
            series.setdefault("p99 ms: event loop lag", []).append((minute, lag))
    out: dict[str, Any] = {}
    for name, points in series.items():
        third = max(1, len(points) // 3)
        first = statistics.mean(v for _, v in points[:third])
        last = statistics.mean(v for _, v in points[-third:])
        out[name] = {
            "slope_per_min": round(_slope(points), 3),
            "first": round(first, 1),
            "last": round(last, 1),
            "last_over_first": round(last / first, 2) if first else None,
        }
    return out


def _slope(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return 0.0
    xs, ys = [x for x, _ in points], [y for _, y in points]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


def rows(report: dict[str, Any]) -> list[str]:
    size = report["parameters"]
    head = f"soak, {size['minutes']:g} min at {size['rate']:g} creations/s"
    out = []
    for kind in ("RSS MiB", "p99 ms"):
        listed = "; ".join(
            f"{name.split(': ', 1)[1]} {t['first']} → {t['last']} ({t['slope_per_min']:+.1f}/min)"
            for name, t in report["trend"].items()
            if name.startswith(kind)
        )
        out.append(f"| {head}: {kind}, first → last third | no growth | {listed} | |")
    errors = sum(route["errors"] for route in report["totals"].values())
    answers = sum(route["answers"] for route in report["totals"].values())
    out.append(f"| {head}: errors of all answers | 0 | {errors} of {answers:,} | |")
    return out
