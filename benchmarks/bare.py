"""The baseline of the intake benchmark: a bare FastAPI app answering a constant, served by
uvicorn with jobline's own server settings (jobline/serving.py), in its own process.

    .venv/bin/python benchmarks/bare.py PORT
"""

from __future__ import annotations

import asyncio
import signal
import sys

from fastapi import FastAPI

from jobline.serving import AppServer

app = FastAPI()
CONSTANT = {"id": "00000000-0000-0000-0000-000000000000", "status": "pending"}


@app.post("/jobs", status_code=202)
async def create() -> dict[str, str]:
    return CONSTANT


@app.get("/healthz")
async def health() -> dict[str, str]:
    return {"status": "ok"}


async def serve(port: int) -> None:
    """Serve until SIGINT or SIGTERM, then stop as uvicorn does (no cancelled lifespan)."""
    server = AppServer(app, "127.0.0.1", port)
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await server.stop()


def main() -> int:
    asyncio.run(serve(int(sys.argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
