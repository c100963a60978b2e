"""GraphQL: the same service behind a Strawberry schema, with abuse limits."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from graphql import ASTValidationRule, GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as aliases_at_most
from strawberry.extensions.query_depth_limiter import create_validator as depth_at_most
from strawberry.types import Info

from api.counts import LiveCounts
from api.feed import JobFeed, SubscriberTooSlow
from api.service import MAX_CREATE, InvalidRequest, JobService
from projections.jobs.store import InvalidCursor, encode_cursor
from projections.jobs.view import JobView
from runtime.groupcommit import Saturated
from schema import Photo as PhotoEvent


@strawberry.enum
class JobStatus(Enum):
    PENDING = "pending"
    PROCESSING = "processing"
    RESOLVED = "resolved"
    FAILED = "failed"


@strawberry.type
class PhotoUrls:
    raw: str
    full: str
    regular: str
    small: str
    thumb: str


@strawberry.type
class Link:
    html: str


@strawberry.type
class Photographer:
    name: str
    username: str
    links: Link


@strawberry.type
class Photo:
    id: strawberry.ID
    urls: PhotoUrls
    alt_description: str | None
    width: int
    height: int
    color: str | None
    blur_hash: str | None
    links: Link
    user: Photographer

    @classmethod
    def of(cls, p: PhotoEvent) -> Photo:
        return cls(
            id=strawberry.ID(p.id),
            urls=PhotoUrls(
                raw=p.urls.raw,
                full=p.urls.full,
                regular=p.urls.regular,
                small=p.urls.small,
                thumb=p.urls.thumb,
            ),
            alt_description=p.alt_description,
            width=p.width,
            height=p.height,
            color=p.color,
            blur_hash=p.blur_hash,
            links=Link(html=p.links.html),
            user=Photographer(
                name=p.user.name, username=p.user.username, links=Link(html=p.user.links.html)
            ),
        )


@strawberry.type(description="One event of a job's life, as appended to the log.")
class JobEvent:
    type: str = strawberry.field(description="JobRequested, JobDue, JobResolved or JobFailed.")
    version: int
    event_id: strawberry.ID
    occurred_at: datetime


@strawberry.type
class Job:
    id: strawberry.ID
    status: JobStatus
    seq: int | None = strawberry.field(
        description="The job's place in creation order (the board's order, newest first)."
    )
    created_at: datetime | None
    due_at: datetime | None
    delay_seconds: float | None = strawberry.field(description="The wait, decided at creation.")
    updated_at: datetime | None
    version: int
    result: Photo | None
    error: str | None
    history: list[JobEvent] = strawberry.field(description="The job's events, oldest first.")

    @classmethod
    def of(cls, view: JobView) -> Job:
        return cls(
            id=strawberry.ID(view.id),
            status=JobStatus(view.status),
            seq=view.public_seq,
            created_at=view.created_at,
            due_at=view.due_at,
            delay_seconds=view.delay_s,
            updated_at=view.updated_at,
            version=view.version,
            result=Photo.of(view.result) if view.result else None,
            error=view.error,
            history=[
                JobEvent(
                    type=e.type,
                    version=e.version,
                    event_id=strawberry.ID(e.event_id),
                    occurred_at=e.occurred_at,
                )
                for e in view.history
            ],
        )


@strawberry.type
class JobEdge:
    cursor: str
    node: Job


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class JobConnection:
    edges: list[JobEdge]
    page_info: PageInfo


@strawberry.type
class JobCounts:
    pending: int
    processing: int
    resolved: int
    failed: int
    total: int

    @classmethod
    def of(cls, counts: dict[str, int]) -> JobCounts:
        return cls(**counts, total=sum(counts.values()))


@strawberry.type
class CreateJobPayload:
    job: Job


@strawberry.type
class CreateJobsPayload:
    jobs: list[Job] = strawberry.field(description="The jobs created, in creation order.")


def _service(info: Info[Any, None]) -> JobService:
    service: JobService = info.context["request"].app.state.jobs
    return service


@strawberry.type
class Query:
    @strawberry.field(description="A job by id, or null when there is none.")
    async def job(self, info: Info[Any, None], id: strawberry.ID) -> Job | None:
        view = await _service(info).get(str(id))
        return Job.of(view) if view else None

    @strawberry.field(description="How many jobs are in each status.")
    async def job_counts(self, info: Info[Any, None]) -> JobCounts:
        return JobCounts.of(await _service(info).counts())

    @strawberry.field(description="Jobs, newest first (Relay-style cursor pagination).")
    async def jobs(
        self,
        info: Info[Any, None],
        first: int | None = 20,
        after: str | None = None,
        status: JobStatus | None = None,
    ) -> JobConnection:
        views, next_cursor = await _service(info).page(
            20 if first is None else first, after, status.value if status else None
        )
        edges = [JobEdge(cursor=encode_cursor(v), node=Job.of(v)) for v in views]
        return JobConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=next_cursor is not None, end_cursor=next_cursor),
        )


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create a job; retries with one idempotencyKey get one job.")
    async def create_job(
        self, info: Info[Any, None], idempotency_key: str | None = None
    ) -> CreateJobPayload:
        return CreateJobPayload(job=Job.of(await _service(info).create(idempotency_key)))

    @strawberry.mutation(
        description=f"Create `count` jobs (1 to {MAX_CREATE}) appended in one batch; retries "
        "with one idempotencyKey get the same jobs (as POST /jobs with {count})."
    )
    async def create_jobs(
        self, info: Info[Any, None], count: int, idempotency_key: str | None = None
    ) -> CreateJobsPayload:
        views = await _service(info).create_many(count, idempotency_key, {"count": count})
        return CreateJobsPayload(jobs=[Job.of(v) for v in views])


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Every change of every job, or of one job (which first sends its state)."
    )
    async def job_updates(
        self, info: Info[Any, None], id: strawberry.ID | None = None
    ) -> AsyncGenerator[Job, None]:
        app = _request_app(info)
        feed: JobFeed = app.state.feed
        async with feed.subscribe(str(id) if id is not None else None) as subscription:
            if id is not None:
                current = await app.state.jobs.get(str(id))
                if current is not None:
                    yield Job.of(current)
            async for view in subscription:
                yield Job.of(view)

    @strawberry.subscription(
        description="How many jobs are in each status: now, then after changes (coalesced)."
    )
    async def job_counts(self, info: Info[Any, None]) -> AsyncGenerator[JobCounts, None]:
        counts: LiveCounts = _request_app(info).state.counts
        async for value in counts.subscribe():
            yield JobCounts.of(value)


def _request_app(info: Info[Any, None]) -> Any:
    return info.context["request"].app


# Said to the caller as they are; everything else is masked. `Saturated` says to retry.
_CALLER_ERRORS = (InvalidRequest, InvalidCursor, SubscriberTooSlow, Saturated)


def _mask(error: GraphQLError) -> bool:
    """Say what the caller got wrong; hide the internals of everything else."""
    original = error.original_error
    return original is not None and not isinstance(original, _CALLER_ERRORS)


# The abuse limits' validation rules, made once: QueryDepthLimiter and MaxAliasesLimiter
# make a new rule class per request, which no validation cache can recognise. With the same
# rules every time, a query text seen before (the page asks the same few) is parsed and
# validated once: that was over half of the cost of a `jobs` query.
LIMITS: list[type[ASTValidationRule]] = [depth_at_most(8, None, None), aliases_at_most(10)]
CACHED_DOCUMENTS = 256

schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=[
        lambda: MaxTokensLimiter(max_token_count=1000),
        lambda: AddValidationRules(LIMITS),
        lambda: ParserCache(maxsize=CACHED_DOCUMENTS),
        lambda: ValidationCache(maxsize=CACHED_DOCUMENTS),
        lambda: MaskErrors(
            should_mask_error=_mask, error_message="internal error; try again later"
        ),
    ],
)
