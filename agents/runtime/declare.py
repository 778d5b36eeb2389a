"""The one way an agent is declared: a raw-bytes source topic and a guarded loop.

Every agent reads raw envelopes, hands each record to a decider's
``handle(value) -> outcome`` and lets ``guarded`` retry transient failures and
dead-letter the rest, so no record blocks a partition or silently vanishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Literal, Protocol, cast, overload

import faust
import faust.streams

from agents.runtime.commit import CommitGroup
from agents.runtime.effects import Effects, held
from agents.runtime.lanes import KeyLanes
from agents.runtime.resilience import guarded
from config import Settings
from streams.admission import admit
from streams.topics import partitions

log = logging.getLogger(__name__)


class RecordHandler(Protocol):
    """A decider's ``handle``: one raw record in, an outcome to log out."""

    def __call__(self, raw: bytes, /) -> Awaitable[object]: ...


class OffsetHandler(Protocol):
    """A projection's ``handle``, also told the record's offset (``pass_offset=True``)."""

    def __call__(self, raw: bytes, /, *, offset: int) -> Awaitable[object]: ...


# A domain's agents by name, as its ``install(app, settings, effects)`` returns them.
Agents = dict[str, Any]
# Records of one partition in flight at once for agents keyed like their state (the order
# pipeline): enough to overlap the round trips of many orders, few enough to bound memory.
KEYS_IN_FLIGHT = 32


def source_topic(app: faust.App, settings: Settings, name: str) -> Any:
    """The catalogue topic ``name`` as a raw-bytes Faust topic with its declared partitions."""
    return app.topic(
        settings.topic(name),
        partitions=partitions(settings, name),
        key_serializer="raw",
        value_serializer="raw",
    )


def source_table(app: faust.App, settings: Settings, name: str, *, topic: str, help: str) -> Any:
    """Table ``name`` (str keys, JSON values) co-partitioned with catalogue topic ``topic``.

    Faust writes an entry to the partition of the record being processed, and a table whose
    source topic has another partition count fails with PartitionsMismatch, so the count
    comes from the catalogue, never written again by hand.
    """
    return app.Table(name, partitions=partitions(settings, topic), key_type=str, help=help)


# The overloads pair the flag with the handler's shape, so a handler whose signature does
# not fit (``handle(envelope, *, now)``) fails mypy instead of raising TypeError per record.
@overload
def guarded_agent(
    app: faust.App,
    *,
    name: str,
    topic: Any,
    effects: Effects,
    handle: RecordHandler,
    pass_offset: Literal[False] = False,
    keys_in_flight: int = 1,
    **agent_options: Any,
) -> Any: ...


@overload
def guarded_agent(
    app: faust.App,
    *,
    name: str,
    topic: Any,
    effects: Effects,
    handle: OffsetHandler,
    pass_offset: Literal[True],
    keys_in_flight: int = 1,
    **agent_options: Any,
) -> Any: ...


def guarded_agent(
    app: faust.App,
    *,
    name: str,
    topic: Any,
    effects: Effects,
    handle: RecordHandler | OffsetHandler,
    pass_offset: bool = False,
    keys_in_flight: int = 1,
    **agent_options: Any,
) -> Any:
    """Declare agent ``name`` on ``topic`` processing each record through ``guarded``.

    ``pass_offset``: call ``handle(value, offset=...)`` for projections that order by offset.
    ``keys_in_flight``: records of one partition processed at once, each key's in order
    (``agents.runtime.lanes``); only for agents whose state is keyed like their records.
    """

    async def one(message: Any, group: CommitGroup) -> None:
        # Every attempt's table changes: a retry that finds them made must wait for them too.
        changelog: list[asyncio.Future[Any]] = []

        async def process(value: bytes = message.value, offset: int = message.offset) -> None:
            # Oversized, unknown or newer records are dead-lettered here, whatever the
            # decider would have made of them (streams.admission).
            admit(value)
            with held(changelog) as effects_of_record:
                # The overloads guarantee ``handle`` has the shape ``pass_offset`` says.
                if pass_offset:
                    outcome = await cast(OffsetHandler, handle)(value, offset=offset)
                else:
                    outcome = await cast(RecordHandler, handle)(value)
            # Durable before the record is acked; a failure retries the record whole.
            await group.commit(effects_of_record)
            log.debug("%s: %s", name, outcome)

        await guarded(
            agent=name,
            effects=effects,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            process=process,
        )

    async def consume(stream: Any) -> None:
        # This actor's partition commits its records' effects together (agents.runtime.commit).
        group = CommitGroup()
        try:
            if keys_in_flight <= 1:
                async for event in stream.events():
                    await one(event.message, group)
                return
            # Acked by the lanes once processed, in offset order (see agents.runtime.lanes).
            manual = stream.noack()
            lanes = KeyLanes(manual, limit=keys_in_flight)
            try:
                async for event in manual.events():
                    await lanes.submit(event, functools.partial(one, event.message, group))
            finally:
                await lanes.aclose()
        finally:
            await group.aclose()

    consume.__name__ = consume.__qualname__ = name
    # One actor per partition: partitions are processed concurrently while each keeps its
    # order (all our ordering guarantees are per key, hence per partition).
    agent_options.setdefault("isolated_partitions", True)
    return app.agent(topic, name=name, **agent_options)(consume)


@contextlib.contextmanager
def as_current(event: Any) -> Iterator[None]:
    """Make ``event`` Faust's current event while the block runs.

    A table write goes to the partition (and changelog partition) of the current event,
    which Faust sets only while an agent iterates one event at a time; a batched agent
    sets it for each record of its batch through the same context variable.
    """
    # Faust's private context variable (``faust.streams.current_event`` reads it): no public
    # setter exists. Checked by the e2e analytics tests, whose order facts need the table.
    token = faust.streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust.streams._current_event.reset(token)


def batched_agent(
    app: faust.App,
    *,
    name: str,
    topic: Any,
    handle: Callable[[Sequence[Any]], Awaitable[object]],
    size: int,
    within: float,
    **agent_options: Any,
) -> Any:
    """Declare agent ``name`` handing ``handle`` up to ``size`` events at a time.

    A batch is what arrived within ``within`` seconds (or ``size`` events, if sooner); its
    records are acked only once ``handle`` returned, so their offsets are committed after
    its effects (Faust's ``take_events``). ``handle`` guards each record itself
    (``agents.runtime.resilience.guarded``) and runs table writes under :func:`as_current`.
    """

    async def consume(stream: Any) -> None:
        async for events in stream.take_events(size, within=within):
            # Faust acks a batch even when its handler raised (in the generator's cleanup),
            # so a failure ``handle`` did not absorb (the dead-letter topic unreachable, say)
            # is retried here until it passes: never acked unhandled, never lost.
            delay = 0.2
            while True:
                try:
                    outcome = await handle(events)
                    break
                except Exception:
                    log.exception("%s: a batch of %d records failed; retrying in %.1fs",
                                  name, len(events), delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
            log.debug("%s: %s", name, outcome)

    consume.__name__ = consume.__qualname__ = name
    # One actor for every partition: a batch then spans them (bigger batches, fewer records
    # downstream), and idle partitions do not each wake a batching loop every ``within``
    # (an actor per partition of six topics was ~480 wake-ups a second doing nothing).
    # Order per partition holds, and table writes follow each record's own partition.
    agent_options.setdefault("isolated_partitions", False)
    return app.agent(topic, name=name, **agent_options)(consume)
