"""What a request reaches: the services the app's lifespan opens, typed, for both faces.

REST routes take them as a FastAPI dependency (`ServicesDep`); GraphQL resolvers find them
on a typed context (`info.context.services`), made by the same dependency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from starlette.requests import HTTPConnection
from strawberry.fastapi import BaseContext
from strawberry.types import Info

from api.counts import LiveCounts
from api.feed import JobFeed
from api.service import JobService


@dataclass(frozen=True, slots=True)
class Services:
    jobs: JobService
    feed: JobFeed
    counts: LiveCounts


class JoblineApp(FastAPI):
    """The app, holding its services while its lifespan runs (None before and after)."""

    services: Services | None = None


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


def client_address(connection: HTTPConnection) -> str:
    """Who is asking, for per-client limits: the peer's address (behind a proxy, uvicorn's
    --proxy-headers makes it the forwarded one)."""
    return connection.client.host if connection.client is not None else "unknown"


class Context(BaseContext):
    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services

    @property
    def client(self) -> str:
        """The caller's address, over HTTP or a WebSocket alike."""
        return client_address(self.request) if self.request is not None else "unknown"


async def graphql_context(found: ServicesDep) -> Context:
    return Context(found)


#: What GraphQL resolvers are given.
GraphQLInfo = Info[Context, Any]
