"""The JSON codec of events, derived from the event classes, with the upcaster chain.

Wire format of a record value (UTF-8 JSON):
    {"type": "JobRequested", "schema_version": 2, "event_id": "...", "job_id": "...",
     "version": 1, "occurred_at": "2026-11-22T10:00:00Z", "data": {...}}
The record key is the job id; headers repeat the type and schema version for routing.

Each event class gets a record model made from its fields (`data` holds those beyond the
envelope), strict about types and closed to unknown fields; the records of all classes make
one union tagged by `type`. A record of a current schema version is validated from its bytes
in one pass; an older one is brought up by its class's upcasters first. `json_schema()` is the
published JSON Schema, made from the same models.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, fields
from dataclasses import Field as Field_
from datetime import datetime
from typing import Annotated, Any, Literal, Union, cast, get_type_hints

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic import create_model as model
from pydantic_core import to_json

from schema.events import EVENT_TYPES, Event, Photo

ENVELOPE = ("event_id", "job_id", "version", "occurred_at")
SCHEMA_ID = "https://jobline.invalid/schema/event.schema.json"
_CLOSED = ConfigDict(strict=True, extra="forbid")
_TEXT = Annotated[str, Field(min_length=1)]
_COUNT = Annotated[int, Field(ge=1)]


class PoisonRecord(ValueError):
    """A record that cannot become an event; it belongs in the dead-letter topic."""


class UndecodableRecord(PoisonRecord):
    pass


class UnknownEventType(PoisonRecord):
    pass


class NewerSchemaVersion(PoisonRecord):
    pass


def _data_fields(cls: type[Event]) -> list[Field_[Any]]:
    """The event's own fields: what its record carries in `data`, beside the envelope."""
    return [f for f in fields(cls) if f.name not in ENVELOPE]


def _record_model(cls: type[Event]) -> type[BaseModel]:
    hints = get_type_hints(cls)
    data: dict[str, Any] = {
        f.name: (_wire_type(hints[f.name]), ... if f.default is MISSING else f.default)
        for f in _data_fields(cls)
    }
    return model(
        f"{cls.TYPE}Record",
        __config__=_CLOSED,
        __doc__=cls.__doc__,
        type=(cast(Any, Literal[cls.TYPE]), ...),
        schema_version=(_COUNT, ...),
        event_id=(_TEXT, ...),
        job_id=(_TEXT, ...),
        version=(_COUNT, ...),
        occurred_at=(AwareDatetime, ...),
        data=(model(f"{cls.TYPE}Data", __config__=_CLOSED, **data), ...),
    )


def _wire_type(hint: Any) -> Any:
    """Timestamps on the log carry their time zone."""
    return AwareDatetime if hint is datetime else hint


_RECORDS: dict[str, type[BaseModel]] = {t: _record_model(cls) for t, cls in EVENT_TYPES.items()}
_DATA_FIELDS = {t: tuple(f.name for f in _data_fields(cls)) for t, cls in EVENT_TYPES.items()}
_ANY_RECORD: TypeAdapter[Any] = TypeAdapter(
    cast(Any, Annotated[Union[tuple(_RECORDS.values())], Field(discriminator="type")])  # noqa: UP007
)
_PHOTO = TypeAdapter(Photo)


def encode(event: Event) -> bytes:
    cls = type(event)
    return to_json(
        {
            "type": cls.TYPE,
            "schema_version": cls.SCHEMA_VERSION,
            "event_id": event.event_id,
            "job_id": event.job_id,
            "version": event.version,
            "occurred_at": event.occurred_at,
            "data": {name: getattr(event, name) for name in _DATA_FIELDS[cls.TYPE]},
        }
    )


def headers_for(event: Event) -> list[tuple[str, bytes]]:
    return [
        ("event-type", event.TYPE.encode()),
        ("schema-version", str(event.SCHEMA_VERSION).encode()),
    ]


def decode(value: bytes | None) -> Event:
    if value is None:
        raise UndecodableRecord("record has no value")
    try:
        record = _ANY_RECORD.validate_json(value)
    except ValidationError:
        record = _decode_upcasting(value)  # older, or poison: this says which
    else:
        if record.schema_version != EVENT_TYPES[record.type].SCHEMA_VERSION:
            record = _decode_upcasting(value)
    return _event(record)


def _event(record: Any) -> Event:
    data = record.data
    return EVENT_TYPES[record.type](
        event_id=record.event_id,
        job_id=record.job_id,
        version=record.version,
        occurred_at=record.occurred_at,
        **{name: getattr(data, name) for name in _DATA_FIELDS[record.type]},
    )


def _decode_upcasting(value: bytes) -> Any:
    envelope = _parse(value)
    event_type = envelope.get("type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        raise UnknownEventType(f"unknown event type {event_type!r}")
    envelope = _upcast(envelope, EVENT_TYPES[event_type])
    try:
        return _RECORDS[event_type].model_validate_json(json.dumps(envelope))
    except ValidationError as error:
        raise UndecodableRecord(
            f"{event_type} does not match its schema: {_reasons(error)}"
        ) from None


def _reasons(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in error.errors()
    )


def _parse(value: bytes) -> dict[str, Any]:
    try:
        envelope = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UndecodableRecord(f"record value is not JSON: {error}") from None
    if not isinstance(envelope, dict):
        raise UndecodableRecord("record value is not a JSON object")
    return envelope


def _upcast(envelope: dict[str, Any], cls: type[Event]) -> dict[str, Any]:
    current = cls.SCHEMA_VERSION
    version = envelope.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise UndecodableRecord(f"invalid schema_version {version!r}")
    if version > current:
        raise NewerSchemaVersion(
            f"{cls.TYPE} schema version {version} is newer than this build knows ({current})"
        )
    if not isinstance(envelope.get("data"), dict):
        raise UndecodableRecord(f"{cls.TYPE} does not match its schema: data is not an object")
    while version < current:
        step = cls.UPCASTERS.get(version)
        if step is None:
            raise UndecodableRecord(f"no upcaster for {cls.TYPE} v{version}")
        envelope = {**step(envelope), "schema_version": version + 1}
        version += 1
    return envelope


def photo_from_dict(raw: Any) -> Photo:
    """A Photo from an Unsplash photo object (or a stored one): fields jobline does not keep
    are ignored; a field it keeps of the wrong type raises ValueError. (Validated as JSON,
    where strict types still take an object for a photo.)"""
    photo: Photo = _PHOTO.validate_json(to_json(raw))
    return photo


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a record value, made from the record models."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "jobline event (record value on the jobs topic; the record key is the job id)",
        **_ANY_RECORD.json_schema(),
    }
