"""GraphQL: the same service behind a Strawberry schema, with abuse limits."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

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

from api.context import GraphQLInfo
from api.feed import SubscriberTooSlow
from api.service import MAX_CREATE, InvalidRequest
from api.types import GraphQLCounts, GraphQLJob, graphql_counts
from projections.jobs.store import InvalidCursor, encode_cursor
from projections.jobs.view import JobStatus, JobView
from runtime.groupcommit import Saturated

if TYPE_CHECKING:  # the resolvers return the views and counts themselves
    Job = JobView
    JobCounts = Any
else:  # which Strawberry serves through the types made from them (api/types.py)
    Job = GraphQLJob
    JobCounts = GraphQLCounts


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
class CreateJobPayload:
    job: Job


@strawberry.type
class CreateJobsPayload:
    jobs: list[Job] = strawberry.field(description="The jobs created, in creation order.")


@strawberry.type
class Query:
    @strawberry.field(description="A job by id, or null when there is none.")
    async def job(self, info: GraphQLInfo, id: strawberry.ID) -> Job | None:
        return await info.context.services.jobs.get(str(id))

    @strawberry.field(description="How many jobs are in each status.")
    async def job_counts(self, info: GraphQLInfo) -> JobCounts:
        return graphql_counts(await info.context.services.jobs.counts())

    @strawberry.field(description="Jobs, newest first (Relay-style cursor pagination).")
    async def jobs(
        self,
        info: GraphQLInfo,
        first: int | None = 20,
        after: str | None = None,
        status: JobStatus | None = None,
    ) -> JobConnection:
        views, next_cursor = await info.context.services.jobs.page(
            20 if first is None else first, after, status.value if status else None
        )
        edges = [JobEdge(cursor=encode_cursor(v), node=v) for v in views]
        return JobConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=next_cursor is not None, end_cursor=next_cursor),
        )


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create a job; retries with one idempotencyKey get one job.")
    async def create_job(
        self, info: GraphQLInfo, idempotency_key: str | None = None
    ) -> CreateJobPayload:
        return CreateJobPayload(job=await info.context.services.jobs.create(idempotency_key))

    @strawberry.mutation(
        description=f"Create `count` jobs (1 to {MAX_CREATE}) appended in one batch; retries "
        "with one idempotencyKey get the same jobs (as POST /jobs with {count})."
    )
    async def create_jobs(
        self, info: GraphQLInfo, count: int, idempotency_key: str | None = None
    ) -> CreateJobsPayload:
        views = await info.context.services.jobs.create_many(
            count, idempotency_key, {"count": count}
        )
        return CreateJobsPayload(jobs=views)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Every change of every job, or of one job (which first sends its state)."
    )
    async def job_updates(
        self, info: GraphQLInfo, id: strawberry.ID | None = None
    ) -> AsyncGenerator[Job, None]:
        found = info.context.services
        async with found.feed.subscribe(str(id) if id is not None else None) as subscription:
            if id is not None:
                current = await found.jobs.get(str(id))
                if current is not None:
                    yield current
            async for view in subscription:
                yield view

    @strawberry.subscription(
        description="How many jobs are in each status: now, then after changes (coalesced)."
    )
    async def job_counts(self, info: GraphQLInfo) -> AsyncGenerator[JobCounts, None]:
        async for value in info.context.services.counts.subscribe():
            yield graphql_counts(value)


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
