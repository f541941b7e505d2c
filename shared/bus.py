"""The event bus on aiokafka: an idempotent producer and a consumer runner.

Delivery is at-least-once. The runner (after aiokafka's `local_state_consumer` example):
- polls, parses each record, and hands the valid events of the poll, in partition order,
  to its strategy: `EachEvent` calls a handler per event (the default), `InBatches` hands
  a poll's events of some types to a batch handler at once (triage's and notify's reports:
  one insert for the poll instead of a few round trips per event, and on nx-27017 every
  write is a disk sync), a strategy of its own makes a whole poll durable in one write (the
  audit log's sequencer) and may hold back a partition from some offset on, which the
  runner then reads again a poll later;
- dead-letters what is not a valid event, and what the strategy could not apply, with its
  error in the headers: a poison message never blocks the partition nor vanishes;
- commits `offset + 1` per partition only once the strategy's effects are durable;
- on a rebalance, lets its partitions go only after the batch in hand is flushed and its
  offsets committed (the rebalance listener), so the next owner starts where it ended;
- retries transient infrastructure errors (MongoDB or Kafka unreachable) without limit,
  with backoff: the message is not poison, the world is. A batch is retried whole, which
  is safe because every effect is idempotent by event id.

Idempotence is the handler's: a handler that writes a document whose id follows from the
event (a case id, `buyer:case`, a unique event id) is idempotent by construction and pays
nothing more. A handler that is not opts in to `AppliedEvents`, a per-group record of the
event ids applied (two more round trips per event).

Every record the project produces carries a coarse (hour) timestamp, never the producer's
clock: the transport keeps no more timing than the store (DESIGN.md, Events).

`KafkaHealth` is whether Kafka answers, as a bounded probe last saw it: `/healthz` and the
routes that must publish before they answer read it instead of waiting on a broker that is
away (aiokafka waits up to its request timeout, 40 s, for a broker that does not answer).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol, TypeAlias, TypeVar

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.errors import KafkaError
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import ConnectionFailure, DuplicateKeyError

from .aio import cancel_and_wait, honour_a_lost_cancellation
from .config import Settings
from .events import DEAD_LETTER_TOPIC, Event, EventError, parse_event

log = logging.getLogger("hotline.bus")

Handler = Callable[[Event], Awaitable[None]]
Record: TypeAlias = ConsumerRecord[bytes, bytes]
T = TypeVar("T")

HANDLER_ATTEMPTS = 3
TRANSIENT_ERRORS = (ConnectionFailure, KafkaError, OSError)
RETRY_FIRST, RETRY_MAX = 0.2, 5.0  # seconds of backoff while an engine is away
POLL_TIMEOUT_MS = 500
HOUR_MS = 3_600_000
PROBE_INTERVAL = 1.0  # seconds between two checks that Kafka answers
PROBE_TIMEOUT = 1.0  # a check that takes longer counts as Kafka away


def make_producer(settings: Settings) -> AIOKafkaProducer:
    """Idempotent producer, acknowledged by all in-sync replicas."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        client_id="hotline",
    )


def hour_of(timestamp_ms: int) -> int:
    """A record timestamp truncated to the hour."""
    return timestamp_ms - timestamp_ms % HOUR_MS


def record_timestamp(event: Event) -> int:
    """The Kafka timestamp of `event`'s record: its (coarse) time, truncated to the hour."""
    moment = datetime.fromisoformat(event.time.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return hour_of(int(moment.timestamp() * 1000))


async def publish(producer: AIOKafkaProducer, event: Event) -> None:
    """Send one event and wait until Kafka has it (the case id is the key, the event's hour
    the timestamp)."""
    await producer.send_and_wait(
        event.topic,
        value=event.to_bytes(),
        key=event.subject.encode(),
        timestamp_ms=record_timestamp(event),
    )


async def publish_all(
    producer: AIOKafkaProducer, events: Sequence[Event]
) -> list[BaseException | None]:
    """Send `events` in order without waiting for each (Kafka batches them, and the
    idempotent producer keeps their order on each partition), then wait until Kafka has
    them all; for each event None once Kafka has it, else the error that stopped it (a send
    that fails stops the ones after it, which are not sent)."""
    sent: list[asyncio.Future[Any]] = []
    failure: BaseException | None = None
    for event in events:
        try:
            sent.append(
                await producer.send(
                    event.topic,
                    value=event.to_bytes(),
                    key=event.subject.encode(),
                    timestamp_ms=record_timestamp(event),
                )
            )
        except Exception as exc:  # noqa: BLE001 - reported per event, as an acknowledgement's
            failure = exc
            break
    acknowledged = await asyncio.gather(*sent, return_exceptions=True)
    results = [a if isinstance(a, BaseException) else None for a in acknowledged]
    return results + [failure] * (len(events) - len(sent))


class KafkaHealth:
    """Whether Kafka answered the last metadata request of this process's producer.

    `run()` asks every `interval` seconds, each time bounded by `timeout`, through the
    producer's own client (its connection, no client of its own). A started producer has
    just fetched metadata, so the state starts reachable. Only the probe changes it: a
    runtime that runs no probe (a test's, a benchmark's) always reads reachable and its
    publishes are bounded by their own timeouts."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        *,
        interval: float = PROBE_INTERVAL,
        timeout: float = PROBE_TIMEOUT,
    ) -> None:
        self.producer = producer
        self.interval = interval
        self.timeout = timeout
        self.reachable = True

    async def check(self) -> bool:
        """One bounded metadata request; updates and returns `reachable`."""
        try:
            async with asyncio.timeout(self.timeout):
                await self.producer.client.fetch_all_metadata()
            reachable = True
        except Exception:  # noqa: BLE001 - whatever went wrong, Kafka did not answer
            reachable = False
        if reachable != self.reachable:
            log.warning("kafka reachable again" if reachable else "kafka unreachable")
        self.reachable = reachable
        return reachable

    async def run(self) -> None:
        """Probe until cancelled."""
        while True:
            await self.check()
            await asyncio.sleep(self.interval)  # the probe's period


# --- what a strategy is given and returns ----------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One record of a poll and the valid event it holds."""

    record: Record
    event: Event

    @property
    def partition(self) -> TopicPartition:
        return TopicPartition(self.record.topic, self.record.partition)


@dataclass
class Outcome:
    """What a strategy did with the deliveries of a poll, once its effects are durable.

    `failed`: deliveries it could not apply, with their error (the runner dead-letters
    them and moves on). `held`: per partition, the offset of the first delivery it holds
    back; that delivery and the rest of its partition are neither committed nor lost: the
    runner reads them again a poll later."""

    failed: list[tuple[Delivery, str]] = field(default_factory=list)
    held: dict[TopicPartition, int] = field(default_factory=dict)


class Strategy(Protocol):
    """How a consumer makes the events of one poll durable."""

    async def apply(self, deliveries: Sequence[Delivery]) -> Outcome:
        """Make the effect of `deliveries` (in partition order) durable and idempotent.

        Raise a `TRANSIENT_ERRORS` error when the world is away: the runner retries the
        whole batch with backoff. Report any other failure in the outcome."""
        ...


class AppliedEvents:
    """The event ids a consumer group has applied, for a handler that is not idempotent by
    construction: one document `{_id: "<group>:<event id>"}` per event, in `collection`."""

    def __init__(self, collection: AsyncCollection[dict[str, Any]], group: str) -> None:
        self.collection = collection
        self.group = group

    async def has(self, event: Event) -> bool:
        return await self.collection.find_one({"_id": self._id(event)}, {"_id": 1}) is not None

    async def add(self, event: Event) -> None:
        try:
            await self.collection.insert_one({"_id": self._id(event), "group": self.group})
        except DuplicateKeyError:
            pass  # a redelivery raced us here: the record is there either way

    def _id(self, event: Event) -> str:
        return f"{self.group}:{event.id}"


class EachEvent:
    """The default strategy: `handle` once per event, in partition order.

    An event whose handler fails `HANDLER_ATTEMPTS` times (transient errors do not count)
    is reported failed. With `applied`, an event already recorded there is skipped, and
    each handled event is recorded after its effect; without it, the handler itself must
    be idempotent by event, as every handler of the project is (see `Runtime.consume`)."""

    def __init__(self, handle: Handler, *, applied: AppliedEvents | None = None) -> None:
        self.handle = handle
        self.applied = applied

    async def apply(self, deliveries: Sequence[Delivery]) -> Outcome:
        outcome = Outcome()
        for delivery in deliveries:
            error = await self._apply_one(delivery.event)
            if error is not None:
                outcome.failed.append((delivery, error))
        return outcome

    async def _apply_one(self, event: Event) -> str | None:
        """None once the effect is durable, else the last error."""
        if self.applied is not None and await self.applied.has(event):
            return None
        for attempt in range(1, HANDLER_ATTEMPTS + 1):
            try:
                await self.handle(event)
                break
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:  # noqa: BLE001 - any other failure counts as an attempt
                log.warning(
                    "handler failed",
                    extra={
                        "event_id": event.id,
                        "attempt": attempt,
                        "error_type": type(exc).__name__,
                    },
                )
                if attempt == HANDLER_ATTEMPTS:
                    return f"{type(exc).__name__}: {exc}"
        if self.applied is not None:
            await self.applied.add(event)
        return None


BatchHandler = Callable[[Sequence[Event]], Awaitable[None]]


@dataclass(frozen=True)
class Batch:
    """A handler that applies the events of `types` in a poll together (in partition order),
    with as few writes as the events allow; idempotent by event id, as every handler."""

    types: frozenset[str]
    handle: BatchHandler


class InBatches:
    """A poll's events of `batch.types` through `batch.handle` at once, the others one by one
    through `each` (in partition order). Types are topics: Kafka orders no two topics, so
    taking one topic's events first reorders nothing it orders.

    A batch that fails for any reason but an engine away is applied again one event at a
    time through `each`, so a poison event is dead-lettered and the others are applied."""

    def __init__(self, batch: Batch, each: EachEvent) -> None:
        self.batch = batch
        self.each = each

    async def apply(self, deliveries: Sequence[Delivery]) -> Outcome:
        together = [d for d in deliveries if d.event.type in self.batch.types]
        outcome = Outcome()
        if together:
            try:
                await self.batch.handle([d.event for d in together])
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:  # noqa: BLE001 - find the poison event, keep the others
                log.warning("batch failed", extra={"error_type": type(exc).__name__})
                outcome.failed += (await self.each.apply(together)).failed
        rest = [d for d in deliveries if d.event.type not in self.batch.types]
        outcome.failed += (await self.each.apply(rest)).failed
        return outcome


# --- the runner ------------------------------------------------------------------------------


class ConsumerRunner:
    """Runs one consumer group over `topics`, making each poll durable through `strategy`."""

    def __init__(
        self,
        settings: Settings,
        producer: AIOKafkaProducer,
        group: str,
        topics: Iterable[str],
        strategy: Strategy,
        *,
        poll_records: int = 200,
        client_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.producer = producer  # for dead letters
        self.group = group
        self.topics = list(topics)
        self.strategy = strategy
        self.poll_records = poll_records
        self.client_id = client_id or group
        self.ready = asyncio.Event()  # set once partitions are assigned the first time
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        # Held while a batch is in hand: a rebalance waits for it to be flushed and committed.
        self._in_hand = asyncio.Lock()
        self._done: dict[TopicPartition, int] = {}  # durable, not yet committed positions

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=self.group,
            client_id=self.client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await consumer.start()
        consumer.subscribe(self.topics, listener=_FlushThenLetGo(self, consumer))
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(consumer), name=f"consumer-{self.group}")

    def healthy(self) -> bool:
        """False once the consuming task has died (the service must then report unhealthy)."""
        return self._task is not None and not self._task.done()

    def assignment(self) -> set[TopicPartition]:
        """The partitions this member holds now."""
        return set(self._consumer.assignment()) if self._consumer is not None else set()

    async def stop(self) -> None:
        """Stop consuming; a batch cut short is not committed and is read again later."""
        await cancel_and_wait(self._task)
        if self._consumer is not None:
            await self._consumer.stop()

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            honour_a_lost_cancellation()
            polled = await consumer.getmany(
                timeout_ms=POLL_TIMEOUT_MS, max_records=self.poll_records
            )
            consumer.resume(*consumer.paused())  # a partition held back sat out one poll
            if not polled:
                continue
            async with self._in_hand:
                await self._flush(consumer, polled)

    async def _flush(
        self, consumer: AIOKafkaConsumer, polled: dict[TopicPartition, list[Record]]
    ) -> None:
        """Apply one poll, dead-letter what failed, then commit what is durable."""
        # A partition revoked since the poll is its next owner's now: it reads it again.
        owned = {tp: records for tp, records in polled.items() if tp in consumer.assignment()}
        deliveries: list[Delivery] = []
        poison: list[tuple[Record, str]] = []
        for records in owned.values():
            for record in records:
                try:
                    deliveries.append(Delivery(record, parse_event(record.value or b"")))
                except EventError as exc:
                    poison.append((record, str(exc)))
        outcome = await self._retrying(lambda: self.strategy.apply(deliveries))
        failed = [(d.record, error) for d, error in outcome.failed]
        for record, error in poison + failed:
            held_from = outcome.held.get(TopicPartition(record.topic, record.partition))
            if held_from is None or record.offset < held_from:  # else: read again later
                await self._retrying(partial(self._dead_letter, record, error))
        for tp, records in owned.items():
            self._done[tp] = outcome.held.get(tp, records[-1].offset + 1)
        for tp, offset in outcome.held.items():
            consumer.seek(tp, offset)
            consumer.pause(tp)
        await self._commit(consumer)

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        """Commit the durable positions of the partitions still held."""
        assigned = consumer.assignment()
        positions = {tp: offset for tp, offset in self._done.items() if tp in assigned}
        self._done = positions
        if not positions:
            return
        try:
            await consumer.commit(positions)
            self._done = {}
        except KafkaError as exc:
            # Kept for the next commit (or the revoke); if the partition is gone meanwhile,
            # its new owner reads these events again, and they are idempotent by event id.
            log.warning(
                "commit failed", extra={"group": self.group, "error_type": type(exc).__name__}
            )

    async def _let_go(self, consumer: AIOKafkaConsumer) -> None:
        """On revoke: wait for the batch in hand (flushed and committed when the lock is
        free), commit again what a failed commit left, then let every partition go."""
        async with self._in_hand:
            await self._commit(consumer)
            self._done = {}

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        delay = RETRY_FIRST
        while True:
            try:
                return await call()
            except TRANSIENT_ERRORS as exc:
                log.warning(
                    "transient error, retrying",
                    extra={"group": self.group, "error_type": type(exc).__name__},
                )
                await asyncio.sleep(delay)  # backoff while an engine is away, not a test wait
                delay = min(delay * 2, RETRY_MAX)

    async def _dead_letter(self, record: Record, error: str) -> None:
        """Park a poison record with its error and its original hour as timestamp."""
        headers = [
            ("error", error[:500].encode()),
            ("group", self.group.encode()),
            ("topic", record.topic.encode()),
            ("partition", str(record.partition).encode()),
            ("offset", str(record.offset).encode()),
        ]
        await self.producer.send_and_wait(
            DEAD_LETTER_TOPIC,
            value=record.value,
            key=record.key,
            headers=headers,
            timestamp_ms=dead_letter_timestamp(record),
        )
        log.warning(
            "message dead-lettered",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "group": self.group,
            },
        )


def dead_letter_timestamp(record: Record) -> int:
    """The original record's timestamp truncated to the hour (this hour if it has none)."""
    if record.timestamp is not None and record.timestamp >= 0:
        return hour_of(record.timestamp)
    return hour_of(int(datetime.now(UTC).timestamp() * 1000))


class _FlushThenLetGo(ConsumerRebalanceListener):  # type: ignore[misc]  # untyped base
    """aiokafka's rebalance hooks for one runner (after `local_state_consumer`)."""

    def __init__(self, runner: ConsumerRunner, consumer: AIOKafkaConsumer) -> None:
        self.runner = runner
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if revoked:
            log.info(
                "rebalance: flushing the batch in hand before letting partitions go",
                extra={"group": self.runner.group, "count": len(revoked)},
            )
        await self.runner._let_go(self.consumer)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if assigned:
            self.runner.ready.set()
