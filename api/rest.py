"""REST: POST /jobs, GET /jobs, GET /jobs/{id}."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field, model_serializer

from api.service import MAX_CREATE, MAX_PAGE, JobService
from projections.jobs.view import JobView

Status = Literal["pending", "processing", "resolved", "failed"]


class PhotoUrlsOut(BaseModel):
    raw: str
    full: str
    regular: str
    small: str
    thumb: str


class LinkOut(BaseModel):
    html: str


class PhotographerOut(BaseModel):
    name: str
    username: str
    links: LinkOut


class PhotoOut(BaseModel):
    id: str
    urls: PhotoUrlsOut
    alt_description: str | None
    width: int
    height: int
    color: str | None
    blur_hash: str | None
    links: LinkOut
    user: PhotographerOut


class JobEventOut(BaseModel):
    """One event of the job's life, as appended to the log."""

    type: str
    version: int
    event_id: str
    occurred_at: datetime


class JobOut(BaseModel):
    """A job. `result` only when resolved, `error` only when failed; `history` (its events,
    oldest first) on a single job, not in lists."""

    id: str
    status: Status
    seq: int | None = Field(
        None, description="The job's place in creation order (the board's order, newest first)."
    )
    created_at: datetime | None
    due_at: datetime | None
    delay_s: float | None
    updated_at: datetime | None
    version: int
    result: PhotoOut | None = None
    error: str | None = None
    history: list[JobEventOut] | None = None

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: Any) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in ("result", "error", "history"):
            if data.get(name) is None:
                data.pop(name, None)
        return data

    @classmethod
    def of(cls, view: JobView, *, history: bool = False) -> JobOut:
        result = None
        if view.result is not None:
            photo = view.result
            result = PhotoOut(
                id=photo.id,
                urls=PhotoUrlsOut(**_fields(photo.urls)),
                alt_description=photo.alt_description,
                width=photo.width,
                height=photo.height,
                color=photo.color,
                blur_hash=photo.blur_hash,
                links=LinkOut(html=photo.links.html),
                user=PhotographerOut(
                    name=photo.user.name,
                    username=photo.user.username,
                    links=LinkOut(html=photo.user.links.html),
                ),
            )
        return cls(
            id=view.id,
            status=view.status,  # type: ignore[arg-type]
            seq=view.public_seq,
            created_at=view.created_at,
            due_at=view.due_at,
            delay_s=view.delay_s,
            updated_at=view.updated_at,
            version=view.version,
            result=result,
            error=view.error,
            history=[JobEventOut(**_fields(e)) for e in view.history] if history else None,
        )


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


router = APIRouter(tags=["jobs"])


def _service(request: Request) -> JobService:
    service: JobService = request.app.state.jobs
    return service


class CreatedJobs(BaseModel):
    """The jobs one request created (`{"count": n}`), in creation order."""

    jobs: list[JobOut]


@router.post("/jobs", status_code=202, response_model=JobOut | CreatedJobs)
async def create_job(
    request: Request,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    body: Annotated[
        dict[str, Any] | None,
        Body(
            description=f'`{{"count": n}}` (1 to {MAX_CREATE}) creates n jobs in one batch and '
            "answers with all of them; without `count`, one job is created and returned.",
            examples=[{"count": 20}],
        ),
    ] = None,
) -> JobOut | CreatedJobs:
    """Create a job (or `count` jobs). Each waits its random delay, then fetches a photo.
    Retrying with the same `Idempotency-Key` returns the same jobs instead of creating more;
    reusing the key with a different body is refused with 422."""
    service = _service(request)
    if body is None or "count" not in body:
        view = await service.create(idempotency_key, body)
        response.headers["Location"] = f"/jobs/{view.id}"
        return JobOut.of(view, history=True)
    views = await service.create_many(body["count"], idempotency_key, body)
    return CreatedJobs(jobs=[JobOut.of(v, history=True) for v in views])


class JobCounts(BaseModel):
    pending: int
    processing: int
    resolved: int
    failed: int
    total: int


@router.get("/job-counts", response_model=JobCounts)
async def job_counts(request: Request) -> JobCounts:
    """How many jobs are in each status."""
    counts = await _service(request).counts()
    return JobCounts(**counts, total=sum(counts.values()))


@router.get("/jobs", response_model=JobPage)
async def list_jobs(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    status: Status | None = None,
) -> JobPage:
    """Jobs, newest first. Pass `next_cursor` back as `cursor` for the next page."""
    views, next_cursor = await _service(request).page(limit, cursor, status)
    return JobPage(items=[JobOut.of(v) for v in views], next_cursor=next_cursor)


@router.get(
    "/jobs/{job_id}", response_model=JobOut, responses={404: {"description": "No such job"}}
)
async def get_job(request: Request, job_id: str) -> JobOut:
    view = await _service(request).get(job_id)
    if view is None:
        raise HTTPException(404, f"no job with id {job_id!r}")
    return JobOut.of(view, history=True)
