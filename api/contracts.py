"""The public interface's contracts, exported into the repository: the GraphQL schema (SDL)
and the REST API's OpenAPI document, in `schema/api/` beside the events' JSON Schema.

`python -m api.contracts` writes them from the code; `--check` only says whether the committed
ones are current. A test fails when they drift, so a change of the public interface is always
a visible diff in review.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from api.app import create_app
from api.graphql import schema
from runtime.settings import Settings

HERE = Path(__file__).resolve().parent.parent / "schema" / "api"


def graphql_sdl() -> str:
    return schema.as_str() + "\n"


def openapi_json() -> str:
    document = create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


#: Each contract: its file, and how the code renders it.
CONTRACTS: dict[Path, Callable[[], str]] = {
    HERE / "schema.graphql": graphql_sdl,
    HERE / "openapi.json": openapi_json,
}


def stale() -> list[Path]:
    """The committed contracts that differ from the code's (or are missing)."""
    return [p for p, render in CONTRACTS.items() if not p.exists() or p.read_text() != render()]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m api.contracts", description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if args.check:
        for path in stale():
            print(f"{path} is out of date: run python -m api.contracts")
        return 1 if stale() else 0
    for path, render in CONTRACTS.items():
        path.write_text(render())
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
