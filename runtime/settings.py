"""The one Settings object: read once from JOBLINE_* variables (and .env), then passed down."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schema import Topics


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOBLINE_", env_file=".env", frozen=True)

    # Log (Kafka protocol). Unset: `jobline run` starts an embedded broker.
    kafka_bootstrap_servers: str | None = None
    # Redpanda supports the idempotent producer; the embedded broker does not (DESIGN.md §4).
    kafka_idempotence: bool = True
    topic_prefix: str = "jobline"
    topic_partitions: int = Field(default=6, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)
    kafka_session_timeout_ms: int = 10_000
    kafka_heartbeat_interval_ms: int = 3_000
    kafka_rebalance_timeout_ms: int = 10_000
    # A request to the API waits this long for the log to acknowledge an event, then gets a
    # 503: never a hang while the broker is away.
    kafka_publish_timeout_s: float = Field(default=5, gt=0)

    # Store (Mongo wire protocol). Unset: `jobline run` starts an embedded store.
    mongodb_uri: str | None = None
    mongodb_database: str = "jobline"
    # Every store operation (server selection included) gives up after this: a request to the
    # API gets a 503 in bounded time when the store is down, never a hang.
    mongodb_timeout_ms: int = Field(default=3000, gt=0)

    # The API holds this many of the newest jobs in memory, kept current by the change
    # stream, and serves the board's reads from them (api/board.py).
    board_jobs: int = Field(default=20_000, ge=1)
    # Changes waiting for one live subscriber (WebSocket or SSE); one that falls this far
    # behind is ended with an error saying so, instead of slowing the others down.
    subscriber_queue: int = Field(default=256, ge=1)
    # Job creations per client address (both faces; a batch takes one per job): a sustained
    # rate and a burst. Over it: 429 with Retry-After. A rate of 0: no limit.
    create_rate_per_s: float = Field(default=20, ge=0)
    create_burst: int = Field(default=200, ge=1)
    # Set: every change (REST POSTs, GraphQL mutations and subscriptions) needs
    # `Authorization: Bearer <token>`; reads stay open. Unset: no token needed.
    api_token: SecretStr | None = None
    # Origins allowed to call the API from a browser (CORS); empty: none but the page's own.
    cors_origins: list[str] = []

    # Delay of a job: uniform over min..max in steps (fractions allowed, for tests).
    delay_min_s: float = Field(default=5, ge=0)
    delay_max_s: float = Field(default=300, ge=0)
    delay_step_s: float = Field(default=5, gt=0)

    # Unsplash. No key: `jobline run` starts the local stand-in and points the fetcher at it.
    unsplash_access_key: SecretStr | None = None
    unsplash_base_url: str = "https://api.unsplash.com"
    unsplash_query: str = "food"
    unsplash_timeout_s: float = Field(default=10, gt=0)
    # Keep this many requests of the hourly allowance in reserve; below it, wait.
    # Unsplash's allowance is per hour; the fetchers share one account of it in the store.
    unsplash_window_s: float = Field(default=3600, gt=0)
    unsplash_ratelimit_reserve: int = Field(default=1, ge=0)
    unsplash_ratelimit_pause_s: float = Field(default=60, gt=0)
    fetch_max_attempts: int = Field(default=4, ge=1)
    fetch_backoff_s: float = Field(default=0.5, ge=0)
    fetch_backoff_cap_s: float = Field(default=30, ge=0)
    fetch_concurrency: int = Field(default=8, ge=1)
    # The local stand-in's hourly allowance: Unsplash's for a production app. Benchmarks lift it.
    stand_in_hourly_limit: int = Field(default=5000, ge=0)
    #: Name sent to Unsplash in referral links (utm_source), per its guidelines.
    app_name: str = "jobline"

    # Where the serving commands listen (`--host` / `--port` override): `jobline run` and
    # `jobline api` serve the API there; each processor serves its /healthz, /readyz and
    # /metrics there (in a container every one can take 8000; on one machine give each its own).
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # /readyz says unready while the read model is more than this many events behind the log.
    ready_max_lag: int = Field(default=10_000, ge=0)
    # At start-up, how long to wait for the broker and the store to answer before giving up
    # with a message saying which setting to check.
    startup_wait_s: float = Field(default=30, gt=0)

    # Where `jobline run` keeps the embedded store's data.
    data_dir: Path = Path(".jobline")
    log_level: str = "INFO"

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
