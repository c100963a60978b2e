"""Server-Sent Events: the live job changes for clients that cannot speak WebSocket.

`GET /jobs/events` (`?id=` for one job) streams each change as an event `job` whose `id:` is
its position and whose data is the job as REST shows it. A client that reconnects sends the
last id it got (`Last-Event-ID`, which browsers' EventSource send themselves; or `?since=`)
and gets every change after it, then live, none twice (api/feed.py). A stream started without
one first sends where it starts: an id with no data (EventSource remembers it and fires no
event), or for `?id=` the job's state. Comments keep idle
connections open; a client that cannot keep up gets an event `error` saying so, and the
stream ends.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack
from datetime import datetime
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from pymongo.errors import PyMongoError
from starlette.types import Receive, Scope, Send

from api.context import ServicesDep
from api.errors import CallerError
from api.feed import Change, PositionTooOld, SubscriberTooSlow
from api.rest import errors
from api.sharing import once, shared
from api.types import job_out
from api.wire import body_chunks
from projections.jobs.view import JobStatus

KEEP_ALIVE_S = 15.0
RECONNECT_MS = 2000

router = APIRouter(tags=["jobs"])


def _data(component: str) -> dict[str, Any]:
    """An event's `data`: JSON text of this component's shape."""
    return {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {"$ref": f"#/components/schemas/{component}"},
    }


#: One event of the stream (OpenAPI 3.1: the schema of a text/event-stream describes each
#: event, as its fields). An `id` alone (where the stream starts) dispatches no event.
EVENT_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {
            "title": "JobEvent",
            "type": "object",
            "properties": {
                "event": {"const": "job"},
                "id": {"type": "string"},
                "data": _data("JobOut"),
            },
            "required": ["event", "id", "data"],
        },
        {
            "title": "ErrorEvent",
            "type": "object",
            "properties": {"event": {"const": "error"}, "data": _data("ErrorOut")},
            "required": ["event", "data"],
        },
    ]
}


@router.get(
    "/jobs/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "An event stream (text/event-stream): `event: job`, `id:` the "
            "change's position, `data:` the job; first an `id:` alone (where the stream "
            "starts); `event: error` (`data:` a detail and a code: SUBSCRIBER_TOO_SLOW, "
            "POSITION_TOO_OLD, SERVICE_UNAVAILABLE) before it ends.",
            "content": {"text/event-stream": {"schema": EVENT_SCHEMA}},
        },
        **errors(410, 422, 503),
    },
)
async def job_events(
    request: Request,
    found: ServicesDep,
    id: Annotated[str | None, Query(max_length=200, description="Only this job.")] = None,
    since: Annotated[
        str | None, Query(max_length=2000, description="Resume after this position.")
    ] = None,
    last_event_id: Annotated[str | None, Header(max_length=2000)] = None,
) -> StreamingResponse:
    """Every change of every job (or of one job, which first sends its state), live."""
    resume = last_event_id or since
    stack = AsyncExitStack()
    updates = await stack.enter_async_context(found.feed.updates(id, resume, KEEP_ALIVE_S))
    first = ""  # where the stream starts: the job's state, or (for EventSource) only an id
    try:
        if resume is None and updates.start is not None:
            current = await found.jobs.get(id) if id is not None else None
            start = updates.start
            first = _event(Change(start, current)) if current else f"id: {start}\n\n"
            if current is not None:
                updates.shown(current)
    except BaseException:
        await stack.aclose()
        raise

    def event(live: Change) -> str | Awaitable[str]:
        """A change as an event, made once for every stream it goes to (api/sharing.py);
        at once unless the allowance must be read first."""
        if live.view.status != JobStatus.PROCESSING:
            return _event(live)
        until = found.allowance.known()
        if inspect.isawaitable(until):
            return _event_when_read(live, until)
        return _event(live, until)

    def shared_event(live: Change) -> str | asyncio.Future[str]:
        shown_as = ("sse", live.position, live.view.id, live.view.version)
        text: str | asyncio.Future[str] = once(shown_as, partial(event, live))
        return text

    write_now = body_chunks(request.scope)
    if write_now is not None:  # a change that finds the stream waiting: written at once

        def send_now(live: Change) -> bool:
            text = shared_event(live)
            return isinstance(text, str) and write_now(text)

        updates.write_with(send_now)

    async def stream() -> AsyncIterator[str]:
        yield f"retry: {RECONNECT_MS}\n\n{first}"
        changes = updates.__aiter__()
        try:
            async for live in changes:
                if live is None:  # none for KEEP_ALIVE_S
                    yield ": keep-alive\n\n"
                    continue
                text = shared_event(live)
                yield await shared(text) if isinstance(text, asyncio.Future) else text
        except (SubscriberTooSlow, PositionTooOld) as error:  # the last event says why
            yield _error(str(error), error)
        except PyMongoError:
            yield _error("the job store is unavailable; retry shortly", None)
        finally:  # the subscriber's changes closed (its own history stream with them)
            await changes.aclose()

    return Stream(stack, stream())


class Stream(StreamingResponse):
    """An event stream that lets its subscription go however the response ends (even one
    whose body was never read)."""

    def __init__(self, stack: AsyncExitStack, events: AsyncIterator[str]) -> None:
        super().__init__(
            events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self._stack = stack

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._stack.aclose()


def _error(detail: str, error: Exception | None) -> str:
    code = (
        error.code if isinstance(error, CallerError | SubscriberTooSlow) else "SERVICE_UNAVAILABLE"
    )
    return f"event: error\ndata: {json.dumps({'detail': detail, 'code': code})}\n\n"


async def _event_when_read(change: Change, until: Awaitable[datetime | None]) -> str:
    return _event(change, await until)


def _event(change: Change, waiting_until: datetime | None = None) -> str:
    data = job_out(change.view, waiting_until=waiting_until).model_dump_json()
    return f"id: {change.position}\nevent: job\ndata: {data}\n\n"
