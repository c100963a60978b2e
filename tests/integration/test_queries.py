"""The read queries on both faces, over real HTTP against the running app: `jobs` as a full
Relay connection (forwards and backwards, `totalCount`, `pageInfo`), `node(id)`, and REST's
twin of backward paging."""

from __future__ import annotations

from typing import Any

from tests.conftest import System

PAGE = """query($first: Int, $after: String, $last: Int, $before: String, $status: JobStatus) {
  jobs(first: $first, after: $after, last: $last, before: $before, status: $status) {
    totalCount
    edges { cursor node { id status } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""


async def _query(system: System, document: str, **variables: Any) -> dict[str, Any]:
    response = await system.http.post("/graphql", json={"query": document, "variables": variables})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _jobs(system: System, **arguments: Any) -> dict[str, Any]:
    answer = await _query(system, PAGE, **arguments)
    assert "errors" not in answer, answer
    jobs: dict[str, Any] = answer["data"]["jobs"]
    return jobs


def _ids(connection: dict[str, Any]) -> list[str]:
    return [edge["node"]["id"] for edge in connection["edges"]]


async def test_jobs_page_forwards_and_backwards_as_a_relay_connection(system: System) -> None:
    created = [await system.create() for _ in range(7)]
    for job in created:
        await system.wait_for(job["id"])
    newest_first = [job["id"] for job in reversed(created)]

    forwards: list[str] = []
    page = await _jobs(system, first=3)
    assert page["totalCount"] == 7
    assert page["pageInfo"]["hasPreviousPage"] is False
    while True:
        forwards += _ids(page)
        info = page["pageInfo"]
        assert (info["startCursor"], info["endCursor"]) == (
            page["edges"][0]["cursor"],
            page["edges"][-1]["cursor"],
        )
        if not info["hasNextPage"]:
            break
        page = await _jobs(system, first=3, after=info["endCursor"])
        assert page["pageInfo"]["hasPreviousPage"] is True
    assert forwards == newest_first

    backwards: list[str] = []
    page = await _jobs(system, last=3)  # the oldest three, newest first
    assert _ids(page) == newest_first[-3:]
    while True:
        backwards = _ids(page) + backwards
        if not page["pageInfo"]["hasPreviousPage"]:
            break
        page = await _jobs(system, last=3, before=page["pageInfo"]["startCursor"])
        assert page["pageInfo"]["hasNextPage"] is True
    assert backwards == newest_first

    statuses = {s: (await _jobs(system, first=1, status=s))["totalCount"] for s in ("RESOLVED",)}
    assert statuses == {"RESOLVED": 7}
    assert (await _jobs(system, first=5, status="PENDING")) == {
        "totalCount": 0,
        "edges": [],
        "pageInfo": {
            "hasNextPage": False,
            "hasPreviousPage": False,
            "startCursor": None,
            "endCursor": None,
        },
    }

    # REST, the twin: previous_cursor as `before` pages back to the newer jobs.
    older = await system.http.get("/jobs", params={"limit": 3, "cursor": page_cursor(page)})
    listing = older.json()
    assert listing["previous_cursor"] is not None
    newer = await system.http.get(
        "/jobs", params={"limit": 3, "before": listing["previous_cursor"]}
    )
    assert [job["id"] for job in newer.json()["items"]] == _ids(page)


def page_cursor(connection: dict[str, Any]) -> str:
    cursor: str = connection["pageInfo"]["endCursor"]
    return cursor


async def test_node_finds_a_job_and_paging_arguments_are_checked(system: System) -> None:
    job = await system.create()
    found = await _query(
        system,
        "query($id: ID!) { node(id: $id) { __typename id ... on Job { status version } } }",
        id=job["id"],
    )
    assert found["data"]["node"]["__typename"] == "Job"
    assert found["data"]["node"]["id"] == job["id"]
    missing = await _query(system, 'query { node(id: "no-such-job") { id } }')
    assert missing == {"data": {"node": None}}

    for arguments, complaint in [
        ({"first": 2, "last": 2}, "not both"),
        ({"first": 101}, "1 to 100 jobs"),
        ({"last": 0}, "1 to 100 jobs"),
        ({"before": "garbage!"}, "cursor"),
    ]:
        refused = await _query(system, PAGE, **arguments)
        (error,) = refused["errors"]
        assert complaint in error["message"], (arguments, error)
    bad = await system.http.get("/jobs", params={"cursor": "x"})
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("cursor (query): String should match pattern")
    too_many = await system.http.get("/jobs", params={"limit": 101})
    assert (too_many.status_code, too_many.json()) == (
        422,
        {"detail": "limit (query): Input should be less than or equal to 100"},
    )


async def test_after_and_before_together_give_the_jobs_between(system: System) -> None:
    created = [await system.create() for _ in range(6)]
    newest_first = [job["id"] for job in reversed(created)]
    edges = (await _jobs(system, first=6))["edges"]
    cursors = [edge["cursor"] for edge in edges]
    assert [edge["node"]["id"] for edge in edges] == newest_first

    a, b, c = cursors[0], cursors[2], cursors[5]
    for arguments, ids, more, flag in [
        ({"first": 10, "after": a, "before": c}, newest_first[1:5], "hasNextPage", False),
        ({"first": 2, "after": a, "before": c}, newest_first[1:3], "hasNextPage", True),
        ({"last": 2, "after": a, "before": c}, newest_first[3:5], "hasPreviousPage", True),
        ({"last": 10, "after": b, "before": c}, newest_first[3:5], "hasPreviousPage", False),
    ]:
        page = await _jobs(system, **arguments)
        assert _ids(page) == ids, arguments
        assert page["pageInfo"][more] is flag, arguments

    # REST: cursor (older than) and before (newer than) together, paging down.
    params = {"limit": 3, "cursor": cursors[0], "before": cursors[5]}
    page = (await system.http.get("/jobs", params=params)).json()
    assert [job["id"] for job in page["items"]] == newest_first[1:4]
    params["cursor"] = page["next_cursor"]
    page = (await system.http.get("/jobs", params=params)).json()
    assert [job["id"] for job in page["items"]] == newest_first[4:5]
    assert page["next_cursor"] is None
