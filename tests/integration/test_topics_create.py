"""``mercato topics create`` against the real broker: topics get the configured partition
count, and existing topics with another count are refused before anything is created."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from config import Settings
from mercato.cli import main
from streams.admin import TopicMismatch, ensure_topics
from streams.topics import CATALOGUE


async def _counts(settings: Settings) -> dict[str, int]:
    """Partitions of this test's topics that exist, by catalogue name."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        ours = {settings.topic(spec.name): spec.name for spec in CATALOGUE}
        existing = [name for name in await admin.list_topics() if name in ours]
        described = await admin.describe_topics(existing) if existing else []
        return {ours[t["topic"]]: len(t["partitions"]) for t in described}
    finally:
        await admin.close()


def _cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """Point the ``mercato`` command at these settings, as an operator's environment does."""
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)


async def test_topics_get_the_configured_count_and_the_dlq_keeps_one(
    settings: Settings,
) -> None:
    eight = dataclasses.replace(settings, topic_partitions=8)
    await ensure_topics(eight)
    counts = await _counts(eight)
    assert counts.pop("dlq") == 1
    assert set(counts.values()) == {8}
    assert len(counts) == len(CATALOGUE) - 1


async def test_an_existing_topic_with_another_count_is_refused_before_anything_is_created(
    settings: Settings,
) -> None:
    orders = [spec for spec in CATALOGUE if spec.name == "orders"]
    await ensure_topics(settings, orders)  # 4 partitions: the default
    with pytest.raises(TopicMismatch) as refused:
        await ensure_topics(dataclasses.replace(settings, topic_partitions=8))
    assert refused.value.found == {settings.topic("orders"): (4, 8)}
    # None of the missing topics was created with the new count next to the old one.
    assert await _counts(settings) == {"orders": 4}


async def test_the_command_exits_1_and_says_how_to_migrate(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await ensure_topics(settings)
    _cli_env(monkeypatch, dataclasses.replace(settings, topic_partitions=8))
    # The command runs its own event loop, so it runs beside this test's, not inside it.
    code = await asyncio.to_thread(main, ["topics", "create", "--timeout", "20"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{settings.topic('orders')} has 4 (wants 8)" in err
    assert settings.topic("dlq") not in err  # its fixed count matches
    assert "Nothing was created" in err
    assert "MERCATO_TOPIC_PREFIX" in err
    # No migration is offered that does not exist: a restore refuses another count.
    assert "mercato backup" not in err
    assert "no supported way to change the count" in err
    assert "MERCATO_TOPIC_PARTITIONS=4" in err
    assert "Traceback" not in err


async def test_the_command_accepts_topics_that_match(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    eight = dataclasses.replace(settings, topic_partitions=8)
    await ensure_topics(eight)
    _cli_env(monkeypatch, eight)
    assert await asyncio.to_thread(main, ["topics", "create", "--timeout", "20"]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [eight.topic("orders"), "exists"] in lines
    assert all(state == "exists" for _, state in lines)
