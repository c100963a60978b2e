"""The settings under which tests run jobline's components as their own processes
(jobline/cluster.py `Cluster`)."""

from __future__ import annotations

from typing import Any

from runtime.settings import Settings, environment_for

#: Group joins in about a second (DESIGN.md §4), as every test's settings have it.
FAST_GROUPS = {
    "kafka_session_timeout_ms": 2000,
    "kafka_heartbeat_interval_ms": 300,
    "kafka_rebalance_timeout_ms": 2000,
}


def environment(settings: Settings, **overrides: Any) -> dict[str, str]:
    """This process's environment without its JOBLINE_* variables, and the settings that
    point the components at the test's broker, store, topics and stand-in."""
    chosen: dict[str, Any] = {
        "kafka_bootstrap_servers": settings.kafka_bootstrap_servers,
        "kafka_idempotence": "false",
        "create_rate_per_s": 0,  # its clients all come from 127.0.0.1
        **FAST_GROUPS,
        "topic_prefix": settings.topic_prefix,
        "topic_partitions": settings.topic_partitions,
        "mongodb_uri": settings.mongodb_uri,
        "mongodb_database": settings.mongodb_database,
        "delay_min_s": settings.delay_min_s,
        "delay_max_s": settings.delay_max_s,
        "delay_step_s": settings.delay_step_s,
        "unsplash_access_key": "test-key",
        "unsplash_base_url": settings.unsplash_base_url,
        "fetch_backoff_s": 0.01,
        **overrides,
    }
    return environment_for(**chosen)
