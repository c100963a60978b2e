"""GraphQL: the same service behind a Strawberry schema, with abuse limits."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, cast

import strawberry
from graphql import ASTValidationRule, GraphQLError
from strawberry.exceptions import StrawberryGraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
)
from strawberry.extensions.field_extension import FieldExtension
from strawberry.extensions.max_aliases import create_validator as aliases_at_most
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.types import ExecutionContext, ExecutionResult

from api.context import GraphQLInfo
from api.errors import CallerError, Conflict, InvalidInput, NotFound, WrongState, unavailable
from api.feed import PositionTooOld, SubscriberTooSlow
from api.query_limits import MAX_COST, MAX_DEPTH, cost_at_most, depth_at_most
from api.ratelimit import RateLimited
from api.service import MAX_CREATE, MAX_PAGE
from api.sharing import SharingExecutor, direct
from api.types import GraphQLCounts, GraphQLJob, Node, graphql_counts
from projections.jobs.store import encode_cursor
from projections.jobs.view import JobStatus, JobView
from runtime.groupcommit import Saturated

DEFAULT_PAGE = 20

if TYPE_CHECKING:  # the resolvers return the views and counts themselves
    Job = JobView
    JobCounts = Any
else:  # which Strawberry serves through the types made from them (api/types.py)
    Job = GraphQLJob
    JobCounts = GraphQLCounts


@strawberry.type(description="A change of a job: the job as it left it, and its cursor.")
class JobUpdate:
    cursor: str = strawberry.field(
        description="Pass as `since` to resume after this change (a live position, not a "
        "page cursor)."
    )
    job: Job | None = strawberry.field(
        description="The job as the change left it. Null only in the first update of a "
        "subscription started without `since` that has no job to show (all jobs, or one "
        "that does not exist yet): that update marks where the stream starts, so a client "
        "can resume from there even before any job changes."
    )

    def share_key(self) -> tuple[str, str | None, int]:
        """What fixes how this update is shown (api/sharing.py): a job's state is fixed by
        its id and version."""
        job = self.job
        return (self.cursor, None, 0) if job is None else (self.cursor, job.id, job.version)


@strawberry.type(description="A job in a list, and the cursor to page on from it.")
class JobEdge:
    cursor: str
    node: Job


@strawberry.type(description="Where a page lies in the whole list (Relay's PageInfo).")
class PageInfo:
    has_next_page: bool = strawberry.field(
        description="Older jobs follow (paging backwards: true whenever `before` was given)."
    )
    has_previous_page: bool = strawberry.field(
        description="Newer jobs precede (paging forwards: true whenever `after` was given)."
    )
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type(description="A page of jobs, newest first (a Relay connection).")
class JobConnection:
    edges: list[JobEdge]
    page_info: PageInfo
    status: strawberry.Private[str | None]

    @strawberry.field(description="How many jobs the whole list holds (with `status`: in it).")
    async def total_count(self, info: GraphQLInfo) -> int:
        counts = await info.context.services.jobs.counts()
        return counts[self.status] if self.status is not None else sum(counts.values())


def connection(
    views: list[JobView], status: str | None, *, newer: bool, older: bool
) -> JobConnection:
    edges = [JobEdge(cursor=encode_cursor(v), node=v) for v in views]
    return JobConnection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=older,
            has_previous_page=newer,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        status=status,
    )


@strawberry.interface(description="Why a mutation did not do what it was asked.")
class MutationError:
    message: str


@strawberry.type(description="The input is wrong (a count out of range, a malformed key).")
class InvalidInputError(MutationError):
    pass


@strawberry.type(description="No job has this id.")
class NotFoundError(MutationError):
    id: strawberry.ID


@strawberry.type(description="The job's state does not allow this.")
class WrongStateError(MutationError):
    status: JobStatus


@strawberry.type(description="The idempotency key was used for a different request.")
class ConflictError(MutationError):
    pass


@strawberry.type(description="Too many jobs created from this address lately.")
class RateLimitedError(MutationError):
    retry_after_seconds: int = strawberry.field(description="Try again after this long.")


def mutation_error(error: CallerError) -> MutationError:
    """The typed GraphQL form of what REST says with a status code."""
    if isinstance(error, NotFound):
        return NotFoundError(message=str(error), id=strawberry.ID(error.job_id))
    if isinstance(error, WrongState):
        return WrongStateError(message=str(error), status=JobStatus(error.status))
    if isinstance(error, RateLimited):
        return RateLimitedError(message=str(error), retry_after_seconds=error.retry_after_s)
    if isinstance(error, Conflict):
        return ConflictError(message=str(error))
    if isinstance(error, InvalidInput):
        return InvalidInputError(message=str(error))
    raise TypeError(f"no GraphQL error for {type(error).__name__}")


ERROR_TYPES = [InvalidInputError, NotFoundError, WrongStateError, ConflictError, RateLimitedError]


@strawberry.type(description="The job created, or (with no job) why not.")
class CreateJobPayload:
    job: Job | None = None
    errors: list[MutationError] = strawberry.field(default_factory=list)


@strawberry.type(description="The jobs created, in creation order, or (with none) why not.")
class CreateJobsPayload:
    jobs: list[Job] = strawberry.field(default_factory=list)
    errors: list[MutationError] = strawberry.field(default_factory=list)


@strawberry.type(description="The job, cancelled, or (with no job) why not.")
class CancelJobPayload:
    job: Job | None = None
    errors: list[MutationError] = strawberry.field(default_factory=list)


@strawberry.type(description="The job, pending its new attempt, or (with no job) why not.")
class RetryJobPayload:
    job: Job | None = None
    errors: list[MutationError] = strawberry.field(default_factory=list)


@strawberry.type
class Query:
    @strawberry.field(description="A job by id, or null when there is none.")
    async def job(self, info: GraphQLInfo, id: strawberry.ID) -> Job | None:
        return await info.context.services.jobs.get(str(id))

    @strawberry.field(description="The object with this id (a job), or null when there is none.")
    async def node(self, info: GraphQLInfo, id: strawberry.ID) -> Node | None:
        view: Any = await info.context.services.jobs.get(str(id))
        return cast(Node | None, view)

    @strawberry.field(description="How many jobs are in each status.")
    async def job_counts(self, info: GraphQLInfo) -> JobCounts:
        return graphql_counts(await info.context.services.jobs.counts())

    @strawberry.field(
        description=f"Jobs, newest first, as a Relay connection: `first` (default "
        f"{DEFAULT_PAGE}) after a cursor, or `last` before one (paging back towards the "
        f"newest); with both `after` and `before`, only the jobs between them. 1 to "
        f"{MAX_PAGE} a page."
    )
    async def jobs(
        self,
        info: GraphQLInfo,
        *,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        status: JobStatus | None = None,
    ) -> JobConnection:
        jobs, wanted = info.context.services.jobs, status.value if status else None
        if first is not None and last is not None:
            raise InvalidInput("pass first (paging down) or last (paging back up), not both")
        if last is not None or (before is not None and first is None and after is None):
            views, newer = await jobs.page_before(
                DEFAULT_PAGE if last is None else last, before, wanted, until=after
            )
            return connection(views, wanted, newer=newer, older=before is not None)
        views, next_cursor = await jobs.page(
            DEFAULT_PAGE if first is None else first, after, wanted, until=before
        )
        return connection(views, wanted, newer=after is not None, older=next_cursor is not None)


class TokenMissing(StrawberryGraphQLError):
    """A change or a subscription without the API's bearer token."""


class Authorized(BasePermission):
    """Changes and live updates need the API's bearer token, when it has one."""

    error_class = TokenMissing
    error_extensions = {"code": "UNAUTHENTICATED"}  # noqa: RUF012 (Strawberry's own attribute)
    message = "this API needs a bearer token: Authorization: Bearer <token> (over a "
    "WebSocket, in the connection_init payload)"

    def has_permission(self, source: Any, info: GraphQLInfo, **kwargs: Any) -> bool:
        return info.context.authorized


def token_needed() -> list[FieldExtension]:
    """The extension a change's field takes (one per field: an extension learns its field)."""
    return [PermissionExtension([Authorized()])]


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Create a job; retries with one idempotencyKey get one job.",
        extensions=token_needed(),
    )
    async def create_job(
        self, info: GraphQLInfo, idempotency_key: str | None = None
    ) -> CreateJobPayload:
        try:
            job = await info.context.services.jobs.create(
                idempotency_key, None, info.context.client
            )
            return CreateJobPayload(job=job)
        except CallerError as error:
            return CreateJobPayload(errors=[mutation_error(error)])

    @strawberry.mutation(
        description=f"Create `count` jobs (1 to {MAX_CREATE}) appended in one batch; retries "
        "with one idempotencyKey get the same jobs (as POST /jobs with {count}).",
        extensions=token_needed(),
    )
    async def create_jobs(
        self, info: GraphQLInfo, count: int, idempotency_key: str | None = None
    ) -> CreateJobsPayload:
        try:
            views = await info.context.services.jobs.create_many(
                count, idempotency_key, {"count": count}, info.context.client
            )
        except CallerError as error:
            return CreateJobsPayload(errors=[mutation_error(error)])
        return CreateJobsPayload(jobs=views)

    @strawberry.mutation(
        description="Cancel a pending job (no photo is fetched). If its JobDue is on the log "
        "first, the cancel loses and the job goes on: its status says what the log decided.",
        extensions=token_needed(),
    )
    async def cancel_job(
        self, info: GraphQLInfo, id: strawberry.ID, idempotency_key: str | None = None
    ) -> CancelJobPayload:
        try:
            job = await info.context.services.jobs.cancel(str(id), idempotency_key)
        except CallerError as error:
            return CancelJobPayload(errors=[mutation_error(error)])
        return CancelJobPayload(job=job)

    @strawberry.mutation(
        description="Try a failed job again: a new wait, then a new fetch; its history keeps "
        "every attempt. Concurrent retries of one failure make one new attempt.",
        extensions=token_needed(),
    )
    async def retry_job(
        self, info: GraphQLInfo, id: strawberry.ID, idempotency_key: str | None = None
    ) -> RetryJobPayload:
        try:
            job = await info.context.services.jobs.retry(str(id), idempotency_key)
        except CallerError as error:
            return RetryJobPayload(errors=[mutation_error(error)])
        return RetryJobPayload(job=job)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Every change of every job (or of one job, which first sends its state), "
        "each with its cursor, after a first update that marks where the stream starts; "
        "with `since` (the last cursor received), first every change "
        "after it, then live: none missed, none twice. A `since` the server can no longer "
        "serve is an error with code POSITION_TOO_OLD: read the jobs again, then subscribe "
        "without it.",
        extensions=token_needed(),
    )
    async def job_updates(
        self, info: GraphQLInfo, id: strawberry.ID | None = None, since: str | None = None
    ) -> AsyncGenerator[JobUpdate, None]:
        found = info.context.services
        job_id = str(id) if id is not None else None
        try:
            async with found.feed.updates(job_id, since) as updates:
                if since is None and updates.start is not None:
                    current = await found.jobs.get(job_id) if job_id is not None else None
                    if current is not None:
                        updates.shown(current)
                    yield JobUpdate(cursor=updates.start, job=current)
                sends = direct()  # (api/sharing.py)
                if sends is not None:  # a change that finds it waiting: written at once
                    updates.write_with(
                        lambda c: sends.send_now(
                            (c.position, c.view.id, c.view.version),  # (its share_key)
                            lambda: JobUpdate(cursor=c.position, job=c.view),
                        )
                    )
                async for change in updates:
                    if change is None:  # (only with idle_s)
                        continue
                    update = JobUpdate(cursor=change.position, job=change.view)
                    if sends is None or not await sends.send(update):
                        yield update
        except PositionTooOld as error:  # a subscription's error is not labelled by extensions
            raise GraphQLError(str(error), extensions={"code": error.code}) from None

    @strawberry.subscription(
        description="How many jobs are in each status: now, then after changes (coalesced).",
        extensions=token_needed(),
    )
    async def job_counts(self, info: GraphQLInfo) -> AsyncGenerator[JobCounts, None]:
        async for value in info.context.services.counts.subscribe():
            yield graphql_counts(value)


# Said to the caller as they are; everything else is masked. `Saturated` says to retry; a
# GraphQLError raised on purpose (a missing token, a position too old) is meant for them.
_CALLER_ERRORS = (CallerError, SubscriberTooSlow, Saturated, GraphQLError)


def _mask(error: GraphQLError) -> bool:
    """Say what the caller got wrong; hide the internals of everything else."""
    original = error.original_error
    return original is not None and not isinstance(original, _CALLER_ERRORS)


def error_code(error: GraphQLError) -> str:
    """The `extensions.code` of an error that is not masked: Apollo Server's codes where
    one fits (so generic clients and tools tell a caller's mistake from a failure), ours
    for the rest."""
    original = error.original_error
    if isinstance(original, CallerError | SubscriberTooSlow):
        return original.code
    if isinstance(original, Saturated):
        return "SERVICE_UNAVAILABLE"
    if error.message.startswith("Syntax Error"):
        return "GRAPHQL_PARSE_FAILED"
    if error.path is None:  # refused before running: validation, limits, variables
        return "GRAPHQL_VALIDATION_FAILED"
    return "BAD_REQUEST"


class LabelledErrors(MaskErrors):
    """Internal errors masked (and logged, by `JoblineSchema.process_errors`), and every
    error labelled with an `extensions.code`."""

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        down = unavailable(error.original_error)
        if down is not None:  # as REST's 503: said, and worth a retry
            said = GraphQLError(down, error.nodes, error.source, error.positions, error.path)
            return _labelled(said, "SERVICE_UNAVAILABLE")
        return _labelled(super().anonymise_error(error), "INTERNAL_SERVER_ERROR")

    def _process_result(self, result: object) -> None:
        """As MaskErrors does, without its check against a runtime Protocol: a tenth of
        the API's CPU when it pushed a change to a thousand subscribers."""
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return [
            self.anonymise_error(e) if self.should_mask_error(e) else _labelled(e, error_code(e))
            for e in errors
        ]


def _labelled(error: GraphQLError, code: str) -> GraphQLError:
    if error.extensions and "code" in error.extensions:
        return error
    return GraphQLError(
        error.message,
        error.nodes,
        error.source,
        error.positions,
        error.path,
        error.original_error,
        {**(error.extensions or {}), "code": code},
    )


MAX_ALIASES = 10
MAX_TOKENS = 1000

# The abuse limits' validation rules, made once: Strawberry's limiter extensions make a new
# rule class per request, which no validation cache can recognise. With the same
# rules every time, a query text seen before (the page asks the same few) is parsed and
# validated once: that was over half of the cost of a `jobs` query.
LIMITS: list[type[ASTValidationRule]] = [
    depth_at_most(MAX_DEPTH),
    cost_at_most(MAX_COST),
    aliases_at_most(MAX_ALIASES),
]
CACHED_DOCUMENTS = 256


class JoblineSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log what went wrong inside (with its traceback); a caller's mistake is the
        caller's to read in the answer, not an error of the server's."""
        super().process_errors([e for e in errors if _mask(e)], execution_context)

    async def execute(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        """As Strawberry executes, with a syntax error labelled too (Strawberry returns it
        before the extensions see the result)."""
        result = await super().execute(*args, **kwargs)
        if result.errors:
            result.errors = [_labelled(e, error_code(e)) for e in result.errors]
        return result


schema = JoblineSchema(
    execution_context_class=SharingExecutor,
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    types=ERROR_TYPES,
    extensions=[
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: AddValidationRules(LIMITS),
        lambda: ParserCache(maxsize=CACHED_DOCUMENTS),
        lambda: ValidationCache(maxsize=CACHED_DOCUMENTS),
        lambda: LabelledErrors(
            should_mask_error=_mask, error_message="internal error; try again later"
        ),
    ],
)
