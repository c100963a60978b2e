"""Topic names. One events topic, keyed by job id, so every job's events stay in order."""

from __future__ import annotations

from dataclasses import dataclass

#: Kept forever: the log is the source of truth and replay starts at offset 0.
FOREVER = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names under a prefix, so several deployments (or tests) can share a broker."""

    prefix: str = "jobline"

    @property
    def jobs(self) -> str:
        return f"{self.prefix}.jobs"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}.jobs.dead-letters"
