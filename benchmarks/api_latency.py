"""Latency of the API's routes on `jobline run`, as ratios against the HTTP floor.

Starts `jobline run` (embedded broker and store, throwaway data dir) on a free loopback port,
then times each route. The baseline is `GET /healthz` on the same server in the same run: what
any request costs here. A route's ratio is its median over that median, so the figures can be
compared across machines and runs on a noisy one. It prints figures; it asserts no timing.

    python benchmarks/api_latency.py [--requests N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import httpx
from running import on_jobline_run


async def timed(call: Callable[[], Awaitable[httpx.Response]], n: int) -> list[float]:
    """n sequential calls; each answer must be a success. Milliseconds per call."""
    times = []
    for _ in range(n):
        started = time.perf_counter()
        response = await call()
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return times


async def throughput(http: httpx.AsyncClient, n: int, concurrency: int) -> float:
    """Jobs created per second by `concurrency` clients creating n jobs in all."""
    left = iter(range(n))

    async def client() -> None:
        for _ in left:
            (await http.post("/jobs")).raise_for_status()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return n / (time.perf_counter() - started)


def report(name: str, times: list[float], floor: float) -> None:
    p50 = statistics.median(times)
    p95 = statistics.quantiles(times, n=20)[-1]
    print(f"{name:<28} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms   p50 x{p50 / floor:5.1f} floor")


async def measure(base_url: str, n: int, concurrency: int) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        job_id = (await http.post("/jobs")).json()["id"]
        await timed(lambda: http.get("/healthz"), 50)  # warm-up
        floor_times = await timed(lambda: http.get("/healthz"), n)
        floor = statistics.median(floor_times)
        query = {"query": "{ jobs(first: 30) { edges { node { id status } } } }"}
        routes: dict[str, Callable[[], Awaitable[httpx.Response]]] = {
            "GET /healthz (floor)": lambda: http.get("/healthz"),
            "POST /jobs": lambda: http.post("/jobs"),
            "GET /jobs/{id}": lambda: http.get(f"/jobs/{job_id}"),
            "GET /jobs?limit=30": lambda: http.get("/jobs", params={"limit": 30}),
            "GET /job-counts": lambda: http.get("/job-counts"),
            "POST /graphql jobs(first:30)": lambda: http.post("/graphql", json=query),
        }
        print(f"{n} sequential requests per route, after 50 warm-up requests")
        report("GET /healthz (floor)", floor_times, floor)
        for name, call in list(routes.items())[1:]:
            report(name, await timed(call, n), floor)
        rate = await throughput(http, n, concurrency)
        print(f"POST /jobs with {concurrency} concurrent clients: {rate:.0f} jobs/s ({n} jobs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    on_jobline_run(lambda base_url: measure(base_url, args.requests, args.concurrency))


if __name__ == "__main__":
    main()
