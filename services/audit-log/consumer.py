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
says an identity envelope's recipients must be keys registered EARLIER in the log. A
report whose identity recipients the log has not registered yet is held back: its
partition is committed up to before it and read again from it a poll later, while the
other partitions (the key registrations among them) move on; it is sequenced once its keys
are in the log, or after HOLD_LIMIT seconds anyway (then the verifier reports the truth:
not registered first).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer, TopicPartition

from hotline.shared.bus import TRANSIENT_ERRORS, ConsumerRunner, Delivery, EachEvent, Outcome
from hotline.shared.config import Settings
from hotline.shared.events import Event, EventType
from hotline.shared.store import Store

from .sequencer import Sequencer

log = logging.getLogger("hotline.audit_log.consumer")
POLL_RECORDS = 500
# Facts that later events rely on ("an operator key registered EARLIER in the log").
REGISTRATIONS = frozenset({EventType.KEY_REGISTERED, EventType.REGISTRY_CHANGED})
HOLD_LIMIT = 60.0  # seconds a report may wait for its keys' registration to be sequenced
_AFTER_ALL = float("inf")  # where a partition that is not held back is held from


def keys_needed(event: Event) -> set[str]:
    """Key ids that must already be registered in the log before `event` is sequenced."""
    if event.type != EventType.REPORT_SUBMITTED or not event.data.get("identity"):
        return set()
    recipients = event.data["identity"].get("recipients")
    return set(recipients) if isinstance(recipients, dict) else set()


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

    async def _held_back(self, deliveries: Sequence[Delivery]) -> dict[TopicPartition, int]:
        """Per partition, the offset of the first report that must wait for its keys."""
        known = await self._load_registered_keys()
        arriving = {
            d.event.data["key_id"] for d in deliveries if d.event.type == EventType.KEY_REGISTERED
        }
        held: dict[TopicPartition, int] = {}
        now = time.monotonic()
        for delivery in deliveries:
            event = delivery.event
            if delivery.partition in held or not keys_needed(event) - known - arriving:
                continue
            since = self._held_since.setdefault(event.id, now)
            if now - since < HOLD_LIMIT:
                held[delivery.partition] = delivery.record.offset
            else:
                log.warning("sequenced before its keys", extra={"event_id": event.id})
        for delivery in deliveries:
            if delivery.record.offset < held.get(delivery.partition, _AFTER_ALL):
                self._held_since.pop(delivery.event.id, None)
        known |= arriving
        return held

    async def _sequence(self, deliveries: list[Delivery]) -> Outcome:
        """Sequence `deliveries` in one write; if that fails, one by one."""
        if not deliveries:
            return Outcome()
        # Kafka orders a partition, never two topics: within a poll, registrations go
        # first. A topic holds one event type, so this stable sort keeps partition order.
        events = sorted(
            (d.event for d in deliveries), key=lambda event: event.type not in REGISTRATIONS
        )
        try:
            await self.sequencer.sequence_many(events)
        except TRANSIENT_ERRORS:
            raise  # the store is away: the runner retries the batch
        except Exception as exc:  # noqa: BLE001 - find the poison event, keep the others
            log.warning("batch sequencing failed", extra={"error_type": type(exc).__name__})
            return await self.one_by_one.apply(deliveries)
        return Outcome()
