"""Unsplash's random-photo endpoint over real HTTP, with retries and rate-limit awareness."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

import httpx

from processors.fetcher.core import (
    NOT_JSON,
    Fail,
    Retry,
    allowance,
    backoff_s,
    interpret,
    remaining,
    unreachable,
)
from processors.fetcher.quota import Quota
from runtime.aio import raise_if_cancelled
from runtime.metrics import UNSPLASH_REMAINING, UNSPLASH_SECONDS
from runtime.settings import Settings
from schema import Photo

log = logging.getLogger(__name__)
_RNG = random.Random()


class Unsplash:
    def __init__(
        self,
        settings: Settings,
        client: httpx.AsyncClient | None = None,
        quota: Quota | None = None,
    ) -> None:
        """With a `quota`, every request is taken from the shared allowance first."""
        key = settings.unsplash_access_key
        self._settings = settings
        self._quota = quota
        self._client = client or httpx.AsyncClient(
            base_url=settings.unsplash_base_url,
            timeout=settings.unsplash_timeout_s,
            headers={
                "Accept-Version": "v1",
                "Authorization": f"Client-ID {key.get_secret_value() if key else ''}",
            },
        )
        self.requests = 0

    async def aclose(self) -> None:
        await self._client.aclose()

    async def random_photos(self, count: int, *, taken: bool = False) -> list[Photo] | str:
        """Up to `count` photos (one request; `taken`: its first attempt already taken from
        the allowance), or the reason (for a person) why there are none after all attempts.
        Timeouts, failed connections and 5xx answers are tried again, after exponential
        backoff with full jitter, `fetch_max_attempts` times in all; a rate limit waits for
        the allowance instead and never counts as an attempt; a refused key, a 404 or a
        malformed answer fails at once (asking again would get the same)."""
        settings, attempt = self._settings, 0
        while True:
            raise_if_cancelled()  # a library may have swallowed it (runtime.aio)
            answer = await self._ask(count, taken=taken)
            taken = False  # (a request taken from the allowance serves one attempt)
            if isinstance(answer, list):
                return answer
            if isinstance(answer, Fail):
                return answer.reason
            if answer.rate_limited:
                log.warning("Unsplash's rate limit reached; waiting for the allowance")
                if self._quota is not None:
                    await self._quota.exhausted()
                else:
                    await asyncio.sleep(settings.unsplash_ratelimit_pause_s)
                continue
            attempt += 1
            if attempt >= settings.fetch_max_attempts:
                return f"{answer.reason}; gave up after {attempt} attempts"
            wait = backoff_s(attempt, settings.fetch_backoff_s, settings.fetch_backoff_cap_s, _RNG)
            log.info("Unsplash failed; retrying", extra={"reason": answer.reason, "in_s": wait})
            await asyncio.sleep(wait)

    async def ask(self, count: int | None = None) -> httpx.Response:
        """One GET /photos/random (with `count`: a list), as it is answered."""
        params: dict[str, str | int] = {"query": self._settings.unsplash_query}
        if count is not None:
            params["count"] = count
        return await self._client.get("/photos/random", params=params)

    async def download(self, location: str) -> None:
        """Unsplash's download event for a photo used (its `links.download_location`), as
        the API guidelines ask. Raises on failure. Only ever sent to the configured API: the
        key goes nowhere else, whatever a photo's links say."""
        if not location.startswith(self._settings.unsplash_base_url.rstrip("/") + "/"):
            raise ValueError("a download location outside the configured Unsplash API")
        response = await self._client.get(location)
        response.raise_for_status()

    async def _ask(self, count: int, *, taken: bool) -> list[Photo] | Retry | Fail:
        if self._quota is not None and not taken:
            await self._quota.acquire()
        started = time.perf_counter()
        try:
            response = await self.ask(count)
        except httpx.HTTPError as error:
            UNSPLASH_SECONDS.labels("unreachable").observe(time.perf_counter() - started)
            if self._quota is not None:
                await self._quota.unanswered()
            return unreachable(error, self._settings.unsplash_timeout_s)
        finally:
            self.requests += 1
        UNSPLASH_SECONDS.labels(str(response.status_code)).observe(time.perf_counter() - started)
        left = remaining(response.headers)
        if left is not None:
            UNSPLASH_REMAINING.set(left)
        if self._quota is not None:
            await self._quota.observe(allowance(response.headers), left)
        return interpret(response.status_code, response.headers, _json(response))


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return NOT_JSON


async def check(settings: Settings, client: httpx.AsyncClient | None = None) -> tuple[bool, str]:
    """Ask Unsplash once, with the configured key and base URL: whether it works, and one
    sentence for a person saying so (the quota left), or what to change."""
    base = settings.unsplash_base_url
    if settings.unsplash_access_key is None:
        return False, (
            "No Unsplash access key is set: set JOBLINE_UNSPLASH_ACCESS_KEY to your app's "
            "Access Key (without one, `jobline run` uses the local stand-in)."
        )
    unsplash = Unsplash(settings, client)
    try:
        response = await unsplash.ask()
    except httpx.HTTPError as error:
        return False, (
            f"Could not reach {base} ({unreachable(error, settings.unsplash_timeout_s).reason}"
            "): check the network, or JOBLINE_UNSPLASH_BASE_URL."
        )
    finally:
        if client is None:
            await unsplash.aclose()
    limit = allowance(response.headers)
    left = remaining(response.headers)
    answer = interpret(response.status_code, response.headers, _json(response))
    if response.status_code == 401:
        return False, (
            "Unsplash refused the access key (401): set JOBLINE_UNSPLASH_ACCESS_KEY to your "
            "app's Access Key (not its Secret key)."
        )
    if isinstance(answer, Retry) and answer.rate_limited:
        return True, (
            f"The key works, but this hour's allowance ({limit or '?'} requests) is spent: "
            "fetches wait until the window resets."
        )
    if not isinstance(answer, list) or limit is None:
        return False, (
            f"{base} does not answer like the Unsplash API (GET /photos/random: "
            f"{response.status_code}): check JOBLINE_UNSPLASH_BASE_URL "
            "(https://api.unsplash.com)."
        )
    return True, (
        f"The key works: {left} of {limit} requests left in this hour's window at {base}."
    )
