"""A lean HTTP/1.1 keep-alive load client for benchmarks.

httpx spends about a millisecond of CPU per request on this machine, so a load generated with
it measures httpx more than the server. This client writes a request and reads the response
(status line, headers, a Content-Length body) on raw asyncio streams, one request in flight
per connection, as a keep-alive browser or load tool does.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)  # seconds, one per 2xx answer
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else 0.0


async def run_load(
    base_url: str,
    method: str,
    path: str,
    *,
    connections: int,
    seconds: float,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> Load:
    """`connections` keep-alive connections send `method path` back to back for `seconds`."""
    host, port, request = request_bytes(base_url, method, path, headers, body)
    load = Load()
    deadline = time.monotonic() + seconds

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                writer.write(request)
                status = await _read_response(reader)
                load.statuses[status] = load.statuses.get(status, 0) + 1
                if 200 <= status < 300:
                    load.latencies.append(time.perf_counter() - started)
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(connection() for _ in range(connections)))
    load.seconds = time.monotonic() - started
    return load


@dataclass(frozen=True)
class Answer:
    latency: float  # seconds
    status: int  # 0: no answer (the connection failed; it is opened again)
    body: bytes
    at: float = 0.0  # when it was sent (time.monotonic())


async def paced(
    base_url: str,
    method: str,
    path: str,
    *,
    rate: float,
    stop: asyncio.Event,
    connections: int = 4,
    body: bytes = b"",
) -> list[Answer]:
    """`method path` at `rate` requests/s (on schedule, whatever the answers' latency, as
    long as `connections` suffice) until `stop` is set; every answer, a failed connection
    counted as one with status 0."""
    host, port, request = request_bytes(base_url, method, path, JSON if body else None, body)
    answers: list[Answer] = []
    slots = iter(range(1 << 62))
    began = time.monotonic()

    async def connection() -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            while not stop.is_set():
                wait = began + next(slots) / rate - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                at = time.monotonic()
                # A new connection when there is none, or when the server let the idle one
                # go (its keep-alive timeout), as any client opens one: not an error.
                if writer is None or reader is None or reader.at_eof():
                    if writer is not None:
                        writer.close()
                    try:
                        reader, writer = await asyncio.open_connection(host, port)
                    except OSError:
                        reader = writer = None
                        answers.append(Answer(0.0, 0, b"", at))
                        continue
                started = time.perf_counter()
                try:
                    writer.write(request)
                    status, answer = await read_response(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    answers.append(Answer(0.0, 0, b"", at))
                    writer.close()
                    reader = writer = None
                    continue
                answers.append(Answer(time.perf_counter() - started, status, answer, at))
        finally:
            if writer is not None:
                writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return answers


JSON = {"Content-Type": "application/json"}


async def _read_response(reader: asyncio.StreamReader) -> int:
    status, _ = await read_response(reader)
    return status


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One response off a keep-alive connection: its status and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    body = await reader.readexactly(length)
    return int(status_line.split()[1]), body


def request_bytes(
    base_url: str,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> tuple[str, int, bytes]:
    """(host, port, the bytes of one request) for `method path` with `body`."""
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return host, port, ("\r\n".join(lines) + "\r\n\r\n").encode() + body
