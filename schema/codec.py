"""JSON codec for events, with an upcaster chain that runs while decoding.

Wire format of a record value (UTF-8 JSON):
    {"type": "JobRequested", "schema_version": 1, "event_id": "...", "job_id": "...",
     "version": 1, "occurred_at": "2026-11-22T10:00:00+00:00", "data": {...}}
The record key is the job id; headers repeat the type and schema version for routing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import datetime
from typing import Any

from schema.events import (
    EVENT_TYPES,
    Event,
    JobDue,
    JobFailed,
    JobRequested,
    JobResolved,
    Photo,
    PhotoLinks,
    PhotoUrls,
    PhotoUser,
    UserLinks,
)

#: The schema version each event type is written with today. Raise one only together with an
#: upcaster from the previous version.
CURRENT_SCHEMA_VERSIONS: dict[str, int] = {**dict.fromkeys(EVENT_TYPES, 1), "JobRequested": 2}

#: (type, from_version) -> function turning that version's envelope into the next version's.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {
    # v2 adds `seq`, the job's place in creation order; v1 jobs have none.
    ("JobRequested", 1): lambda envelope: {**envelope, "data": {**envelope["data"], "seq": None}},
}

_ENVELOPE = ("event_id", "job_id", "occurred_at")


class PoisonRecord(ValueError):
    """A record that cannot become an event; it belongs in the dead-letter topic."""


class UndecodableRecord(PoisonRecord):
    pass


class UnknownEventType(PoisonRecord):
    pass


class NewerSchemaVersion(PoisonRecord):
    pass


def encode(event: Event) -> bytes:
    fields = asdict(event)
    envelope = {
        "type": event.TYPE,
        "schema_version": CURRENT_SCHEMA_VERSIONS[event.TYPE],
        "event_id": fields.pop("event_id"),
        "job_id": fields.pop("job_id"),
        "version": event.version,
        "occurred_at": fields.pop("occurred_at"),
        "data": fields,
    }
    return json.dumps(envelope, default=_json_default, separators=(",", ":")).encode()


def headers_for(event: Event) -> list[tuple[str, bytes]]:
    return [
        ("event-type", event.TYPE.encode()),
        ("schema-version", str(CURRENT_SCHEMA_VERSIONS[event.TYPE]).encode()),
    ]


def decode(value: bytes | None, upcasters: Mapping[tuple[str, int], Upcaster] = UPCASTERS) -> Event:
    envelope = _parse(value)
    event_type = envelope.get("type")
    if event_type not in EVENT_TYPES:
        raise UnknownEventType(f"unknown event type {event_type!r}")
    envelope = _upcast(envelope, event_type, upcasters)
    try:
        return _build(event_type, envelope)
    except (KeyError, TypeError, ValueError) as error:
        raise UndecodableRecord(f"{event_type} does not match its schema: {error!r}") from error


def _parse(value: bytes | None) -> dict[str, Any]:
    if value is None:
        raise UndecodableRecord("record has no value")
    try:
        envelope = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UndecodableRecord(f"record value is not JSON: {error}") from error
    if not isinstance(envelope, dict):
        raise UndecodableRecord("record value is not a JSON object")
    return envelope


def _upcast(
    envelope: dict[str, Any], event_type: str, upcasters: Mapping[tuple[str, int], Upcaster]
) -> dict[str, Any]:
    current = CURRENT_SCHEMA_VERSIONS[event_type]
    version = envelope.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise UndecodableRecord(f"invalid schema_version {version!r}")
    if version > current:
        raise NewerSchemaVersion(
            f"{event_type} schema version {version} is newer than this build knows ({current})"
        )
    while version < current:
        step = upcasters.get((event_type, version))
        if step is None:
            raise UndecodableRecord(f"no upcaster for {event_type} v{version}")
        envelope = {**step(envelope), "schema_version": version + 1}
        version += 1
    return envelope


def _build(event_type: str, envelope: dict[str, Any]) -> Event:
    common = {name: envelope[name] for name in _ENVELOPE}
    _require_str(common["event_id"], "event_id")
    _require_str(common["job_id"], "job_id")
    common["occurred_at"] = _datetime(common["occurred_at"])
    data = envelope["data"]
    if not isinstance(data, dict):
        raise TypeError("data is not an object")
    event = _BUILDERS[event_type](common, data)
    if envelope.get("version") != event.version:
        raise ValueError(f"version {envelope.get('version')!r} is not {event.version}")
    return event


def _requested(common: dict[str, Any], data: dict[str, Any]) -> Event:
    key = data.get("idempotency_key")
    if key is not None:
        _require_str(key, "idempotency_key")
    delay = data["delay_s"]
    if not isinstance(delay, int | float) or isinstance(delay, bool):
        raise TypeError("delay_s is not a number")
    seq = data["seq"]
    if seq is not None and (_require_int(seq, "seq") < 1):
        raise ValueError("seq is below 1")
    return JobRequested(
        **common,
        due_at=_datetime(data["due_at"]),
        delay_s=float(delay),
        idempotency_key=key,
        seq=seq,
    )


def _due(common: dict[str, Any], data: dict[str, Any]) -> Event:
    return JobDue(**common, due_at=_datetime(data["due_at"]))


def _resolved(common: dict[str, Any], data: dict[str, Any]) -> Event:
    return JobResolved(**common, photo=photo_from_dict(data["photo"]))


def _failed(common: dict[str, Any], data: dict[str, Any]) -> Event:
    return JobFailed(**common, reason=_require_str(data["reason"], "reason"))


_BUILDERS: dict[str, Callable[[dict[str, Any], dict[str, Any]], Event]] = {
    JobRequested.TYPE: _requested,
    JobDue.TYPE: _due,
    JobResolved.TYPE: _resolved,
    JobFailed.TYPE: _failed,
}


def photo_from_dict(raw: Mapping[str, Any]) -> Photo:
    """Build a Photo from an Unsplash photo object (or a stored one); extra fields are ignored."""
    urls, links, user = raw["urls"], raw["links"], raw["user"]
    return Photo(
        id=_require_str(raw["id"], "id"),
        urls=PhotoUrls(**{k: _require_str(urls[k], f"urls.{k}") for k in _URL_SIZES}),
        alt_description=_optional_str(raw.get("alt_description"), "alt_description"),
        width=_require_int(raw["width"], "width"),
        height=_require_int(raw["height"], "height"),
        color=_optional_str(raw.get("color"), "color"),
        blur_hash=_optional_str(raw.get("blur_hash"), "blur_hash"),
        links=PhotoLinks(
            html=_require_str(links["html"], "links.html"),
            download_location=_optional_str(
                links.get("download_location"), "links.download_location"
            ),
        ),
        user=PhotoUser(
            name=_require_str(user["name"], "user.name"),
            username=_require_str(user["username"], "user.username"),
            links=UserLinks(html=_require_str(user["links"]["html"], "user.links.html")),
        ),
    )


_URL_SIZES = ("raw", "full", "regular", "small", "thumb")


def _require_str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} is not a string")
    return value


def _optional_str(value: Any, name: str) -> str | None:
    return None if value is None else _require_str(value, name)


def _require_int(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} is not an integer")
    return value


def _datetime(value: Any) -> datetime:
    parsed = datetime.fromisoformat(_require_str(value, "timestamp"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no time zone")
    return parsed


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")
