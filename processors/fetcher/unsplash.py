"""Unsplash's random-photo endpoint over real HTTP, with retries and rate-limit awareness."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx

from processors.fetcher.core import Fail, Retry, interpret, remaining, retry_delay
from runtime.settings import Settings
from schema import Photo

log = logging.getLogger(__name__)


class Unsplash:
    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        key = settings.unsplash_access_key
        self._settings = settings
        self._client = client or httpx.AsyncClient(
            base_url=settings.unsplash_base_url,
            timeout=settings.unsplash_timeout_s,
            headers={
                "Accept-Version": "v1",
                "Authorization": f"Client-ID {key.get_secret_value() if key else ''}",
            },
        )
        self._paused_until = 0.0
        self.requests = 0

    async def aclose(self) -> None:
        await self._client.aclose()

    async def random_photo(self) -> Photo | str:
        """A photo, or the reason (for a person) why there is none after all attempts."""
        attempts = self._settings.fetch_max_attempts
        for attempt in range(1, attempts + 1):
            answer = await self._ask()
            if isinstance(answer, Photo):
                return answer
            if isinstance(answer, Fail):
                return answer.reason
            if attempt == attempts:
                return f"{answer.reason} (gave up after {attempts} attempts)"
            await asyncio.sleep(retry_delay(answer, attempt))
        raise AssertionError("unreachable")

    async def _ask(self) -> Photo | Retry | Fail:
        await self._respect_pause()
        settings = self._settings
        try:
            response = await self._client.get(
                "/photos/random", params={"query": settings.unsplash_query}
            )
        except httpx.HTTPError as error:
            return Retry(f"Unsplash unreachable ({type(error).__name__})", settings.fetch_backoff_s)
        finally:
            self.requests += 1
        self._note_allowance(response.headers)
        return interpret(
            response.status_code,
            response.headers,
            _json(response),
            settings.fetch_backoff_s,
            settings.unsplash_ratelimit_pause_s,
        )

    def _note_allowance(self, headers: Any) -> None:
        left = remaining(headers)
        if left is not None and left <= self._settings.unsplash_ratelimit_reserve:
            # Back off before the wall: Unsplash's allowance is hourly and says no reset time.
            self._paused_until = time.monotonic() + self._settings.unsplash_ratelimit_pause_s
            log.warning("Unsplash allowance nearly used; pausing", extra={"remaining": left})

    async def _respect_pause(self) -> None:
        wait = self._paused_until - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
