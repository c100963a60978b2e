"""What one GraphQL document may ask for: its depth and its cost, checked when it is validated
(once per document text: the validation cache keeps the verdict).

Depth counts every field, introspection's too: the schema itself has no cycles, but
introspection does (`__type { fields { type { fields … } } }`), and that is where a deep query
comes from. GraphiQL's own introspection query is well within the limit.

Cost is an upper bound of the work a document asks for, from the document alone (variables
are not known yet): each field costs 1, and a list field multiplies what it selects by its
size: the page size its connection was asked for (`first`, `last`, `count`: the value when
written in the document, the largest allowed when it is a variable, the default when absent),
or a guess for other lists. Introspection fields cost nothing here (depth bounds them).
"""

from __future__ import annotations

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLOutputType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    VariableNode,
    get_named_type,
    is_composite_type,
)
from graphql.type import GraphQLCompositeType, GraphQLSchema

MAX_DEPTH = 20
MAX_COST = 10_000
SIZE_ARGUMENTS = ("first", "last", "count")
LARGEST_PAGE = 100  # the bound of every size argument (api/service.py)
DEFAULT_PAGE = 20
OTHER_LIST = 10  # a list without a size: a job's history, say


def depth_at_most(limit: int) -> type[ValidationRule]:
    class DepthLimit(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            fragments = _fragments(context)
            for operation in _operations(context):
                depth = _depth(operation.selection_set, fragments, frozenset())
                if depth > limit:
                    context.report_error(
                        GraphQLError(f"query depth {depth} is over the limit of {limit}")
                    )

    return DepthLimit


def cost_at_most(limit: int) -> type[ValidationRule]:
    class CostLimit(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            costing = _Costing(context.schema, _fragments(context))
            for operation in _operations(context):
                root = context.schema.get_root_type(operation.operation)
                if root is None:
                    continue  # not a type this schema has: another rule says so
                cost = costing.selections(operation.selection_set, root, None, frozenset())
                if cost > limit:
                    context.report_error(
                        GraphQLError(
                            f"query cost {cost} is over the limit of {limit} (each field "
                            f"costs 1; a list multiplies its fields by its page size)"
                        )
                    )

    return CostLimit


def _fragments(context: ValidationContext) -> dict[str, FragmentDefinitionNode]:
    return {
        d.name.value: d
        for d in context.document.definitions
        if isinstance(d, FragmentDefinitionNode)
    }


def _operations(context: ValidationContext) -> list[OperationDefinitionNode]:
    return [d for d in context.document.definitions if isinstance(d, OperationDefinitionNode)]


def _depth(
    selections: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    spread: frozenset[str],
) -> int:
    if selections is None:
        return 0
    deepest = 0
    for node in selections.selections:
        if isinstance(node, FieldNode):
            deepest = max(deepest, 1 + _depth(node.selection_set, fragments, spread))
        elif isinstance(node, InlineFragmentNode):
            deepest = max(deepest, _depth(node.selection_set, fragments, spread))
        elif isinstance(node, FragmentSpreadNode):
            name = node.name.value
            if name in fragments and name not in spread:  # a cycle: another rule says so
                inner = fragments[name].selection_set
                deepest = max(deepest, _depth(inner, fragments, spread | {name}))
    return deepest


class _Costing:
    """The cost walk over one document."""

    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self.schema = schema
        self.fragments = fragments

    def selections(
        self,
        selections: SelectionSetNode | None,
        parent: GraphQLCompositeType,
        size: int | None,
        spread: frozenset[str],
    ) -> int:
        """The cost of `selections` on `parent`; `size`: the page size lists below take."""
        if selections is None:
            return 0
        total = 0
        for node in selections.selections:
            if isinstance(node, FieldNode):
                field = getattr(parent, "fields", {}).get(node.name.value)
                if node.name.value.startswith("__") or field is None:
                    continue  # introspection, or an unknown field (another rule says so)
                total += self.field(node, field, size, spread)
            elif isinstance(node, InlineFragmentNode):
                on = node.type_condition
                inner = self.schema.get_type(on.name.value) if on is not None else parent
                if is_composite_type(inner):
                    total += self.selections(node.selection_set, inner, size, spread)
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                if name in self.fragments and name not in spread:
                    fragment = self.fragments[name]
                    inner = self.schema.get_type(fragment.type_condition.name.value)
                    if is_composite_type(inner):
                        total += self.selections(
                            fragment.selection_set,
                            inner,
                            size,
                            spread | {name},
                        )
        return total

    def field(
        self, node: FieldNode, field: GraphQLField, size: int | None, spread: frozenset[str]
    ) -> int:
        asked = _page_size(node, field)
        if asked is not None:
            size = asked
        times = 1
        if _is_list(field.type):
            times, size = (size if size is not None else OTHER_LIST), None
        inner = get_named_type(field.type)
        below = 0
        if is_composite_type(inner):
            below = self.selections(node.selection_set, inner, size, spread)
        return times * (1 + below)


def _page_size(node: FieldNode, field: GraphQLField) -> int | None:
    """The page size a field with a size argument is asked for (None: it has none)."""
    if not any(name in field.args for name in SIZE_ARGUMENTS):
        return None
    for argument in node.arguments or ():
        if argument.name.value not in SIZE_ARGUMENTS:
            continue
        if isinstance(argument.value, IntValueNode):
            return max(0, int(argument.value.value))
        if isinstance(argument.value, VariableNode):
            return LARGEST_PAGE
    return DEFAULT_PAGE


def _is_list(kind: GraphQLOutputType) -> bool:
    if isinstance(kind, GraphQLNonNull):
        kind = kind.of_type
    return isinstance(kind, GraphQLList)
