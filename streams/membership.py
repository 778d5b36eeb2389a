"""A crashed worker's consumer-group membership, given up by the next worker of its data dir.

A worker that dies without leaving its group (SIGKILL, the OOM killer, a power cut) stays
a member until the broker's session timeout evicts it, and until then the group cannot
complete a rebalance with its replacement. On Apache Kafka that costs
``session.timeout.ms``; on noida, the dev broker, a dead member is never evicted at all:
the group waits in ``CompletingRebalance`` for good and no partition is processed again
(measured: still wedged after three minutes; one LeaveGroup for the dead member and the
replacement had its partitions within a second).

So each worker run names itself with a client id recorded in its data dir, and the next
run in that data dir first sends LeaveGroup for any member still carrying the previous
run's id. One data dir holds one worker at a time (RocksDB locks its stores), so a live
worker is never removed; a member of another replica has another id and is left alone.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.client import AIOKafkaClient, CoordinationType
from aiokafka.protocol.group import LeaveGroupRequest

from config import Settings

log = logging.getLogger(__name__)
CLIENT_ID_FILE = "worker-client-id"
# Kafka's UNKNOWN_MEMBER_ID: the member left or was evicted meanwhile, which is the goal.
UNKNOWN_MEMBER_ID = 25


def next_client_id(data_dir: Path, app_id: str) -> tuple[str, str | None]:
    """A new client id for this run, recorded in ``data_dir``, and the previous run's."""
    path = data_dir / CLIENT_ID_FILE
    try:
        previous: str | None = path.read_text().strip() or None
    except FileNotFoundError:
        previous = None
    current = f"{app_id}-worker-{uuid.uuid4().hex[:12]}"
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(current + "\n")
    return current, previous


async def worker_members(
    settings: Settings, admin: AIOKafkaAdminClient | None = None,
) -> dict[str, str]:
    """The workers' group members that are worker runs: member id -> client id.

    ``admin``: a started client to ask with (a caller asking every second keeps one).
    """
    if admin is None:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await admin.start()
        try:
            return await worker_members(settings, admin)
        finally:
            await admin.close()
    described = await admin.describe_consumer_groups([settings.app_id])
    prefix = f"{settings.app_id}-worker-"
    return {
        member[0]: member[1]
        for response in described
        for info in response.groups
        for member in info[5]
        if member[1].startswith(prefix)  # never a member this module did not name
    }


async def leave_group(settings: Settings, member_ids: Iterable[str]) -> None:
    """Send LeaveGroup for each of ``member_ids``, as the member itself would on its way out."""
    group = settings.app_id
    client = AIOKafkaClient(bootstrap_servers=settings.kafka_bootstrap)
    await client.bootstrap()
    try:
        coordinator = await client.coordinator_lookup(CoordinationType.GROUP, group)
        for member_id in member_ids:
            answer = await client.send(coordinator, LeaveGroupRequest(group, member_id))
            if answer.error_code not in (0, UNKNOWN_MEMBER_ID):
                raise RuntimeError(f"LeaveGroup for {member_id} failed: error {answer.error_code}")
    finally:
        await client.close()


async def release_previous(settings: Settings, client_id: str) -> list[str]:
    """Send LeaveGroup for every member of the workers' group named ``client_id``.

    Returns the member ids let go of (none when the previous run left cleanly).
    """
    members = [m for m, c in (await worker_members(settings)).items() if c == client_id]
    if not members:
        return []
    await leave_group(settings, members)
    log.warning(
        "the previous worker of this data dir did not leave its group (it crashed or was "
        "killed); released its membership so the group can rebalance now",
        extra={"members": members},
    )
    return members
