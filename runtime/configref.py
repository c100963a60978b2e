"""The configuration reference, derived from the Settings' descriptions: `.env.example` and the
README's table. `python -m runtime.configref` writes both; a unit test checks they match."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
ENV_EXAMPLE = ROOT / ".env.example"
README = ROOT / "README.md"
BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"
#: Each section starts at its first setting (the order of the Settings class).
SECTIONS = {
    "kafka_bootstrap_servers": "The log (Kafka protocol)",
    "mongodb_uri": "The store (Mongo wire protocol)",
    "host": "The API (and every process's operator routes)",
    "delay_min_s": "Jobs",
    "unsplash_access_key": "Unsplash",
    "startup_wait_s": "Running",
}
HEADER = """\
# jobline's settings, every one with its default (commented out). Copy this file to .env and
# set what you need: `jobline` reads .env from its working directory, and docker compose
# passes it to every service (the stack sets the addresses, host and port itself, in
# docker-compose.yml; it needs JOBLINE_UNSPLASH_ACCESS_KEY).
# Generated from runtime/settings.py by `python -m runtime.configref`: edit there.
"""


def variable(name: str) -> str:
    return f"JOBLINE_{name.upper()}"


def shown(value: Any) -> str:
    """A default as it is written in the environment."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return json.dumps(value)
    return str(value)


def env_example() -> str:
    lines = [HEADER]
    for name, field in Settings.model_fields.items():
        if name in SECTIONS:
            lines.append(f"# -- {SECTIONS[name]} --\n")
        about = textwrap.fill(
            field.description or "", 96, initial_indent="# ", subsequent_indent="# "
        )
        lines.append(f"{about}\n# {variable(name)}={shown(field.default)}\n")
    return "\n".join(lines)


def reference_table() -> str:
    rows = ["| Variable | Default | What it does |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        if name in SECTIONS:
            rows.append(f"| **{SECTIONS[name]}** | | |")
        default = shown(field.default)
        cell = f"`{default}`" if default else "(unset)"
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{variable(name)}` | {cell} | {description} |")
    return "\n".join(rows)


def readme_with_table(readme: str) -> str:
    before, _, rest = readme.partition(BEGIN)
    _, _, after = rest.partition(END)
    return f"{before}{BEGIN}\n{reference_table()}\n{END}{after}"


if __name__ == "__main__":
    ENV_EXAMPLE.write_text(env_example())
    README.write_text(readme_with_table(README.read_text()))
    print(f"wrote {ENV_EXAMPLE.name} and the table in {README.name}")
