"""REST: POST /jobs, GET /jobs, GET /jobs/{id}, POST /jobs/{id}/cancel, POST /jobs/{id}/retry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from pydantic import BaseModel, Field

from api.context import Services, ServicesDep, client_address, require_token
from api.errors import NotFound
from api.service import KEY_PATTERN, MAX_CREATE, MAX_PAGE
from api.types import JobCounts, JobOut, counts_out, job_out
from projections.jobs.store import CURSOR_PATTERN, encode_cursor
from projections.jobs.view import JobStatus, JobView


class JobPage(BaseModel):
    """A page of jobs, newest first."""

    items: list[JobOut]  # type: ignore[valid-type]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next (older) page; null on the last."
    )
    previous_cursor: str | None = Field(
        None, description="Pass as `before` for the previous (newer) page; null on the first."
    )


class ErrorOut(BaseModel):
    """Why a request was not done: every error answer is this (4xx: the request; 503: a
    dependency, with `Retry-After`)."""

    detail: str = Field(examples=["no job with id 'c7463023-…'"])


#: What each error status means, on every route that can answer it.
_ERRORS: dict[int, dict[str, Any]] = {
    401: {
        "description": "This API needs a bearer token for changes (JOBLINE_API_TOKEN is set): "
        "send `Authorization: Bearer <token>`.",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    404: {"description": "No job has this id."},
    409: {"description": "The job's state does not allow this (the detail says its status)."},
    410: {
        "description": "The position to resume after is older than the change history the "
        "store keeps: read the jobs again, then subscribe without one."
    },
    413: {"description": "The request body is over 64 KiB."},
    422: {
        "description": "Invalid input (a parameter, the body, a cursor or an Idempotency-Key), "
        "or an Idempotency-Key used before for a different request."
    },
    429: {
        "description": "Too many jobs created from this address lately: retry after "
        "`Retry-After` seconds (none of this request's jobs was created).",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}},
    },
    503: {
        "description": "The job store or log is unavailable, or too many creations are "
        "waiting: retry after `Retry-After` seconds.",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}},
    },
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of these error statuses."""
    return {status: {"model": ErrorOut, **_ERRORS[status]} for status in statuses}


router = APIRouter(tags=["jobs"])


class CreatedJobs(BaseModel):
    """The jobs one request created (`{"count": n}`), in creation order."""

    jobs: list[JobOut]  # type: ignore[valid-type]


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobOut | CreatedJobs,
    responses=errors(401, 413, 422, 429, 503),
    dependencies=[Depends(require_token)],
)
async def create_job(
    found: ServicesDep,
    request: Request,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            pattern=KEY_PATTERN,
            description="Makes a repeat of this request (its answer lost, say) return the "
            "same jobs instead of creating more.",
        ),
    ] = None,
    body: Annotated[
        dict[str, Any] | None,
        Body(
            description=f'`{{"count": n}}` (1 to {MAX_CREATE}) creates n jobs in one batch and '
            "answers with all of them; without `count`, one job is created and returned.",
            examples=[{"count": 20}],
        ),
    ] = None,
) -> BaseModel:
    """Create a job (or `count` jobs). Each waits its random delay, then fetches a photo.
    Retrying with the same `Idempotency-Key` returns the same jobs instead of creating more;
    reusing the key with a different body is refused with 422."""
    service, client = found.jobs, client_address(request)
    if body is None or "count" not in body:
        view = await service.create(idempotency_key, body, client)
        response.headers["Location"] = f"/jobs/{view.id}"
        return job_out(view, history=True)
    views = await service.create_many(body["count"], idempotency_key, body, client)
    return CreatedJobs(jobs=[job_out(v, history=True) for v in views])


@router.get("/job-counts", response_model=JobCounts, responses=errors(503))
async def job_counts(found: ServicesDep) -> BaseModel:
    """How many jobs are in each status."""
    counts = await found.jobs.counts()
    return counts_out(counts)


@router.get("/jobs", response_model=JobPage, responses=errors(422, 503))
async def list_jobs(
    found: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    cursor: Annotated[
        str | None,
        Query(pattern=CURSOR_PATTERN, description="Jobs older than this one (`next_cursor`)."),
    ] = None,
    before: Annotated[
        str | None,
        Query(
            pattern=CURSOR_PATTERN,
            description="Jobs newer than this one (`previous_cursor`). With `cursor` too: "
            "the jobs between the two, paging down from `cursor`.",
        ),
    ] = None,
    status: JobStatus | None = None,
) -> JobPage:
    """Jobs, newest first. Pass `next_cursor` back as `cursor` for the next (older) page, or
    `previous_cursor` as `before` for the previous (newer) one."""
    if before is not None and cursor is None:
        views, newer = await found.jobs.page_before(limit, before, status)
        return await _page(found, views, older=bool(views), newer=newer)
    views, next_cursor = await found.jobs.page(limit, cursor, status, until=before)
    return await _page(found, views, older=next_cursor is not None, newer=cursor is not None)


async def _page(found: Services, views: list[JobView], *, older: bool, newer: bool) -> JobPage:
    processing = any(v.status == JobStatus.PROCESSING for v in views)
    waiting = await found.allowance.waiting_until() if processing else None
    return JobPage(
        items=[job_out(v, waiting_until=waiting) for v in views],
        next_cursor=encode_cursor(views[-1]) if older and views else None,
        previous_cursor=encode_cursor(views[0]) if newer and views else None,
    )


#: The Idempotency-Key header, as the commands on a job take it.
CommandKey = Annotated[
    str | None,
    Header(
        pattern=KEY_PATTERN,
        description="Makes a repeat of this request (its answer lost, say) get the job as "
        "it is now instead of an error for the state the first request changed.",
    ),
]


@router.post(
    "/jobs/{job_id}/cancel",
    status_code=202,
    response_model=JobOut,
    responses=errors(401, 404, 409, 413, 422, 503),
    dependencies=[Depends(require_token)],
)
async def cancel_job(
    found: ServicesDep, job_id: str, idempotency_key: CommandKey = None
) -> BaseModel:
    """Cancel a pending job: no photo is fetched for it. If its time came first (its JobDue is
    on the log before the cancel), the cancel loses and the job goes on: the log decides, and
    the job's status says what it decided."""
    return job_out(await found.jobs.cancel(job_id, idempotency_key), history=True)


@router.post(
    "/jobs/{job_id}/retry",
    status_code=202,
    response_model=JobOut,
    responses=errors(401, 404, 409, 413, 422, 503),
    dependencies=[Depends(require_token)],
)
async def retry_job(
    found: ServicesDep, job_id: str, idempotency_key: CommandKey = None
) -> BaseModel:
    """Try a failed job again: it waits a new random delay, then fetches a photo afresh. Its
    history keeps every attempt. Concurrent retries of one failure make one new attempt."""
    return job_out(await found.jobs.retry(job_id, idempotency_key), history=True)


@router.get("/jobs/{job_id}", response_model=JobOut, responses=errors(404, 422, 503))
async def get_job(found: ServicesDep, job_id: str) -> BaseModel:
    """The job, with its history."""
    view = await found.jobs.get(job_id)
    if view is None:
        raise NotFound(job_id)
    return job_out(view, history=True, waiting_until=await found.allowance.waiting_until())
