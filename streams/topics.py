"""The topic catalogue: every topic Mercato uses, with its partitions and configs.

Faust does not create agent source topics, and a table whose source topic has
another partition count fails with PartitionsMismatch, so every topic is
declared here and created explicitly (``mercato topics create``).

The partition count is a deployment setting (``MERCATO_TOPIC_PARTITIONS``), the most
workers that share the pipeline: every topic takes it, so the topics an agent joins with
its table stay co-partitioned, except a topic with a ``fixed_partitions`` count. Every
reader asks ``partitions(settings, name)``.
"""

from __future__ import annotations

import dataclasses

from config import Settings

DAY_MS = 24 * 60 * 60 * 1000


@dataclasses.dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic: its catalogue name (without prefix) and how it is created."""

    name: str
    description: str
    # None: the deployment's count (Settings.topic_partitions). A number: this count whatever
    # the setting, for a topic no agent joins with a table and that must keep one order.
    fixed_partitions: int | None = None
    # Internal topics may carry secrets or gateway plumbing; data teams must not rely on them.
    internal: bool = False
    retention_ms: int = 7 * DAY_MS
    compacted: bool = False
    # Read by the worker's domain agents (commands and the facts they project): readiness
    # checks these exist and reports the consumer group's lag on them, and the order bench
    # waits for them to drain. The analytics stages' sources are left out: they read public
    # event topics in batches, where lag delays dashboards, never an answer or an effect;
    # so are the webhooks agents' (the routers and the deliveries agent): their lag delays
    # deliveries to other systems, never an answer or the pipeline's effects;
    # so is ``dlq``, whose projection only lists dead letters for operators.
    worker_source: bool = False

    def configs(self) -> dict[str, str]:
        """Broker topic configs to create the topic with."""
        return {
            "cleanup.policy": "compact" if self.compacted else "delete",
            "retention.ms": str(self.retention_ms),
        }


CATALOGUE: tuple[TopicSpec, ...] = (
    TopicSpec(
        "registrations",
        "Registration commands keyed by normalised email. Carries password hashes: internal.",
        internal=True,
        worker_source=True,
    ),
    TopicSpec("users", "User lifecycle events keyed by user id."),
    TopicSpec(
        "user-commands",
        "Profile, role and password commands keyed by user id. Carries password hashes: internal.",
        internal=True,
        worker_source=True,
    ),
    TopicSpec(
        "outbox",
        "Notification commands keyed by recipient user id: messages to deliver (may carry "
        "single-use tokens) and read/delete requests. Internal.",
        internal=True,
        worker_source=True,
    ),
    TopicSpec("products", "Catalog events keyed by product id."),
    TopicSpec(
        "inventory", "Stock changes and reservations keyed by product id.", worker_source=True
    ),
    TopicSpec("orders", "Order saga transitions keyed by order id."),
    TopicSpec("payments", "Charges and refunds keyed by order id."),
    TopicSpec(
        "files", "File lifecycle and permission events keyed by file id.", worker_source=True
    ),
    TopicSpec(
        "groups", "User groups (for file sharing) and their members, keyed by group id.",
        worker_source=True,
    ),
    TopicSpec(
        "product-commands",
        "Catalog commands (create/update/archive) keyed by product id: internal.",
        internal=True,
        worker_source=True,
    ),
    TopicSpec(
        "inventory-commands",
        "Stock commands (reserve/release/adjust) keyed by product id: internal.",
        internal=True,
        worker_source=True,
    ),
    TopicSpec(
        "payment-commands",
        "Charge and refund commands keyed by order id; carry payment methods: internal.",
        internal=True,
        worker_source=True,
    ),
    TopicSpec(
        "order-saga",
        "The order saga's inbox keyed by order id: client commands and step results: internal.",
        internal=True,
        worker_source=True,
    ),
    TopicSpec("notifications", "Notifications to deliver, keyed by recipient user id."),
    TopicSpec(
        "webhooks",
        "Webhook endpoint changes, deliveries to make and their attempts, keyed by webhook id; "
        "carries copies of public events for delivery: internal.",
        internal=True,
    ),
    TopicSpec("analytics", "Client and platform analytics events."),
    TopicSpec(
        "analytics-facts",
        "Each source event's contribution to one scope's metrics, keyed by scope, and the "
        "analytics timer's ticks: the analytics agents' internal plumbing.",
        internal=True,
        retention_ms=1 * DAY_MS,
    ),
    TopicSpec(
        "analytics-windows",
        "Closed analytics windows: one record per scope, metric and window, re-emitted with a "
        "higher revision when a late event changes it.",
        retention_ms=30 * DAY_MS,
    ),
    TopicSpec(
        "audit",
        "Security-relevant actions, keyed by actor id.",
        retention_ms=90 * DAY_MS,
        worker_source=True,
    ),
    TopicSpec(
        "config",
        "Feature flags keyed by flag name: the latest record of a name is that flag's state "
        "(compacted); every gateway and worker reads it whole at start and then follows it.",
        compacted=True,
    ),
    TopicSpec(
        "push",
        "Real-time push feed keyed by channel (user:{id}, order:{id}, ...); gateways replay it "
        "to resuming clients.",
        retention_ms=1 * DAY_MS,
    ),
    TopicSpec(
        "replies",
        "Agents' answers to commands a gateway is waiting for, keyed by correlation id.",
        internal=True,
        retention_ms=60 * 60 * 1000,
    ),
    TopicSpec(
        "dlq",
        "Records an agent could not process after bounded retries, with the error. May hold "
        "copies of internal records: internal.",
        # Rare, and no agent joins it with a table, so it need not grow with the workers; one
        # partition keeps the dead letters in the order they failed.
        fixed_partitions=1,
        internal=True,
        retention_ms=30 * DAY_MS,
    ),
)

BY_NAME: dict[str, TopicSpec] = {spec.name: spec for spec in CATALOGUE}


def worker_sources() -> tuple[str, ...]:
    """The topics declared ``worker_source``, in catalogue order."""
    return tuple(spec.name for spec in CATALOGUE if spec.worker_source)


def spec(name: str) -> TopicSpec:
    """The catalogue entry for ``name``; a typo fails loudly at wiring time."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown topic {name!r}; known: {sorted(BY_NAME)}") from None


def partitions(settings: Settings, name: str) -> int:
    """How many partitions topic ``name`` has in the deployment ``settings`` describe."""
    fixed = spec(name).fixed_partitions
    return settings.topic_partitions if fixed is None else fixed
