"""Writing a live change to a subscriber's connection at once, past the ASGI layers.

A change goes out to every subscriber: a thousand of them, several changes a second. Through
ASGI each message wakes its subscriber's task, passes the subscription's layers and the
middlewares' send wrappers, then reaches the server's protocol, which frames it and writes
it: in a profile of the API pushing to a thousand GraphQL subscribers the write itself was
half the time, the wake-up and the layers around it the other half. A plain WebSocket
server (the push benchmark's baseline) sends from one loop to every socket.

So when a subscriber is waiting for its next change (it has nothing unread: api/feed.py),
the feed hands the change to a writer from here, which writes it to the connection's
transport the way the server would, without waking anyone: every message a connection
takes in one turn of the event loop (the changes of one batch from the change stream) at
its end, framed and written together. Only when the connection can take it at once: it is
open and its transport is not paused (a slow reader's buffer over the high-water mark).
Otherwise the writer takes nothing and says so, and the change goes the usual way, through
the subscriber's task, which waits for the connection (and drops the subscriber that falls
too far behind); the messages taken before it are written first (the end of the turn comes
before the task's).

It needs the server's own `send` (the app records it in the scope, api/context.JoblineApp)
and knows uvicorn's protocols: WebSocket over websockets' sans-I/O protocol (uvicorn's
default when `websockets` is installed) and HTTP/1.1 over httptools (an SSE stream's
chunked body). Served any other way, there is no writer (None) and every change goes the
usual way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary

from starlette.types import Scope

#: Where the app keeps the server's own `send` in a connection's scope.
SERVER_SEND = "jobline.server_send"

#: Takes one message to write at the end of this turn of the event loop, if the connection
#: can take it now: whether it did.
Writer = Callable[[str], bool]

log = logging.getLogger(__name__)

try:  # (both ship with uvicorn; the servers this app knows how to write past)
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from websockets.protocol import State

    OPEN = State.OPEN  # (a peer's close frame read: CLOSING, and nothing more to send)
except ImportError:  # pragma: no cover - a uvicorn without them, or no httptools
    RequestResponseCycle = WebSocketsSansIOProtocol = None  # type: ignore[assignment,misc]


class _Batched:
    """The messages a connection takes in one turn of the event loop, written together at
    its end: the change stream hands the feed its changes in batches, and one write per
    connection for a batch costs about what one write for each change did (the write, a
    system call, is most of the cost)."""

    __slots__ = ("_is_open", "_takes", "_texts", "_write_all")

    def __init__(
        self,
        takes: Callable[[], bool],
        is_open: Callable[[], bool],
        write_all: Callable[[list[str]], None],
    ) -> None:
        self._takes, self._is_open, self._write_all = takes, is_open, write_all
        self._texts: list[str] = []

    def __call__(self, text: str) -> bool:
        texts = self._texts
        if not texts:  # (once it takes one, it takes the rest of the turn's: only the
            if not self._takes():  # write at its end, or the peer's, changes that)
                return False
            _flush_soon(self)
        texts.append(text)
        return True

    def flush(self) -> None:
        texts, self._texts = self._texts, []
        if self._is_open():  # (else it closed meanwhile: no one to tell)
            self._write_all(texts)


_due: WeakKeyDictionary[asyncio.AbstractEventLoop, list[_Batched]] = WeakKeyDictionary()


def _flush_soon(batch: _Batched) -> None:
    loop = asyncio.get_running_loop()
    due = _due.get(loop)
    if due is None:
        due = _due[loop] = []
        loop.call_soon(_flush, loop)
    due.append(batch)


def _flush(loop: asyncio.AbstractEventLoop) -> None:
    for batch in _due.pop(loop, ()):
        try:
            batch.flush()
        except Exception:  # (one connection's failure is not the others')
            log.warning("could not write to a subscriber's connection", exc_info=True)


def _server_of(scope: Scope, kind: Any) -> Any:
    """The server object behind this connection's `send`, if it is of `kind`."""
    if kind is None:
        return None
    server = getattr(scope.get(SERVER_SEND), "__self__", None)
    return server if isinstance(server, kind) else None


def text_messages(scope: Scope) -> Writer | None:
    """For a WebSocket: a writer of text messages (one frame each)."""
    protocol = _server_of(scope, WebSocketsSansIOProtocol)
    if protocol is None:
        return None
    conn, transport, writable = protocol.conn, protocol.transport, protocol.writable

    def is_open() -> bool:
        return conn.state is OPEN and not (
            protocol.disconnected
            or protocol.close_sent
            or not protocol.handshake_complete
            or transport.is_closing()
        )

    def write_all(texts: list[str]) -> None:
        for text in texts:
            conn.send_text(text.encode())
        transport.write(b"".join(conn.data_to_send()))

    return _Batched(lambda: writable.is_set() and is_open(), is_open, write_all)


def body_chunks(scope: Scope) -> Writer | None:
    """For an HTTP response streamed in chunks (an SSE stream): a writer of its body, once
    the response has started."""
    cycle = _server_of(scope, RequestResponseCycle)
    if cycle is None:
        return None
    transport, flow = cycle.transport, cycle.flow

    def is_open() -> bool:
        return (
            cycle.response_started
            and cycle.chunked_encoding
            and not (cycle.disconnected or cycle.response_complete or transport.is_closing())
        )

    def write_all(texts: list[str]) -> None:
        body = "".join(texts).encode()
        transport.write(b"%x\r\n%b\r\n" % (len(body), body))

    return _Batched(lambda: not flow.write_paused and is_open(), is_open, write_all)
