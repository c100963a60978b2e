"""What a caller can be told went wrong, the same on both faces.

REST answers each with its status code and a `detail`; a GraphQL mutation returns it in its
payload's `errors`, typed (`InvalidInputError`, `NotFoundError`, `WrongStateError`,
`ConflictError`), so a client can branch on the type instead of parsing a message.
"""

from __future__ import annotations

from typing import ClassVar

from aiokafka.errors import KafkaError
from pymongo.errors import PyMongoError


class CallerError(Exception):
    """A request that cannot be done as asked; the message says why. `status_code` is its
    REST answer, `code` the `extensions.code` of its GraphQL error (Apollo's codes where
    one fits)."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "BAD_REQUEST"


class InvalidInput(CallerError, ValueError):
    """The request itself is wrong (a count out of range, a malformed key or cursor)."""

    status_code = 422
    code = "BAD_USER_INPUT"


class NotFound(CallerError):
    status_code = 404
    code = "NOT_FOUND"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}")
        self.job_id = job_id


class WrongState(CallerError):
    """The job is not in a state that allows this."""

    status_code = 409
    code = "WRONG_STATE"

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status


class Conflict(CallerError):
    """An idempotency key reused for a different request: 422, as the IETF Idempotency-Key
    draft says (the request may be fine; with this key it cannot be done)."""

    status_code = 422
    code = "CONFLICT"


#: What is down when one of these escapes: the answer is 503 (REST) or SERVICE_UNAVAILABLE
#: (GraphQL) with "retry shortly", never an internal error.
UNAVAILABLE: tuple[tuple[type[Exception], str], ...] = (
    (PyMongoError, "store"),
    (KafkaError, "log"),
    (TimeoutError, "log"),  # a publish that did not complete in time
)


def unavailable(error: BaseException | None) -> str | None:
    """'the job store is unavailable; retry shortly', if the error says so."""
    for error_type, what in UNAVAILABLE:
        if isinstance(error, error_type):
            return f"the job {what} is unavailable; retry shortly"
    return None
