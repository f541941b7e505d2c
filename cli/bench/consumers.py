"""`hotline bench consumers`: events/s of each consumer through the real runner, beside a
bare aiokafka consumer doing the same durable writes, measured in the same run.

Everything runs for real on this machine: its own nx-27017 (unless `--mongo-url`) and its
own Apache Kafka (one KRaft node), in a temporary data directory on free ports (the Kafka
jars are the machine's shared engines). `--events` report.submitted events (sealed envelopes
as a browser makes them, identity included) are produced once; then, in each round, a
fresh consumer group reads them all, for each consumer in turn and its anchor beside it:
- triage: `triage_report` through the runner, a poll's reports in `triage_reports` at once
  (as triage registers them: one insert of the poll's cases);
- notify: `add_to_digests` through the runner, a poll's reports in `add_all_to_digests` at
  once, one linked buyer (one digest item per event, one insert per poll);
- audit-log: the audit log's sequencing consumer (one ordered insert per poll);
- anchor: a bare `AIOKafkaConsumer` that commits after each poll and does the same durable
  writes: into a collection with the same indexes, a document of the same kind (the case,
  the digest item, the entry) built straight from the record, one insert per event beside
  triage and notify, one `insert_many` per poll beside the audit log.
Each run writes into a database of its own. The rate counts from the first durable effect
to the last, so the group join is not in it. Figures are the median over the rounds.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import click
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from pymongo import IndexModel
from pymongo.errors import DuplicateKeyError

from hotline.audit_log import storage as audit_storage
from hotline.audit_log.app import AUDITED_TOPICS
from hotline.audit_log.consumer import POLL_RECORDS, sequencing_consumer
from hotline.audit_log.sequencer import Sequencer
from hotline.notify.collections import COLLECTIONS as NOTIFY
from hotline.notify.collections import NOTIFY_ITEMS
from hotline.notify.consumer import add_all_to_digests, add_to_digests
from hotline.notify.issuance import Issuer
from hotline.notify.signing import digest_signer
from hotline.shared import registry
from hotline.shared.bus import Batch, ConsumerRunner, make_producer, publish
from hotline.shared.clock import SystemClock
from hotline.shared.config import Settings
from hotline.shared.events import Event, ReportSubmitted, new_event, topic_for
from hotline.shared.keys import b64encode
from hotline.shared.outbox import relay_for
from hotline.shared.service import Runtime
from hotline.shared.store import Collections, Store
from hotline.triage.collections import COLLECTIONS as TRIAGE
from hotline.triage.collections import TRIAGE_CASES
from hotline.triage.consumer import triage_report, triage_reports

from ..engines import kafka
from ..engines.process import free_port
from .audit import Workload
from .figures import JSON_OPTION, Figure, echo_figure
from .workspace import say, workspace

REPORTS = topic_for("report.submitted")
RUNNER_POLL = 200  # records per poll of the shared runner (its default)
PRODUCE_CHUNK = 200
STALL = 120.0  # seconds without a single effect before the run is declared stuck
Record: TypeAlias = ConsumerRecord[bytes, bytes]
Run = Callable[[Settings, int], Awaitable[float]]


@click.command("consumers")
@click.option("--events", default=3000, show_default=True, help="Events each consumer reads.")
@click.option("--rounds", default=3, show_default=True, help="Rounds (the median is shown).")
@click.option("--mongo-url", help="Use this MongoDB wire server instead of starting nx-27017.")
@JSON_OPTION
def bench_consumers(events: int, rounds: int, mongo_url: str | None, as_json: bool) -> None:
    """Events/s of the triage, notify and audit-log consumers, each beside a bare consumer."""
    if events < 4 * POLL_RECORDS:
        raise click.BadParameter(f"at least {4 * POLL_RECORDS}", param_hint="--events")
    if rounds < 1:
        raise click.BadParameter("1 or more", param_hint="--rounds")
    with workspace(mongo_url) as base, _kafka(base) as settings:
        results = asyncio.run(_measure(settings, events, rounds))
    if as_json:
        for result in results:
            echo_figure(_figure(result, events, rounds), as_json)
    else:
        _print_table(events, rounds, results)


@contextmanager
def _kafka(base: Settings) -> Iterator[Settings]:
    """Our own Kafka broker in the workspace's data directory, its topics created."""
    port = free_port()
    settings = Settings(
        data=base.data,
        mongo_url=base.mongo_url,
        kafka_port=port,
        kafka_controller_port=free_port(),
        kafka_bootstrap=f"{base.host}:{port}",
    )
    kafka.prepare(settings)
    say(f"starting Kafka on port {port}")
    process = kafka.start(settings)
    try:
        kafka.create_topics(settings)
        yield settings
    finally:
        process.stop()


# --- measuring ------------------------------------------------------------------------------


@dataclass
class Clock:
    """Counts durable effects; the rate runs from the first effect to the last."""

    wanted: int
    count: int = 0
    first_count: int = 0
    first: float = 0.0
    last: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def tick(self, effects: int = 1) -> None:
        now = time.perf_counter()
        if self.count == 0:
            self.first, self.first_count = now, effects
        self.count += effects
        self.last = now
        if self.count >= self.wanted:
            self.done.set()

    async def wait(self, what: str) -> None:
        while True:
            seen = self.count
            try:
                await asyncio.wait_for(self.done.wait(), STALL)
                return
            except TimeoutError:
                if self.count == seen:
                    raise click.ClickException(
                        f"{what}: no effect for {STALL:.0f} s after {seen} of {self.wanted}"
                    ) from None

    def rate(self) -> float:
        return (self.count - self.first_count) / (self.last - self.first)


@dataclass
class Result:
    name: str
    consumer: list[float] = field(default_factory=list)
    anchor: list[float] = field(default_factory=list)


async def _measure(settings: Settings, events: int, rounds: int) -> list[Result]:
    workload = Workload()
    producer = make_producer(settings)
    await producer.start()
    try:
        say(f"producing {events} report.submitted events")
        reports = [_report(workload, n) for n in range(events)]
        for first in range(0, events, PRODUCE_CHUNK):  # bounded: the producer's buffer waits
            chunk = reports[first : first + PRODUCE_CHUNK]
            await asyncio.gather(*(publish(producer, event) for event in chunk))
        prepare_notify = _linked_buyer(workload)
        pairs: list[tuple[Result, Run, Run]] = [
            (
                Result("triage"),
                _anchor(TRIAGE_ANCHOR),
                _handler_run(TRIAGE, triage_report, triage_reports, _nothing_to_prepare, producer),
            ),
            (
                Result("notify"),
                _anchor(NOTIFY_ANCHOR),
                _handler_run(NOTIFY, _notify_handler, _notify_batch, prepare_notify, producer),
            ),
            (Result("audit-log"), _anchor(AUDIT_ANCHOR), _audit(producer, workload)),
        ]
        for round_number in range(1, rounds + 1):
            for result, anchor, consumer in pairs:
                say(f"round {round_number}/{rounds}: {result.name}")
                result.anchor.append(await anchor(_database(settings), events))
                result.consumer.append(await consumer(_database(settings), events))
        return [result for result, _, _ in pairs]
    finally:
        await producer.stop()


_ISSUERS: dict[int, Issuer] = {}  # one per measured runtime, as notify's setup makes one


def _issuer(runtime: Runtime) -> Issuer:
    issuer = _ISSUERS.get(id(runtime))
    if issuer is None or issuer.store is not runtime.store:  # an id is reused once freed
        issuer = Issuer(runtime.store, digest_signer(runtime.settings), SystemClock())
        _ISSUERS[id(runtime)] = issuer
    return issuer


async def _notify_handler(runtime: Runtime, event: Event) -> None:
    """Notify's consumer of reports, with the issuer it is registered with."""
    await add_to_digests(_issuer(runtime), event)


async def _notify_batch(runtime: Runtime, events: Sequence[Event]) -> None:
    """Notify's batch of a poll's reports, with the issuer it is registered with."""
    await add_all_to_digests(_issuer(runtime), events)


def _database(settings: Settings) -> Settings:
    return settings.model_copy(update={"mongo_db": f"bench_{uuid.uuid4().hex[:12]}"})


def _report(workload: Workload, n: int) -> Event:
    data = ReportSubmitted(
        factory="F-001",
        categories=["safety"],
        urgent=n % 10 == 0,  # some escalate: triage then writes two events
        language="en",
        channel="web",
        server_encrypted=False,
        content=workload.content,
        identity=workload.identity,
    )
    return new_event(f"case-{n:08d}-{uuid.uuid4().hex[:8]}", data)


async def _drop(store: Store) -> None:
    await store.drop_databases()
    await store.close()


# --- the anchors ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    """What the bare consumer beside a consumer writes: into a collection with the same
    indexes, a document of the same kind per event, one insert each or one insert_many."""

    indexes: Sequence[IndexModel]
    document: Callable[[int, dict[str, Any]], dict[str, Any]]  # (position, event) -> doc
    per_poll: bool = False


def _case_like(position: int, event: dict[str, Any]) -> dict[str, Any]:
    """Triage's case: the routing metadata and both envelopes under the case id."""
    return {"_id": event["subject"], **event["data"], "status": "new", "due": event["time"]}


def _item_like(position: int, event: dict[str, Any]) -> dict[str, Any]:
    """Notify's digest item: the routing metadata and the content envelope, per buyer."""
    data = {k: v for k, v in event["data"].items() if k != "identity"}
    return {
        "_id": f"buyer-1:{event['subject']}",
        "slot": f"buyer-1:{position + 1:012d}",  # the record's number, as notify numbers them
        "buyer": "buyer-1",
        **data,
    }


def _entry_like(position: int, event: dict[str, Any]) -> dict[str, Any]:
    """The audit log's entry: an index, the event id and subject, hashes."""
    digest = hashlib.sha256(json.dumps(event, sort_keys=True).encode()).hexdigest()
    return {
        "_id": position,
        "index": position,
        "event_id": event["id"],
        "subject": event["subject"],
        "entry": digest,
        "leaf_hash": digest,
    }


TRIAGE_ANCHOR = Anchor(TRIAGE_CASES.indexes, _case_like)
NOTIFY_ANCHOR = Anchor(NOTIFY_ITEMS.indexes, _item_like)
AUDIT_ANCHOR = Anchor(audit_storage.INDEXES[audit_storage.ENTRIES], _entry_like, per_poll=True)


def _anchor(anchor: Anchor) -> Run:
    """A bare consumer: poll, write, commit each partition's next offset, until done."""

    async def run(settings: Settings, events: int) -> float:
        store, clock = Store(settings), Clock(events)
        collection = store.db.anchor
        await collection.create_indexes(list(anchor.indexes))

        seen: set[str] = set()  # event ids: a record published twice is written once

        async def write(records: list[Record]) -> None:
            values = [json.loads(record.value or b"{}") for record in records]
            if anchor.per_poll:  # as the sequencer: each event once, in one write per poll
                first, fresh = len(seen), []
                for value in values:
                    if value.get("id") not in seen:
                        seen.add(value.get("id"))
                        fresh.append(value)
                documents = [anchor.document(first + i, v) for i, v in enumerate(fresh)]
                if documents:
                    await collection.insert_many(documents, ordered=True)
                clock.tick(len(values))
                return
            documents = [anchor.document(clock.count + i, v) for i, v in enumerate(values)]
            for document in documents:
                try:
                    await collection.insert_one(document)
                except DuplicateKeyError:
                    pass  # a record published twice (two relays): handled, as the services do
                clock.tick()

        # The poll size and topics of the consumer beside it.
        topics = AUDITED_TOPICS if anchor.per_poll else [REPORTS]
        poll = POLL_RECORDS if anchor.per_poll else RUNNER_POLL
        consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=f"anchor-{uuid.uuid4().hex[:8]}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await consumer.start()
        progress = time.perf_counter()
        try:
            while not clock.done.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=poll)
                records = [record for records in batches.values() for record in records]
                if records:
                    await write(records)
                    await consumer.commit({tp: rs[-1].offset + 1 for tp, rs in batches.items()})
                    progress = time.perf_counter()
                elif time.perf_counter() - progress > STALL:
                    raise click.ClickException(f"anchor: no record for {STALL:.0f} s")
        finally:
            await consumer.stop()
            await _drop(store)
        return clock.rate()

    return run


# --- the consumers --------------------------------------------------------------------------


async def _through(runner: ConsumerRunner, clock: Clock) -> float:
    await runner.start()
    try:
        await clock.wait(runner.group)
    finally:
        await runner.stop()
    return clock.rate()


def _handler_run(
    collections: Collections,
    handler: Callable[[Runtime, Event], Awaitable[None]],
    batch: Callable[[Runtime, Sequence[Event]], Awaitable[None]],
    prepare: Callable[[Settings], Awaitable[None]],
    producer: AIOKafkaProducer,
) -> Run:
    """`handler` and `batch` registered as their service registers them (a poll's reports
    through `batch`), in a service's runtime whose relay is not started (the bench measures
    the consumer)."""

    async def run(settings: Settings, events: int) -> float:
        store, clock = Store(settings, collections), Clock(events)
        await store.ensure_indexes()
        await prepare(settings)
        runtime = Runtime(settings, store, producer, relay_for(store, producer))

        async def handle(event: Event) -> None:
            await handler(runtime, event)
            clock.tick()

        async def handle_all(events: Sequence[Event]) -> None:
            await batch(runtime, events)
            clock.tick(len(events))

        runner = runtime.consume(
            f"bench-{uuid.uuid4().hex[:8]}",
            [REPORTS],
            handle,
            deduplicate=False,
            batch=Batch(frozenset({"report.submitted"}), handle_all),
        )
        try:
            return await _through(runner, clock)
        finally:
            await _drop(store)

    return run


async def _nothing_to_prepare(settings: Settings) -> None:
    return None


def _linked_buyer(workload: Workload) -> Callable[[Settings], Awaitable[None]]:
    async def prepare(settings: Settings) -> None:
        """The registry is triage's: written as its admin API writes it."""
        store = Store(settings, TRIAGE)
        try:
            await store.ensure_indexes()
            await registry.add_factory(store, "F-001", "Bench factory", "CN")
            await registry.add_buyer(store, "buyer-1", "Bench buyer", b64encode(workload.buyer))
            await registry.link(store, "buyer-1", "F-001")
        finally:
            await store.close()

    return prepare


class _CountingSequencer(Sequencer):
    """The real sequencer, ticking the clock once a write is durable."""

    def __init__(self, store: Store, clock: Clock) -> None:
        super().__init__(store)
        self.clock = clock

    async def sequence(self, event: Event) -> int:
        index = await super().sequence(event)
        self.clock.tick()
        return index

    async def sequence_many(self, events: Sequence[Event]) -> list[int]:
        indices = await super().sequence_many(events)
        self.clock.tick(len(indices))
        return indices


def _audit(producer: AIOKafkaProducer, workload: Workload) -> Run:
    async def run(settings: Settings, events: int) -> float:
        store, clock = Store(settings), Clock(events)
        await audit_storage.ensure_indexes(store)
        # The keys the reports are sealed to are in the log already: nothing is held back.
        await Sequencer(store).sequence_many(workload.prologue())
        sequencer = _CountingSequencer(store, clock)
        runner = sequencing_consumer(settings, store, producer, AUDITED_TOPICS, sequencer)
        try:
            return await _through(runner, clock)
        finally:
            await _drop(store)

    return run


# --- the table ------------------------------------------------------------------------------


def _print_table(events: int, rounds: int, results: list[Result]) -> None:
    click.echo(
        f"{events:,} report.submitted events per run, median of {rounds} round(s); "
        "MongoDB wire: nx-27017 (SQLite), one Kafka broker"
    )
    click.echo(f"{'consumer':<10} {'events/s':>9} {'anchor ev/s':>12} {'ratio':>6}  anchor")
    for result in results:
        consumer = statistics.median(result.consumer)
        anchor = statistics.median(result.anchor)
        click.echo(
            f"{result.name:<10} {consumer:>9,.0f} {anchor:>12,.0f} {consumer / anchor:>5.0%}  "
            f"{_anchor_name(result)}"
        )


def _anchor_name(result: Result) -> str:
    what = "insert_many per poll" if result.name == "audit-log" else "insert per event"
    return f"bare AIOKafkaConsumer, {what}"


def _figure(result: Result, events: int, rounds: int) -> Figure:
    return Figure(
        f"{result.name} consumer",
        round(statistics.median(result.consumer), 1),
        "events/s",
        _anchor_name(result),
        round(statistics.median(result.anchor), 1),
        "higher",
        {"events": events, "rounds": rounds},
    )
