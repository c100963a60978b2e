"""HTTP clients for tests that talk to a jobline API over loopback."""

from __future__ import annotations

import httpx

# uvicorn closes a keep-alive connection after 5 s without a request. A client that reuses
# a connection idle for about that long can send its request just as the server closes it,
# and gets no answer (httpx.ReadError): the HTTP/1.1 keep-alive race, which a busy machine
# makes likely when many requests wait for few connections. A client that drops its idle
# connections well before the server does never reuses one the server may be closing.
KEEPALIVE_EXPIRY_S = 1.0


def api_client(base_url: str, *, timeout: float = 10, connections: int = 100) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, keepalive_expiry=KEEPALIVE_EXPIRY_S)
    return httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits)
