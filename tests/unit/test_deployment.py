"""docker-compose.yml, the Dockerfile and the configs they mount cannot run here (no Docker
engine): check them by construction, against the CLI and the settings they drive."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobline.cli import main
from jobline.components import COMPONENTS
from runtime.configref import README, env_example, readme_with_table
from runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
JOBLINE = ("api", *COMPONENTS)  # the API and every component of the registry: all scalable
RUN_ONCE = {"topics"}  # exits when done: no healthcheck, never restarted
PINNED = re.compile(r":v?\d+\.\d+\.\d+(-[a-z0-9.-]+)?$")  # an exact version, never `latest`
VARIABLE = re.compile(r"\bJOBLINE_[A-Z0-9_]+\b")


def _environment(service: dict[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (service.get("environment") or {}).items()}


def test_the_stack_has_the_log_its_console_the_store_every_component_and_their_watchers() -> None:
    assert set(SERVICES) == {
        "redpanda",
        "topics",
        "console",
        "mongodb",
        *JOBLINE,
        "proxy",
        "prometheus",
    }
    assert "redpandadata/redpanda" in SERVICES["redpanda"]["image"]
    assert "redpandadata/console" in SERVICES["console"]["image"]
    assert SERVICES["mongodb"]["command"][1:3] == ["--replSet", "rs0"]  # change streams


def test_redpanda_is_durable_and_the_topics_are_made_as_jobline_expects() -> None:
    redpanda = " ".join(SERVICES["redpanda"]["command"])
    assert "dev-container" not in redpanda  # that mode skips fsync
    assert "unsafe-bypass-fsync" not in redpanda
    assert "auto_create_topics_enabled=false" in redpanda
    assert SERVICES["redpanda"]["volumes"][0].endswith(":/var/lib/redpanda/data")
    (create,) = SERVICES["topics"]["command"]
    env = _environment(SERVICES["api"])
    topics = Settings(_env_file=None).topics  # type: ignore[call-arg]
    assert f"rpk topic create {topics.jobs} {topics.dead_letters} " in create
    assert f"--partitions {env['JOBLINE_TOPIC_PARTITIONS']} " in create
    assert f"--replicas {env['JOBLINE_TOPIC_REPLICATION_FACTOR']} " in create
    assert "retention.ms=-1" in create
    assert "retention.bytes=-1" in create


@pytest.mark.parametrize("name", JOBLINE)
def test_each_component_runs_a_real_command_configured_by_real_settings(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = SERVICES[name]
    assert service["build"] == "."
    assert service["command"] == [name]
    with pytest.raises(SystemExit) as exit_:
        main([*service["command"], "--help"])
    assert exit_.value.code == 0
    assert {"path": ".env", "required": False} in service["env_file"]
    for key, value in _environment(service).items():
        monkeypatch.setenv(key, value.replace("${JOBLINE_UNSPLASH_ACCESS_KEY:?", "key${"))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.kafka_bootstrap_servers == "redpanda:9092"
    assert settings.kafka_idempotence  # Redpanda has the idempotent producer
    assert settings.mongodb_uri is not None
    assert "replicaSet=rs0" in settings.mongodb_uri
    assert (settings.host, settings.port) == ("0.0.0.0", 8000)  # in its container
    conditions = {dep: spec["condition"] for dep, spec in service["depends_on"].items()}
    assert conditions == {
        "redpanda": "service_healthy",
        "topics": "service_completed_successfully",
        "mongodb": "service_healthy",
    }
    assert "ports" not in service, "a fixed host port: the service could not scale"
    assert f":{settings.port}/healthz" in " ".join(service["healthcheck"]["test"])


def test_every_jobline_variable_anywhere_is_a_real_setting() -> None:
    texts = [
        (ROOT / name).read_text()
        for name in ("docker-compose.yml", ".env.example", "Dockerfile", "README.md")
    ]
    named = {v for text in texts for v in VARIABLE.findall(text)}
    settings = {f"JOBLINE_{field.upper()}" for field in Settings.model_fields}
    assert named - settings == set()
    assert len(named & settings) == len(settings)  # and every setting is documented


def test_images_are_pinned_and_every_long_running_service_has_a_healthcheck() -> None:
    for name, service in SERVICES.items():
        assert PINNED.search(service["image"]), f"{name}: {service['image']} is not pinned"
        if name not in RUN_ONCE:
            assert service["healthcheck"]["test"], name
            assert service.get("restart", "unless-stopped") != "no", name
    assert SERVICES["topics"]["restart"] == "no"


def test_only_the_single_instance_services_publish_host_ports() -> None:
    published = {name for name, service in SERVICES.items() if "ports" in service}
    assert published == {"proxy", "console", "prometheus"}
    assert SERVICES["proxy"]["ports"] == ["8000:8000"]


def test_the_proxy_and_prometheus_find_every_instance_by_dns() -> None:
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
    assert re.search(r"dynamic a api 8000\b", caddyfile)
    assert re.search(r"@metrics path /metrics\s+respond @metrics 404", caddyfile)  # not public
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    (jobline,) = [job for job in prometheus["scrape_configs"] if job["job_name"] == "jobline"]
    (dns,) = jobline["dns_sd_configs"]
    assert set(dns["names"]) == set(JOBLINE)
    assert dns["port"] == 8000
    assert jobline["metrics_path"] == "/metrics"
    mounted = {v.split(":")[0] for s in SERVICES.values() for v in s.get("volumes", [])}
    assert {"./deploy/Caddyfile", "./deploy/prometheus.yml"} <= mounted


def test_the_image_is_multi_stage_slim_pinned_non_root_and_checks_its_health() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert len(bases) >= 2  # a build stage, then the image
    assert all(PINNED.search(base.split(" ")[0]) and "slim" in base for base in bases), bases
    users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert users, "the image runs as root"
    assert users[-1] not in ("root", "0")
    assert re.search(rf"useradd [^\n]*\b{users[-1]}$", dockerfile, re.MULTILINE)
    assert "HEALTHCHECK" in dockerfile
    assert "/healthz" in dockerfile
    assert 'ENTRYPOINT ["jobline"]' in dockerfile
    assert "scripts/fetch_graphiql_assets.py" in dockerfile
    for package in ("schema", "runtime", "processors", "projections", "api", "standin", "jobline"):
        assert f"COPY {package} {package}" in dockerfile


def test_the_configuration_reference_and_env_example_are_current() -> None:
    assert (ROOT / ".env.example").read_text() == env_example(), (
        "stale: run `python -m runtime.configref`"
    )
    readme = README.read_text()
    assert readme == readme_with_table(readme), "stale: run `python -m runtime.configref`"
