"""The Faust application: built from settings, domains installed explicitly.

A factory instead of a module-level app: topic names depend on the
configured prefix, and tests build isolated apps side by side.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import faust

from agents.analytics import install as analytics
from agents.audit import install as audit
from agents.catalog import install as catalog
from agents.deadletters import install as deadletters
from agents.files import install as files
from agents.groups import install as groups
from agents.identity import install as identity
from agents.inventory import install as inventory
from agents.notifications import install as notifications
from agents.payments import install as payments
from agents.runtime import flags, heartbeat, peers
from agents.runtime.changelogs import TABLES_DIR, RepairingTable, arm
from agents.runtime.declare import Agents
from agents.runtime.effects import Effects, LiveEffects
from agents.saga import install as saga
from agents.webhooks import install as webhooks
from config import Settings
from streams.flags.book import FlagBook

# Each domain package's ``install`` module exposes ``install(app, settings, effects)``,
# which declares its tables, agents and timers and returns its agents by name. This is
# the one place a domain is registered; the order is the order of declaration.
Installer = Callable[[faust.App, Settings, Effects], Agents]
DOMAINS: Sequence[tuple[str, Installer]] = (
    ("identity", identity.install),
    ("notifications", notifications.install),
    ("audit", audit.install),
    ("files", files.install),
    ("groups", groups.install),
    ("inventory", inventory.install),
    ("payments", payments.install),
    ("catalog", catalog.install),
    ("saga", saga.install),
    ("analytics", analytics.install),
    ("webhooks", webhooks.install),
    ("deadletters", deadletters.install),
)


@dataclasses.dataclass(slots=True)
class Worker:
    """A configured Faust app with its agents (by name, every domain's) and effects.

    ``flags``: the feature flags, followed from the ``config`` topic while the app runs
    (a worker run); built but never started for an app of recorded effects (unit tests).
    """

    app: faust.App
    agents: dict[str, Any]
    effects: Effects
    flags: FlagBook


def faust_settings(
    settings: Settings, *, store: str = "rocksdb://", client_id: str | None = None
) -> dict[str, Any]:
    """Faust configuration derived from Mercato's settings.

    ``client_id`` names this worker run to the broker (``streams.membership``).
    """
    named = {} if client_id is None else {"broker_client_id": client_id}
    return {
        **named,
        "broker": [f"kafka://{host}" for host in settings.kafka_bootstrap],
        # rocksdb:// picks rocksdict when it is installed (rocksdict:// is not a valid URL).
        "store": store,
        "datadir": str(settings.data_dir / TABLES_DIR),
        "topic_partitions": settings.topic_partitions,
        "topic_replication_factor": settings.kafka_replication,
        # Faust's 60 s default makes a restarted worker wait a minute to rejoin.
        "broker_session_timeout": settings.worker_session_timeout,
        "broker_heartbeat_interval": 1.0,
        "broker_rebalance_timeout": settings.worker_session_timeout * 2,
        "broker_commit_every": 100,
        "broker_commit_interval": 1.0,
        "consumer_auto_offset_reset": "earliest",
        # exactly_once is unreliable upstream; every effect is idempotent instead.
        "processing_guarantee": "at_least_once",
        "producer_acks": -1,
        # A few ms lets one produce request carry many records (the broker's CPU is per
        # request); each record waits for its acks at its end anyway (agents.runtime.effects).
        "producer_linger": 0.005,
        # A partition's batch must hold a whole group commit's records (agents.runtime.commit):
        # at aiokafka's 16 KiB a flush stalled on every full batch until it was sent, one
        # request in flight per broker (measured: 34 -> 61 orders/s at an offered 100).
        "producer_max_batch_size": 256 * 1024,
        "web_enabled": False,
        "table_standby_replicas": 0,
        # Inert unless the app is armed to repair its changelogs (agents.runtime.changelogs).
        "Table": RepairingTable,
        # A changelog that ends before its local store's offset (the broker lost acknowledged
        # records) is repaired after recovery rather than a worker that refuses to start.
        "recovery_consistency_check": False,
    }


def create_worker_app(
    settings: Settings,
    *,
    store: str = "rocksdb://",
    effects: Effects | None = None,
    client_id: str | None = None,
    repair_changelogs: bool = False,
) -> Worker:
    """Build the Faust app with every domain's agents installed.

    ``repair_changelogs``: the previous run of this data dir did not exit cleanly, so its
    local tables may be ahead of their changelogs (``agents.runtime.changelogs``).
    """
    app = faust.App(
        settings.app_id, **faust_settings(settings, store=store, client_id=client_id)
    )
    if repair_changelogs:
        arm(app)
    live = effects or LiveEffects(app, settings)
    agents: Agents = {}
    for domain, install in DOMAINS:
        installed = install(app, settings, live)
        if clash := agents.keys() & installed.keys():
            raise RuntimeError(f"domain {domain!r} declares agents already declared: {clash}")
        agents.update(installed)
    book = FlagBook(settings, client="unstarted")
    if isinstance(live, LiveEffects):
        _wire_lifecycle(app, live)
        heartbeat.install(app, settings)
        book = flags.install(app, settings, client_id)
        if client_id is not None:  # a worker run, named to the broker: it watches its peers
            peers.install(app, settings, client_id)
    return Worker(app=app, agents=agents, effects=live, flags=book)


def _wire_lifecycle(app: faust.App, effects: LiveEffects) -> None:
    async def prepare_stores() -> None:
        await effects.prepare()

    async def close_stores(sender: Any, **_: Any) -> None:
        await effects.aclose()

    # Faust's decorators are untyped; register through Any rather than silence each line.
    faust_app: Any = app
    faust_app.task(prepare_stores)
    faust_app.on_before_shutdown.connect(close_stores)
