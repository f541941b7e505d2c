"""The event bus on aiokafka: an idempotent producer and a consumer runner.

Delivery is at-least-once. The runner (after aiokafka's `local_state_consumer` example):
- reads a batch, and for each message in partition order parses the event, skips it if
  this group already applied that event id, else calls the handler, which makes its effect
  durable (and idempotent) before returning; then records the event id as applied;
- commits `offset + 1` per partition only after that;
- a message that is not a valid event, or whose handler keeps failing, goes to the
  dead-letter topic with its error in the headers, then the partition moves on;
- transient infrastructure errors (MongoDB or Kafka unreachable) are retried without
  limit, with backoff: the message is not poison, the world is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError
from pymongo.errors import ConnectionFailure, DuplicateKeyError

from .aio import cancel_and_wait
from .config import Settings
from .events import DEAD_LETTER_TOPIC, Event, EventError, parse_event

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger("hotline.bus")

Handler = Callable[[Event], Awaitable[None]]
HANDLER_ATTEMPTS = 3
TRANSIENT_ERRORS = (ConnectionFailure, KafkaError, OSError)


def make_producer(settings: Settings) -> AIOKafkaProducer:
    """Idempotent producer, acknowledged by all in-sync replicas."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        client_id="hotline",
    )


async def publish(producer: AIOKafkaProducer, event: Event) -> None:
    """Send one event and wait until Kafka has it (the case id is the key)."""
    await producer.send_and_wait(event.topic, value=event.to_bytes(), key=event.subject.encode())


class ConsumerRunner:
    """Runs one consumer group over `topics`, calling `handler` once per event id."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        producer: AIOKafkaProducer,
        group: str,
        topics: Iterable[str],
        handler: Handler,
        *,
        client_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.producer = producer
        self.group = group
        self.topics = list(topics)
        self.handler = handler
        self.client_id = client_id or group
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self.ready = asyncio.Event()  # set once partitions are assigned the first time

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=self.group,
            client_id=self.client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name=f"consumer-{self.group}")

    def healthy(self) -> bool:
        """False once the consuming task has died (the service must then report unhealthy)."""
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        if self._consumer is not None:
            await self._consumer.stop()

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=200)
            if consumer.assignment():
                self.ready.set()
            for tp, messages in batches.items():
                for message in messages:
                    await self._process(message)
                try:
                    # The effects are durable: only now is the position committed.
                    await consumer.commit({tp: messages[-1].offset + 1})
                except KafkaError as exc:
                    # Typically a rebalance took the partition away: its new owner gets the
                    # uncommitted messages again, and they are idempotent by event id.
                    log.warning(
                        "commit failed",
                        extra={"group": self.group, "error_type": type(exc).__name__},
                    )

    async def _process(self, message: ConsumerRecord[bytes, bytes]) -> None:
        try:
            event = parse_event(message.value or b"")
        except EventError as exc:
            await self._dead_letter(message, str(exc))
            return
        if await self._already_applied(event):
            return
        for attempt in range(1, HANDLER_ATTEMPTS + 1):
            try:
                await self._with_transient_retry(lambda: self.handler(event))
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any handler failure counts as an attempt
                log.warning(
                    "handler failed",
                    extra={
                        "event_id": event.id,
                        "attempt": attempt,
                        "group": self.group,
                        "error_type": type(exc).__name__,
                    },
                )
                if attempt == HANDLER_ATTEMPTS:
                    await self._dead_letter(message, f"{type(exc).__name__}: {exc}")
                    return
        await self._with_transient_retry(lambda: self._mark_applied(event))

    async def _with_transient_retry(self, call: Callable[[], Awaitable[None]]) -> None:
        delay = 0.2
        while True:
            try:
                await call()
                return
            except TRANSIENT_ERRORS:
                log.warning("transient error, retrying", extra={"group": self.group})
                await asyncio.sleep(delay)  # backoff while an engine is away, not a test wait
                delay = min(delay * 2, 5.0)

    async def _already_applied(self, event: Event) -> bool:
        found = await self.store.db.applied_events.find_one({"_id": f"{self.group}:{event.id}"})
        return found is not None

    async def _mark_applied(self, event: Event) -> None:
        try:
            await self.store.db.applied_events.insert_one(
                {"_id": f"{self.group}:{event.id}", "group": self.group}
            )
        except DuplicateKeyError:
            pass

    async def _dead_letter(self, message: ConsumerRecord[bytes, bytes], error: str) -> None:
        """Park a poison message with its error; it never blocks the partition nor vanishes."""
        headers = [
            ("error", error[:500].encode()),
            ("group", self.group.encode()),
            ("topic", message.topic.encode()),
            ("partition", str(message.partition).encode()),
            ("offset", str(message.offset).encode()),
        ]
        await self._with_transient_retry(lambda: self._send_dead_letter(message, headers))
        log.warning(
            "message dead-lettered",
            extra={
                "topic": message.topic,
                "partition": message.partition,
                "offset": message.offset,
                "group": self.group,
            },
        )

    async def _send_dead_letter(
        self, message: ConsumerRecord[bytes, bytes], headers: list[tuple[str, bytes]]
    ) -> None:
        await self.producer.send_and_wait(
            DEAD_LETTER_TOPIC, value=message.value, key=message.key, headers=headers
        )
