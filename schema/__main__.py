"""`python -m schema` writes the JSON Schema of a record value, derived from the event classes,
to `schema/json/event.schema.json` (`--check`: only says whether the committed one is current).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from schema.codec import json_schema

COMMITTED = Path(__file__).parent / "json" / "event.schema.json"


def rendered() -> str:
    return json.dumps(json_schema(), indent=2) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m schema", description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if args.check:
        current = COMMITTED.read_text() == rendered()
        print(f"{COMMITTED} is {'current' if current else 'out of date: run python -m schema'}")
        return 0 if current else 1
    COMMITTED.write_text(rendered())
    print(f"wrote {COMMITTED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
