"""One execution and one serialization per change for every subscriber asking the same thing.

A change goes out to every live subscriber. GraphQL executes a subscription's selection set
for each event it yields (graphql-core's MapSourceToResponseEvent), so a thousand subscribers
of one document execute the same selection on the same change a thousand times, and encode
the same result to JSON a thousand times: that was two thirds of the API's CPU with a
thousand `jobUpdates` subscribers. Here the first subscriber to reach a change executes it;
every other subscriber of the same document gets that result (`SharingExecutor`).

Then each result still passed through a dozen layers per subscriber (graphql-core's event
map, Strawberry's stream and its extensions' hooks, the protocol handler, JSON encoding):
most of what was left. Over graphql-transport-ws a live change now skips them
(`DirectSends`): the subscription sends its `next` message itself, the payload's JSON made
once per change for all (`Direct.send`); a result with errors goes the usual way, which
masks and labels them.

Shared when the result cannot differ between subscribers: the same operation (the same
parsed document: the parser cache gives one per query text), the same values of the
variables its selection uses below the root field (the root field's own arguments, such
as `since` or `id`, choose which changes a subscriber gets, not how one is shown), and the
same change (`share_key`: a job's state is fixed by its id and version). A resolver below
the root that reads the world (`waitingUntil`) is read once per change for everyone.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import Any

from graphql import (
    ExecutionResult,
    FieldNode,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
    Visitor,
    visit,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)

from api.wire import Writer, text_messages

#: Results and encodings kept: changes come and go in order, and every subscriber of one
#: reaches it within moments of the others (or falls behind and is dropped, api/feed.py).
KEPT = 512


class _Recent(OrderedDict[Any, Any]):
    """The last KEPT entries."""

    def keep(self, key: Any, value: Any) -> Any:
        self[key] = value
        if len(self) > KEPT:
            self.popitem(last=False)
        return value


_results = _Recent()
_made = _Recent()
_below_root: dict[int, tuple[OperationDefinitionNode, frozenset[str]]] = {}


def share_key(event: Any) -> Hashable | None:
    """What fixes how an event is shown, for the events that are shared; None for others."""
    key = getattr(event, "share_key", None)
    return key() if callable(key) else None


class SharingExecutor(StrawberryGraphQLCoreExecutionContext):
    """Executes a subscription's event once per (operation, variables below the root,
    event); every other subscriber of the same gets a copy of that result."""

    def build_resolve_info(self, *args: Any, **kwargs: Any) -> Any:
        if self._is_event() and share_key(self.root_value) is None:
            # Resolving the subscription field itself (its source of events): its events
            # may be sent directly (DirectSends), executed by this executor.
            _subscription.set(self)
        return super().build_resolve_info(*args, **kwargs)

    def build_per_event_executor(self, payload: Any) -> Any:
        """A copy of this executor for one event, unless the event was executed already
        for the same: then only its result (graphql-core copies the executor per event)."""
        key = self._key(payload)
        if key is not None:
            found = _results.get(key)
            if found is not None and found[0] is self.operation:
                return _Executed(found[1])
        return super().build_per_event_executor(payload)

    def execute_operation(self, serially: bool | None = None) -> Any:
        key = self._key(self.root_value)
        if key is None:
            return super().execute_operation(serially)
        result: Any = super().execute_operation(serially)
        if self.is_awaitable(result):
            result = asyncio.ensure_future(result)
        _results.keep(key, (self.operation, result))
        return _Executed(result).execute_operation(serially)

    def _key(self, event: Any) -> Hashable | None:
        shown_as = share_key(event) if self._is_event() else None
        return None if shown_as is None else self.key_of(shown_as)

    def key_of(self, shown_as: Hashable) -> Hashable:
        """What a result is shared by, for an event shown as `shown_as` (its share_key)."""
        return (id(self.operation), self._variables_below_root(), shown_as)

    def _is_event(self) -> bool:
        # The subscription's own executor resolves the source stream (execute_operation is
        # not called for it); its per-event copies execute the events.
        return self.operation.operation == OperationType.SUBSCRIPTION

    def _variables_below_root(self) -> str:
        names = _variables_used_below_root(self.operation)
        if not names:
            return ""
        values = self.variable_values.coerced
        used = sorted(values) if "*" in names else sorted(names)
        return json.dumps({n: values.get(n) for n in used}, default=str)


class _Executed:
    """An event's execution, shared: each subscriber gets a result of its own around it."""

    def __init__(self, result: ExecutionResult | asyncio.Future[ExecutionResult]) -> None:
        self.result = result

    def execute_operation(self, serially: bool | None = None) -> Any:
        result = self.result
        if not isinstance(result, asyncio.Future):
            return _copy(result)
        if result.done():
            return _copy(result.result())
        return _copied_when_done(result)


async def _copied_when_done(work: asyncio.Future[ExecutionResult]) -> ExecutionResult:
    return _copy(await shared(work))


def _copy(result: ExecutionResult) -> ExecutionResult:
    """The shared data, in a result of its own (Strawberry sets a result's extensions and
    errors as it passes it on)."""
    errors = list(result.errors) if result.errors else None
    return ExecutionResult(result.data, errors, dict(result.extensions or {}) or None)


def _variables_used_below_root(operation: OperationDefinitionNode) -> frozenset[str]:
    known = _below_root.get(id(operation))
    if known is not None and known[0] is operation:
        return known[1]
    if len(_below_root) > KEPT:
        _below_root.clear()
    names = _VariablesBelowRoot.of(operation)
    _below_root[id(operation)] = (operation, names)
    return names


class _VariablesBelowRoot(Visitor):
    """The variables an operation uses anywhere but in its root fields' arguments (its
    fragments are walked where they are spread: a fragment spread marks it as used)."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    @classmethod
    def of(cls, operation: OperationDefinitionNode) -> frozenset[str]:
        visitor = cls()
        for selection in operation.selection_set.selections:
            if isinstance(selection, FieldNode):
                for directive in selection.directives or ():
                    visit(directive, visitor)
                if selection.selection_set is not None:
                    visit(selection.selection_set, visitor)
            else:  # a fragment at the root: everything in it counts
                return frozenset(["*"])
        return frozenset(visitor.names)

    def enter_fragment_spread(self, *_: Any) -> None:
        self.names.add("*")  # a named fragment may use any variable: share by all of them

    def enter_variable(self, node: VariableNode, *_: Any) -> None:
        self.names.add(node.name.value)


_subscription: ContextVar[SharingExecutor | None] = ContextVar("subscription", default=None)
#: The operation's `next` message up to its payload, and how to send text on its socket
#: (through ASGI, and at once when it can: api/wire.py).
_sender: ContextVar[tuple[str, Any, Writer | None] | None] = ContextVar("sender", default=None)


class DirectSends(BaseGraphQLTransportWSHandler[Any, Any]):
    """graphql-transport-ws, with each operation able to send its own `next` messages."""

    async def run_operation(self, operation: Operation[Any, Any]) -> None:
        socket = getattr(self.websocket, "ws", None)  # Strawberry's ASGI adapter's socket
        if socket is not None:
            prefix = f'{{"id":{json.dumps(operation.id)},"type":"next","payload":'
            _sender.set((prefix, socket.send_text, text_messages(socket.scope)))
        await super().run_operation(operation)


@dataclass(frozen=True, slots=True)
class Direct:
    prefix: str
    send_text: Any
    executor: SharingExecutor
    #: Writes a message at once, past the ASGI layers, if the socket takes it now.
    write_now: Writer | None = None

    async def send(self, event: Any) -> bool:
        """Send `event`'s `next` message; False (nothing sent) if its result has errors,
        for the usual way to mask and label them."""
        payload = self._shared_payload(event)
        if isinstance(payload, asyncio.Future):
            payload = await shared(payload)
        if payload is None:
            return False
        await self.send_text(f"{self.prefix}{payload}}}")
        return True

    def send_now(self, shown_as: Hashable, event: Callable[[], Any]) -> bool:
        """Write the `next` message of the event that `event()` makes, and `shown_as`
        identifies (its share_key), at once (api/wire.py) if its payload is made without
        waiting, has no errors, and the socket takes it now; False: nothing sent. (Called
        for every subscriber of every change: the event is made only for the first.)"""
        write_now = self.write_now
        if write_now is None:
            return False
        payload = self._shared(self.executor.key_of(shown_as), lambda: self._payload(event()))
        if isinstance(payload, asyncio.Future):
            if not payload.done() or payload.cancelled() or payload.exception() is not None:
                return False
            payload = payload.result()
        return payload is not None and write_now(f"{self.prefix}{payload}}}")

    def _shared_payload(self, event: Any) -> str | asyncio.Future[str | None] | None:
        key = self.executor._key(event)
        return None if key is None else self._shared(key, partial(self._payload, event))

    def _shared(
        self, key: Hashable, make: Callable[[], Any]
    ) -> str | asyncio.Future[str | None] | None:
        """The payload shared by `key`, made once for every subscriber of the operation
        (both ways of sending find it: one keyed from the event, one from its share key)."""
        payload: str | asyncio.Future[str | None] | None = once(key, make, self.executor.operation)
        return payload

    def _payload(self, event: Any) -> str | Awaitable[str | None] | None:
        result = self.executor.build_per_event_executor(event).execute_operation(False)
        if self.executor.is_awaitable(result):
            return _encoded_when_done(result)
        return _encoded(result)


async def _encoded_when_done(result: Awaitable[ExecutionResult]) -> str | None:
    return _encoded(await result)


def _encoded(result: ExecutionResult) -> str | None:
    """A result's `next` payload as JSON; None for one with errors."""
    return None if result.errors else json.dumps({"data": result.data}, separators=(",", ":"))


def once(key: Hashable, make: Callable[[], Any], owner: object = None) -> Any:
    """What `make()` gives, made once for every caller with the same `key` (and `owner`,
    compared by identity: a key may hold its id) while it is remembered: the value, or
    when making it has to wait, a future of it (await it with `shared`)."""
    found = _made.get(key)
    if found is None or found[0] is not owner:
        made = make()
        if inspect.isawaitable(made):
            made = asyncio.ensure_future(made)
        found = _made.keep(key, (owner, made))
    return found[1]


async def shared(work: asyncio.Future[Any]) -> Any:
    """The result of work shared by many: at once when done, else awaited without
    cancelling it for the others when this waiter is cancelled."""
    if work.done():
        return work.result()
    return await asyncio.shield(work)


def direct() -> Direct | None:
    """For a subscription's source of events: how to send its events directly, if its
    transport lets it (graphql-transport-ws) and its events are shared."""
    sender, executor = _sender.get(), _subscription.get()
    if sender is None or executor is None:
        return None
    prefix, send_text, write_now = sender
    return Direct(prefix, send_text, executor, write_now)
