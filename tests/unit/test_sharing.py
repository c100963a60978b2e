"""Which variables decide how a subscription's event is shown (api/sharing.py): those used
below the root field, not the root field's own arguments (which choose the events)."""

from __future__ import annotations

import inspect
import json
from typing import Any

from graphql import ExecutionResult, GraphQLError, OperationDefinitionNode, parse

from api.sharing import Direct, _VariablesBelowRoot


def _below_root(document: str) -> frozenset[str]:
    operation = parse(document).definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    return _VariablesBelowRoot.of(operation)


def test_the_root_fields_arguments_do_not_count() -> None:
    assert (
        _below_root(
            "subscription($since: String, $id: ID) { jobUpdates(since: $since, id: $id) "
            "{ cursor job { id } } }"
        )
        == frozenset()
    )


def test_variables_in_the_selection_and_in_the_root_fields_directives_count() -> None:
    assert _below_root(
        "subscription($since: String, $r: Boolean!, $on: Boolean!) { "
        "jobUpdates(since: $since) @include(if: $on) "
        "{ job { id result @include(if: $r) { id } } } }"
    ) == {"r", "on"}


def test_a_named_fragment_counts_every_variable() -> None:
    assert "*" in _below_root(
        "subscription { jobUpdates { job { ...f } } } fragment f on Job { id }"
    )
    assert "*" in _below_root(
        "subscription { ...g } fragment g on Subscription { jobCounts { total } }"
    )


class _Executor:
    """Stands in for a subscription's executor: counts the events it executes."""

    def __init__(self, result: ExecutionResult) -> None:
        self.operation = object()
        self.result = result
        self.executions = 0

    def _key(self, event: str) -> tuple[int, str]:
        return self.key_of(event)

    def key_of(self, shown_as: str) -> tuple[int, str]:
        return (id(self.operation), shown_as)

    def build_per_event_executor(self, event: str) -> Any:
        return self

    def execute_operation(self, serially: bool | None = None) -> ExecutionResult:
        self.executions += 1
        return self.result

    def is_awaitable(self, value: Any) -> bool:
        return inspect.isawaitable(value)


def _direct(
    operation_id: str, executor: _Executor, sent: list[str], takes_now: bool | None = None
) -> Direct:
    """Sends into `sent`; with `takes_now`, writes at once too (into `sent` if it takes)."""

    async def send_text(text: str) -> None:
        sent.append(text)

    def write_now(text: str) -> bool:
        if takes_now:
            sent.append(text)
        return bool(takes_now)

    prefix = f'{{"id":{json.dumps(operation_id)},"type":"next","payload":'
    return Direct(prefix, send_text, executor, None if takes_now is None else write_now)  # type: ignore[arg-type]


async def test_every_subscriber_gets_its_own_message_around_one_execution() -> None:
    executor = _Executor(ExecutionResult({"jobUpdates": {"cursor": "c1"}}, None))
    sent: list[str] = []
    for operation_id in ("1", "jobs", 'a"b'):
        assert await _direct(operation_id, executor, sent).send("change-1")
    assert executor.executions == 1
    assert [json.loads(text) for text in sent] == [
        {"id": i, "type": "next", "payload": {"data": {"jobUpdates": {"cursor": "c1"}}}}
        for i in ("1", "jobs", 'a"b')
    ]


async def test_a_result_with_errors_goes_the_usual_way() -> None:
    executor = _Executor(ExecutionResult(None, [GraphQLError("boom")]))
    sent: list[str] = []
    assert not await _direct("1", executor, sent).send("change-2")
    assert sent == []


async def test_a_change_is_written_at_once_from_the_one_shared_result() -> None:
    executor = _Executor(ExecutionResult({"jobUpdates": {"cursor": "c3"}}, None))
    sent: list[str] = []
    for operation_id in ("1", "2"):
        assert _direct(operation_id, executor, sent, takes_now=True).send_now(
            "change-3", lambda: "change-3"
        )
    assert executor.executions == 1
    assert [json.loads(text)["id"] for text in sent] == ["1", "2"]
    assert json.loads(sent[1])["payload"] == {"data": {"jobUpdates": {"cursor": "c3"}}}


async def test_nothing_is_written_at_once_that_must_go_the_usual_way() -> None:
    sent: list[str] = []
    fine = _Executor(ExecutionResult({"jobUpdates": {"cursor": "c4"}}, None))
    change = ("change-4", lambda: "change-4")
    assert not _direct("1", fine, sent, takes_now=False).send_now(*change)  # socket full
    assert not _direct("1", fine, sent).send_now(*change)  # no way to write at once
    failed = _Executor(ExecutionResult(None, [GraphQLError("boom")]))
    assert not _direct("1", failed, sent, takes_now=True).send_now("change-5", lambda: "change-5")
    assert sent == []


async def test_a_change_sent_the_usual_way_and_one_written_at_once_share_one_execution() -> None:
    executor = _Executor(ExecutionResult({"jobUpdates": {"cursor": "c6"}}, None))
    sent: list[str] = []
    assert await _direct("1", executor, sent).send("change-6")
    assert _direct("2", executor, sent, takes_now=True).send_now("change-6", lambda: "change-6")
    assert executor.executions == 1
    assert len(sent) == 2
