"""The audit log's consumer: sequences each polled batch with one write, then commits.

It is the shared `ConsumerRunner` (dead letters, transient-error retries, per-event
handling) with one difference: the events of a poll are sequenced together
(`Sequencer.sequence_many`, one ordered insert) instead of three round trips per event,
which is what lets the log keep up with every other service's events at once. The
per-group `applied_events` record is not needed here: the sequencer is itself idempotent
by event id. The offsets are committed only after the batch is durable; if the batch
fails for any reason but an unreachable store, its events are handled one by one by the
shared runner, so one poison event is dead-lettered and the others are sequenced.
"""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError

from hotline.shared.bus import ConsumerRunner
from hotline.shared.config import Settings
from hotline.shared.events import Event, EventError, parse_event
from hotline.shared.store import Store

from .sequencer import Sequencer

log = logging.getLogger("hotline.audit_log.consumer")
POLL_RECORDS = 500
# Facts that later events rely on ("an operator key registered EARLIER in the log").
REGISTRATIONS = frozenset({"key.registered", "registry.changed"})


def consumer_group(settings: Settings) -> str:
    """One group per database: the committed offsets say what THAT database holds."""
    return f"audit-log.{settings.mongo_db}"


class SequencingConsumer(ConsumerRunner):
    def __init__(
        self,
        settings: Settings,
        store: Store,
        producer: AIOKafkaProducer,
        topics: list[str],
        sequencer: Sequencer,
    ) -> None:
        async def one(event: Event) -> None:
            await sequencer.sequence(event)

        super().__init__(settings, store, producer, consumer_group(settings), topics, one)
        self.sequencer = sequencer

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=POLL_RECORDS)
            if consumer.assignment():
                self.ready.set()
            if not batches:
                continue
            await self._sequence([m for messages in batches.values() for m in messages])
            try:
                # Every event of the poll is durable: only now are the positions committed.
                await consumer.commit({tp: ms[-1].offset + 1 for tp, ms in batches.items()})
            except KafkaError as exc:
                # A rebalance took a partition away: its next owner reads the events again,
                # and sequencing is idempotent by event id.
                log.warning(
                    "commit failed", extra={"group": self.group, "error_type": type(exc).__name__}
                )

    async def _sequence(self, messages: list[ConsumerRecord[bytes, bytes]]) -> None:
        """Sequence the valid events of `messages` in one write; dead-letter the invalid."""
        events: list[Event] = []
        valid: list[ConsumerRecord[bytes, bytes]] = []
        for message in messages:
            try:
                events.append(parse_event(message.value or b""))
            except EventError as exc:
                await self._dead_letter(message, str(exc))
                continue
            valid.append(message)
        if not events:
            return
        # Kafka orders a partition, never two topics: within a poll, registrations go
        # first. A topic holds one event type, so this stable sort keeps partition order.
        events.sort(key=lambda event: event.type not in REGISTRATIONS)

        async def write() -> None:
            await self.sequencer.sequence_many(events)

        try:
            await self._with_transient_retry(write)
        except Exception as exc:  # noqa: BLE001 - find the poison event, keep the others
            log.warning("batch sequencing failed", extra={"error_type": type(exc).__name__})
            for message in valid:
                await self._process(message)
