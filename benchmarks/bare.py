"""The baselines of the intake and push benchmarks: a bare FastAPI app, served by uvicorn
with jobline's own server settings (jobline/serving.py), in its own process.

- `POST /jobs` answers a constant.
- `GET /ws` (WebSocket) and `GET /events` (SSE) hold connections open; `POST /broadcast`
  (`{"rate": R, "seconds": S, "message": TEXT}`) then sends, R times a second for S seconds,
  one pre-serialized message to every socket and stream: TEXT with `"sent"` (time.time() as
  it went out) and `"n"` (its number) added.

    .venv/bin/python benchmarks/bare.py PORT
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from running import EVENT_LOOP

from jobline.serving import AppServer, loop_factory

app = FastAPI()
CONSTANT = {"id": "00000000-0000-0000-0000-000000000000", "status": "pending"}


@app.post("/jobs", status_code=202)
async def create() -> dict[str, str]:
    return CONSTANT


@app.get("/healthz")
async def health() -> dict[str, str]:
    return {"status": "ok"}


SOCKETS: set[WebSocket] = set()
STREAMS: set[asyncio.Queue[str]] = set()
BROADCASTS: set[asyncio.Task[None]] = set()


@app.websocket("/ws")
async def socket(websocket: WebSocket) -> None:
    await websocket.accept()
    SOCKETS.add(websocket)
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        pass
    finally:
        SOCKETS.discard(websocket)


@app.get("/events")
async def events() -> StreamingResponse:
    queue: asyncio.Queue[str] = asyncio.Queue()
    STREAMS.add(queue)

    async def stream() -> AsyncIterator[str]:
        try:
            yield "retry: 2000\n\n"
            while True:
                yield await queue.get()
        finally:
            STREAMS.discard(queue)

    return StreamingResponse(stream(), media_type="text/event-stream")


@app.post("/broadcast", status_code=202)
async def broadcast(order: dict[str, Any]) -> dict[str, int]:
    task = asyncio.create_task(_broadcast(order["rate"], order["seconds"], order["message"]))
    BROADCASTS.add(task)
    task.add_done_callback(BROADCASTS.discard)
    return {"sockets": len(SOCKETS), "streams": len(STREAMS)}


async def _broadcast(rate: float, seconds: float, message: str) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    body = json.loads(message)
    for n in range(1, int(rate * seconds) + 1):
        await asyncio.sleep(max(0.0, began + n / rate - loop.time()))
        text = json.dumps(body | {"sent": time.time(), "n": n})
        event = f"event: job\ndata: {text}\n\n"
        for queue in list(STREAMS):
            queue.put_nowait(event)
        for websocket in list(SOCKETS):
            await websocket.send_text(text)


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
    """On the event loop jobline's processes run on in the same benchmark."""
    new_loop = loop_factory(EVENT_LOOP)
    with asyncio.Runner(loop_factory=new_loop) as running:
        running.run(serve(int(sys.argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
