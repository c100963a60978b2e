"""What the fetcher decides from Unsplash's answers. Pure: no I/O, no clock of its own."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from random import Random
from typing import Any

from schema import JobDue, JobFailed, JobResolved, Photo, attempt_event_id, photo_from_dict


@dataclass(frozen=True, slots=True)
class Retry:
    """A transient failure: try again, after a backoff; or, for a rate limit, once the
    allowance's window lets it (a rate limit never counts as a failed attempt)."""

    reason: str
    rate_limited: bool = False


@dataclass(frozen=True, slots=True)
class Fail:
    """A permanent failure (retrying would get the same answer): the job fails with this
    reason, said for a person."""

    reason: str


Answer = list[Photo] | Retry | Fail

#: The body of an answer that was not JSON.
NOT_JSON = object()


def interpret(status: int, headers: Mapping[str, str], body: Any) -> Answer:
    """Turn one HTTP answer of GET /photos/random (one photo, or a list with `count`) into
    photos, a retry or a failure."""
    if status == 200:
        return _photos(body)
    if status == 429 or (status == 403 and _rate_limit(headers, body)):
        return Retry("Unsplash's rate limit was reached", rate_limited=True)
    if status >= 500:
        return Retry(f"Unsplash answered {status} ({_message(body)})")
    if status == 401:
        return Fail("Unsplash refused the access key (401): check JOBLINE_UNSPLASH_ACCESS_KEY")
    return Fail(f"Unsplash answered {status} ({_message(body)})")


def unreachable(error: Exception, timeout_s: float) -> Retry:
    """A request that got no answer: a timeout or a connection that failed."""
    if isinstance(error, TimeoutError) or "Timeout" in type(error).__name__:
        return Retry(f"Unsplash did not answer within {timeout_s:g} s")
    return Retry(f"Unsplash could not be reached ({type(error).__name__})")


def _rate_limit(headers: Mapping[str, str], body: Any) -> bool:
    return remaining(headers) == 0 or "Rate Limit Exceeded" in _message(body)


def _photos(body: Any) -> Answer:
    if body is NOT_JSON:
        return Fail("Unsplash answered 200 with a body that is not JSON")
    photos, problems = [], []
    for item in body if isinstance(body, list) else [body]:
        try:
            photos.append(photo_from_dict(item))
        except (KeyError, TypeError, ValueError) as error:
            problems.append(f"{type(error).__name__}: {error}")
    if photos:  # the others are left unused
        return photos
    problem = problems[0] if problems else "no photo in the list"
    return Fail(f"Unsplash sent a photo in an unexpected shape ({problem})")


def _message(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        return "; ".join(str(e) for e in body["errors"])
    return "no details"


def remaining(headers: Mapping[str, str]) -> int | None:
    """What is left of the allowance, if the answer says."""
    return _count(headers.get("x-ratelimit-remaining"))


def allowance(headers: Mapping[str, str]) -> int | None:
    """The allowance per window, if the answer says."""
    return _count(headers.get("x-ratelimit-limit"))


def _count(value: str | None) -> int | None:
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


def backoff_s(attempt: int, base_s: float, cap_s: float, rng: Random) -> float:
    """How long to wait before attempt `attempt + 1`: exponential backoff with full jitter
    (a uniform draw up to base·2^(attempt-1), capped), so that fetchers that failed
    together do not retry together."""
    return rng.uniform(0, min(cap_s, base_s * 2 ** (attempt - 1)))


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
