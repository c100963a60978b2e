"""The one Settings object: read once from JOBLINE_* variables (and .env), then passed down."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schema import Topics


class Settings(BaseSettings):
    """Every setting, with what it does (its `description`): `python -m runtime.settings`
    writes .env.example and the README's configuration reference from these."""

    model_config = SettingsConfigDict(env_prefix="JOBLINE_", env_file=".env", frozen=True)

    # -- the log (Kafka protocol) --
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        description="The broker's host:port (a comma-separated list for several). Unset: "
        "`jobline run` starts the embedded broker; the other commands need it.",
    )
    kafka_idempotence: bool = Field(
        default=True,
        description="Use the idempotent producer (no duplicate appends on a producer's "
        "retries). Redpanda and Kafka have it; the embedded broker does not (`jobline run` "
        "turns it off for it).",
    )
    topic_prefix: str = Field(
        default="jobline",
        description="Topics are `<prefix>.jobs` and `<prefix>.jobs.dead-letters`; consumer "
        "groups `<prefix>.<component>`.",
    )
    topic_partitions: int = Field(
        default=6,
        ge=1,
        description="Partitions of the topics when jobline creates them: the most instances "
        "of one processor that share the work.",
    )
    topic_replication_factor: int = Field(
        default=1, ge=1, description="Replicas of the topics when jobline creates them."
    )
    kafka_session_timeout_ms: int = Field(
        default=10_000,
        description="A group member silent this long is taken for dead: its partitions go "
        "to the others.",
    )
    kafka_heartbeat_interval_ms: int = Field(
        default=3_000, description="How often a group member tells the broker it is alive."
    )
    kafka_rebalance_timeout_ms: int = Field(
        default=10_000,
        description="How long the members of a group get to hand partitions over.",
    )
    kafka_fetch_max_wait_ms: int = Field(
        default=50,
        ge=1,
        description="How long a processor's fetch may wait at the broker for records. "
        "Kafka and Redpanda answer as soon as a record arrives, so this only paces idle "
        "polling; the embedded broker answers when the wait ends, so every stage of the "
        "pipeline adds up to this much latency (the client's default, 500 ms, made a "
        "job's resolution reach its subscribers ~0.25 s late).",
    )
    kafka_publish_timeout_s: float = Field(
        default=5,
        gt=0,
        description="A request to the API waits this long for the log to acknowledge an "
        "event, then gets a 503: never a hang while the broker is away.",
    )

    # -- the store (Mongo wire protocol) --
    mongodb_uri: str | None = Field(
        default=None,
        description="A MongoDB replica set's URI (change streams need one; a single node "
        "will do). Unset: `jobline run` starts the embedded store; the other commands need it.",
    )
    mongodb_database: str = Field(default="jobline", description="The database jobline uses.")
    mongodb_timeout_ms: int = Field(
        default=3000,
        gt=0,
        description="Every store operation gives up after this: a request to the API gets "
        "a 503 in bounded time while the store is down.",
    )

    # -- the API --
    host: str = Field(
        default="127.0.0.1",
        description="Where the serving commands listen (`--host` overrides): the API, or a "
        "processor's /healthz, /readyz and /metrics.",
    )
    port: int = Field(
        default=8000,
        ge=0,
        le=65535,
        description="Their port (`--port` overrides; 0: any free one). In a container every "
        "component can take 8000; on one machine give each its own.",
    )
    board_jobs: int = Field(
        default=20_000,
        ge=1,
        description="The newest jobs each API holds in memory, kept current by the change "
        "stream, to serve the page's reads.",
    )
    subscriber_queue: int = Field(
        default=256,
        ge=1,
        description="Changes waiting for one live subscriber (WebSocket or SSE) whose "
        "connection takes no more; one that falls this far behind is ended with an error "
        "saying so.",
    )
    create_rate_per_s: float = Field(
        default=20,
        ge=0,
        description="Job creations per client address and second, both faces (a batch takes "
        "one per job); over it: 429 with Retry-After (RATE_LIMITED on GraphQL). 0: no limit.",
    )
    create_burst: int = Field(
        default=200, ge=1, description="Creations a client may make at once above that rate."
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="Set: every change (REST POSTs, GraphQL mutations and subscriptions) "
        "needs `Authorization: Bearer <token>` (a WebSocket sends it in its connection_init "
        "payload); reads stay open; the page asks for it once.",
    )
    cors_origins: list[str] = Field(
        default=[],
        description="Origins allowed to call the API from a browser (CORS), as JSON: "
        '["https://example.com"]. Empty: only the page\'s own.',
    )
    ready_max_lag: int = Field(
        default=10_000,
        ge=0,
        description="/readyz says unready while the read model is more than this many "
        "events behind the log.",
    )

    # -- jobs --
    delay_min_s: float = Field(
        default=5, ge=0, description="A job's shortest wait, in seconds (fractions allowed)."
    )
    delay_max_s: float = Field(default=300, ge=0, description="Its longest wait.")
    delay_step_s: float = Field(
        default=5, gt=0, description="Waits are drawn uniformly from min..max in these steps."
    )

    # -- Unsplash --
    unsplash_access_key: SecretStr | None = Field(
        default=None,
        description="Your Unsplash app's Access Key (kept server-side). Unset: `jobline "
        "run` starts the local stand-in and fetches from it.",
    )
    unsplash_base_url: str = Field(
        default="https://api.unsplash.com", description="The Unsplash API's address."
    )
    unsplash_query: str = Field(default="food", description="What the photos are of.")
    unsplash_timeout_s: float = Field(
        default=10, gt=0, description="One request to Unsplash gives up after this."
    )
    unsplash_window_s: float = Field(
        default=3600,
        gt=0,
        description="Unsplash's allowance window (an hour); the fetchers share one account "
        "of it in the store and pace their requests over it.",
    )
    unsplash_ratelimit_reserve: int = Field(
        default=1,
        ge=0,
        description="Requests of the allowance kept in reserve; below it, fetches wait.",
    )
    unsplash_ratelimit_pause_s: float = Field(
        default=60,
        gt=0,
        description="How long a fetch waits after a rate-limit answer when the allowance's "
        "end is not known.",
    )
    fetch_max_attempts: int = Field(
        default=4,
        ge=1,
        description="Attempts of a fetch that times out or gets a 5xx before its job fails "
        "(a rate limit never counts).",
    )
    fetch_backoff_s: float = Field(
        default=0.5, ge=0, description="First pause between attempts (exponential, jittered)."
    )
    fetch_backoff_cap_s: float = Field(
        default=30, ge=0, description="Longest pause between attempts."
    )
    fetch_concurrency: int = Field(
        default=8, ge=1, description="Requests to Unsplash one fetcher has under way at once."
    )
    app_name: str = Field(
        default="jobline",
        description="The name in Unsplash referral links (utm_source), per its guidelines.",
    )
    stand_in_hourly_limit: int = Field(
        default=5000,
        ge=0,
        description="The local stand-in's hourly allowance (Unsplash's for a production "
        "app); benchmarks lift it.",
    )

    # -- running --
    startup_wait_s: float = Field(
        default=30,
        gt=0,
        description="At start, how long to wait for the broker and the store before giving "
        "up with a message naming the setting to check.",
    )
    data_dir: Path = Field(
        default=Path(".jobline"),
        description="Where `jobline run` keeps the embedded store's data and the logs of "
        "its children.",
    )
    log_level: str = Field(
        default="INFO", description="DEBUG, INFO, WARNING or ERROR; logs are JSON lines."
    )
    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        default="auto",
        description="What every jobline process runs on: uvloop (libuv: socket writes, "
        "timers and task wake-ups in C) when it is installed (`auto`, on Linux and macOS), "
        "or asyncio's own loop.",
    )

    @model_validator(mode="after")
    def _delay_range(self) -> Settings:
        if self.delay_max_s < self.delay_min_s:
            raise ValueError("JOBLINE_DELAY_MAX_S must not be below JOBLINE_DELAY_MIN_S")
        return self

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @property
    def bootstrap_servers(self) -> str:
        if not self.kafka_bootstrap_servers:
            raise RuntimeError("JOBLINE_KAFKA_BOOTSTRAP_SERVERS is not set")
        return self.kafka_bootstrap_servers

    @property
    def store_uri(self) -> str:
        if not self.mongodb_uri:
            raise RuntimeError("JOBLINE_MONGODB_URI is not set")
        return self.mongodb_uri


def settings_problem(error: ValidationError) -> str:
    """A settings error in one line, by the variables a person sets:
    'JOBLINE_PORT: Input should be a valid integer (given: abc)'."""
    parts = []
    for problem in error.errors():
        names = [str(part) for part in problem.get("loc", ()) if isinstance(part, str)]
        name = f"JOBLINE_{names[0].upper()}: " if names else ""
        given = f" (given: {problem['input']})" if names else ""
        parts.append(f"{name}{problem['msg']}{given}")
    return "; ".join(parts)


def environment_for(**settings: Any) -> dict[str, str]:
    """This process's environment without its JOBLINE_* variables, and `settings` (by
    field name) as JOBLINE_* variables: to start a jobline command with exactly those."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JOBLINE_")}
    return clean | {f"JOBLINE_{name.upper()}": str(value) for name, value in settings.items()}
