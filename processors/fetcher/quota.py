"""Unsplash's hourly allowance, shared by every fetcher that uses the key.

Unsplash allows an app so many requests an hour (50 for a demo key, 5,000 in production) and
says, in each answer, the allowance (`X-Ratelimit-Limit`) and what is left of it
(`X-Ratelimit-Remaining`), but not when the window ends. The fetchers therefore keep one
account in the store, where all of them see it: a window that starts with the first request
after the last one ended and lasts `unsplash_window_s`, and the requests made in it. A
fetcher takes a request from the account (one atomic compare-and-set write) before it asks
Unsplash, and waits for the next window when the budget (the allowance less a reserve) is
spent, so that together they never go beyond the allowance. The answers correct the account:
requests that Unsplash counted but the account did not (another app on the same key) are
taken as used. Until the first answer tells the allowance, one request at a time goes out.

A window counted from the first request ends no earlier than Unsplash's, if Unsplash's
window opens with the first request after the last one ended (as the stand-in's does), so
waiting for the account's window never sends a request too early.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from runtime.aio import raise_if_cancelled, retried
from runtime.clock import utc_now
from runtime.store import Document, insert_new

log = logging.getLogger(__name__)

ACCOUNT = "unsplash"
#: How long to wait before looking again while the first answer of a window (which tells
#: the allowance) is awaited.
PROBE_WAIT_S = 0.2
#: A request meant to tell the allowance that has had no answer for this long is taken for
#: lost (its fetcher died): another may ask.
PROBE_EXPIRY = timedelta(seconds=30)
#: A wait is cut into looks at most this long (another fetcher may have learnt more).
MAX_WAIT_S = 5.0
STORE_RETRY_S = 1.0


@dataclass(frozen=True, slots=True)
class Account:
    """The shared account: the allowance (None until an answer told it), the requests taken
    in the current window, when the window ends (None: no window open), and when the request
    meant to tell the allowance went (its fetcher may die before the answer comes)."""

    limit: int | None = None
    used: int = 0
    ends: datetime | None = None
    probed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Take:
    """Ask now; the account becomes this."""

    account: Account


@dataclass(frozen=True, slots=True)
class Wait:
    """The budget is spent (or the allowance not known yet): look again at `until`."""

    until: datetime
    spent: bool


def take(account: Account, now: datetime, window_s: float, reserve: int) -> Take | Wait:
    """Whether a request may go out now, and the account after it."""
    if account.ends is None or now >= account.ends:  # a new window, opened by this request
        account = Account(account.limit, 0, now + timedelta(seconds=window_s))
    assert account.ends is not None
    if account.limit is None:  # one request tells the allowance; the others wait for it
        probing = account.probed_at is not None and now - account.probed_at < PROBE_EXPIRY
        if account.used >= 1 and probing:
            return Wait(min(account.ends, now + timedelta(seconds=PROBE_WAIT_S)), spent=False)
        return Take(replace(account, used=account.used + 1, probed_at=now))
    budget = max(1, account.limit - reserve)
    if account.used >= budget:
        return Wait(account.ends, spent=True)
    earliest = paced(account.used, budget, account.ends - timedelta(seconds=window_s), window_s)
    if now < earliest:
        return Wait(earliest, spent=False)
    return Take(replace(account, used=account.used + 1))


def waiting_until(
    account: Account, now: datetime, window_s: float, reserve: int
) -> datetime | None:
    """While the budget is spent: when a request may go again (None: it is not spent)."""
    decided = take(account, now, window_s, reserve)
    return decided.until if isinstance(decided, Wait) and decided.spent else None


def paced(n: int, budget: int, start: datetime, window_s: float) -> datetime:
    """The earliest time for a window's request number `n` (from 0): the first tenth of the
    budget at once, the rest spread evenly over the window, so that a long backlog does not
    spend the hour's allowance in its first minute (and jobs that fall due meanwhile gather
    for the next request)."""
    burst = max(1, budget // 10)
    return start + timedelta(seconds=max(0, n - burst + 1) * window_s / budget)


def observe(account: Account, limit: int | None, remaining: int | None) -> Account:
    """The account corrected by an answer's rate-limit headers. An answer without them (a
    refused key, a proxy's error) taught nothing: if it was the one meant to tell the
    allowance, another may ask."""
    if limit is None:
        return unanswered(account)
    used = account.used if remaining is None else max(account.used, limit - remaining)
    return replace(account, limit=limit, used=used)


def unused(account: Account) -> Account:
    """A request taken but not sent: its place is given back."""
    return replace(account, used=max(0, account.used - 1))


def unanswered(account: Account) -> Account:
    """A request that got no answer. Counted as used (Unsplash may have counted it), unless
    it was the one meant to tell the allowance: then another may ask."""
    if account.limit is None:
        return replace(account, used=max(0, account.used - 1))
    return account


def exhausted(account: Account, now: datetime, pause_s: float) -> Account:
    """A rate-limited answer: nothing is left until the window ends (or, if the account's
    window already ended, for `pause_s`: Unsplash's window is later than it thought)."""
    ends = account.ends if account.ends is not None and account.ends > now else None
    ends = ends or now + timedelta(seconds=pause_s)
    limit = account.limit if account.limit is not None else 0
    return Account(limit=limit, used=max(account.used, limit), ends=ends)


class Quota:
    """The account in the store (collection `unsplash_quota`), shared by all fetchers."""

    def __init__(
        self, collection: AsyncCollection[Document], window_s: float, reserve: int, pause_s: float
    ) -> None:
        self._collection = collection
        self._window_s = window_s
        self._reserve = reserve
        self._pause_s = pause_s
        #: While the budget is spent: when the window ends (for a person to see).
        self.waiting_until: datetime | None = None
        #: Whether the allowance is still to be learnt (the next request is the one that
        #: tells it): worth gathering more jobs for.
        self.unknown = True

    async def acquire(self) -> None:
        """Take one request from the allowance, waiting for it as long as it takes."""
        while True:
            raise_if_cancelled()  # a library may have swallowed it (runtime.aio)
            decided = await self._change(
                partial(take, now=utc_now(), window_s=self._window_s, reserve=self._reserve)
            )
            if isinstance(decided, Take):
                self.waiting_until = None
                return
            if decided.spent and self.waiting_until != decided.until:
                self.waiting_until = decided.until
                log.warning(
                    "Unsplash allowance spent; waiting for the next window",
                    extra={"until": decided.until.isoformat()},
                )
            wait = (decided.until - utc_now()).total_seconds()
            await asyncio.sleep(min(MAX_WAIT_S, max(0.01, wait)))

    async def observe(self, limit: int | None, remaining: int | None) -> None:
        await self._change(lambda account: Take(observe(account, limit, remaining)))

    async def release(self) -> None:
        """Give back a request taken and not sent."""
        await self._change(lambda account: Take(unused(account)))

    async def unanswered(self) -> None:
        await self._change(lambda account: Take(unanswered(account)))

    async def exhausted(self) -> None:
        now = utc_now()
        await self._change(lambda account: Take(exhausted(account, now, self._pause_s)))

    async def _change(self, decide: Callable[[Account], Take | Wait]) -> Take | Wait:
        """Apply `decide` to the stored account, compare-and-set; again if another fetcher
        changed it meanwhile."""
        return await retried(  # the store is away: fetches wait for it
            lambda: self._change_once(decide),
            (PyMongoError,),
            log=log,
            message="Unsplash quota unavailable; retrying",
            pause_s=STORE_RETRY_S,
        )

    async def _change_once(self, decide: Callable[[Account], Take | Wait]) -> Take | Wait:
        while True:
            doc = await self._collection.find_one({"_id": ACCOUNT})
            if doc is None:  # the first fetcher ever: open the account
                await insert_new(self._collection, [{"_id": ACCOUNT, "v": 0, **_fields(Account())}])
                continue
            account = _account(doc)
            self.unknown = account.limit is None
            decided = decide(account)
            if isinstance(decided, Wait):
                return decided
            changed = await self._collection.update_one(
                {"_id": ACCOUNT, "v": doc["v"]},
                {"$set": {**_fields(decided.account), "v": doc["v"] + 1}},
            )
            if changed.modified_count == 1:
                return decided


def _fields(account: Account) -> Document:
    return {
        "limit": account.limit,
        "used": account.used,
        "ends": account.ends,
        "probed_at": account.probed_at,
    }


def _account(doc: Document) -> Account:
    return Account(
        limit=doc.get("limit"),
        used=doc.get("used", 0),
        ends=doc.get("ends"),
        probed_at=doc.get("probed_at"),
    )


async def read_account(collection: AsyncCollection[Document]) -> Account:
    """The shared account as it is stored (a fresh one if no fetcher opened it yet)."""
    doc = await collection.find_one({"_id": ACCOUNT})
    return _account(doc) if doc is not None else Account()
