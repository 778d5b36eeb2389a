"""Push clients that reconnect and resume, as a well-behaved browser does, for chaos tests.

Each follows its channels through one gateway URL. When the stream ends (the gateway
closed it with 1001, or went away) it connects again until the gateway answers, and
resumes from the last id it received: per channel with a WebSocket ``resume`` frame,
with the whole ``Last-Event-ID`` vector over SSE. Every event's position is recorded
per channel, so a test can compare them against the push topic's own records.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from config import Settings
from gateway.push.positions import format_position, parse_vector, partition_for

RETRY_SECONDS = 0.2  # between attempts to reach a gateway that is not back yet


class Follower(abc.ABC):
    """What one client received: positions per channel, and how many streams it opened."""

    def __init__(self, base: str, token: str, channels: Sequence[str]) -> None:
        self._base = base
        self._headers = {"Authorization": f"Bearer {token}"}
        self.channels = list(channels)
        self.received: dict[str, list[str]] = {channel: [] for channel in channels}
        self.streams = 0  # streams opened; more than one means it reconnected

    @contextlib.asynccontextmanager
    async def following(self) -> AsyncIterator[Follower]:
        """Follow for the duration of the block."""
        async with aiohttp.ClientSession() as http:
            task = asyncio.create_task(self._forever(http), name=type(self).__name__)
            try:
                yield self
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _forever(self, http: aiohttp.ClientSession) -> None:
        while True:
            # The gateway is down or restarting: try again.
            with contextlib.suppress(aiohttp.ClientError, ConnectionError):
                await self._stream(http)
            await asyncio.sleep(RETRY_SECONDS)

    @abc.abstractmethod
    async def _stream(self, http: aiohttp.ClientSession) -> None:
        """One stream, from connecting until it ends."""


class WsFollower(Follower):
    """Follows over ``/v1/ws``; resumes each channel after its last id."""

    async def _stream(self, http: aiohttp.ClientSession) -> None:
        async with http.ws_connect(self._base + "/v1/ws", headers=self._headers) as ws:
            self.streams += 1
            for channel in self.channels:
                seen = self.received[channel]
                after = seen[-1] if seen else "0"  # "0": from the start of retention
                await ws.send_json({"type": "resume", "channel": channel, "after": after})
            async for message in ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    break
                frame = orjson.loads(message.data)
                if frame["type"] == "event":
                    self.received[frame["channel"]].append(frame["id"])
                elif frame["type"] == "error":
                    raise AssertionError(f"the gateway refused a frame: {frame}")


class SseFollower(Follower):
    """Follows over ``/v1/events``; resumes with the last ``id:`` it received."""

    def __init__(
        self, base: str, token: str, channels: Sequence[str], *, partitions: int,
    ) -> None:
        super().__init__(base, token, channels)
        self._partitions = partitions
        self.last_event_id = "earliest"

    async def _stream(self, http: aiohttp.ClientSession) -> None:
        query = ",".join(self.channels)
        headers = {**self._headers, "Last-Event-ID": self.last_event_id}
        async with http.get(self._base + "/v1/events", params={"channels": query},
                            headers=headers) as response:
            if response.status != 200:
                raise aiohttp.ClientResponseError(
                    response.request_info, (), status=response.status)
            self.streams += 1
            fields: dict[str, str] = {}
            async for raw in response.content:
                line = raw.decode().rstrip("\r\n")
                if line:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
                    continue
                if fields.get("event") == "close":
                    return
                self._take(fields)
                fields = {}

    def _take(self, fields: dict[str, str]) -> None:
        if "id" not in fields:
            return  # keepalives, presence
        self.last_event_id = fields["id"]
        if fields.get("event") == "ready":
            return
        channel = orjson.loads(fields["data"])["channel"]
        # The id is the stream's vector; this event moved its channel's partition.
        partition = partition_for(channel, self._partitions)
        offset = parse_vector(fields["id"])[partition]
        self.received[channel].append(format_position(partition, offset))


async def published(settings: Settings, channels: Sequence[str]) -> dict[str, list[str]]:
    """The position of every record now on the push topic for ``channels``, per channel."""
    found: dict[str, list[str]] = {channel: [] for channel in channels}
    topic = settings.topic("push")
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        assigned = [TopicPartition(topic, p)
                    for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        while [tp for tp in assigned if await consumer.position(tp) < ends[tp]]:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for record in records:
                    key = (record.key or b"").decode()
                    if key in found and record.offset < ends[tp]:
                        found[key].append(format_position(tp.partition, record.offset))
        return found
    finally:
        await consumer.stop()
