"""The job commands and queries. REST and GraphQL both call these: one behaviour, two faces."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from api.board import Board
from api.commands import cancel_job, pick_delay, request_job, retry_job
from api.errors import Conflict, InvalidInput, NotFound
from api.numbering import SeqLease
from api.ratelimit import CreationLimit
from projections.jobs.model import ReadModel
from projections.jobs.store import (
    InvalidCursor,
    MongoJobViews,
    decode_cursor,
    encode_cursor,
    encode_position,
)
from projections.jobs.view import STATUSES, JobView, evolve
from runtime.claims import Claim, ClaimStore
from runtime.clock import utc_now
from runtime.eventlog import Durability, EventPublisher
from runtime.groupcommit import GroupCommit
from runtime.settings import Settings
from schema import Event, JobRequested

MAX_PAGE = 100
MAX_KEY_LENGTH = 200
#: What an idempotency key may be: what an HTTP header carries unchanged.
KEY_PATTERN = f"^[!-~]{{1,{MAX_KEY_LENGTH}}}$"
_KEY = re.compile(KEY_PATTERN)
# Group commit: at most this many creations per batch, and this many waiting for a batch
# (more are refused with 503 at once; a wait behind two full batches is a few hundred ms).
MAX_BATCH = 500
MAX_QUEUED = 1000
#: Most jobs one request creates (`createJobs(count)`, `POST /jobs {"count": n}`).
MAX_CREATE = 100


class IdempotencyConflict(Conflict):
    """An idempotency key reused for a different request."""


def fingerprint(request: Mapping[str, Any] | None) -> str:
    """What makes two requests 'the same' for an idempotency key: their canonical JSON."""
    canonical = json.dumps(request or {}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """One request's jobs: created together, or (a key's earlier request) found together."""

    events: tuple[JobRequested, ...]  # the jobs it creates, unless its key has them already
    key: str | None
    fingerprint: str | None

    def keyed(self) -> list[tuple[str | None, JobRequested]]:
        """Each job with the claim key that makes it exactly one job: the request's key for
        the first, and that key with the job's place for the others (after U+001F, which no
        idempotency key may hold: these never meet a key a caller sends)."""
        return [
            (None if self.key is None else self.key if i == 0 else f"{self.key}\x1f{i}", event)
            for i, event in enumerate(self.events)
        ]


class JobService:
    def __init__(
        self,
        *,
        settings: Settings,
        publisher: EventPublisher,
        model: ReadModel,
        keys: ClaimStore,
        board: Board | None = None,
        durability: Durability | None = None,
        limit: CreationLimit | None = None,
        now: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
        max_batch: int = MAX_BATCH,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self._settings = settings
        self._publisher = publisher
        self._model = model
        self._keys = keys
        # Never loaded (not live) unless a feed keeps it.
        self._board = board if board is not None else Board()
        self._durability = durability
        self._limit = limit or CreationLimit(settings.create_rate_per_s, settings.create_burst)
        self._seqs = SeqLease(model.allocate)
        self._now = now
        self._rng = rng or random.SystemRandom()
        self.intake: GroupCommit[CreateRequest, list[JobView]] = GroupCommit(
            self._commit,
            max_batch=max_batch,
            max_queued=max_queued,
            weight=lambda request: len(request.events),
        )

    async def create(
        self,
        idempotency_key: str | None = None,
        request: Mapping[str, Any] | None = None,
        client: str | None = None,
    ) -> JobView:
        """Create a job. With an idempotency key, every retry of the same request, however
        concurrent, gets the one job the first created; a different request is refused.

        Creations are committed in groups (`_commit`); this returns once this one's group
        is durable. Raises `Saturated` when too many are waiting."""
        return (await self.create_many(1, idempotency_key, request, client))[0]

    async def create_many(
        self,
        count: int,
        idempotency_key: str | None = None,
        request: Mapping[str, Any] | None = None,
        client: str | None = None,
    ) -> list[JobView]:
        """Create `count` jobs (1 to MAX_CREATE), appended in one batch; as `create`, one
        key makes every retry of the request get the same jobs. From a `client` (its address)
        over its creation limit, raises RateLimited."""
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_CREATE:
            raise InvalidInput(f"count must be a whole number from 1 to {MAX_CREATE}")
        if idempotency_key is not None:
            _check_key(idempotency_key)
        if client is not None:
            self._limit.take(client, count)
        s = self._settings
        now = self._now()
        events = tuple(
            request_job(
                job_id=str(uuid.uuid4()),
                event_id=str(uuid.uuid4()),
                now=now,
                delay_s=pick_delay(self._rng, s.delay_min_s, s.delay_max_s, s.delay_step_s),
                idempotency_key=idempotency_key,
            )
            for _ in range(count)
        )
        keyed = idempotency_key is not None
        return await self.intake.submit(
            CreateRequest(events, idempotency_key, fingerprint(request) if keyed else None)
        )

    async def _commit(self, batch: list[CreateRequest]) -> list[list[JobView] | Exception]:
        """Make a group of creations durable together: one claims write for the keys, one
        produce (acks=all), one archive write (under `jobline run`), one read-model write
        (read-your-writes), then one write marking the claims published.

        A key whose claim is found unmarked gets its claimed event appended (again, maybe:
        a copy of the same event is harmless). Whether the first request got it onto the
        log before dying is unknown, and the read model is no evidence of it."""
        batch = await self._numbered(batch)
        claims = await self._keys.claim_many(
            [
                (key, event, r.fingerprint)
                for r in batch
                for key, event in r.keyed()
                if key is not None
            ]
        )
        appending: dict[str, JobRequested] = {}
        marking: set[str] = set()
        for request in batch:
            for key, event in request.keyed():
                if key is None:
                    appending[event.event_id] = event
                    continue
                claim = claims[key]
                if not claim.published and claim.fingerprint == request.fingerprint:
                    assert isinstance(claim.event, JobRequested)
                    appending[claim.event.event_id] = claim.event
                    marking.add(key)
        events = list(appending.values())
        created: dict[str, JobView] = {}
        if events:
            created = await self._append(events)
            await self._keys.mark_published(*sorted(marking))
        earlier = {c.event.job_id for c in claims.values() if c.published}
        current = await (await self._views()).get_many(sorted(earlier))
        results: list[list[JobView] | Exception] = []
        for request in batch:
            found = [
                (claims.get(key) if key is not None else None, e) for key, e in request.keyed()
            ]
            if any(c is not None and c.fingerprint != request.fingerprint for c, _ in found):
                results.append(_key_conflict(request.key))
                continue
            views = []
            for earlier_claim, mine in found:
                job = earlier_claim.event if earlier_claim is not None else mine
                view = current.get(job.job_id) or created.get(job.job_id)
                views.append(view or evolve(None, job))
            results.append(views)
        return results

    async def _numbered(self, batch: list[CreateRequest]) -> list[CreateRequest]:
        """The batch with a `seq` for each new job, in arrival order (from a leased block:
        api/numbering.py). A job whose key turns out to be claimed already leaves its
        number unused: pages skip such gaps."""
        seqs = iter(await self._seqs.take(sum(len(r.events) for r in batch)))
        return [
            replace(r, events=tuple(replace(e, seq=next(seqs)) for e in r.events)) for r in batch
        ]

    async def cancel(self, job_id: str, idempotency_key: str | None = None) -> JobView:
        """Cancel a pending job: a JobCancelled for the version after the pending state read.

        The log decides a race with the job's JobDue: whichever is appended first wins, and
        the read model, the page and a replay all say so. The answer is the job as it is once
        the cancel applies."""
        return await self._command("cancel", job_id, idempotency_key, cancel_job)

    async def retry(self, job_id: str, idempotency_key: str | None = None) -> JobView:
        """Try a failed job again: a JobRetried with a new wait, after which the delay
        processor emits a new JobDue and the fetcher a new outcome, the job's next versions.
        Concurrent retries of one failure give one new attempt."""
        s = self._settings

        def decide(view: JobView, now: datetime) -> Event:
            delay_s = pick_delay(self._rng, s.delay_min_s, s.delay_max_s, s.delay_step_s)
            return retry_job(view, now, delay_s)

        return await self._command("retry", job_id, idempotency_key, decide)

    async def _command(
        self,
        name: str,
        job_id: str,
        idempotency_key: str | None,
        decide: Callable[[JobView, datetime], Event],
    ) -> JobView:
        """Decide a command on a job from its view, and append the event: one per version.

        The first decision for a version is claimed (stored) before it is appended, and
        every caller that read the same view appends that one, not its own: two concurrent
        retries give one attempt, with one wait. With an idempotency key, a repeat of the
        request (its answer lost, say) gets the job as it is now instead of an error for a
        state the first request changed; the key's event is appended again while the read
        model has not applied it (the first request may have died before appending it; a
        copy is harmless). Claims of commands are not marked published: nothing reads it.
        The API does not write the view itself: that would put a cancel before a JobDue
        that the log has first."""
        request = f"{name} {job_id}"  # what a key is used for (never a creation's hex)
        if idempotency_key is not None:
            _check_key(idempotency_key)
            earlier = (await self._keys.find_many([idempotency_key])).get(idempotency_key)
            if earlier is not None:
                return await self._repeated(idempotency_key, earlier, request)
        view = await self.get(job_id)
        if view is None:
            raise NotFound(job_id)
        event = decide(view, self._now())
        slot = f"\x1f{name}\x1f{job_id}@v{event.version}"  # U+001F: never a caller's key
        event = (await self._keys.claim(slot, event)).event
        if idempotency_key is not None:
            claim = await self._keys.claim(idempotency_key, event, request)
            if claim.fingerprint != request:  # another request took the key
                raise _key_conflict(idempotency_key)
        await self._publish([event])
        return evolve(view, event)

    async def _repeated(self, key: str, earlier: Claim, request: str) -> JobView:
        """A command's key used before: the same request gets the job as it is now."""
        if earlier.fingerprint != request:
            raise _key_conflict(key)
        view = await self.get(earlier.event.job_id)
        if view is None:
            raise NotFound(earlier.event.job_id)
        if view.version < earlier.event.version:  # not applied yet: maybe not appended
            await self._publish([earlier.event])
        return evolve(view, earlier.event)

    async def _publish(self, events: Sequence[Event]) -> None:
        """Append the events; return once they are durable."""
        # Bounded: while the broker is away the callers get a 503 and retry (with their
        # Idempotency-Key, to be sure of one job), instead of waiting on a hung request.
        async with asyncio.timeout(self._settings.kafka_publish_timeout_s):
            appended = await self._publisher.publish(events)
        if self._durability is not None:  # the archive, under `jobline run`
            await self._durability.appended(appended)

    async def _append(self, events: list[JobRequested]) -> dict[str, JobView]:
        """Append the events and make them durable; the new jobs' first views."""
        # The log's durability first, then the new jobs' views, so a creator can read its
        # job at once (read-your-writes). Not the two at once: a view written beside an
        # archive write that fails would show a job whose record a restart can lose.
        await self._publish(events)
        await self._model.write(lambda views: views.insert_created(events))
        created = {e.job_id: evolve(None, e) for e in events}
        for view in created.values():
            self._board.add(view)
        return created

    # -- reads: from the board while it is live, else (and below it) from the store ------

    async def get(self, job_id: str) -> JobView | None:
        return self._board.get(job_id) or await (await self._views()).get(job_id)

    async def counts(self) -> dict[str, int]:
        counted = self._board.counts()
        return counted if counted is not None else await (await self._views()).counts()

    async def page(
        self, limit: int, cursor: str | None, status: str | None, until: str | None = None
    ) -> tuple[list[JobView], str | None]:
        """Up to `limit` jobs, newest first, after `cursor` (older than it) and, with
        `until`, before that one (newer than it); and the next page's cursor."""
        stop = _page_arguments(limit, until, status)
        views, next_cursor = await self._page(limit, cursor, status)
        if stop is not None:
            kept = [v for v in views if _position(v) > stop]
            if len(kept) < len(views):  # the range ends on this page
                return kept, None
        return views, next_cursor

    async def _views(self) -> MongoJobViews:
        return await self._model.views()

    async def _page(
        self, limit: int, cursor: str | None, status: str | None
    ) -> tuple[list[JobView], str | None]:
        after = _page_arguments(limit, cursor, status)
        scan = self._board.scan(limit + 1, after, status)
        if scan is None:
            return await (await self._views()).page(limit, cursor, status)
        found = scan.views
        if len(found) <= limit and scan.below is not None:  # the board ends first
            rest, _ = await (await self._views()).page(
                limit + 1 - len(found), encode_position(*scan.below), status
            )
            found += rest
        views = found[:limit]
        return views, encode_cursor(views[-1]) if len(found) > limit else None

    async def page_before(
        self, limit: int, cursor: str | None, status: str | None, until: str | None = None
    ) -> tuple[list[JobView], bool]:
        """Up to `limit` jobs just newer than `cursor` (without one, the oldest) and, with
        `until`, older than that one; newest first, and whether there are newer ones still:
        paging backwards. From the store's indexes (the board serves the newest pages, which
        paging forwards reads)."""
        stop = _page_arguments(limit, until, status)
        _page_arguments(limit, cursor, status)
        views, newer = await (await self._views()).page_before(limit, cursor, status)
        if stop is not None:
            kept = [v for v in views if _position(v) < stop]
            if len(kept) < len(views):
                return kept, False
        return views, newer


def _position(view: JobView) -> tuple[int, str]:
    assert view.seq is not None  # every listed job has its place
    return view.seq, view.id


def _page_arguments(limit: int, cursor: str | None, status: str | None) -> tuple[int, str] | None:
    """The position a page starts from, once its arguments are known to be good."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"a page holds 1 to {MAX_PAGE} jobs (limit, first or last)")
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"unknown status {status!r}")
    try:
        return decode_cursor(cursor) if cursor is not None else None
    except InvalidCursor as error:
        raise InvalidInput(str(error)) from None


def _key_conflict(key: str | None) -> IdempotencyConflict:
    return IdempotencyConflict(f"Idempotency-Key {key!r} was already used for a different request")


def _check_key(key: str) -> None:
    if not _KEY.fullmatch(key):
        raise InvalidInput(
            f"an idempotency key is 1 to {MAX_KEY_LENGTH} visible ASCII characters (no spaces)"
        )
