"""The job commands and queries. REST and GraphQL both call these: one behaviour, two faces."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from api.commands import pick_delay, request_job
from projections.jobs.store import MongoJobViews
from projections.jobs.view import JobView, evolve
from runtime.claims import Claim, ClaimStore
from runtime.clock import utc_now
from runtime.log import EventPublisher
from runtime.settings import Settings
from schema import Event

MAX_PAGE = 100
MAX_KEY_LENGTH = 200
PUBLICATION_WAITS = 20
PUBLICATION_WAIT_S = 0.05


class InvalidRequest(ValueError):
    """The caller's request is wrong; the message says how."""


class IdempotencyConflict(InvalidRequest):
    """An idempotency key reused for a different request."""


def fingerprint(request: Mapping[str, Any] | None) -> str:
    """What makes two requests 'the same' for an idempotency key: their canonical JSON."""
    canonical = json.dumps(request or {}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class JobService:
    def __init__(
        self,
        *,
        settings: Settings,
        publisher: EventPublisher,
        views: MongoJobViews,
        keys: ClaimStore,
        now: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._publisher = publisher
        self._views = views
        self._keys = keys
        self._now = now
        self._rng = rng or random.SystemRandom()

    async def create(
        self, idempotency_key: str | None = None, request: Mapping[str, Any] | None = None
    ) -> JobView:
        """Create a job. With an idempotency key, every retry of the same request, however
        concurrent, gets the one job the first created; a different request is refused."""
        s = self._settings
        event = request_job(
            job_id=str(uuid.uuid4()),
            event_id=str(uuid.uuid4()),
            now=self._now(),
            delay_s=pick_delay(self._rng, s.delay_min_s, s.delay_max_s, s.delay_step_s),
            idempotency_key=idempotency_key,
        )
        if idempotency_key is None:
            await self._publish(event)
            return JobView.from_doc(evolve(None, event))
        _check_key(idempotency_key)
        claim = await self._keys.claim(idempotency_key, event, fingerprint(request))
        if claim.fingerprint != fingerprint(request):
            raise IdempotencyConflict(
                f"Idempotency-Key {idempotency_key!r} was already used for a different request"
            )
        if claim.event.event_id != event.event_id and not claim.published:
            claim = await self._wait_for_publication(idempotency_key, claim)
        if not claim.published:
            # Ours, or the first request's if it died before marking it published: whether
            # its record is on the log is unknown, so append it (a copy of the same event is
            # harmless). A job in the read model proves nothing: under `jobline run` the
            # projection can apply a record the broker then loses before it is archived.
            await self._publish(claim.event)
            await self._keys.mark_published(idempotency_key)
        existing = await self._views.get(claim.event.job_id)
        return existing or JobView.from_doc(evolve(None, claim.event))

    async def _publish(self, event: Event) -> None:
        # Bounded: while the broker is away the caller gets a 503 and retries (with its
        # Idempotency-Key, to be sure of one job), instead of waiting on a hung request.
        async with asyncio.timeout(self._settings.kafka_publish_timeout_s):
            await self._publisher.publish([event])
        # Read-your-writes: apply our own event to the read model through the same guarded
        # write the projection uses, so the creator can read the job at once. Whichever of the
        # two writes comes second is a no-op.
        await self._views.apply([event])

    async def _wait_for_publication(self, key: str, claim: Claim) -> Claim:
        """A concurrent first request is publishing: give it a moment rather than publish a
        second copy of its event (harmless, but noise in the log)."""
        for _ in range(PUBLICATION_WAITS):
            await asyncio.sleep(PUBLICATION_WAIT_S)
            found = await self._keys.find(key)
            if found is not None and found.published:
                return found
        return claim

    async def get(self, job_id: str) -> JobView | None:
        return await self._views.get(job_id)

    async def counts(self) -> dict[str, int]:
        return await self._views.counts()

    async def page(
        self, limit: int, cursor: str | None, status: str | None
    ) -> tuple[list[JobView], str | None]:
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(f"limit must be between 1 and {MAX_PAGE}")
        return await self._views.page(limit, cursor, status)


def _check_key(key: str) -> None:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidRequest(f"an idempotency key is 1 to {MAX_KEY_LENGTH} printable characters")
