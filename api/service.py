"""The job commands and queries. REST and GraphQL both call these: one behaviour, two faces."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import datetime

from api.commands import pick_delay, request_job
from api.idempotency import IdempotencyKeys
from projections.jobs.store import MongoJobViews
from projections.jobs.view import JobView, evolve
from runtime.clock import utc_now
from runtime.log import EventPublisher
from runtime.settings import Settings

MAX_PAGE = 100
MAX_KEY_LENGTH = 200


class InvalidRequest(ValueError):
    """The caller's request is wrong; the message says how."""


class JobService:
    def __init__(
        self,
        *,
        settings: Settings,
        publisher: EventPublisher,
        views: MongoJobViews,
        keys: IdempotencyKeys,
        now: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._publisher = publisher
        self._views = views
        self._keys = keys
        self._now = now
        self._rng = rng or random.SystemRandom()

    async def create(self, idempotency_key: str | None = None) -> JobView:
        if idempotency_key is not None:
            _check_key(idempotency_key)
        s = self._settings
        event = request_job(
            job_id=str(uuid.uuid4()),
            event_id=str(uuid.uuid4()),
            now=self._now(),
            delay_s=pick_delay(self._rng, s.delay_min_s, s.delay_max_s, s.delay_step_s),
            idempotency_key=idempotency_key,
        )
        if idempotency_key is not None:
            event = await self._keys.claim(idempotency_key, event)
            existing = await self._views.get(event.job_id)
            if existing is not None:
                return existing
        await self._publisher.publish([event])
        # Read-your-writes: apply our own event to the read model through the same guarded
        # write the projection uses, so the creator can read the job at once. Whichever of the
        # two writes comes second is a no-op.
        await self._views.apply([event])
        return JobView.from_doc(evolve(None, event))

    async def get(self, job_id: str) -> JobView | None:
        return await self._views.get(job_id)

    async def page(
        self, limit: int, cursor: str | None, status: str | None
    ) -> tuple[list[JobView], str | None]:
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(f"limit must be between 1 and {MAX_PAGE}")
        return await self._views.page(limit, cursor, status)


def _check_key(key: str) -> None:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidRequest(f"an idempotency key is 1 to {MAX_KEY_LENGTH} printable characters")
