"""Protection that is configured: an API token for changes (REST, GraphQL mutations and
subscriptions; reads stay open), and CORS, off unless origins are named."""

from __future__ import annotations

import asyncio
import json

from pydantic import SecretStr

from tests.conftest import SystemFactory
from tests.integration.test_pipeline import subscription

TOKEN = "s3cret-token"  # noqa: S105 - a test's token
CREATE = "mutation { createJob { job { id } errors { __typename } } }"


async def test_changes_need_the_api_token_when_one_is_set(make_system: SystemFactory) -> None:
    system = await make_system(api_token=SecretStr(TOKEN))  # (overrides are not validated)
    good = {"Authorization": "Bearer s3cret-token"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token"}):
        refused = await system.http.post("/jobs", headers=headers)
        assert refused.status_code == 401, headers
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        assert "bearer token" in refused.json()["detail"]
        assert "s3cret" not in refused.text
    job = (await system.http.post("/jobs", headers=good)).json()
    assert (await system.http.post(f"/jobs/{job['id']}/cancel")).status_code == 401
    assert (await system.http.get(f"/jobs/{job['id']}")).status_code == 200  # reads are open
    assert (await system.http.get("/jobs")).status_code == 200

    unauthorized = (await system.http.post("/graphql", json={"query": CREATE})).json()
    assert unauthorized["data"] is None
    assert "bearer token" in unauthorized["errors"][0]["message"]
    assert unauthorized["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}
    authorized = await system.http.post("/graphql", json={"query": CREATE}, headers=good)
    assert authorized.json()["data"]["createJob"]["errors"] == []
    for _ in range(100):  # reads are open (the counts follow the creations a moment later)
        reading = await system.http.post("/graphql", json={"query": "{ jobCounts { total } }"})
        if reading.json()["data"]["jobCounts"]["total"] == 2:
            break
        await asyncio.sleep(0.1)
    assert reading.json()["data"]["jobCounts"]["total"] == 2

    query = "subscription { jobCounts { total } }"
    async with subscription(system, query) as ws:
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert message["type"] == "error"
        assert "bearer token" in message["payload"][0]["message"]
        assert message["payload"][0]["extensions"] == {"code": "UNAUTHENTICATED"}
    async with subscription(system, query, init=good) as ws:
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert message["payload"]["data"]["jobCounts"]["total"] >= 1
    config = (await system.http.get("/config.json")).json()
    assert config["token_required"] is True
    assert "s3cret" not in json.dumps(config)


async def test_cors_is_off_unless_origins_are_named(make_system: SystemFactory) -> None:
    preflight = {
        "Origin": "https://jobs.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "idempotency-key, content-type",
    }
    closed = await make_system()
    answer = await closed.http.options("/jobs", headers=preflight)
    assert "access-control-allow-origin" not in answer.headers
    opened = await make_system(cors_origins=["https://jobs.example"])
    answer = await opened.http.options("/jobs", headers=preflight)
    assert answer.headers["access-control-allow-origin"] == "https://jobs.example"
    assert "idempotency-key" in answer.headers["access-control-allow-headers"].lower()
    other = await opened.http.options("/jobs", headers=preflight | {"Origin": "https://evil"})
    assert "access-control-allow-origin" not in other.headers
