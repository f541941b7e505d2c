"""The outbox protocol (shared/outbox.py) against the real nx-27017 and the real Kafka: the
relay the services run finishes what it publishes, survives concurrent writers and a second
relay, re-drives what a dead process left, and publishes each disclosure once, by the relay
of the service that made it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient, monitoring
from pymongo.errors import DuplicateKeyError

from hotline.cli.bench.relay import ReadCounter
from hotline.cli.engines.process import ManagedProcess
from hotline.intake.collections import COLLECTIONS as INTAKE
from hotline.notify.collections import COLLECTIONS as NOTIFY
from hotline.shared import registry
from hotline.shared.bus import make_producer, publish
from hotline.shared.config import Settings
from hotline.shared.disclosure import DisclosureNotRecorded, disclose
from hotline.shared.envelope import seal_envelope
from hotline.shared.events import CaseStatusChanged, Event, Principal, new_event
from hotline.shared.keys import generate_keypair, key_id
from hotline.shared.outbox import (
    PENDING,
    OutboxCollection,
    OutboxRelay,
    UndeclaredOutbox,
    outbox_collection,
    outbox_of,
    relay_for,
)
from hotline.shared.service import Runtime
from hotline.shared.store import Collections, Databases, Document, Store
from hotline.triage.collections import COLLECTIONS as TRIAGE
from tests.support.topics import event_ids_on
from tests.support.waiting import async_wait_for

STATUS_TOPIC = "hotline.case.status-changed"
DISCLOSED_TOPIC = "hotline.envelope.disclosed"
FAST = 0.01  # relay interval where a test wants relays racing


@pytest.fixture(scope="module")
async def producer(
    test_settings: Settings, kafka_engine: ManagedProcess, mongo_engine: ManagedProcess
) -> AsyncIterator[AIOKafkaProducer]:
    producer = make_producer(test_settings)
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
async def store(test_settings: Settings, mongo_engine: ManagedProcess) -> AsyncIterator[Store]:
    """A store whose service owns one fresh outbox collection, `cases`."""
    name = f"outbox_{uuid.uuid4().hex[:8]}"
    s = Store(test_settings, Collections(name, outbox_collection(f"{name}_cases")))
    await s.ensure_indexes()
    yield s
    await s.close()


def cases_of(store: Store) -> OutboxCollection:
    return outbox_of(store, store.collections.outbox_names()[0])


def status(subject: str) -> Event:
    return new_event(subject, CaseStatusChanged(status="open"))


async def test_after_a_relay_pass_nothing_is_pending_and_the_next_pass_reads_nothing(
    test_settings: Settings, store: Store, producer: AIOKafkaProducer
) -> None:
    cases = cases_of(store)
    events = [status(f"case-{n}") for n in range(50)]
    for n, event in enumerate(events):
        await cases.insert({"_id": f"case-{n}", "status": "open"}, event)
    relay = relay_for(store, producer)
    assert await relay.flush() == 50
    assert await cases.collection.count_documents(dict(PENDING)) == 0, "every document finished"
    on_topic = await event_ids_on(test_settings, STATUS_TOPIC)
    assert [on_topic[e.id] for e in events] == [1] * len(events), "each published once"

    counter = ReadCounter()  # counts what the server hands this client
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        test_settings.mongo_url, event_listeners=[counter]
    )
    try:
        watched = OutboxCollection(Databases(client, test_settings.mongo_db)[cases.name])
        assert await OutboxRelay(producer, [watched]).flush() == 0
    finally:
        await client.close()
    assert counter.read[cases.name] == 0, "a pass over published documents reads none"
    assert counter.filters, "the pass did query the collection"


async def test_concurrent_writers_and_two_relays_publish_every_event_once_finished(
    test_settings: Settings, store: Store, producer: AIOKafkaProducer
) -> None:
    cases = cases_of(store)
    await cases.insert({"_id": "case", "status": "new"})
    relays = [relay_for(store, producer, interval=FAST) for _ in range(2)]  # two replicas
    for relay in relays:
        await relay.start()
    won: list[Event] = []

    async def writer(n: int) -> None:
        for _ in range(5):
            doc = await cases.collection.find_one({"_id": "case"})
            assert doc is not None
            event = status("case")
            if await cases.update("case", doc["version"], {"$set": {"status": f"s{n}"}}, event):
                won.append(event)
            for relay in relays:
                relay.poke()

    try:
        async with asyncio.timeout(120):  # a hang fails here, saying which phase
            await asyncio.gather(*(writer(n) for n in range(5)))
    finally:
        async with asyncio.timeout(120):
            for relay in relays:
                await relay.stop()
    doc = await cases.collection.find_one({"_id": "case"})
    assert doc is not None and won
    assert doc["version"] == 1 + len(won), "each winning write bumped the version once"
    assert doc["outbox"] == {} and doc["outbox_pending"] == 0, "finished, never below zero"
    on_topic = await event_ids_on(test_settings, STATUS_TOPIC)
    assert all(on_topic[e.id] >= 1 for e in won), "every winning write was announced"


class WriteCounter(monitoring.CommandListener):
    """Counts the writes this client sends: update statements (each one write of one
    document), and insert commands with the documents in them."""

    def __init__(self) -> None:
        self.updates = 0
        self.insert_commands = 0
        self.inserted = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "update":
            self.updates += len(event.command["updates"])
        elif event.command_name == "insert":
            self.insert_commands += 1
            self.inserted += len(event.command["documents"])

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_a_documents_events_are_marked_in_one_write_and_racing_relays_count_each_once(
    test_settings: Settings, store: Store, producer: AIOKafkaProducer
) -> None:
    cases = cases_of(store)
    events = {f"case-{n}": [status(f"case-{n}") for _ in range(3)] for n in range(20)}
    for case_id, announced in events.items():
        await cases.insert({"_id": case_id}, *announced)
    counter = WriteCounter()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        test_settings.mongo_url, event_listeners=[counter]
    )
    try:
        watched = OutboxCollection(Databases(client, test_settings.mongo_db)[cases.name])
        assert await OutboxRelay(producer, [watched]).flush() == 60
        assert counter.updates == len(events), "one write per document, not one per event"

        # Two relays over the same pending documents at once: each entry counted down once.
        for case_id in events:
            more = [status(case_id) for _ in range(3)]
            assert await cases.update(case_id, 1, {"$set": {"round": 2}}, *more)
            events[case_id] = more
        await asyncio.gather(
            OutboxRelay(producer, [watched]).flush(), relay_for(store, producer).flush()
        )
    finally:
        await client.close()
    async for doc in cases.collection.find({}):
        assert doc["outbox"] == {} and doc["outbox_pending"] == 0, "finished, never below zero"
    on_topic = await event_ids_on(test_settings, STATUS_TOPIC)
    assert all(on_topic[e.id] >= 1 for announced in events.values() for e in announced)


async def test_concurrent_inserts_go_in_fewer_commands_and_a_duplicate_fails_only_its_caller(
    test_settings: Settings, store: Store, producer: AIOKafkaProducer
) -> None:
    await cases_of(store).insert({"_id": "case-taken"}, status("case-taken"))
    counter = WriteCounter()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        test_settings.mongo_url, event_listeners=[counter]
    )
    try:
        watched = OutboxCollection(Databases(client, test_settings.mongo_db)[cases_of(store).name])
        ids = [f"case-{n}" for n in range(30)]
        ids.insert(17, "case-taken")  # a second report with the same id, among the others
        outcomes = await asyncio.gather(
            *(watched.insert({"_id": case_id}, status(case_id)) for case_id in ids),
            return_exceptions=True,
        )
    finally:
        await client.close()
    refused = [
        case_id for case_id, o in zip(ids, outcomes, strict=True) if isinstance(o, Exception)
    ]
    assert refused == ["case-taken"]
    assert isinstance(outcomes[17], DuplicateKeyError), "its caller is told, as by insert_one"
    assert counter.inserted == 31 and counter.insert_commands < 10, "sent together, not one by one"
    stored = {doc["_id"]: doc async for doc in cases_of(store).collection.find({})}
    assert set(stored) == {"case-taken", *ids}
    assert all(doc["outbox_pending"] == 1 for doc in stored.values()), "each with its event"
    relay = relay_for(store, producer)
    assert await relay.flush() == 31, "the first case's event and each new case's, once"


async def test_entries_another_relay_marked_meanwhile_are_counted_down_once(
    store: Store,
) -> None:
    """The whole-document mark finds an entry gone (another relay marked it after both read
    the document) and an entry added since (a writer): entry by entry, each of those this
    relay published is counted down once and the new one stays pending."""
    cases = cases_of(store)
    read = [status("case") for _ in range(3)]
    await cases.insert({"_id": "case"}, *read)
    await cases._mark_published({"case": [read[0].id]})  # the other relay, first
    added = status("case")
    assert await cases.update("case", 1, {"$set": {"status": "later"}}, added)

    await cases._mark_published({"case": [event.id for event in read]})
    doc = await cases.collection.find_one({"_id": "case"})
    assert doc is not None
    assert list(doc["outbox"]) == [added.id] and doc["outbox_pending"] == 1


async def test_the_reconciler_publishes_what_a_dead_process_left(
    test_settings: Settings, store: Store, producer: AIOKafkaProducer
) -> None:
    cases = cases_of(store)
    # Process A wrote a case and died before its relay ran; process B wrote one, its relay
    # published the event (exactly the call the relay makes) and B died before the unset.
    unpublished, half_done = status("case-a"), status("case-b")
    await cases.insert({"_id": "case-a"}, unpublished)
    await cases.insert({"_id": "case-b"}, half_done)
    await publish(producer, half_done)

    survivor = relay_for(store, producer, interval=0.2)  # another replica, never poked
    await survivor.start()
    try:
        await async_wait_for(
            lambda: _none_pending(cases), timeout=30, what="the reconciler finishing both"
        )
    finally:
        await survivor.stop()
    on_topic = await event_ids_on(test_settings, STATUS_TOPIC)
    assert on_topic[unpublished.id] == 1
    assert on_topic[half_done.id] == 2, "at least once: the dead process's send, then re-driven"


async def _none_pending(cases: OutboxCollection) -> bool:
    return await cases.collection.count_documents(dict(PENDING)) == 0


async def test_each_disclosure_is_on_kafka_once_before_it_is_recorded_and_a_refused_one_is_not(
    test_settings: Settings, producer: AIOKafkaProducer
) -> None:
    """`disclose` publishes first and records after (shared/disclosure.py): every hand-out's
    event is on Kafka exactly once, with its service's relays racing (they relay no
    disclosure), and one Kafka refuses raises and leaves no record."""
    case_id = f"case-{uuid.uuid4().hex[:8]}"
    _, public = generate_keypair()
    routing = {"factory": "F-001", "categories": ["wages"], "urgent": False, "language": "en"}
    envelope = seal_envelope(
        b"what happened",
        case_id=case_id,
        kind="content",
        routing=routing,
        recipients={key_id(public): public},
    )
    principal = Principal(role="buyer", org="buyer-1")
    own = test_settings.model_copy(update={"mongo_db": f"disclosures_{uuid.uuid4().hex[:8]}"})
    runtimes: dict[str, Runtime] = {}
    for collections in (TRIAGE, NOTIFY):
        service_store = Store(own, collections)
        await service_store.ensure_indexes()
        relay = relay_for(service_store, producer, interval=FAST)  # racing every hand-out
        runtimes[collections.service] = Runtime(own, service_store, producer, relay)
    try:
        for runtime in runtimes.values():
            await runtime.relay.start()
        for _ in range(10):
            for runtime in runtimes.values():
                await disclose(runtime, case_id, envelope, "content", principal)

        # Kafka refuses one of triage's: refused (503 over HTTP), nothing handed out, no record.
        refused = make_producer(test_settings)
        await refused.start()
        await refused.partitions_for(DISCLOSED_TOPIC)  # knows the topic, then is closed
        await refused.stop()
        failing = Runtime(own, runtimes["triage"].store, refused, runtimes["triage"].relay)
        with pytest.raises(DisclosureNotRecorded):
            await disclose(failing, case_id, envelope, "content", principal)

        for runtime in runtimes.values():
            await runtime.relay.stop()
        assert [c.name for c in runtimes["notify"].relay.collections] == [
            "notify_digests",
            "notify_questions",
        ]
        made = {
            name: [
                d["_id"]
                async for d in runtimes[name]
                .store.db[f"{name}_disclosures"]
                .find({"case_id": case_id})
            ]
            for name in ("triage", "notify")
        }
    finally:
        for runtime in runtimes.values():
            await runtime.relay.stop()
        await runtimes["triage"].store.drop_databases()
        for runtime in runtimes.values():
            await runtime.store.close()
    assert len(made["triage"]) == 10 and len(made["notify"]) == 10
    on_topic = await event_ids_on(test_settings, DISCLOSED_TOPIC)
    counts = {event_id: on_topic[event_id] for ids in made.values() for event_id in ids}
    assert set(counts.values()) == {1}, f"each disclosure exactly once: {counts}"


async def test_an_outbox_write_the_service_did_not_declare_is_refused(
    test_settings: Settings, producer: AIOKafkaProducer
) -> None:
    intake = Store(test_settings, INTAKE)  # intake reads the registry; triage owns it
    try:
        code = f"F-{uuid.uuid4().hex[:8].upper()}"
        with pytest.raises(UndeclaredOutbox, match="factories"):
            await registry.add_factory(intake, code, "A factory", "CN")
        assert await intake.db.factories.find_one({"_id": code}) is None, "nothing was written"
        with pytest.raises(UndeclaredOutbox):
            outbox_of(intake, "triage_cases")
        relayed = [c.name for c in relay_for(intake, producer).collections]
        assert relayed == ["intake_cases", "intake_messages"]
    finally:
        await intake.close()
