"""Writing a live change to a subscriber's connection at once, past the ASGI layers.

A change goes out to every subscriber: a thousand of them, several changes a second. Through
ASGI each message wakes its subscriber's task, passes the subscription's layers and the
middlewares' send wrappers, then reaches the server's protocol, which frames it and writes
it: in a profile of the API pushing to a thousand GraphQL subscribers the write itself was
half the time, the wake-up and the layers around it the other half. A plain WebSocket
server (the push benchmark's baseline) sends from one loop to every socket.

So when a subscriber is waiting for its next change (it has nothing unread: api/feed.py),
the feed hands the change to a writer from here, which frames the message and writes it to
the connection's transport straight away, from the feed's own loop, the way the server
would. Only when the connection can take it at once: it is open and its transport is not
paused (a slow reader's buffer over the high-water mark). Otherwise the writer writes
nothing and says so, and the change goes the usual way, through the subscriber's task,
which waits for the connection (and drops the subscriber that falls too far behind).

It needs the server's own `send` (the app records it in the scope, api/context.JoblineApp)
and knows uvicorn's protocols: WebSocket over websockets' sans-I/O protocol (uvicorn's
default when `websockets` is installed) and HTTP/1.1 over httptools (an SSE stream's
chunked body). Served any other way, there is no writer (None) and every change goes the
usual way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.types import Scope

#: Where the app keeps the server's own `send` in a connection's scope.
SERVER_SEND = "jobline.server_send"

#: Writes one message at once if the connection can take it now: whether it did.
Writer = Callable[[str], bool]

try:  # (both ship with uvicorn; the servers this app knows how to write past)
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
except ImportError:  # pragma: no cover - a uvicorn without them, or no httptools
    RequestResponseCycle = WebSocketsSansIOProtocol = None  # type: ignore[assignment,misc]


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

    def write(text: str) -> bool:
        if (
            protocol.disconnected
            or protocol.close_sent
            or not protocol.handshake_complete
            or not writable.is_set()
            or transport.is_closing()
        ):
            return False
        conn.send_text(text.encode())  # (raises, writing nothing, if it is not open)
        transport.write(b"".join(conn.data_to_send()))
        return True

    return write


def body_chunks(scope: Scope) -> Writer | None:
    """For an HTTP response streamed in chunks (an SSE stream): a writer of body chunks,
    once the response has started."""
    cycle = _server_of(scope, RequestResponseCycle)
    if cycle is None:
        return None
    transport, flow = cycle.transport, cycle.flow

    def write(text: str) -> bool:
        if (
            cycle.disconnected
            or not cycle.response_started
            or cycle.response_complete
            or not cycle.chunked_encoding
            or flow.write_paused
            or transport.is_closing()
        ):
            return False
        body = text.encode()
        transport.write(b"%x\r\n%b\r\n" % (len(body), body))
        return True

    return write
