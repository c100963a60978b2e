"""Records written by release 0.1 still decode and fold to the views that release made."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from projections.jobs.store import to_document
from projections.jobs.view import JobView, evolve
from schema import decode, encode

FIXTURE = Path(__file__).parents[1] / "fixtures" / "release-0.1"


def records() -> list[dict[str, Any]]:
    lines = (FIXTURE / "log.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def expected_views() -> dict[str, Any]:
    return {view["_id"]: view for view in json.loads((FIXTURE / "views.json").read_text())}


def _plain(value: Any) -> Any:
    """JSON-comparable: timestamps as instants (release 0.1 wrote +00:00, later ones Z)."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str) and value.endswith("+00:00"):
        return datetime.fromisoformat(value).timestamp()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def test_every_record_of_release_0_1_decodes_and_round_trips() -> None:
    for record in records():
        event = decode(record["value"].encode())
        assert event.job_id == record["key"]
        assert decode(encode(event)) == event


def test_release_0_1_records_fold_to_the_views_it_made() -> None:
    """(Release 0.1 folded into documents: compared as documents.)"""
    views: dict[str, JobView] = {}
    for record in records():
        event = decode(record["value"].encode())
        views[event.job_id] = evolve(views.get(event.job_id), event)
    documents = {job_id: to_document(view) for job_id, view in views.items()}
    assert _plain(documents) == _plain(expected_views())
