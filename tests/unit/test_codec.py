"""The event codec: round trips, JSON Schema conformance, poison records, upcasters."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import jsonschema
import pytest
from hypothesis import given

from schema import (
    Event,
    JobFailed,
    NewerSchemaVersion,
    UndecodableRecord,
    UnknownEventType,
    decode,
    encode,
    json_schema,
)
from tests.unit.strategies import events

SCHEMA = json.loads(resources.files("schema").joinpath("json/event.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


@given(events)
def test_every_event_round_trips_the_codec(event: Event) -> None:
    assert decode(encode(event)) == event


@given(events)
def test_every_encoded_event_matches_the_published_json_schema(event: Event) -> None:
    VALIDATOR.validate(json.loads(encode(event)))


@pytest.mark.parametrize(
    ("value", "error", "says"),
    [
        (None, UndecodableRecord, "no value"),
        (b"\xff\xfe", UndecodableRecord, "not JSON"),
        (b"[1, 2]", UndecodableRecord, "not a JSON object"),
        (b'{"type": "JobExploded", "schema_version": 1}', UnknownEventType, "JobExploded"),
        (b'{"type": "JobDue", "schema_version": 7}', NewerSchemaVersion, "newer"),
        (b'{"type": "JobDue", "schema_version": "1"}', UndecodableRecord, "schema_version"),
        (b'{"type": "JobDue", "schema_version": 1}', UndecodableRecord, "does not match"),
    ],
)
def test_poison_records_raise_a_reason(value: bytes | None, error: type, says: str) -> None:
    with pytest.raises(error, match=says):
        decode(value)


def _failed_v1() -> dict[str, Any]:
    event = JobFailed(event_id="e", job_id="j", version=3, occurred_at=_at(), reason="boom")
    return {**json.loads(encode(event)), "schema_version": 1}


def _at() -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC)


def test_wrong_field_types_are_undecodable() -> None:
    envelope = _failed_v1()
    envelope["data"]["reason"] = 42
    with pytest.raises(UndecodableRecord, match="reason"):
        decode(json.dumps(envelope).encode())
    for version in (0, "3", None, 2.5):
        envelope = _failed_v1()
        envelope["version"] = version
        with pytest.raises(UndecodableRecord, match="version"):
            decode(json.dumps(envelope).encode())
    envelope = _failed_v1()
    envelope["data"]["surprise"] = True
    with pytest.raises(UndecodableRecord, match="surprise"):
        decode(json.dumps(envelope).encode())
    envelope = _failed_v1()
    envelope["occurred_at"] = "2026-01-01T00:00:00"
    with pytest.raises(UndecodableRecord, match="occurred_at"):
        decode(json.dumps(envelope).encode())


def test_old_schema_versions_are_upcast_step_by_step(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend JobFailed is now at schema v3: v1 said "reason", v2 "message", v3 "reason" again.
    monkeypatch.setattr(JobFailed, "SCHEMA_VERSION", 3)
    steps: list[int] = []

    def v1_to_v2(envelope: dict[str, Any]) -> dict[str, Any]:
        steps.append(1)
        data = dict(envelope["data"])
        data["message"] = data.pop("reason")
        return {**envelope, "data": data}

    def v2_to_v3(envelope: dict[str, Any]) -> dict[str, Any]:
        steps.append(2)
        data = dict(envelope["data"])
        data["reason"] = "upcast: " + data.pop("message")
        return {**envelope, "data": data}

    monkeypatch.setattr(JobFailed, "UPCASTERS", {1: v1_to_v2, 2: v2_to_v3})
    event = decode(json.dumps(_failed_v1()).encode())
    assert isinstance(event, JobFailed)
    assert event.reason == "upcast: boom"
    assert steps == [1, 2]
    monkeypatch.setattr(JobFailed, "UPCASTERS", {1: v1_to_v2})
    with pytest.raises(UndecodableRecord, match="no upcaster for JobFailed v2"):
        decode(json.dumps(_failed_v1()).encode())


def test_the_committed_json_schema_is_the_one_derived_from_the_event_classes() -> None:
    assert json_schema() == SCHEMA, "the event classes changed: run python -m schema"


def test_the_json_schema_refuses_what_the_decoder_refuses() -> None:
    envelope = _failed_v1()
    envelope["data"]["reason"] = 42
    assert not VALIDATOR.is_valid(envelope)
    assert not VALIDATOR.is_valid({**_failed_v1(), "type": "JobExploded"})
    assert not VALIDATOR.is_valid({**_failed_v1(), "version": 0})
