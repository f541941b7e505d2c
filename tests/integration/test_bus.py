"""The event bus against the real Kafka and the real MongoDB-wire server: redelivery after a
crash, dead letters, partitions shared in a group, the rebalance listener, opt-in
de-duplication, and the coarse timestamps of the records the project produces."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from hotline.cli.engines import kafka
from hotline.cli.engines.process import ManagedProcess
from hotline.shared.bus import (
    HOUR_MS,
    ConsumerRunner,
    EachEvent,
    Handler,
    Record,
    make_producer,
    publish,
    record_timestamp,
)
from hotline.shared.config import Settings
from hotline.shared.events import DEAD_LETTER_TOPIC, CaseStatusChanged, Event, new_event
from hotline.shared.outbox import relay_for
from hotline.shared.service import Runtime
from hotline.shared.store import Store
from tests.support.bus_worker import record_effect
from tests.support.waiting import async_wait_for

TOPIC = "hotline.case.status-changed"
[PARTITIONS] = [t["partitions"] for t in kafka.declared_topics() if t["name"] == TOPIC]
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


def runner(
    settings: Settings, producer: AIOKafkaProducer, group: str, handle: Handler
) -> ConsumerRunner:
    return ConsumerRunner(settings, producer, group, [TOPIC], EachEvent(handle))


async def count(store: Store, collection: str) -> int:
    return await store.db[collection].count_documents({})


async def _holds_all(store: Store, collection: str, ids: set[str]) -> bool:
    return await store.db[collection].count_documents({"_id": {"$in": sorted(ids)}}) == len(ids)


async def _calls_for(store: Store, collection: str, event_id: str, n: int) -> bool:
    return await store.db[collection].count_documents({"event_id": event_id}) >= n


async def find_record(settings: Settings, topic: str, wanted: Callable[[Record], bool]) -> Record:
    """The first record of `topic` that is `wanted`, read with a plain consumer."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, f"{topic} has the record"
            for records in batch.values():
                for record in records:
                    if wanted(record):
                        return record
    finally:
        await consumer.stop()


def holding(marker: bytes, group: str | None = None) -> Callable[[Record], bool]:
    """Records carrying `marker`; with `group`, only the dead letters that group wrote (other
    groups of the session, the audit log's among them, dead-letter the same record too)."""

    def wanted(record: Record) -> bool:
        if marker not in (record.value or b""):
            return False
        return group is None or dict(record.headers).get("group") == group.encode()

    return wanted


# --- delivery -------------------------------------------------------------------------------


async def test_two_consumers_in_one_group_share_partitions_without_duplicates(
    test_settings: Settings, bus: tuple[Store, AIOKafkaProducer]
) -> None:
    store, producer = bus
    group, effects = f"share-{uuid.uuid4().hex[:8]}", f"effects_{uuid.uuid4().hex[:8]}"

    async def handle(event: Event) -> None:
        await record_effect(store, effects, event)

    runners = [runner(test_settings, producer, group, handle) for _ in range(2)]
    for each in runners:
        await each.start()
    try:
        await async_wait_for(
            lambda: _all_assigned(runners), timeout=60, what="both consumers to get partitions"
        )
        events = [status_event() for _ in range(60)]
        for event in events:
            await publish(producer, event)
        ours = {event.id for event in events}
        await async_wait_for(
            lambda: _holds_all(store, effects, ours), timeout=60, what="the 60 effects"
        )
        assignments = [each.assignment() for each in runners]
        assert all(assignments), "each consumer holds at least one partition"
        assert not (assignments[0] & assignments[1]), "no partition is held twice"
        # A new group reads the topic from its start: other tests' status changes count too.
        calls = [doc["event_id"] async for doc in store.db[f"{effects}_calls"].find({})]
        assert sorted(c for c in calls if c in ours) == sorted(ours), "each handled once"
        ids = {doc["_id"] async for doc in store.db[effects].find({})}
        assert ours <= ids
    finally:
        for each in runners:
            await each.stop()


async def _all_assigned(runners: list[ConsumerRunner]) -> bool:
    return all(each.assignment() for each in runners)


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

    again = runner(test_settings, producer, group, handle)
    await again.start()
    try:
        await async_wait_for(
            lambda: _calls_for(store, f"{effects}_calls", killed["_id"], 2),
            timeout=90,
            what="the uncommitted event to be delivered again",
        )
    finally:
        await again.stop()
    assert await store.db[effects].count_documents({"_id": killed["_id"]}) == 1, "one effect"


# --- dead letters ---------------------------------------------------------------------------


async def test_malformed_event_goes_to_dead_letter_and_next_is_processed(
    test_settings: Settings, bus: tuple[Store, AIOKafkaProducer]
) -> None:
    store, producer = bus
    group, effects = f"dlq-{uuid.uuid4().hex[:8]}", f"effects_{uuid.uuid4().hex[:8]}"
    subject = str(uuid.uuid4())  # same key = same partition: the good one comes after the bad
    marker = uuid.uuid4().hex.encode()
    hour = record_timestamp(status_event())  # records the project writes carry an hour
    await producer.send_and_wait(
        TOPIC,
        value=b'{"not": "an event", "m": "' + marker + b'"}',
        key=subject.encode(),
        timestamp_ms=hour,
    )
    good = status_event(subject)
    await publish(producer, good)

    async def handle(e: Event) -> None:
        await record_effect(store, effects, e)

    consumer = runner(test_settings, producer, group, handle)
    await consumer.start()
    try:
        await async_wait_for(
            lambda: _calls_for(store, f"{effects}_calls", good.id, 1),
            timeout=60,
            what="the good event",
        )
        # The poll's poison is parked after the poll's events are applied: read the dead
        # letter while the consumer still runs (stopping it could cut the send short).
        found = await find_record(test_settings, DEAD_LETTER_TOPIC, holding(marker, group))
    finally:
        await consumer.stop()

    headers = dict(found.headers)
    assert headers["topic"] == TOPIC.encode()
    assert b"not an event" in headers["error"]
    assert found.timestamp == hour, "the dead letter keeps the original record's hour"


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
    attempts: Counter[str] = Counter()

    async def handle(e: Event) -> None:
        attempts[e.id] += 1
        if e.id == bad.id:
            raise ValueError("cannot apply this one")
        handled.append(e.id)

    consumer = runner(test_settings, producer, group, handle)
    await consumer.start()
    try:
        await async_wait_for(
            _returns(lambda: good.id in handled), timeout=60, what="the next event"
        )
        # Parked after the poll is applied: read it while the consumer still runs.
        found = await find_record(test_settings, DEAD_LETTER_TOPIC, holding(bad.id.encode(), group))
    finally:
        await consumer.stop()
    assert bad.id not in handled
    assert attempts[bad.id] == 3, "three attempts, then the dead-letter topic"
    assert dict(found.headers)["error"] == b"ValueError: cannot apply this one"
    assert found.timestamp == record_timestamp(bad)


def _returns(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def wrapped() -> bool:
        return check()

    return wrapped


# --- the rebalance listener -----------------------------------------------------------------


async def test_a_joining_member_gets_partitions_only_after_the_batch_in_hand_is_committed(
    test_settings: Settings,
    bus: tuple[Store, AIOKafkaProducer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first member is in the middle of a batch when a second one joins: the rebalance
    waits until that batch is flushed and committed, so the second member starts after it:
    nothing is handled twice."""
    store, producer = bus
    group, calls = f"rebalance-{uuid.uuid4().hex[:8]}", f"calls_{uuid.uuid4().hex[:8]}"
    caplog.set_level(logging.INFO, logger="hotline.bus")
    in_hand, release = asyncio.Event(), asyncio.Event()

    def member(name: str) -> Handler:
        async def handle(event: Event) -> None:
            await store.db[calls].insert_one({"event_id": event.id, "member": name})
            if name == "first" and not release.is_set():
                in_hand.set()
                await release.wait()  # the batch stays in hand until the test says so

        return handle

    events = [status_event() for _ in range(30)]
    for event in events:
        await publish(producer, event)
    first = runner(test_settings, producer, group, member("first"))
    second = runner(test_settings, producer, group, member("second"))
    await first.start()
    try:
        await async_wait_for(_returns(in_hand.is_set), timeout=60, what="a batch in hand")
        await second.start()
        await async_wait_for(
            _returns(lambda: _asked_to_let_go(caplog, group)),
            timeout=60,
            what="the first member to be asked to let its partitions go",
        )
        assert not second.assignment(), "no partition moves while a batch is in hand"
        release.set()
        await async_wait_for(
            lambda: _all_assigned([first, second]), timeout=60, what="the group to rebalance"
        )
        later = [status_event() for _ in range(30)]  # some land on the second's partitions
        for event in later:
            await publish(producer, event)
        await async_wait_for(
            lambda: _committed_to_end(test_settings, group),
            timeout=60,
            what="the group to commit every partition to its end",
        )
    finally:
        release.set()
        await first.stop()
        await second.stop()
    handled = Counter([doc["event_id"] async for doc in store.db[calls].find({})])
    assert {event.id for event in events + later} <= set(handled)
    assert [e for e, n in handled.items() if n > 1] == [], "no event was handled twice"
    by_second = {doc["event_id"] async for doc in store.db[calls].find({"member": "second"})}
    assert by_second, "the second member took over partitions"


def _asked_to_let_go(caplog: pytest.LogCaptureFixture, group: str) -> bool:
    return any(
        record.getMessage().startswith("rebalance: flushing")
        and getattr(record, "group", None) == group
        for record in caplog.records
    )


async def _committed_to_end(settings: Settings, group: str) -> bool:
    partitions = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
        await admin.close()
    return all(tp in committed and committed[tp].offset == ends[tp] for tp in partitions)


# --- de-duplication is the registration's choice -------------------------------------------


async def _delivered_twice(
    settings: Settings, producer: AIOKafkaProducer, deduplicate: bool
) -> tuple[Store, str, str, Event]:
    """A counting (not idempotent) handler registered as services register theirs; the
    group handles `probe`, is rewound to the beginning (a redelivery of everything), and
    handles the topic again up to a marker published after it on the probe's partition."""
    store = Store(settings)
    runtime = Runtime(settings, store, producer, relay_for(store, producer))
    group, calls = f"dedup-{uuid.uuid4().hex[:8]}", f"calls_{uuid.uuid4().hex[:8]}"

    async def count_call(event: Event) -> None:
        await store.db[calls].insert_one({"event_id": event.id})

    async def handle_until(event: Event) -> None:
        consumer = runtime.consume(group, [TOPIC], count_call, deduplicate=deduplicate)
        await consumer.start()
        try:
            await async_wait_for(
                lambda: _calls_for(store, calls, event.id, 1), timeout=60, what="an effect"
            )
        finally:
            await consumer.stop()

    probe = status_event()
    await publish(producer, probe)
    await handle_until(probe)
    await _rewind(settings, group)
    marker = status_event(probe.subject)  # after the probe, on the probe's partition
    await publish(producer, marker)
    await handle_until(marker)
    return store, group, calls, probe


async def _rewind(settings: Settings, group: str) -> None:
    """Commit the beginning of every partition for `group` (whose members have left)."""
    partitions = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.commit(await consumer.beginning_offsets(partitions))
    finally:
        await consumer.stop()


def _own_database(settings: Settings) -> Settings:
    return settings.model_copy(update={"mongo_db": f"bus_{uuid.uuid4().hex[:12]}"})


async def test_a_handler_registered_with_deduplication_is_not_applied_again_on_redelivery(
    test_settings: Settings, bus: tuple[Store, AIOKafkaProducer]
) -> None:
    settings = _own_database(test_settings)
    store, group, calls, probe = await _delivered_twice(settings, bus[1], deduplicate=True)
    try:
        assert await store.db[calls].count_documents({"event_id": probe.id}) == 1
        assert await store.db.applied_events.find_one({"_id": f"{group}:{probe.id}"})
    finally:
        await store.close()


async def test_a_handler_registered_without_deduplication_pays_no_applied_events_round_trip(
    test_settings: Settings, bus: tuple[Store, AIOKafkaProducer]
) -> None:
    """The same redelivery reaches the handler again (it must be idempotent itself), and the
    runner never wrote an applied-events record."""
    settings = _own_database(test_settings)
    store, _, calls, probe = await _delivered_twice(settings, bus[1], deduplicate=False)
    try:
        assert await store.db[calls].count_documents({"event_id": probe.id}) == 2
        assert await store.db.applied_events.count_documents({}) == 0
    finally:
        await store.close()


# --- record timestamps ----------------------------------------------------------------------


async def test_a_published_record_carries_the_events_hour_as_its_timestamp(
    test_settings: Settings, bus: tuple[Store, AIOKafkaProducer]
) -> None:
    _, producer = bus
    event = status_event()
    await publish(producer, event)
    record = await find_record(test_settings, TOPIC, holding(event.id.encode()))
    assert record.timestamp % HOUR_MS == 0
    as_time = datetime.fromtimestamp(record.timestamp / 1000, UTC).isoformat()
    assert as_time.replace("+00:00", "Z") == event.time
