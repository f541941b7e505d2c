"""The audit log's consumer: the shared runner with a strategy that sequences each poll in
one write.

The runner polls, dead-letters what is not an event, commits only what is durable, retries
while an engine is away, and flushes before a rebalance lets a partition go. `Sequencing`
is the audit log's strategy: the events of a poll are sequenced together
(`Sequencer.sequence_many`, one ordered insert) instead of one write per event, which is
what lets the log keep up with every other service's events at once. No `applied_events`
record is kept: the sequencer is itself idempotent by event id. If a batch fails for any
reason but an unreachable store, its events are sequenced one by one, so one poison event is
dead-lettered and the others are sequenced.

Causal order across topics: Kafka orders a partition, never two topics, yet the policy
says an identity envelope's recipients (and an answer's or a buyer's question's) must be
keys registered EARLIER in the log, and a message to the worker must come after the case's
report (whose reply key it is sealed to). An event whose keys or report the log does not
hold yet is held back: its partition is committed up to before it and read again from it a
poll later, while the other partitions (the key registrations and reports among them) move
on; it is sequenced once they are in the log, or after HOLD_LIMIT seconds anyway (then the
verifier reports the truth: not registered, or not reported, first).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer, TopicPartition

from hotline.shared.bus import TRANSIENT_ERRORS, ConsumerRunner, Delivery, EachEvent, Outcome
from hotline.shared.config import Settings
from hotline.shared.events import Event, EventType
from hotline.shared.messages import TO_OPERATORS
from hotline.shared.store import Store

from .sequencer import Sequencer

log = logging.getLogger("hotline.audit_log.consumer")
POLL_RECORDS = 500
# Facts that later events rely on ("an operator key registered EARLIER in the log").
REGISTRATIONS = frozenset({EventType.KEY_REGISTERED, EventType.REGISTRY_CHANGED})
HOLD_LIMIT = 60.0  # seconds a report may wait for its keys' registration to be sequenced
_AFTER_ALL = float("inf")  # where a partition that is not held back is held from


def keys_needed(event: Event) -> set[str]:
    """Key ids that must already be registered in the log before `event` is sequenced: a
    report's identity recipients, an answer's or a question's recipients."""
    if event.type == EventType.REPORT_SUBMITTED:
        envelope = event.data.get("identity")
    elif event.type == EventType.MESSAGE_POSTED and event.data.get("kind") in TO_OPERATORS:
        envelope = event.data.get("envelope")
    else:
        return set()
    recipients = envelope.get("recipients") if isinstance(envelope, dict) else None
    return set(recipients) if isinstance(recipients, dict) else set()


def report_needed(event: Event) -> str | None:
    """The case whose report must already be in the log before `event` is sequenced."""
    return event.subject if event.type == EventType.MESSAGE_POSTED else None


def consumer_group(settings: Settings) -> str:
    """One group per database: the committed offsets say what THAT database holds."""
    return f"audit-log.{settings.mongo_db}"


def sequencing_consumer(
    settings: Settings,
    store: Store,
    producer: AIOKafkaProducer,
    topics: Sequence[str],
    sequencer: Sequencer,
) -> ConsumerRunner:
    """The audit log's consumer over `topics` (`producer` is for dead letters)."""
    return ConsumerRunner(
        settings,
        producer,
        consumer_group(settings),
        topics,
        Sequencing(store, sequencer),
        poll_records=POLL_RECORDS,
    )


class Sequencing:
    """Sequences the events of a poll in one write, holding back a report until its keys'
    registrations are in the log (a `bus.Strategy`)."""

    def __init__(self, store: Store, sequencer: Sequencer) -> None:
        self.store = store
        self.sequencer = sequencer
        self.one_by_one = EachEvent(self._sequence_one)  # finds the poison in a failed batch
        self.registered_keys: set[str] | None = None  # loaded from the log on first use
        self._held_since: dict[str, float] = {}  # event id -> when it was first held back

    async def apply(self, deliveries: Sequence[Delivery]) -> Outcome:
        held = await self._held_back(deliveries)
        ready = [d for d in deliveries if d.record.offset < held.get(d.partition, _AFTER_ALL)]
        outcome = await self._sequence(ready)
        outcome.held = held
        return outcome

    async def _sequence_one(self, event: Event) -> None:
        await self.sequencer.sequence(event)

    async def _load_registered_keys(self) -> set[str]:
        if self.registered_keys is None:
            found = self.store.db.audit_entries.find({"key_id": {"$exists": True}}, {"key_id": 1})
            self.registered_keys = {doc["key_id"] async for doc in found}
        return self.registered_keys

    async def _reported(self, case_id: str, arriving: set[str]) -> bool:
        if case_id in arriving:
            return True
        found = await self.store.db.audit_entries.find_one(
            {"subject": case_id, "type": EventType.REPORT_SUBMITTED}, {"_id": 1}
        )
        return found is not None

    async def _waits(self, event: Event, known: set[str], ready_reports: set[str]) -> bool:
        """Whether `event` needs a key or a report the log does not hold (nor this poll)."""
        if keys_needed(event) - known:
            return True
        case_id = report_needed(event)
        return case_id is not None and not await self._reported(case_id, ready_reports)

    async def _held_back(self, deliveries: Sequence[Delivery]) -> dict[TopicPartition, int]:
        """Per partition, the offset of the first event that must wait for its keys or its
        case's report. Registrations are looked at first and reports next (`_in_causal_order`),
        so a report sequenced in this poll lets its case's messages through."""
        known = await self._load_registered_keys()
        known |= {
            d.event.data["key_id"] for d in deliveries if d.event.type == EventType.KEY_REGISTERED
        }
        ready_reports: set[str] = set()
        held: dict[TopicPartition, int] = {}
        now = time.monotonic()
        for delivery in _in_causal_order(deliveries):
            event = delivery.event
            if delivery.partition in held:
                continue
            if await self._waits(event, known, ready_reports):
                since = self._held_since.setdefault(event.id, now)
                if now - since < HOLD_LIMIT:
                    held[delivery.partition] = delivery.record.offset
                    continue
                log.warning("sequenced before its keys or report", extra={"event_id": event.id})
            if event.type == EventType.REPORT_SUBMITTED:
                ready_reports.add(event.subject)
        for delivery in deliveries:
            if delivery.record.offset < held.get(delivery.partition, _AFTER_ALL):
                self._held_since.pop(delivery.event.id, None)
        return held

    async def _sequence(self, deliveries: list[Delivery]) -> Outcome:
        """Sequence `deliveries` in one write; if that fails, one by one."""
        if not deliveries:
            return Outcome()
        events = [delivery.event for delivery in _in_causal_order(deliveries)]
        try:
            await self.sequencer.sequence_many(events)
        except TRANSIENT_ERRORS:
            raise  # the store is away: the runner retries the batch
        except Exception as exc:  # noqa: BLE001 - find the poison event, keep the others
            log.warning("batch sequencing failed", extra={"error_type": type(exc).__name__})
            return await self.one_by_one.apply(deliveries)
        return Outcome()


def _in_causal_order(deliveries: Sequence[Delivery]) -> list[Delivery]:
    """Registrations first, reports next, the rest after. Kafka orders a partition, never
    two topics; a topic holds one event type, so this stable sort keeps partition order."""

    def rank(delivery: Delivery) -> int:
        if delivery.event.type in REGISTRATIONS:
            return 0
        return 1 if delivery.event.type == EventType.REPORT_SUBMITTED else 2

    return sorted(deliveries, key=rank)
