"""The audit log's consumer: sequences each polled batch with one write, then commits.

It is the shared `ConsumerRunner` (dead letters, transient-error retries, per-event
handling) with one difference: the events of a poll are sequenced together
(`Sequencer.sequence_many`, one ordered insert) instead of three round trips per event,
which is what lets the log keep up with every other service's events at once. The
per-group `applied_events` record is not needed here: the sequencer is itself idempotent
by event id. The offsets are committed only after the batch is durable; if the batch
fails for any reason but an unreachable store, its events are handled one by one by the
shared runner, so one poison event is dead-lettered and the others are sequenced.

Causal order across topics: Kafka orders a partition, never two topics, yet the policy
says an identity envelope's recipients must be keys registered EARLIER in the log. A
report whose identity recipients the log has not registered yet is held back: its
partition is committed up to before it and rewound to it, while the other partitions (the
key registrations among them) move on; it is sequenced once its keys are in the log, or
after HOLD_LIMIT seconds anyway (then the verifier reports the truth: not registered first).
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from hotline.shared.bus import ConsumerRunner
from hotline.shared.config import Settings
from hotline.shared.events import Event, EventError, EventType, parse_event
from hotline.shared.store import Store

from .sequencer import Sequencer

log = logging.getLogger("hotline.audit_log.consumer")
POLL_RECORDS = 500
# Facts that later events rely on ("an operator key registered EARLIER in the log").
REGISTRATIONS = frozenset({EventType.KEY_REGISTERED, EventType.REGISTRY_CHANGED})
HOLD_LIMIT = 60.0  # seconds a report may wait for its keys' registration to be sequenced
HOLD_RETRY = 0.2  # seconds between polls while a report is held back
Record = ConsumerRecord[bytes, bytes]
Polled = tuple[TopicPartition, Record, "Event | EventError"]


def keys_needed(event: Event) -> set[str]:
    """Key ids that must already be registered in the log before `event` is sequenced."""
    if event.type != EventType.REPORT_SUBMITTED or not event.data.get("identity"):
        return set()
    recipients = event.data["identity"].get("recipients")
    return set(recipients) if isinstance(recipients, dict) else set()


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
        self.registered_keys: set[str] | None = None  # loaded from the log on first use
        self._held_since: dict[str, float] = {}  # event id -> when it was first held back

    async def _load_registered_keys(self) -> set[str]:
        if self.registered_keys is None:
            found = self.store.db.audit_entries.find({"key_id": {"$exists": True}}, {"key_id": 1})
            self.registered_keys = {doc["key_id"] async for doc in found}
        return self.registered_keys

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=POLL_RECORDS)
            if consumer.assignment():
                self.ready.set()
            if not batches:
                continue
            polled = [(tp, m, _parsed(m)) for tp, ms in batches.items() for m in ms]
            held = await self._held_back(polled)
            await self._sequence(
                [(m, e) for tp, m, e in polled if m.offset < held.get(tp, m.offset + 1)]
            )
            positions = {tp: held.get(tp, ms[-1].offset + 1) for tp, ms in batches.items()}
            for tp, offset in held.items():
                consumer.seek(tp, offset)  # read the held report again on a later poll
            try:
                # Every event before these positions is durable: only now are they committed.
                await consumer.commit(positions)
            except KafkaError as exc:
                # A rebalance took a partition away: its next owner reads the events again,
                # and sequencing is idempotent by event id.
                log.warning(
                    "commit failed", extra={"group": self.group, "error_type": type(exc).__name__}
                )
            if held:
                await asyncio.sleep(HOLD_RETRY)  # let the registrations arrive, do not spin

    async def _held_back(self, polled: list[Polled]) -> dict[TopicPartition, int]:
        """Per partition, the offset of the first report that must wait for its keys."""
        known = await self._load_registered_keys()
        events = [(tp, m.offset, e) for tp, m, e in polled if isinstance(e, Event)]
        arriving = {e.data["key_id"] for _, _, e in events if e.type == EventType.KEY_REGISTERED}
        held: dict[TopicPartition, int] = {}
        now = time.monotonic()
        for tp, offset, event in events:
            if tp in held or not keys_needed(event) - known - arriving:
                continue
            since = self._held_since.setdefault(event.id, now)
            if now - since < HOLD_LIMIT:
                held[tp] = offset
            else:
                log.warning("sequenced before its keys", extra={"event_id": event.id})
        for tp, offset, event in events:
            if offset < held.get(tp, offset + 1):
                self._held_since.pop(event.id, None)
        known |= arriving
        return held

    async def _sequence(self, polled: list[tuple[Record, Event | EventError]]) -> None:
        """Sequence the valid events of a poll in one write; dead-letter the invalid."""
        for message, parsed in polled:
            if isinstance(parsed, EventError):
                await self._dead_letter(message, str(parsed))
        valid = [(m, e) for m, e in polled if isinstance(e, Event)]
        if not valid:
            return
        # Kafka orders a partition, never two topics: within a poll, registrations go
        # first. A topic holds one event type, so this stable sort keeps partition order.
        events = sorted((e for _, e in valid), key=lambda event: event.type not in REGISTRATIONS)

        async def write() -> None:
            await self.sequencer.sequence_many(events)

        try:
            await self._with_transient_retry(write)
        except Exception as exc:  # noqa: BLE001 - find the poison event, keep the others
            log.warning("batch sequencing failed", extra={"error_type": type(exc).__name__})
            for message, _ in valid:
                await self._process(message)


def _parsed(message: Record) -> Event | EventError:
    try:
        return parse_event(message.value or b"")
    except EventError as exc:
        return exc
