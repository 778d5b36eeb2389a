"""Setting a flag: written through the ``config`` topic, applied here, audited.

The gateway produces the flag's whole new state straight to ``config`` (no command, no
agent): a flag is last-writer-wins, so there is nothing to decide and no saga to run. The
PUT waits for the broker's ack and then for this gateway's own book to read the record
back, so the answer (and a GET right after it, here) shows the new state; the other
gateways and the workers read it within their next fetch.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiokafka.errors import KafkaError

from gateway import keys
from gateway.audit import recording
from gateway.identity.auth import Principal
from streams.envelope import format_time, new_event, utcnow
from streams.errors import Unavailable
from streams.events.config import FlagChanged, FlagRule, FlagSet
from streams.flags.rules import Flag

log = logging.getLogger(__name__)


async def set_flag(request: web.Request, admin: Principal, name: str, rule: FlagRule) -> Flag:
    """Write ``rule`` as flag ``name``'s state, wait until it applies here, audit it."""
    app = request.app
    settings, book = app[keys.SETTINGS], app[keys.FLAGS]
    previous = book.flag(name) if book.is_set(name) else None
    state = FlagSet(
        name=name, enabled=rule.enabled, rollout_percent=rule.rollout_percent,
        roles=rule.roles, updated_by=admin.user_id, updated_at=utcnow(),
    )
    event = new_event(
        state, key=name, source=app[keys.COMMANDS].source,
        correlation_id=request.get(keys.REQUEST_ID),
    )
    try:
        # Bounded like a command's send: with the broker away aiokafka would hold it longer.
        async with asyncio.timeout(settings.command_timeout):
            written = await app[keys.PRODUCER].send_and_wait(
                book.topic, key=name.encode(), value=event.encode(), headers=event.headers()
            )
    except (KafkaError, TimeoutError) as exc:
        log.warning("flag %s not set: %r", name, exc)
        raise Unavailable(
            "the event broker did not take the change in time; read the flag again before "
            "retrying",
            retry_after=2,
        ) from None
    await recording.record(request, FlagChanged(
        **recording.request_context(request, admin.user_id),
        name=name, enabled=rule.enabled, rollout_percent=rule.rollout_percent, roles=rule.roles,
        previous=None if previous is None else _rule_of(previous),
    ))
    try:
        async with asyncio.timeout(settings.command_timeout):
            await book.applied(written.partition, written.offset)
    except TimeoutError:
        # Written and acknowledged, so it applies everywhere once read; only this answer
        # is built from what was written rather than from the book.
        log.warning("flag %s written but not read back in time", name)
        return Flag(name, state.enabled, state.rollout_percent,
                    None if state.roles is None else frozenset(state.roles),
                    admin.user_id, format_time(state.updated_at))
    return book.flag(name)


def _rule_of(flag: Flag) -> FlagRule:
    return FlagRule.model_validate({
        "enabled": flag.enabled, "rolloutPercent": flag.rollout_percent,
        "roles": None if flag.roles is None else sorted(flag.roles),
    })
