"""The stand-in's HTTP API: `GET /photos/random` as Unsplash answers it, the download event
(`GET /photos/{id}/download`), plus a control API, so that tests and demos make it misbehave
over HTTP as Unsplash can.

Control (Unsplash has nothing like it):
  POST   /_stand-in/faults     the next requests of GET /photos/random misbehave, all fields
                               optional: {"status": 503, "times": 3} answer that status N
                               times (null: until cleared); "rate": 0.3 answer it to that
                               share of requests instead; "delay_s": added latency; "hang":
                               true never answer (the client times out); "malformed": "json"
                               (a body that is not JSON) or "shape" (JSON without the fields);
                               "download_failures": 2 the next download events answer 503
  DELETE /_stand-in/faults     clear faults
  POST   /_stand-in/allowance  {"limit": 50, "window_s": 2}: that allowance, in windows that
                               open with the first request after the last window ended
  POST   /_stand-in/photo      field overrides merged into the next photos (until cleared)
  GET    /_stand-in/stats      requests, photos, requests beyond the allowance, `count`s asked,
                               and the download events per photo
"""

from __future__ import annotations

import asyncio
import secrets
import string
import time
from dataclasses import dataclass, field
from random import Random
from typing import Any, Literal

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from standin.images import (
    blur_hash_for,
    dish_for,
    known_blur_hash,
    picture_for,
    render_svg,
)

_ID_ALPHABET = string.ascii_letters + string.digits + "-_"
_USERS = [("Ada Baker", "adabaker"), ("Kenji Sato", "kenjicooks"), ("Lúcia Prato", "luciaprato")]


@dataclass
class StandIn:
    """State of one stand-in: allowance, injected faults, counters."""

    limit: int = 5000
    window_s: float = 3600
    fault_status: int | None = None
    fault_times: int | None = None
    fault_rate: float = 0
    fault_delay_s: float = 0
    fault_hang: bool = False
    fault_malformed: str | None = None
    download_failures: int = 0
    photo_overrides: dict[str, Any] = field(default_factory=dict)
    requests: int = 0
    photos: int = 0
    beyond_allowance: int = 0
    counts: list[int] = field(default_factory=list)
    downloads: dict[str, int] = field(default_factory=dict)
    requests_in_window: int = 0
    window_start: float | None = None  # a window opens with the first request after the last
    random: Random = field(default_factory=lambda: Random(7))

    def remaining(self) -> int:
        """What is left of the hourly allowance, as Unsplash's X-Ratelimit-Remaining says."""
        now = time.monotonic()
        if self.window_start is None or now - self.window_start > self.window_s:
            self.window_start, self.requests_in_window = now, 0
        return max(0, self.limit - self.requests_in_window)

    def take_fault(self) -> Fault | None:
        """How this request misbehaves, if it does (counting down `times`)."""
        if self.fault_status is None and not self.fault_hang and self.fault_malformed is None:
            return None
        if self.fault_rate and self.random.random() >= self.fault_rate:
            return None
        fault = Fault(self.fault_status, self.fault_hang, self.fault_malformed)
        if self.fault_times is not None:
            self.fault_times -= 1
            if self.fault_times <= 0:
                self.clear_faults()
        return fault

    def clear_faults(self) -> None:
        self.fault_status = self.fault_times = self.fault_malformed = None
        self.fault_rate = self.fault_delay_s = 0
        self.fault_hang = False
        self.download_failures = 0


@dataclass(frozen=True, slots=True)
class Fault:
    status: int | None
    hang: bool
    malformed: str | None


def create_app(state: StandIn | None = None) -> FastAPI:
    stand_in = state or StandIn()
    app = FastAPI(title="Unsplash stand-in", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.stand_in = stand_in

    @app.get("/photos/random")
    async def random_photo(request: Request, count: int | None = None) -> Response:
        stand_in.requests += 1
        if not _authorized(request):
            return JSONResponse({"errors": ["OAuth error: The access token is invalid"]}, 401)
        if stand_in.fault_delay_s:
            await asyncio.sleep(stand_in.fault_delay_s)
        left = stand_in.remaining()
        headers = {"X-Ratelimit-Limit": str(stand_in.limit), "X-Ratelimit-Remaining": str(left)}
        fault = stand_in.take_fault()
        if fault is not None and fault.hang:
            await asyncio.Event().wait()  # until the client gives up and goes
        if left == 0:
            stand_in.beyond_allowance += 1
            return JSONResponse({"errors": ["Rate Limit Exceeded"]}, 403, headers=headers)
        if fault is not None and fault.status is not None:
            return _faulty(fault.status, headers)
        stand_in.requests_in_window += 1
        headers["X-Ratelimit-Remaining"] = str(left - 1)
        if fault is not None and fault.malformed == "json":
            return Response("<html>Service hiccup</html>", 200, headers=headers)
        if fault is not None and fault.malformed == "shape":
            shapeless: Any = [{"id": "no-urls"}] if count else {"id": "no-urls"}
            return JSONResponse(shapeless, 200, headers=headers)
        stand_in.counts.append(count or 0)
        base = str(request.base_url).rstrip("/")
        ids = [_photo_id() for _ in range(min(count or 1, 30))]
        hashes: dict[str, str] = {}
        for picture in {picture_for(i) for i in ids}:
            # A picture's first BlurHash is CPU work: do it off the loop serving everyone.
            known = known_blur_hash(picture)
            if known is None:
                known = await asyncio.to_thread(blur_hash_for, picture)
            hashes[picture] = known
        photos = [_photo(base, stand_in, i, hashes[picture_for(i)]) for i in ids]
        return JSONResponse(photos if count else photos[0], headers=headers)

    @app.get("/photos/{photo_id}/download")
    async def download(request: Request, photo_id: str) -> Response:
        """Unsplash's download event: counted per photo (it does not count against the
        allowance)."""
        if not _authorized(request):
            return JSONResponse({"errors": ["OAuth error: The access token is invalid"]}, 401)
        if stand_in.download_failures > 0:
            stand_in.download_failures -= 1
            return JSONResponse({"errors": ["Stand-in fault"]}, 503)
        stand_in.downloads[photo_id] = stand_in.downloads.get(photo_id, 0) + 1
        base = str(request.base_url).rstrip("/")
        return JSONResponse({"url": f"{base}/images/{photo_id}.svg"})

    @app.get("/images/{photo_id}.svg")
    async def image(photo_id: str, w: int = 1080) -> Response:
        svg = render_svg(picture_for(photo_id), max(50, min(w, 4000)))
        return Response(svg, media_type="image/svg+xml", headers=_CACHE_FOREVER)

    @app.get("/photos/{photo_id}", response_class=HTMLResponse)
    async def photo_page(photo_id: str) -> str:
        return _page("Stand-in photo", f'<img src="/images/{photo_id}.svg?w=1080" alt="">')

    @app.get("/@{username}", response_class=HTMLResponse)
    async def user_page(username: str) -> str:
        return _page("Stand-in photographer", "<p>This photographer exists only locally.</p>")

    _control(app, stand_in)
    return app


def _control(app: FastAPI, stand_in: StandIn) -> None:
    @app.post("/_stand-in/faults")
    async def set_faults(spec: FaultSpec) -> dict[str, Any]:
        stand_in.clear_faults()
        stand_in.fault_status = spec.status
        stand_in.fault_times = spec.times
        stand_in.fault_rate = spec.rate or 0
        stand_in.fault_delay_s = spec.delay_s
        stand_in.fault_hang = spec.hang
        stand_in.fault_malformed = spec.malformed
        stand_in.download_failures = spec.download_failures
        return {"ok": True}

    @app.delete("/_stand-in/faults")
    async def clear_faults() -> dict[str, Any]:
        stand_in.clear_faults()
        return {"ok": True}

    @app.post("/_stand-in/allowance")
    async def set_allowance(spec: dict[str, Any]) -> dict[str, Any]:
        """A new allowance (`limit` requests per `window_s`); the next request opens a window."""
        stand_in.limit = int(spec.get("limit", stand_in.limit))
        stand_in.window_s = float(spec.get("window_s", stand_in.window_s))
        stand_in.window_start, stand_in.requests_in_window = None, 0
        return {"ok": True}

    @app.post("/_stand-in/photo")
    async def override_photo(overrides: dict[str, Any]) -> dict[str, Any]:
        stand_in.photo_overrides = overrides
        return {"ok": True}

    @app.get("/_stand-in/stats")
    async def stats() -> dict[str, Any]:
        return {
            "requests": stand_in.requests,
            "photos": stand_in.photos,
            "beyond_allowance": stand_in.beyond_allowance,
            "counts": stand_in.counts,
            "downloads": stand_in.downloads,
        }


class FaultSpec(BaseModel):
    status: int | None = Field(default=None, ge=100, le=599)
    times: int | None = Field(default=None, ge=1)
    rate: float | None = Field(default=None, gt=0, le=1)
    delay_s: float = Field(default=0, ge=0)
    hang: bool = False
    malformed: Literal["json", "shape"] | None = None
    download_failures: int = Field(default=0, ge=0)


def _faulty(status: int, headers: dict[str, str]) -> Response:
    if status == 401:  # as for a wrong key: no app, so no allowance to tell
        return JSONResponse({"errors": ["OAuth error: The access token is invalid"]}, 401)
    body = {"errors": ["Rate Limit Exceeded" if status == 429 else "Stand-in fault"]}
    return JSONResponse(body, status, headers=headers)


def _authorized(request: Request) -> bool:
    return request.headers.get("authorization", "").startswith("Client-ID ")


_CACHE_FOREVER = {"Cache-Control": "public, max-age=31536000, immutable"}


def _photo_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(11))


def _photo(base: str, stand_in: StandIn, photo_id: str, blur_hash: str) -> dict[str, Any]:
    stand_in.photos += 1
    _, background, alt = dish_for(picture_for(photo_id))
    name, username = _USERS[stand_in.photos % len(_USERS)]
    image = f"{base}/images/{photo_id}.svg"
    photo = {
        "id": photo_id,
        "width": 4000,
        "height": 3000,
        "color": background,
        "blur_hash": blur_hash,
        "description": None,
        "alt_description": alt,
        "urls": {
            "raw": image,
            "full": f"{image}?w=4000",
            "regular": f"{image}?w=1080",
            "small": f"{image}?w=400",
            "thumb": f"{image}?w=200",
        },
        "links": {
            "self": f"{base}/photos/{photo_id}",
            "html": f"{base}/photos/{photo_id}",
            "download": f"{base}/photos/{photo_id}/download",
            "download_location": f"{base}/photos/{photo_id}/download",
        },
        "user": {"name": name, "username": username, "links": {"html": f"{base}/@{username}"}},
    }
    return _merge(photo, stand_in.photo_overrides)


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _page(title: str, body: str) -> str:
    return f"<!doctype html><title>{title}</title><h1>{title}</h1>{body}"
