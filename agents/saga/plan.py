"""What one saga message decides to do, recorded before it is done.

A ``Plan`` is built while a message is applied to the state: transitions,
commands to other agents, grants, notifications and the answer to a waiting
gateway, each as a complete envelope with a derived id. It is stored in the
saga state (``last``) *before* it runs, so a redelivery of that message after
a crash re-runs the very same envelopes; the receivers dedupe by id.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Literal

from agents.runtime import caused
from agents.runtime.effects import Effects
from agents.saga.state import State, read_model, seller_ids
from stores.orders import OrderRepository
from streams.envelope import Envelope, derived_id, format_time
from streams.events.commands import CommandAnswered
from streams.events.orders import OrderStatusChanged
from streams.registry import Payload

SOURCE = "agents.orders"


@dataclasses.dataclass(slots=True)
class Plan:
    """Effects of one message on one saga, in the order they must happen."""

    state: State
    cause: Envelope
    now: datetime
    events: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    replies: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def order_id(self) -> str:
        """The order this plan is about."""
        return str(self.state["orderId"])

    def channels(self) -> list[str]:
        """Where the order's public events are pushed: the order, its buyer and sellers."""
        return [f"order:{self.order_id}", f"user:{self.state['buyerId']}",
                *(f"user:{s}" for s in seller_ids(self.state))]

    def send(
        self, topic: str, payload: Payload, *, key: str, name: str,
        push: bool = False,
    ) -> Envelope:
        """Queue ``payload`` on ``topic``; ``name`` makes the event id deterministic."""
        envelope = caused.event(
            payload, cause=self.cause, source=SOURCE, key=key,
            event_id=derived_id(self.order_id, name), at=self.now,
        )
        self.events.append({"topic": topic, "event": envelope.to_dict(),
                            "push": self.channels() if push else []})
        return envelope

    def move(self, status: str, reason: str | None = None) -> None:
        """Transition the order to ``status``: history, version and a public event."""
        previous = self.state["status"]
        if previous == status:
            return
        entry: dict[str, Any] = {"status": status, "at": format_time(self.now)}
        if reason:
            entry["reason"] = reason
        self.state["history"].append(entry)
        self.state["status"] = status
        changed = OrderStatusChanged(
            order_id=self.order_id, buyer_id=self.state["buyerId"],
            seller_ids=seller_ids(self.state), previous=previous, status=status,
            reason=reason, at=self.now,
        )
        seq = len(self.state["history"])
        self.send("orders", changed, key=self.order_id, name=f"status:{seq}:{status}", push=True)

    def answer(
        self, *, reply_to: str, outcome: Literal["accepted", "rejected"],
        code: str | None = None, detail: str | None = None,
    ) -> None:
        """Answer the waiting gateway (same id as ``agents.runtime.replies.reply`` would use)."""
        answer = CommandAnswered(
            command_id=self.cause.id, reply_to=reply_to, outcome=outcome, code=code,
            detail=detail, result={"orderId": self.order_id, "status": self.state["status"]},
        )
        envelope = caused.event(
            answer, cause=self.cause, source=SOURCE, name="answer", key=self.cause.id, at=self.now
        )
        self.replies.append(envelope.to_dict())

    def record(self) -> dict[str, Any]:
        """The plan as stored in the state's ``last``."""
        return {"messageId": self.cause.id, "events": self.events, "replies": self.replies}


async def carry_out(effects: Effects, state: State, recorded: dict[str, Any]) -> None:
    """Run a recorded plan: read model first (a GET after the answer sees it), then events."""
    await effects.repo(OrderRepository).project(read_model(state))
    records: list[tuple[str, str, Envelope]] = []
    for item in recorded["events"]:
        envelope = Envelope.decode(item["event"])
        records.append((item["topic"], envelope.key, envelope))
        records.extend(("push", channel, envelope) for channel in item["push"])
    records.extend(("replies", r["key"], Envelope.decode(r)) for r in recorded["replies"])
    # One message can mean twenty records; the agent runtime holds them with the read model
    # write and commits them with other records' (agents.runtime.commit): the write goes
    # first, the broker's acks are awaited once.
    for topic, key, envelope in records:
        if topic == "push":
            await effects.push(key, envelope)
        else:
            await effects.emit(topic, envelope)
