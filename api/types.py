"""The API's types, made from the view model: REST's pydantic models and GraphQL's Strawberry
types take their fields from the dataclasses of `projections/jobs/view.py` and `schema/`
(the photo), and the counts take theirs from `JobStatus`. A field added there appears on both
faces; nothing here declares one again.

Both faces serve the view objects themselves: a GraphQL resolver returns a `JobView`, whose
attributes Strawberry reads by name, and REST validates the same fields into its model.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Awaitable
from datetime import datetime
from typing import Any, Union, cast, get_args, get_origin, get_type_hints

import strawberry
from pydantic import BaseModel, ConfigDict, Field, create_model, model_serializer
from pydantic.config import JsonDict

from projections.jobs.view import HistoryEntry, JobStatus, JobView
from schema import EVENT_TYPES

strawberry.enum(JobStatus, description="Where a job is in its life.")

#: Descriptions shared by both faces, by field name.
DESCRIPTIONS = {
    "seq": "The job's place in creation order (the board's order, newest first).",
    "delay_s": "The wait, decided at creation (or at the latest retry).",
    "history": "The job's events, oldest first.",
    "type": f"The event's type: {', '.join(EVENT_TYPES)}.",
    "result": "The photo, once resolved.",
    "error": "Why the job failed, once failed.",
    "waiting_until": "While Unsplash's hourly allowance is spent: when this processing job's "
    "photo can be fetched (it waits; it does not fail).",
    "total": "All jobs.",
}


# -- GraphQL ------------------------------------------------------------------------------

_GRAPHQL: dict[type, type] = {}


@strawberry.interface(
    description="An object with an id unique across the schema, found again by `node(id)` "
    "(Relay's object identification)."
)
class Node:
    id: strawberry.ID

    @classmethod
    def resolve_type(cls, obj: Any, info: Any, abstract_type: Any) -> str | None:
        """The GraphQL type of a value the resolvers return: the type made from its class."""
        made = _GRAPHQL.get(type(obj))
        return None if made is None else made.__strawberry_definition__.name  # type: ignore[attr-defined]


def graphql_type(
    cls: type,
    *,
    name: str | None = None,
    fields: dict[str, Any] | None = None,
    interfaces: tuple[type, ...] = (),
) -> Any:
    """A Strawberry type with the fields of dataclass `cls` (a nested dataclass becomes its
    own derived type, a tuple a list, an `id` or `*_id` an ID); `fields` gives some of them a
    `strawberry.field` of their own (a GraphQL name, or a resolver where the view's value
    needs saying). The resolvers return instances of `cls` themselves, which is how the type
    recognises its values (behind an interface, say)."""
    hints = get_type_hints(cls)
    namespace: dict[str, Any] = {
        name: strawberry.field(description=text)
        for name, text in DESCRIPTIONS.items()
        if name in hints
    }
    namespace |= fields or {}
    namespace["is_type_of"] = classmethod(lambda _, obj, info: isinstance(obj, cls))
    namespace["__annotations__"] = {
        field.name: _graphql_hint(field.name, hints[field.name])
        for field in dataclasses.fields(cls)
    }
    made = strawberry.type(
        type(name or cls.__name__, interfaces, namespace), description=_first_line(cls.__doc__)
    )
    _GRAPHQL[cls] = made
    return made


def _graphql_hint(name: str, hint: Any) -> Any:
    if hint is str and (name == "id" or name.endswith("_id")):
        return strawberry.ID
    if dataclasses.is_dataclass(hint):
        return _GRAPHQL.get(hint) or graphql_type(hint)  # type: ignore[arg-type]
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        mapped = tuple(_graphql_hint(name, arg) for arg in get_args(hint))
        return Union[mapped]  # noqa: UP007 - made at run time
    if origin is tuple:
        return list[_graphql_hint(name, get_args(hint)[0])]  # type: ignore[misc]
    return hint


def _first_line(doc: str | None) -> str | None:
    """A docstring's first paragraph, on one line."""
    return " ".join(doc.strip().split("\n\n")[0].split()) if doc else None


def _public_seq(root: strawberry.Parent[JobView]) -> int | None:
    return root.public_seq


def _waiting_until(
    root: strawberry.Parent[JobView], info: strawberry.Info
) -> datetime | Awaitable[datetime | None] | None:
    """Not a coroutine: for most jobs (and while the allowance read is fresh) the answer
    is at hand, and an execution with nothing to wait for is shared at once
    (api/sharing.py)."""
    if root.status != JobStatus.PROCESSING:
        return None
    return info.context.services.allowance.known()  # type: ignore[no-any-return]


def _counts_key(counts: Any) -> tuple[int, ...]:
    """What fixes how counts are shown (api/sharing.py): their values."""
    return tuple(getattr(counts, status.value) for status in JobStatus)


def counts_type(name: str) -> Any:
    """The counts: a field per status, and the total."""
    annotations = {status.value: int for status in JobStatus} | {"total": int}
    namespace = {"__annotations__": annotations, "share_key": _counts_key}
    return strawberry.type(
        type(name, (), namespace), description="How many jobs are in each status."
    )


graphql_type(HistoryEntry, name="JobEvent")
GraphQLJob = graphql_type(
    JobView,
    name="Job",
    interfaces=(Node,),
    fields={
        "seq": strawberry.field(resolver=_public_seq, description=DESCRIPTIONS["seq"]),
        "delay_s": strawberry.field(name="delaySeconds", description=DESCRIPTIONS["delay_s"]),
        "waiting_until": strawberry.field(
            resolver=_waiting_until,
            graphql_type=datetime | None,
            description=DESCRIPTIONS["waiting_until"],
        ),
    },
)
GraphQLCounts = counts_type("JobCounts")


def graphql_counts(counts: dict[str, int]) -> Any:
    return GraphQLCounts(**counts, total=sum(counts.values()))


# -- REST ---------------------------------------------------------------------------------


_SIZES = {"raw": 6000, "full": 4000, "regular": 1080, "small": 400, "thumb": 200}


class _OmitAbsent(BaseModel):
    """`result`, `error`, `history` and `waiting_until` appear only when there is one."""

    model_config = ConfigDict(from_attributes=True)

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: Any) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in ("result", "error", "history", "waiting_until"):
            if data.get(name) is None:
                data.pop(name, None)
        return data


def rest_model(
    cls: type,
    *,
    name: str,
    base: type[BaseModel] = BaseModel,
    fields: dict[str, Any] | None = None,
) -> type[BaseModel]:
    """A pydantic model with the fields of dataclass `cls` (nested dataclasses as they are:
    pydantic validates and documents them; a tuple a list); `fields` replaces some, as
    (annotation, default)."""
    hints = get_type_hints(cls)
    made: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        if get_origin(hint) is tuple:
            hint = list[get_args(hint)[0]]  # type: ignore[misc]
        default = ... if field.default is dataclasses.MISSING else field.default
        made[field.name] = (hint, Field(default, description=DESCRIPTIONS.get(field.name)))
    for field_name, (hint, default) in (fields or {}).items():
        made[field_name] = (hint, Field(default, description=DESCRIPTIONS.get(field_name)))
    return create_model(name, __base__=base, __doc__=cls.__doc__, **made)


_AT = "2026-11-22T16:0{}.740000Z"
_PHOTO_URL = "https://images.unsplash.com/photo-1569718212165-3a8278d5f624?ixid=…&w={}"
EXAMPLE_JOB: dict[str, Any] = {
    "id": "c7463023-5a4e-4a4b-9f3e-2d8f3c1b7e21",
    "status": "resolved",
    "version": 3,
    "created_at": _AT.format("4:19"),
    "due_at": _AT.format("8:04"),
    "updated_at": _AT.format("8:05"),
    "delay_s": 225.0,
    "seq": 1042,
    "result": {
        "id": "Xk2vW8pQ3aE",
        "urls": {size: _PHOTO_URL.format(w) for size, w in _SIZES.items()},
        "alt_description": "a bowl of ramen",
        "width": 4000,
        "height": 6000,
        "color": "#d9a673",
        "blur_hash": "LKO2?V%2Tw=w]~RBVZRi};RPxuwH",
        "links": {
            "html": "https://unsplash.com/photos/Xk2vW8pQ3aE",
            "download_location": "https://api.unsplash.com/photos/Xk2vW8pQ3aE/download",
        },
        "user": {
            "name": "Example Cook",
            "username": "examplecook",
            "links": {"html": "https://unsplash.com/@examplecook"},
        },
    },
    "history": [
        {"type": t, "event_id": f"{i}b9e…", "occurred_at": _AT.format(at), "version": i}
        for i, (t, at) in enumerate(
            [("JobRequested", "4:19"), ("JobDue", "8:04"), ("JobResolved", "8:05")], start=1
        )
    ],
}


class _JobOutBase(_OmitAbsent):
    model_config = ConfigDict(
        from_attributes=True, json_schema_extra={"examples": [cast(JsonDict, EXAMPLE_JOB)]}
    )


JobOut = rest_model(
    JobView,
    name="JobOut",
    base=_JobOutBase,
    fields={
        "history": (list[HistoryEntry] | None, None),
        "waiting_until": (datetime | None, None),
    },
)
_COUNTED = (12, 3, 180, 2, 1)
EXAMPLE_COUNTS: JsonDict = {
    **{s.value: n for s, n in zip(JobStatus, _COUNTED, strict=True)},
    "total": sum(_COUNTED),
}
JobCounts = create_model(
    "JobCounts",
    __doc__="How many jobs are in each status.",
    __config__=ConfigDict(json_schema_extra={"examples": [EXAMPLE_COUNTS]}),
    **{status.value: (int, ...) for status in JobStatus},  # type: ignore[call-overload]
    total=(int, Field(description=DESCRIPTIONS["total"])),
)


def job_out(
    view: JobView, *, history: bool = False, waiting_until: datetime | None = None
) -> BaseModel:
    """The REST form of a view: its public `seq`, its history only when asked, and (for a
    processing job) until when it waits for Unsplash's allowance, if it does."""
    fields = {f.name: getattr(view, f.name) for f in dataclasses.fields(JobView)}
    fields |= {"seq": view.public_seq, "history": view.history if history else None}
    if view.status == JobStatus.PROCESSING:
        fields["waiting_until"] = waiting_until
    out: BaseModel = JobOut.model_validate(fields)
    return out


def counts_out(counts: dict[str, int]) -> BaseModel:
    out: BaseModel = JobCounts(**counts, total=sum(counts.values()))
    return out
