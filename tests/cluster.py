"""jobline's components as separate processes (`jobline api`, `jobline delay`, ...), as a
production deployment runs them: each on a free loopback port of its own (the API's, or a
processor's /healthz, /readyz and /metrics), several instances of one component in one group."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobline.serving import free_port, until_answers
from runtime.settings import Settings, environment_for
from tests.conftest import ROOT

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


@dataclass
class Cluster:
    settings: Settings
    env: dict[str, str]
    logs: Path
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    kills: Counter[str] = field(default_factory=Counter)

    def start(self, name: str, component: str | None = None) -> None:
        """Start `name` (an instance of `component`, by default the component `name`); a
        restarted instance keeps its port."""
        port = self.ports.setdefault(name, free_port())
        with (self.logs / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "jobline", component or name, "--port", str(port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def kill(self, name: str) -> None:
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait()
        self.kills[name] += 1

    async def stop(self, name: str, timeout_s: float = 60) -> None:
        """Stop an instance as an orchestrator would (SIGTERM), and wait until it is gone."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, timeout_s)

    async def ready(self, name: str, timeout_s: float = 60) -> None:
        """Wait until the instance says it is ready (its /readyz)."""
        await until_answers(f"{self.url(name)}/readyz", self.processes[name], timeout_s)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
