"""docker-compose.yml and the Dockerfile cannot run here (no Docker engine): check them by
construction, against the CLI and settings they drive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from jobline.cli import main
from jobline.components import COMPONENTS
from runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
JOBLINE = ("api", *COMPONENTS)  # the API and every component of the registry


def test_the_stack_has_the_log_the_store_and_every_component() -> None:
    assert set(SERVICES) == {"redpanda", "mongodb", *JOBLINE}
    assert "redpanda" in SERVICES["redpanda"]["image"]
    assert SERVICES["mongodb"]["command"][1:3] == ["--replSet", "rs0"]  # change streams


@pytest.mark.parametrize("name", JOBLINE)
def test_each_component_runs_a_real_command_with_valid_settings(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = SERVICES[name]
    assert service["build"] == "."
    assert service["command"][0] == name
    with pytest.raises(SystemExit) as exit_:
        main([*service["command"], "--help"])
    assert exit_.value.code == 0
    env = {k: v for k, v in service["environment"].items() if "${" not in v}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.kafka_bootstrap_servers == "redpanda:9092"
    assert settings.kafka_idempotence  # Redpanda supports the idempotent producer
    assert settings.mongodb_uri is not None
    assert "replicaSet=rs0" in settings.mongodb_uri
    assert "JOBLINE_UNSPLASH_ACCESS_KEY" in service["environment"]
    assert {"redpanda", "mongodb"} <= set(service["depends_on"])


def test_the_image_runs_the_jobline_command_as_a_non_root_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["jobline"]' in dockerfile
    assert "USER jobline" in dockerfile
    assert "scripts/fetch_graphiql_assets.py" in dockerfile
    for package in ("schema", "runtime", "processors", "projections", "api", "standin", "jobline"):
        assert f"COPY {package} {package}" in dockerfile
