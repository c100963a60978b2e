"""Lean push clients for benchmarks: many WebSocket or SSE connections in one process.

A thousand connections of the `websockets` library (or httpx streams) spend more CPU in this
process than the server spends sending to them, so a fan-out measured with them measures the
client. These speak the protocols on raw asyncio transports: a WebSocket client sends its
few masked frames and reads unmasked ones (answering pings); an SSE client reads a chunked
event stream. Each message is handed on with the wall-clock time its bytes arrived.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from collections.abc import Callable

#: on_message(arrived: time.time(), payload)
OnMessage = Callable[[float, bytes], None]
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


class _Upgraded(asyncio.Protocol):
    """An HTTP request, its response's head, then the protocol's own bytes."""

    def __init__(self, on_message: OnMessage) -> None:
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        self.head: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buffer = bytearray()
        self._in_head = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        arrived = time.time()
        self.buffer += data
        if self._in_head:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            del self.buffer[: end + 4]
            self._in_head = False
            self.head.set_result(head)
        self.parse(arrived)

    def parse(self, arrived: float) -> None:
        raise NotImplementedError

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.head.done():
            self.head.set_exception(exc or ConnectionError("closed before answering"))
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class WebSocket(_Upgraded):
    def parse(self, arrived: float) -> None:
        buffer = self.buffer
        while len(buffer) >= 2:
            opcode, length, at = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    return
                (length,), at = struct.unpack_from("!H", buffer, 2), 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                (length,), at = struct.unpack_from("!Q", buffer, 2), 10
            if len(buffer) < at + length:
                return
            payload = bytes(buffer[at : at + length])
            del buffer[: at + length]
            if opcode == PING:
                self.send(payload, PONG)
            elif opcode == CLOSE:
                self.close()
            elif opcode != PONG:  # text (the servers here send each message in one frame)
                self.on_message(arrived, payload)

    def send(self, payload: bytes, opcode: int = TEXT) -> None:
        """One masked frame, as a client must send."""
        assert self.transport is not None
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        else:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        repeated = (mask * (length // 4 + 1))[:length]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
            length, "big"
        )
        self.transport.write(head + mask + masked)


class EventStream(_Upgraded):
    """`text/event-stream` in chunked transfer encoding; each event's text is handed on."""

    def __init__(self, on_message: OnMessage) -> None:
        super().__init__(on_message)
        self._events = bytearray()

    def parse(self, arrived: float) -> None:
        buffer = self.buffer
        while True:
            line_end = buffer.find(b"\r\n")
            if line_end < 0:
                break
            size = int(bytes(buffer[:line_end]).split(b";")[0], 16)
            if len(buffer) < line_end + 2 + size + 2:
                break
            self._events += buffer[line_end + 2 : line_end + 2 + size]
            del buffer[: line_end + 2 + size + 2]
            if size == 0:
                self.close()
                break
        while (end := self._events.find(b"\n\n")) >= 0:
            event = bytes(self._events[:end])
            del self._events[: end + 2]
            self.on_message(arrived, event)


async def open_websocket(
    host: str, port: int, path: str, on_message: OnMessage, subprotocol: str | None = None
) -> WebSocket:
    key = base64.b64encode(os.urandom(16)).decode()
    extra = f"Sec-WebSocket-Protocol: {subprotocol}\r\n" if subprotocol else ""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"{extra}\r\n"
    )
    loop = asyncio.get_running_loop()
    _, socket = await loop.create_connection(lambda: WebSocket(on_message), host, port)
    assert socket.transport is not None
    socket.transport.write(request.encode())
    head = await socket.head
    if not head.startswith(b"HTTP/1.1 101"):
        socket.close()
        raise ConnectionError(f"no upgrade: {head.splitlines()[0]!r}")
    return socket


async def open_event_stream(host: str, port: int, path: str, on_message: OnMessage) -> EventStream:
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n"
    loop = asyncio.get_running_loop()
    _, stream = await loop.create_connection(lambda: EventStream(on_message), host, port)
    assert stream.transport is not None
    stream.transport.write(request.encode())
    head = await stream.head
    if not head.startswith(b"HTTP/1.1 200") or b"chunked" not in head.lower():
        stream.close()
        raise ConnectionError(f"no event stream: {head.splitlines()[0]!r}")
    return stream
