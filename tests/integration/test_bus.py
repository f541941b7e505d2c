"""The event bus against the real Kafka and the real MongoDB-wire server."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from hotline.cli.engines.process import ManagedProcess
from hotline.shared.bus import ConsumerRunner, make_producer, publish
from hotline.shared.config import Settings
from hotline.shared.events import DEAD_LETTER_TOPIC, CaseStatusChanged, Event, new_event
from hotline.shared.store import Store
from tests.support.bus_worker import record_effect
from tests.support.waiting import async_wait_for

TOPIC = "hotline.case.status-changed"  # three partitions
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
async def bus(
    test_settings: Settings, kafka_engine: ManagedProcess, mongo_engine: ManagedProcess
) -> AsyncIterator[tuple[Store, AIOKafkaProducer]]:
    store = Store(test_settings)
    producer = make_producer(test_settings)
    await producer.start()
    yield store, producer
    await producer.stop()
    await store.close()


def status_event(subject: str | None = None) -> Event:
    return new_event(subject or str(uuid.uuid4()), CaseStatusChanged(status="open"))


async def count(store: Store, collection: str) -> int:
    return await store.db[collection].count_documents({})


async def test_two_consumers_in_one_group_share_partitions_without_duplicates(
    test_settings: Settings, bus: tuple[Store, AIOKafkaProducer]
) -> None:
    store, producer = bus
    group, effects = f"share-{uuid.uuid4().hex[:8]}", f"effects_{uuid.uuid4().hex[:8]}"

    async def handle(event: Event) -> None:
        await record_effect(store, effects, event)

    runners = [
        ConsumerRunner(test_settings, store, producer, group, [TOPIC], handle) for _ in range(2)
    ]
    for runner in runners:
        await runner.start()
    try:
        await async_wait_for(
            lambda: _both_assigned(runners), timeout=60, what="both consumers to get partitions"
        )
        events = [status_event() for _ in range(60)]
        for event in events:
            await publish(producer, event)
        await async_wait_for(lambda: _at_least(store, effects, 60), timeout=60, what="60 effects")
        assignments = [runner._consumer.assignment() for runner in runners]  # type: ignore[union-attr]
        assert all(assignments), "each consumer holds at least one partition"
        assert not (assignments[0] & assignments[1]), "no partition is held twice"
        assert await count(store, f"{effects}_calls") == 60, "every event handled exactly once"
        ids = {doc["_id"] async for doc in store.db[effects].find({})}
        assert ids == {event.id for event in events}
    finally:
        for runner in runners:
            await runner.stop()


async def _both_assigned(runners: list[ConsumerRunner]) -> bool:
    return all(r._consumer is not None and r._consumer.assignment() for r in runners)


async def _at_least(store: Store, collection: str, n: int) -> bool:
    return await count(store, collection) >= n


async def test_consumer_killed_before_commit_reprocesses_without_duplicate_effect(
    test_settings: Settings, bus: tuple[Store, AIOKafkaProducer]
) -> None:
    store, producer = bus
    group, effects = f"crash-{uuid.uuid4().hex[:8]}", f"effects_{uuid.uuid4().hex[:8]}"
    await publish(producer, status_event())  # the topic holds at least this event

    worker = subprocess.run(
        [sys.executable, "-m", "tests.support.bus_worker", group, TOPIC, effects],
        cwd=REPO,
        env={**os.environ, "KILL_AFTER_EFFECT": "1"},
        timeout=120,
        capture_output=True,
    )
    assert worker.returncode == -9, "the worker died by SIGKILL after its first effect"
    [killed] = [doc async for doc in store.db[effects].find({})]  # its one durable effect

    async def handle(e: Event) -> None:
        await record_effect(store, effects, e)

    runner = ConsumerRunner(test_settings, store, producer, group, [TOPIC], handle)
    await runner.start()
    try:
        await async_wait_for(
            lambda: _calls_for(store, f"{effects}_calls", killed["_id"], 2),
            timeout=90,
            what="the uncommitted event to be delivered again",
        )
    finally:
        await runner.stop()
    assert await store.db[effects].count_documents({"_id": killed["_id"]}) == 1, "one effect"


async def _calls_for(store: Store, collection: str, event_id: str, n: int) -> bool:
    return await store.db[collection].count_documents({"event_id": event_id}) >= n


async def test_malformed_event_goes_to_dead_letter_and_next_is_processed(
    test_settings: Settings, bus: tuple[Store, AIOKafkaProducer]
) -> None:
    store, producer = bus
    group, effects = f"dlq-{uuid.uuid4().hex[:8]}", f"effects_{uuid.uuid4().hex[:8]}"
    subject = str(uuid.uuid4())  # same key = same partition: the good one comes after the bad
    marker = uuid.uuid4().hex.encode()
    await producer.send_and_wait(
        TOPIC, value=b'{"not": "an event", "m": "' + marker + b'"}', key=subject.encode()
    )
    good = status_event(subject)
    await publish(producer, good)

    async def handle(e: Event) -> None:
        await record_effect(store, effects, e)

    runner = ConsumerRunner(test_settings, store, producer, group, [TOPIC], handle)
    await runner.start()
    try:
        await async_wait_for(
            lambda: _calls_for(store, f"{effects}_calls", good.id, 1),
            timeout=60,
            what="the good event",
        )
    finally:
        await runner.stop()

    dead = AIOKafkaConsumer(
        DEAD_LETTER_TOPIC,
        bootstrap_servers=test_settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await dead.start()
    try:
        found = None
        while found is None:
            batch = await dead.getmany(timeout_ms=10_000)
            assert batch, "the dead-letter topic has the poison message"
            for messages in batch.values():
                for message in messages:
                    if message.value and marker in message.value:
                        found = message
    finally:
        await dead.stop()
    headers = dict(found.headers)
    assert headers["group"] == group.encode()
    assert headers["topic"] == TOPIC.encode()
    assert b"not an event" in headers["error"]


async def test_handler_that_keeps_failing_is_dead_lettered_with_its_error(
    test_settings: Settings, bus: tuple[Store, AIOKafkaProducer]
) -> None:
    store, producer = bus
    group = f"fail-{uuid.uuid4().hex[:8]}"
    subject = str(uuid.uuid4())
    bad, good = status_event(subject), status_event(subject)
    await publish(producer, bad)
    await publish(producer, good)
    handled: list[str] = []

    async def handle(e: Event) -> None:
        if e.id == bad.id:
            raise ValueError("cannot apply this one")
        handled.append(e.id)

    runner = ConsumerRunner(test_settings, store, producer, group, [TOPIC], handle)
    await runner.start()
    try:
        await async_wait_for(
            _returns(lambda: good.id in handled), timeout=60, what="the next event"
        )
    finally:
        await runner.stop()
    assert bad.id not in handled
    assert await store.db.applied_events.find_one({"_id": f"{group}:{bad.id}"}) is None


def _returns(check):  # type: ignore[no-untyped-def]
    async def wrapped() -> bool:
        return bool(check())

    return wrapped
