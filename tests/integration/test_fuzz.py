"""Both faces fuzzed from their own documents, as a new user would: Schemathesis (every one
of its checks, with the exceptions schemathesis.toml names and says why) generates requests
from the served OpenAPI document and from the GraphQL schema's arguments, and sends them to
the running app over real HTTP. No answer may be a 5xx or undocumented, and the app must be
healthy after. Bounded: a fixed number of examples per operation, and a time limit."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import System

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
#: Examples per operation and phase; the seed is fixed so that a failure can be replayed
#: (JOBLINE_FUZZ_SEED picks another).
EXAMPLES = 20
SEED = os.environ.get("JOBLINE_FUZZ_SEED", "20261206")
TIME_LIMIT_S = 240


async def _schemathesis(location: str) -> None:
    """`schemathesis run` from the repository's root (its schemathesis.toml applies)."""
    process = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        "run",
        location,
        f"--max-examples={EXAMPLES}",
        f"--seed={SEED}",
        "--workers=1",
        "--no-color",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), TIME_LIMIT_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = output.decode(errors="replace")
    assert process.returncode == 0, f"schemathesis found failures:\n{text[-12_000:]}"
    assert " passed" in text, text[-2_000:]


@pytest.mark.timeout(2 * TIME_LIMIT_S + 60)
async def test_rest_and_graphql_fuzzed_from_their_documents(system: System) -> None:
    await _schemathesis(f"{system.base_url}/openapi.json")
    await _schemathesis(f"{system.base_url}/graphql")

    # Healthy after: it answers, and a new job still goes all the way.
    assert (await system.http.get("/healthz")).status_code == 200
    job = await system.create()
    assert (await system.wait_for(job["id"]))["status"] == "resolved"
