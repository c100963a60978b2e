"""What a request reaches: the services the app's lifespan opens, typed, for both faces.

REST routes take them as a FastAPI dependency (`ServicesDep`); GraphQL resolvers find them
on a typed context (`info.context.services`), made by the same dependency.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from starlette.requests import HTTPConnection
from starlette.types import Receive, Scope, Send
from strawberry.fastapi import BaseContext
from strawberry.types import Info

from api.allowance import Allowance
from api.counts import LiveCounts
from api.errors import CallerError
from api.feed import JobFeed
from api.service import JobService
from api.wire import SERVER_SEND
from runtime.ops import Readiness


@dataclass(frozen=True, slots=True)
class Services:
    jobs: JobService
    feed: JobFeed
    counts: LiveCounts
    allowance: Allowance
    #: The bearer token changes need (JOBLINE_API_TOKEN), if any.
    token: str | None = None


class Unauthorized(CallerError):
    """A change without the API's bearer token."""

    status_code = 401
    code = "UNAUTHENTICATED"

    def __init__(self) -> None:
        super().__init__("this API needs a bearer token for changes: Authorization: Bearer <token>")


def authorized(token: str | None, presented: str | None) -> bool:
    """Whether `presented` (an Authorization value) carries `token`; any will do without one."""
    if token is None:
        return True
    scheme, _, value = (presented or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), token)


class JoblineApp(FastAPI):
    """The app, holding its services while its lifespan runs (None before and after)."""

    services: Services | None = None
    #: The checks of /readyz, while the lifespan runs.
    readiness: Readiness | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The server's own send, before any middleware wraps it: live changes are written
        # past the ASGI layers when they can be (api/wire.py).
        if scope["type"] != "lifespan":
            scope[SERVER_SEND] = send
        await super().__call__(scope, receive, send)


class ServicesUnavailable(RuntimeError):
    pass


async def services(connection: HTTPConnection) -> Services:
    """(A coroutine: FastAPI runs a plain function dependency in a worker thread, a hop per
    request that costs more than the lookup.)"""
    app: JoblineApp = connection.app
    if app.services is None:
        raise ServicesUnavailable("the app is not running")
    return app.services


ServicesDep = Annotated[Services, Depends(services)]


async def require_token(connection: HTTPConnection, found: ServicesDep) -> None:
    """A REST change's dependency: 401 without the API's token (when it has one)."""
    if not authorized(found.token, connection.headers.get("authorization")):
        raise Unauthorized


def client_address(connection: HTTPConnection) -> str:
    """Who is asking, for per-client limits: the peer's address (behind a proxy, uvicorn's
    --proxy-headers makes it the forwarded one)."""
    return connection.client.host if connection.client is not None else "unknown"


class Context(BaseContext):
    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services

    @property
    def authorized(self) -> bool:
        """Whether the caller presented the API's token: in its Authorization header, or (a
        WebSocket, which a browser cannot give headers) in its connection_init payload."""
        params = self.connection_params if isinstance(self.connection_params, dict) else {}
        headers = self.request.headers if self.request is not None else {}
        presented = params.get("Authorization") or headers.get("authorization")
        return authorized(self.services.token, presented)

    @property
    def client(self) -> str:
        """The caller's address, over HTTP or a WebSocket alike."""
        return client_address(self.request) if self.request is not None else "unknown"


async def graphql_context(found: ServicesDep) -> Context:
    return Context(found)


#: What GraphQL resolvers are given.
GraphQLInfo = Info[Context, Any]
