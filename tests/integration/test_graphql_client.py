"""A third-party GraphQL client, `gql`, against the running app on the real broker and
store: it reads the schema by introspection and checks every document against it before
sending, then queries and mutates over HTTP and subscribes over graphql-transport-ws."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport

from tests.conftest import System

CREATE = """mutation($key: String) {
      createJob(idempotencyKey: $key) {
        job { id status dueAt }
        errors { __typename message }
      }
    }"""
PAGE = """query($first: Int, $after: String) {
      jobs(first: $first, after: $after) {
        totalCount
        edges { cursor node { id status } }
        pageInfo { hasNextPage endCursor }
      }
      jobCounts { total }
    }"""
FOLLOW = """subscription($id: ID) {
      jobUpdates(id: $id) { cursor job { id status version result { urls { small } } } }
    }"""
CANCEL = """mutation($id: ID!) {
      cancelJob(id: $id) {
        job { id }
        errors { __typename message ... on WrongStateError { status } }
      }
    }"""


def _request(document: str, variables: dict[str, Any]) -> GraphQLRequest:
    return GraphQLRequest(document, variable_values=variables)


def _http(system: System) -> Client:
    return Client(
        transport=HTTPXAsyncTransport(url=f"{system.base_url}/graphql"),
        fetch_schema_from_transport=True,  # and validate every document against it
    )


async def test_gql_queries_mutates_and_subscribes(system: System) -> None:
    async with _http(system) as session:
        created = await session.execute(_request(CREATE, {"key": "gql-client-1"}))
        assert created["createJob"]["errors"] == []
        job = created["createJob"]["job"]
        assert job["status"] == "PENDING"
        again = await session.execute(_request(CREATE, {"key": "gql-client-1"}))
        assert again["createJob"]["job"]["id"] == job["id"]  # the key: one job

        ws = WebsocketsTransport(
            url=system.base_url.replace("http://", "ws://") + "/graphql",
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        )
        statuses: list[str] = []
        async with Client(transport=ws) as live:
            updates = live.subscribe(_request(FOLLOW, {"id": job["id"]}))

            async def until_resolved() -> None:
                async for update in updates:
                    followed: dict[str, Any] = update["jobUpdates"]["job"]
                    statuses.append(followed["status"])
                    if followed["status"] in ("RESOLVED", "FAILED"):
                        assert followed["result"]["urls"]["small"]
                        return

            await asyncio.wait_for(until_resolved(), 60)
        assert statuses[-1] == "RESOLVED"
        assert statuses == sorted(statuses, key=["PENDING", "PROCESSING", "RESOLVED"].index)

        page = await session.execute(_request(PAGE, {"first": 10}))
        assert page["jobs"]["totalCount"] == page["jobCounts"]["total"] == 1
        assert [e["node"] for e in page["jobs"]["edges"]] == [
            {"id": job["id"], "status": "RESOLVED"}
        ]

        refused = await session.execute(_request(CANCEL, {"id": job["id"]}))
        (error,) = refused["cancelJob"]["errors"]
        assert (error["__typename"], error["status"]) == ("WrongStateError", "RESOLVED")

        with pytest.raises(TransportQueryError) as raised:
            await session.execute(_request(PAGE, {"first": 1, "after": "not-a-cursor"}))
        assert raised.value.errors is not None
        assert raised.value.errors[0]["extensions"] == {"code": "BAD_USER_INPUT"}
