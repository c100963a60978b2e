"""Which variables decide how a subscription's event is shown (api/sharing.py): those used
below the root field, not the root field's own arguments (which choose the events)."""

from __future__ import annotations

from graphql import OperationDefinitionNode, parse

from api.sharing import _VariablesBelowRoot


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
