"""What an agent accepts from a topic before its decider sees the record.

``Envelope.decode`` checks the envelope's shape; an agent also needs the record to be
of a size it will handle and of an event type and version this code registers. A record
that fails any of these can never succeed, so it is dead-lettered at once with the reason
(``agents.runtime.resilience``) instead of reaching a decider that would ignore it, store
it half understood (the audit log appended any type) or choke on it.
"""

from __future__ import annotations

import functools

import orjson

from streams.envelope import Envelope, EnvelopeError
from streams.registry import all_specs

# Far above any record Mercato writes (the analytics stage's largest, a batch's facts of one
# scope, stays near 250 KB) and below the broker's 1 MB default, so a dead letter that
# carries a record's value always fits on ``dlq``.
MAX_RECORD_BYTES = 512 * 1024


class RecordTooLarge(EnvelopeError):
    """A record value over ``MAX_RECORD_BYTES``."""


class UnknownEventType(EnvelopeError):
    """An envelope whose type no registered event has."""


class UnsupportedVersion(EnvelopeError):
    """An envelope of a registered type in a version this code does not know (a newer one)."""


@functools.cache
def _versions() -> dict[str, frozenset[int]]:
    # Built on first use: the registry is complete only once streams.events is imported.
    known: dict[str, set[int]] = {}
    for spec in all_specs():
        known.setdefault(spec.type, set()).add(spec.version)
    return {kind: frozenset(versions) for kind, versions in known.items()}


def admit(raw: bytes | None) -> Envelope:
    """The record's envelope, if an agent may process it; raises an ``EnvelopeError`` why not."""
    if raw is None:
        raise EnvelopeError("the record has no value (a tombstone)")
    if len(raw) > MAX_RECORD_BYTES:
        raise RecordTooLarge(f"value of {len(raw)} bytes is over the {MAX_RECORD_BYTES} limit")
    envelope = Envelope.decode(raw)
    versions = _versions().get(envelope.type)
    if versions is None:
        raise UnknownEventType(f"event type {envelope.type!r} is not registered")
    if envelope.version not in versions:
        raise UnsupportedVersion(
            f"{envelope.type} v{envelope.version} is not known here "
            f"(known: {', '.join(f'v{v}' for v in sorted(versions))})"
        )
    return envelope


def kept_value(raw: bytes | None) -> tuple[str, bool]:
    """``raw`` as a dead letter keeps it: UTF-8 text whose JSON fits the limit, and if cut.

    Cutting the bytes alone is not enough: escaped control bytes take six bytes each in
    JSON and undecodable ones three, so a cut value could still make a dead letter the
    broker refuses; the text is halved until its JSON fits (a few rounds at most).
    """
    value = raw or b""
    text = value[:MAX_RECORD_BYTES].decode("utf-8", "replace")
    truncated = len(value) > MAX_RECORD_BYTES
    while len(orjson.dumps(text)) > MAX_RECORD_BYTES:
        text, truncated = text[: len(text) // 2], True
    return text, truncated
