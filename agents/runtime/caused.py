"""Events caused by another: topic, key and ids derived, written once for every agent.

An agent's events all follow from the record it handles. The registry
(``streams.registry``) declares each event's topic and key; the cause gives the
correlation id, the causation id and the id the event's own id derives from, so a
redelivered cause re-emits the *same* event and consumers dedupe it by id.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict, Unpack

from agents.runtime.effects import Effects
from streams.envelope import Envelope, derived_id, new_event
from streams.registry import Payload, spec_for_model


class Options(TypedDict, total=False):
    """What an event may say for itself instead of deriving it (see ``event``)."""

    name: str | None
    event_id: str | None
    key: str | None
    at: datetime | None


def event(
    payload: Payload,
    *,
    cause: Envelope,
    source: str,
    name: str | None = None,
    event_id: str | None = None,
    key: str | None = None,
    at: datetime | None = None,
) -> Envelope:
    """``payload`` as an event caused by ``cause``.

    The id is ``derived_id(cause.id, name)``, ``name`` defaulting to the event type; pass
    ``event_id`` where the id derives from something else (a reservation, an order). ``key``
    defaults to the one the registry declares; pass it where the registry describes it in
    words that no payload method implements.
    """
    spec = spec_for_model(type(payload))
    return new_event(
        payload,
        key=key if key is not None else _declared_key(payload, cause),
        source=source,
        correlation_id=cause.correlation_id,
        causation_id=cause.id,
        event_id=event_id or derived_id(cause.id, name or spec.type),
        occurred_at=at,
    )


async def emit(
    effects: Effects, payload: Payload, *, cause: Envelope, source: str, **options: Unpack[Options]
) -> Envelope:
    """Emit ``payload`` (built as ``event`` builds it) on its registered topic; returns it."""
    envelope = event(payload, cause=cause, source=source, **options)
    await effects.emit(spec_for_model(type(payload)).topic, envelope)
    return envelope


def _declared_key(payload: Payload, cause: Envelope) -> str:
    """The registry's key (``Payload.record_key``), or the cause's correlation id it names."""
    try:
        return payload.record_key()
    except TypeError:
        # A payload cannot know the correlation id of what caused it; its cause does.
        if spec_for_model(type(payload)).key == "correlationId":
            return cause.correlation_id
        raise
