"""Reading a Kafka topic as any client of the broker can: a plain consumer, no group."""

from __future__ import annotations

import asyncio
from collections import Counter

from aiokafka import AIOKafkaConsumer, TopicPartition

from hotline.cli.engines import kafka
from hotline.shared.config import Settings
from hotline.shared.events import EventError, parse_event

READ_TIMEOUT = 60.0  # seconds to read a topic to its end; a hang fails here, saying so


async def event_ids_on(settings: Settings, topic: str) -> Counter[str]:
    """How many records of each event id `topic` holds, from its beginning to its end now.
    Records that are not events (other tests' poison messages) are not counted."""
    seen: Counter[str] = Counter()
    for raw in await records_on(settings, topic):
        try:
            seen[parse_event(raw).id] += 1
        except EventError:
            continue
    return seen


async def records_on(settings: Settings, topic: str) -> list[bytes]:
    """The raw values `topic` holds, from its beginning to its end now, partition by
    partition."""
    # `earliest`: with the default `latest`, the reset that `assign` starts can land after
    # `seek_to_beginning` and leave the positions at the end (seen here: nothing read).
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        [count] = [t["partitions"] for t in kafka.declared_topics() if t["name"] == topic]
        partitions = [TopicPartition(topic, p) for p in range(count)]
        consumer.assign(partitions)
        end = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        async with asyncio.timeout(READ_TIMEOUT):
            return await _read_to_end(consumer, partitions, end)
    finally:
        await consumer.stop()


async def _read_to_end(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], end: dict[TopicPartition, int]
) -> list[bytes]:
    found: list[bytes] = []
    while [p for p in partitions if await consumer.position(p) < end[p]]:
        batches = await consumer.getmany(*partitions, timeout_ms=1000)
        for records in batches.values():
            for record in records:
                if record.offset < end[TopicPartition(record.topic, record.partition)]:
                    found.append(record.value or b"")
    return found
