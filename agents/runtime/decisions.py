"""Deciding each command once: the ledger every commanded agent keeps in its table.

A decision is stored *before* its effects run, so a redelivered command finds it
and repeats the same effects with the same ids, times and values instead of
deciding again (the state may have moved since). A command first seen after its
deadline is dropped with a ``command.expired`` record: the gateway has already
answered 503, and applying it now would surprise the client.

Three layouts, kept as they were so that stored tables read on as before:
``Decisions`` keeps an aggregate's last decisions beside its state
(``{..state, "decisions": {commandId: decision}}``, trimmed to the newest
``keep``); ``CommandDecisions`` keeps each command's decision as an entry of its
own; ``ClaimDecisions`` keeps, per key, the decision of the one command that
claimed it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from datetime import datetime
from typing import Any

from agents.runtime.effects import Effects
from agents.runtime.replies import record_expired, refuse
from streams.envelope import Envelope

Decision = dict[str, Any]
Entry = dict[str, Any]
Decide = Callable[[Entry], Awaitable[Decision]]
# The aggregate's state once ``decision`` is taken (its "decisions" are the ledger's).
Evolve = Callable[[Entry, Decision], Entry]


@dataclasses.dataclass(frozen=True, slots=True)
class Decided:
    """A command's decision, and whether it was taken on an earlier delivery."""

    decision: Decision
    replayed: bool


class Decisions:
    """An aggregate's recent decisions, stored in its table entry beside its state."""

    def __init__(
        self,
        table: MutableMapping[str, Any],
        effects: Effects,
        *,
        source: str,
        keep: int,
        empty: Mapping[str, Any] | None = None,
    ) -> None:
        """``keep``: how many decisions an entry holds, enough to recognise a redelivery
        (seconds later); ``empty``: the state of an aggregate never decided on."""
        self._table = table
        self._effects = effects
        self._source = source
        self._keep = keep
        self._empty = dict(empty or {})

    async def once(
        self,
        envelope: Envelope,
        decide: Decide,
        *,
        key: str,
        deadline: datetime,
        now: datetime,
        evolve: Evolve | None = None,
    ) -> Decided | None:
        """The decision on ``envelope``'s command; None when it expired undecided.

        ``decide`` gets the entry of ``key`` (the aggregate as it is now) and runs only
        for a command not decided before; the entry is then stored as ``evolve`` makes
        it (unchanged by default) with the decision recorded.
        """
        entry = self._entry(key)
        decision = self._recall(entry, envelope.id)
        if decision is not None:
            return Decided(decision, replayed=True)
        if now > deadline:
            await record_expired(
                self._effects, envelope, deadline=deadline, now=now, source=self._source
            )
            return None
        decision = await decide(entry)
        state = evolve(entry, decision) if evolve is not None else entry
        stored = self._stored(entry, state, envelope.id, decision)
        if stored is not None:
            self._table[key] = stored
        return Decided(decision, replayed=False)

    async def settle(
        self,
        envelope: Envelope,
        decide: Decide,
        *,
        key: str,
        deadline: datetime,
        now: datetime,
        reply_to: str,
        apply: Callable[[Decision], Awaitable[str | None]],
        applied: str = "accepted",
        evolve: Evolve | None = None,
    ) -> str:
        """Decide ``envelope``'s command once and end it the usual way; returns what happened.

        Too late: recorded by :meth:`once` (``"expired"``). Refused: answered with the
        decision's code and detail (``"rejected"``). Accepted: ``apply`` carries the
        decision out and answers (what it returns, else ``applied``). A redelivery ends the
        same way again.
        """
        decided = await self.once(
            envelope, decide, key=key, deadline=deadline, now=now, evolve=evolve
        )
        if decided is None:
            return "expired"
        if decided.decision["outcome"] == "rejected":
            await refuse(
                self._effects, envelope, decided.decision, reply_to=reply_to, source=self._source
            )
            return "rejected"
        return await apply(decided.decision) or applied

    def _entry(self, key: str) -> Entry:
        entry: Entry | None = self._table.get(key)
        return entry if entry is not None else {**self._empty, "decisions": {}}

    def _recall(self, entry: Entry, command_id: str) -> Decision | None:
        decision: Decision | None = entry["decisions"].get(command_id)
        return decision

    def _stored(
        self, entry: Entry, state: Entry, command_id: str, decision: Decision
    ) -> Entry | None:
        """The entry to store for ``decision``; None leaves the table as it is."""
        decisions = {**entry["decisions"], command_id: decision}
        while len(decisions) > self._keep:
            decisions.pop(next(iter(decisions)))  # the oldest: dicts keep insertion order
        return {**state, "decisions": decisions}


class CommandDecisions(Decisions):
    """One entry per command (key it ``command:{id}``): the entry is the decision itself.

    For agents whose commands change no state of the agent's own (the read model holds
    it). Nothing is trimmed, as before: no entry holds more than one decision.
    """

    def __init__(self, table: MutableMapping[str, Any], effects: Effects, *, source: str) -> None:
        super().__init__(table, effects, source=source, keep=1)

    def _entry(self, key: str) -> Entry:
        entry: Entry | None = self._table.get(key)
        return entry if entry is not None else {}

    def _recall(self, entry: Entry, command_id: str) -> Decision | None:
        return entry or None

    def _stored(
        self, entry: Entry, state: Entry, command_id: str, decision: Decision
    ) -> Entry | None:
        return decision


class ClaimDecisions(CommandDecisions):
    """One entry per key, owned by the first command that claims it: its decision.

    For keys that belong to one command for good (an email to the registration that
    took it). A decision claims the key when its ``commandId`` is the command's; it is
    stored as the entry (no other field is added, so stored tables read on). A refusal
    is not stored: the key stays its owner's, so a redelivered refusal is refused again
    by the same reasoning, and ``decide`` gets the owner's entry (``{}`` if unclaimed).
    """

    def _recall(self, entry: Entry, command_id: str) -> Decision | None:
        return entry if entry.get("commandId") == command_id else None

    def _stored(
        self, entry: Entry, state: Entry, command_id: str, decision: Decision
    ) -> Entry | None:
        return decision if decision.get("commandId") == command_id else None
