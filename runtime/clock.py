"""The one clock: UTC, at millisecond precision, because that is what BSON dates keep.

Events stamped with it read back from the store exactly as they were written."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
