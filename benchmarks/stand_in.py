"""How fast the Unsplash stand-in serves photos, against its own cheapest route in the same run.

Starts `jobline stand-in` on a free loopback port and loads it from this process with
keep-alive clients: first `GET /@adabaker` (a constant HTML page: the floor of one uvicorn
worker here), then, once every catalogue picture has been served (the warm-up, timed apart),
`GET /photos/random?query=food`, then the same with `count=30`. Prints
requests/s, p50 and p99 of each, and the ratio to the floor. Asserts nothing.

    .venv/bin/python benchmarks/stand_in.py [--clients 32] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

import httpx
from loadclient import run_load
from running import ROOT

from jobline.serving import free_port
from standin.images import PICTURES, picture_for

ROUTES = {
    "floor: GET /@adabaker": "/@adabaker",
    "GET /photos/random": "/photos/random?query=food",
    "GET /photos/random count=30": "/photos/random?query=food&count=30",
}
HEADERS = {"Authorization": "Client-ID bench", "Accept-Version": "v1"}


async def wait_up(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as http:
        for _ in range(100):
            try:
                await http.get("/@adabaker")
            except httpx.TransportError:
                await asyncio.sleep(0.1)
            else:
                return
    raise SystemExit("the stand-in did not come up")


async def warm_up(base_url: str) -> None:
    """Until every catalogue picture has been served once (its BlurHash computed): timed
    apart, since a user's stand-in pays it once per process."""
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, headers=HEADERS) as http:
        # A load test is no hourly quota: lift the allowance for this stand-in.
        await http.post("/_stand-in/allowance", json={"limit": 10**9})
        seen: set[str] = set()
        while len(seen) < PICTURES:
            photos = (await http.get("/photos/random?query=food&count=30")).json()
            seen |= {picture_for(photo["id"]) for photo in photos}
    print(f"warm-up: all {PICTURES} pictures hashed in {time.perf_counter() - started:.1f} s")


async def measure(base_url: str, clients: int, seconds: float) -> None:
    await wait_up(base_url)
    await warm_up(base_url)
    floor = None
    for name, path in ROUTES.items():
        load = await run_load(
            base_url, "GET", path, connections=clients, seconds=seconds, headers=HEADERS
        )
        floor = floor or load.rate
        print(
            f"{name:30} {load.rate:7.0f} req/s  x{load.rate / floor:.2f} of the floor   "
            f"p50 {load.percentile(0.5) * 1000:6.1f} ms  p99 {load.percentile(0.99) * 1000:6.1f} ms"
            f"  answers {load.statuses}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen(  # noqa: S603 - our own interpreter and command
        [sys.executable, "-m", "jobline", "stand-in", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        print(f"{args.clients} keep-alive clients, {args.seconds:g} s per route")
        asyncio.run(measure(f"http://127.0.0.1:{port}", args.clients, args.seconds))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
