"""One source of truth per event type: its payload model, topic, version and docs.

Producers and consumers import the same model; JSON Schema and AsyncAPI are
generated from these registrations (``streams.schema``), never hand-copied.
"""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, PlainSerializer, WithJsonSchema
from pydantic.alias_generators import to_camel

from streams.commands import CommandSpec
from streams.topics import spec as topic_spec

M = TypeVar("M", bound=type[BaseModel])


def _rfc3339_millis(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Every time in an event: RFC 3339 UTC with milliseconds and a Z, like the envelope's.
Timestamp = Annotated[
    datetime,
    PlainSerializer(_rfc3339_millis, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class Payload(BaseModel):
    """Base of every event payload: camelCase on the wire, frozen, tolerant of new fields.

    Unknown fields are ignored rather than rejected so that adding an optional
    field stays a backward-compatible change within a version.
    """

    model_config = ConfigDict(
        frozen=True, alias_generator=to_camel, populate_by_name=True, extra="ignore"
    )

    def record_key(self) -> str:
        """The Kafka record key: the field the registered ``key`` names.

        A payload whose ``key`` is a description rather than a field overrides this.
        """
        spec = spec_for_model(type(self))
        if spec.key_field is None:
            raise TypeError(f"{spec.type}: key {spec.key!r} names no field; override record_key")
        return str(getattr(self, spec.key_field))


class Command(Payload):
    """A payload an agent answers over ``replies``; its ``@event`` names what it may answer.

    ``CommandBus.ask`` takes only these, so mypy refuses to wait on a payload nobody
    answers, and ``event`` refuses at import a command registered without ``answers``.
    """


@dataclasses.dataclass(frozen=True, slots=True)
class EventSpec:
    """A registered event type."""

    type: str
    version: int
    topic: str
    model: builtins.type[BaseModel]
    summary: str
    key: str
    # The payload attribute whose camelCase name is ``key``, when ``key`` names one.
    key_field: str | None = None
    # What an agent may answer, for a command the gateway waits on (a ``Command``).
    answers: CommandSpec | None = None

    @property
    def internal(self) -> bool:
        """Whether the event travels on an internal topic (not a data-team contract)."""
        return topic_spec(self.topic).internal


_BY_TYPE: dict[tuple[str, int], EventSpec] = {}
_BY_MODEL: dict[type[BaseModel], EventSpec] = {}


def event(
    type_: str,
    *,
    version: int = 1,
    topic: str,
    key: str,
    summary: str,
    answers: CommandSpec | None = None,
) -> Callable[[M], M]:
    """Register a payload model as event ``type_`` v``version`` on ``topic``.

    ``answers``: the refusals an agent may answer, given exactly when the model is a
    ``Command`` (one the gateway waits on), so a command can never lack them.
    """

    def register(model: M) -> M:
        topic_spec(topic)  # fail at import on an unknown topic name
        if issubclass(model, Command) != (answers is not None):
            raise TypeError(
                f"event {type_}: a Command declares answers=..., and only a Command does"
            )
        spec = EventSpec(
            type_, version, topic, model, summary, key, _field_named(model, key), answers
        )
        if (type_, version) in _BY_TYPE:
            raise ValueError(f"event {type_} v{version} is registered twice")
        _BY_TYPE[(type_, version)] = spec
        _BY_MODEL[model] = spec
        return model

    return register


def _field_named(model: type[BaseModel], name: str) -> str | None:
    """The attribute of ``model`` whose own or camelCase wire name is ``name``, if any."""
    fields = model.model_fields.items()
    return next((field for field, info in fields if name in (field, info.alias)), None)


def spec_for(type_: str, version: int) -> EventSpec | None:
    """The spec of ``type_`` v``version``, if registered."""
    return _BY_TYPE.get((type_, version))


def spec_for_model(model: type[BaseModel]) -> EventSpec:
    """The spec a payload model was registered under."""
    try:
        return _BY_MODEL[model]
    except KeyError:
        raise KeyError(f"{model.__name__} is not a registered event payload") from None


def all_specs() -> Iterator[EventSpec]:
    """Every registered event, ordered by topic then type."""
    import streams.events  # noqa: F401  (registers the catalogue of events)

    yield from sorted(_BY_TYPE.values(), key=lambda s: (s.topic, s.type, s.version))


def command_spec(model: type[BaseModel]) -> CommandSpec:
    """What command ``model``'s agent may refuse; a payload nobody answers is not a command."""
    answers = _BY_MODEL[model].answers if model in _BY_MODEL else None
    if answers is None:
        raise KeyError(f"{model.__name__} is not a command a gateway waits on")
    return answers


def answered_models() -> Mapping[type[BaseModel], CommandSpec]:
    """Every command a gateway waits on, with its spec."""
    import streams.events  # noqa: F401  (registers the catalogue of events)

    return {spec.model: spec.answers for spec in _BY_TYPE.values() if spec.answers is not None}
