"""The FastAPI app: REST, GraphQL + GraphiQL, the page; resources opened in the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from api.allowance import Allowance
from api.board import Board
from api.context import JoblineApp, Services, Unauthorized, graphql_context
from api.counts import LiveCounts
from api.errors import UNAVAILABLE, CallerError, unavailable
from api.feed import JobFeed
from api.graphiql import ASSETS_PATH, VENDOR_DIR, OfflineGraphQLRouter, missing_assets
from api.graphql import schema
from api.limits import BodySizeLimit, BodyTooLarge, RouteLatency
from api.ratelimit import RateLimited
from api.rest import router as rest_router
from api.service import JobService
from api.sse import router as events_router
from projections.jobs.model import ReadModel
from projections.jobs.runner import PROJECTION
from runtime.aio import cancel_all, shielded
from runtime.claims import ClaimStore
from runtime.eventlog import Durability, KafkaEventPublisher, ensure_topics, start_producer
from runtime.groupcommit import Saturated
from runtime.ops import ops_routes, readiness_of
from runtime.processor import group_id
from runtime.settings import Settings
from runtime.store import database, open_store

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
MAX_BODY_BYTES = 64 * 1024
UNSPLASH_IMAGES = "https://images.unsplash.com"


def create_app(settings: Settings, durability: Durability | None = None) -> JoblineApp:
    """The API. With `durability` (under `jobline run`: the embedded log's archive), a
    create is acknowledged only once its event is durable there too."""
    app = JoblineApp(
        title="jobline",
        summary="Event-sourced async jobs: each waits a random delay, then fetches a food photo.",
        version="0.1.0",
        lifespan=_lifespan(settings, durability),
        # One schema per model: a job's serializer only leaves absent fields out, and the
        # documents show its fields rather than the free-form object its signature says.
        separate_input_output_schemas=False,
    )
    app.include_router(events_router)  # before /jobs/{job_id}, which would take /jobs/events
    app.include_router(rest_router)
    app.include_router(
        OfflineGraphQLRouter(
            schema,
            subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
            context_getter=graphql_context,
        ),
        prefix="/graphql",
        include_in_schema=False,  # its contract is the GraphQL schema (schema/api)
    )
    app.mount(
        ASSETS_PATH, StaticFiles(directory=VENDOR_DIR, check_dir=False), name="graphiql-assets"
    )
    app.mount("/static", StaticFiles(directory=STATIC, follow_symlink=False), name="static")
    _page_routes(app, settings)
    _error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Location", "Retry-After"],
        )
    app.add_middleware(RouteLatency)  # the outermost (added last): every answer is timed
    return app


def _lifespan(settings: Settings, durability: Durability | None):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def lifespan(app: JoblineApp) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await ensure_topics(settings)
            client = open_store(settings)
            stack.push_async_callback(client.close)
            db = database(client, settings)
            app.readiness = await stack.enter_async_context(
                readiness_of(
                    settings, "api", projection_group=group_id(settings, PROJECTION), db=db
                )
            )
            stack.callback(setattr, app, "readiness", None)
            producer = await start_producer(settings, f"{settings.topic_prefix}.api")
            stack.push_async_callback(lambda: shielded(producer.stop()))
            feed_client = open_store(settings, bounded=False)
            stack.push_async_callback(feed_client.close)
            model = ReadModel(db)
            views = await model.views()
            if await views.prepare():
                log.warning("read model is of an older shape; the projection rebuilds it")
            await views.raise_counter()
            board = Board(settings.board_jobs)
            jobs = JobService(
                settings=settings,
                publisher=KafkaEventPublisher(producer, settings.topics.jobs),
                model=model,
                keys=ClaimStore(db["idempotency_keys"]),
                board=board,
                durability=durability,
            )
            counts = LiveCounts(jobs.counts)
            feed = JobFeed(
                model,
                database(feed_client, settings),
                queue_size=settings.subscriber_queue,
                on_change=counts.changed,
                board=board,
            )
            tasks = [
                asyncio.create_task(feed.run()),
                asyncio.create_task(counts.run()),
                asyncio.create_task(jobs.intake.run()),
            ]
            stack.push_async_callback(cancel_all, *tasks)
            token = settings.api_token.get_secret_value() if settings.api_token else None
            allowance = Allowance(db["unsplash_quota"], settings)
            stack.push_async_callback(allowance.close)
            app.services = Services(
                jobs=jobs, feed=feed, counts=counts, allowance=allowance, token=token
            )
            stack.callback(setattr, app, "services", None)
            async with asyncio.timeout(15):
                await feed.ready.wait()
            if missing := missing_assets():
                log.warning(
                    "GraphiQL assets missing; run scripts/fetch_graphiql_assets.py",
                    extra={"missing": missing},
                )
            yield

    return lifespan


def _page_routes(app: JoblineApp, settings: Settings) -> None:
    photo_origin = _origin(settings.unsplash_base_url)
    stand_in = photo_origin != "https://api.unsplash.com"
    csp = "; ".join(
        [
            "default-src 'self'",
            f"img-src 'self' {UNSPLASH_IMAGES}{' ' + photo_origin if stand_in else ''}",
            "connect-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": csp})

    @app.get("/job/{job_id}", include_in_schema=False)
    async def job_page(job_id: str) -> Response:
        """One job's view on the page (its data is at /jobs/{id}): the same page, which
        reads the address and shows the job, so the address can be shared and reloaded."""
        return await page()

    @app.get("/config.json", include_in_schema=False)
    async def config() -> dict[str, object]:
        return {
            "photo_source": "stand-in" if stand_in else "unsplash",
            "app_name": settings.app_name,
            "token_required": settings.api_token is not None,
            "delay_s": {
                "min": settings.delay_min_s,
                "max": settings.delay_max_s,
                "step": settings.delay_step_s,
            },
        }

    app.router.routes.extend(ops_routes(lambda: app.readiness))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: Exception) -> JSONResponse:
        """Invalid input, said as every other error is: one `detail` a person can read."""
        assert isinstance(error, RequestValidationError)
        return JSONResponse({"detail": validation_message(error)}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        if isinstance(error.__cause__, BodyTooLarge):  # a body without a length, too long
            return JSONResponse({"detail": f"request body over {MAX_BODY_BYTES} bytes"}, 413)
        if error.status_code == 400 and error.detail == FASTAPI_BODY_UNPARSED:
            # Bytes that are not text: invalid input like malformed JSON (422), one message.
            return JSONResponse({"detail": "body (body): not valid JSON (UTF-8 text)"}, 422)
        if error.status_code == 405:  # every method the path has, not only one route's
            allowed = ", ".join(_methods(app, request))
            return JSONResponse({"detail": error.detail}, 405, headers={"Allow": allowed})
        return await http_exception_handler(request, error)

    @app.exception_handler(CallerError)
    async def caller_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, CallerError)
        headers = {}
        if isinstance(error, RateLimited):
            headers["Retry-After"] = str(error.retry_after_s)
        if isinstance(error, Unauthorized):
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse({"detail": str(error)}, error.status_code, headers=headers)

    @app.exception_handler(Saturated)
    async def saturated(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse(
            {"detail": "too many jobs are being created right now; retry shortly"},
            503,
            headers={"Retry-After": "1"},
        )

    for error_type, _ in UNAVAILABLE:
        app.add_exception_handler(error_type, _unavailable)


#: What FastAPI answers (400) for a body it could not read as JSON text at all.
FASTAPI_BODY_UNPARSED = "There was an error parsing the body"


def _methods(app: FastAPI, request: Request) -> list[str]:
    """The methods of every route whose path matches the request's."""
    methods: set[str] = set()
    for route in app.router.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches(request.scope)
            if match != Match.NONE:
                methods |= route.methods
    return sorted(methods)


def validation_message(error: RequestValidationError) -> str:
    """'limit (query): Input should be less than or equal to 100; …'"""
    parts = []
    for problem in error.errors():
        where, *path = problem.get("loc") or ("request",)
        name = ".".join(str(p) for p in path)
        parts.append(f"{f'{name} ({where})' if name else where}: {problem['msg']}")
    return "; ".join(parts)


async def _unavailable(request: Request, error: Exception) -> JSONResponse:
    """A dependency is down: 503 with a message and Retry-After, never a 500."""
    detail = unavailable(error)
    log.warning(detail, extra={"error": repr(error)})
    return JSONResponse({"detail": detail}, 503, headers={"Retry-After": "2"})
