"""What the fetcher decides from Unsplash's answers. Pure: no I/O, no clock of its own."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schema import JobDue, JobFailed, JobResolved, Photo, attempt_event_id, photo_from_dict


@dataclass(frozen=True, slots=True)
class Retry:
    """A transient failure: try again after `after_s` (unless out of attempts)."""

    reason: str
    after_s: float


@dataclass(frozen=True, slots=True)
class Fail:
    """A permanent failure: the job fails with this reason."""

    reason: str


Answer = Photo | Retry | Fail


def interpret(
    status: int, headers: Mapping[str, str], body: Any, backoff_s: float, ratelimit_pause_s: float
) -> Answer:
    """Turn one HTTP answer of GET /photos/random into a photo, a retry or a failure."""
    if status == 200:
        return _photo(body)
    if status == 429 or (status == 403 and remaining(headers) == 0):
        return Retry("Unsplash rate limit reached", ratelimit_pause_s)
    if status >= 500:
        return Retry(f"Unsplash answered {status}", backoff_s)
    if status == 401:
        return Fail("Unsplash refused the access key (401): check JOBLINE_UNSPLASH_ACCESS_KEY")
    return Fail(f"Unsplash answered {status}: {_message(body)}")


def _photo(body: Any) -> Answer:
    if isinstance(body, list) and body:
        body = body[0]
    try:
        return photo_from_dict(body)
    except (KeyError, TypeError, ValueError) as error:
        return Fail(f"Unsplash sent a photo in an unexpected shape ({error!r})")


def _message(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        return "; ".join(str(e) for e in body["errors"])
    return "no details"


def remaining(headers: Mapping[str, str]) -> int | None:
    value = headers.get("x-ratelimit-remaining")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def retry_delay(answer: Retry, attempt: int) -> float:
    """Exponential backoff for server errors; rate-limit pauses are taken as they are."""
    if answer.reason.endswith("rate limit reached"):
        return answer.after_s
    return float(answer.after_s * 2 ** (attempt - 1))


#: A job's first outcome follows its first JobDue (version 2).
FIRST_OUTCOME_VERSION = 3


def outcome(due: JobDue, answer: Photo | str, now: datetime) -> JobResolved | JobFailed:
    """The attempt's outcome, the job's next version: resolved with the photo, or failed with
    a reason. One id per attempt, whichever it is."""
    job_id, version = due.job_id, due.version + 1
    event_id = attempt_event_id(job_id, "outcome", version, FIRST_OUTCOME_VERSION)
    if isinstance(answer, Photo):
        return JobResolved(
            event_id=event_id, job_id=job_id, version=version, occurred_at=now, photo=answer
        )
    return JobFailed(
        event_id=event_id, job_id=job_id, version=version, occurred_at=now, reason=answer
    )
