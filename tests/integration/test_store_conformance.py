"""Store conformance: every MongoDB operation the code uses, against the real nx-27017 server.

nx-27017 deviates silently in places (DESIGN.md, Storage), so each operation that shared/ and
services/ rely on is asserted here; a server that breaks one fails this file, not production.
The outbox is exercised through shared/outbox.py: the very writers and relay the services run.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer
from pymongo import ASCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from hotline.audit_log import storage as audit_storage
from hotline.cli.engines.process import ManagedProcess
from hotline.shared.bus import make_producer
from hotline.shared.config import Settings
from hotline.shared.events import CaseStatusChanged, Event, new_event
from hotline.shared.outbox import (
    PENDING,
    PENDING_FIELD,
    RELAY_PROJECTION,
    OutboxRelay,
    outbox_collection,
    outbox_of,
)
from hotline.shared.store import Collection, Collections, Store


@pytest.fixture(scope="module")
async def store(test_settings: Settings, mongo_engine: ManagedProcess) -> AsyncIterator[Store]:
    s = Store(test_settings, Collections("conformance", DECLARED, OUTBOX))
    await s.ensure_indexes()
    yield s
    await s.close()


@pytest.fixture(scope="module")
async def producer(
    test_settings: Settings, kafka_engine: ManagedProcess
) -> AsyncIterator[AIOKafkaProducer]:
    p = make_producer(test_settings)
    await p.start()
    yield p
    await p.stop()


def collection_name() -> str:
    return f"conformance_{uuid.uuid4().hex[:8]}"


DECLARED = Collection(collection_name(), (IndexModel([("lookup", ASCENDING)], unique=True),))
OUTBOX = outbox_collection(collection_name())


def event(subject: str = "c") -> Event:
    return new_event(subject, CaseStatusChanged(status="open"))


async def test_a_services_collection_is_in_its_own_database_and_the_registry_in_the_shared_one(
    store: Store, test_settings: Settings
) -> None:
    mark = {"_id": f"layout-{uuid.uuid4().hex[:8]}"}
    await store.db.notify_cases.insert_one(mark)
    await store.db["buyers"].insert_one(mark)
    base = test_settings.mongo_db
    try:
        assert await store.client[f"{base}_notify"].notify_cases.find_one(mark) == mark
        assert await store.client[base].notify_cases.find_one(mark) is None
        assert await store.client[base].buyers.find_one(mark) == mark
    finally:
        await store.db.notify_cases.delete_one(mark)
        await store.db.buyers.delete_one(mark)


async def test_ping_and_declared_indexes_created_at_startup(store: Store) -> None:
    assert (await store.db.command("ping"))["ok"] == 1
    await store.ensure_indexes()  # idempotent at every start
    await store.db[DECLARED.name].insert_one({"_id": "a", "lookup": "x"})
    with pytest.raises(DuplicateKeyError):
        await store.db[DECLARED.name].insert_one({"_id": "b", "lookup": "x"})
    await audit_storage.ensure_indexes(store)
    await audit_storage.ensure_indexes(store)
    with pytest.raises(DuplicateKeyError):
        await store.db.audit_entries.insert_one({"_id": -1, "index": -1, "event_id": "dup-test"})
        await store.db.audit_entries.insert_one({"_id": -2, "index": -2, "event_id": "dup-test"})
    await store.db.audit_entries.delete_many({"_id": {"$lt": 0}})


async def test_insert_duplicate_id_and_unique_index(store: Store) -> None:
    c = store.db[collection_name()]
    await c.create_indexes([IndexModel([("lookup", ASCENDING)], unique=True)])
    await c.insert_one({"_id": "a", "lookup": "x"})
    with pytest.raises(DuplicateKeyError):
        await c.insert_one({"_id": "a", "lookup": "y"})
    with pytest.raises(DuplicateKeyError):
        await c.insert_one({"_id": "b", "lookup": "x"})
    assert await c.count_documents({}) == 1


async def test_nested_documents_with_colon_keys_round_trip(store: Store) -> None:
    c = store.db[collection_name()]
    envelope = {
        "version": 1,
        "recipients": {"x25519:" + "ab" * 32: "d3JhcHBlZA==", "x25519:" + "cd" * 32: "b3RoZXI="},
        "categories": ["safety", "wages"],
        "identity": None,
        "urgent": True,
    }
    await c.insert_one({"_id": "e", "content": envelope})
    found = await c.find_one({"_id": "e"})
    assert found is not None and found["content"] == envelope


async def test_outbox_insert_pending_query_and_the_services_relay(
    store: Store, producer: AIOKafkaProducer
) -> None:
    cases = outbox_of(store, OUTBOX.name)
    first, second = event(), event()
    await cases.insert({"_id": "with"}, first, second)
    await cases.insert({"_id": "without"})
    pending = [d["_id"] async for d in cases.collection.find(dict(PENDING), RELAY_PROJECTION)]
    assert pending == ["with"]
    plan = str(await cases.collection.find(dict(PENDING)).explain())
    assert "USING INDEX" in plan or "IXSCAN" in plan, f"the pending query uses its index: {plan}"
    doc = await cases.collection.find_one({"_id": "with"})
    assert doc is not None and list(doc["outbox"]) == [first.id, second.id], "insertion order kept"
    assert doc["outbox"][first.id] == first.model_dump()

    # Two relays racing over the same entries: each entry's unset-and-decrement happens once.
    published = await asyncio.gather(*(OutboxRelay(producer, [cases]).flush() for _ in range(2)))
    assert sum(published) >= 2
    doc = await cases.collection.find_one({"_id": "with"})
    assert doc is not None and doc["outbox"] == {} and doc["outbox_pending"] == 0
    assert await cases.pending_count() == 0
    assert await OutboxRelay(producer, [cases]).flush() == 0


async def test_relay_resets_a_counter_left_without_entries(
    store: Store, producer: AIOKafkaProducer
) -> None:
    cases = outbox_of(store, OUTBOX.name)
    # What the relay before the fix left behind: entries unset, counter never decremented.
    await cases.collection.insert_one(
        {"_id": "stale", "version": 3, "outbox": {}, PENDING_FIELD: 2}
    )
    assert await OutboxRelay(producer, [cases]).flush() == 0
    doc = await cases.collection.find_one({"_id": "stale"})
    assert doc is not None and doc[PENDING_FIELD] == 0 and doc["version"] == 3


async def test_state_change_and_event_in_one_guarded_write_with_concurrent_writers(
    store: Store,
) -> None:
    cases = outbox_of(store, OUTBOX.name)
    await cases.insert({"_id": "case", "status": "new"})

    async def writer(n: int) -> int:
        wins = 0
        for _ in range(5):
            doc = await cases.collection.find_one({"_id": "case"})
            assert doc is not None
            wins += await cases.update(
                "case", doc["version"], {"$set": {"status": f"s{n}"}}, event()
            )
        return wins

    wins = sum(await asyncio.gather(*(writer(n) for n in range(5))))
    doc = await cases.collection.find_one({"_id": "case"})
    assert doc is not None
    assert doc["version"] == 1 + wins, "each winning write bumped the version once"
    assert len(doc["outbox"]) == wins, "each winning write left exactly its event"
    assert doc[PENDING_FIELD] == wins
    with pytest.raises(ValueError, match="outbox protocol"):
        await cases.update("case", doc["version"], {"$set": {"outbox": {}}})


async def test_queries_used_by_the_services(store: Store) -> None:
    c = store.db[collection_name()]
    await c.insert_many(
        [{"_id": i, "subject": "a" if i % 2 else "b", "due": f"2026-01-0{9 - i}"} for i in range(6)]
    )
    last = await c.find_one({}, sort=[("_id", -1)])
    assert last is not None and last["_id"] == 5 and isinstance(last["_id"], int)
    assert [d["_id"] async for d in c.find({"_id": {"$gte": 3}}).sort("_id", 1).limit(2)] == [3, 4]
    assert [d["_id"] async for d in c.find({"_id": {"$in": [1, 4, 9]}}).sort("_id", 1)] == [1, 4]
    assert [
        d["_id"] async for d in c.find({"subject": "a", "_id": {"$gte": 0}}).sort("_id", 1)
    ] == [1, 3, 5]
    by_due = [d["_id"] async for d in c.find({}, {"due": 1}).sort("due", 1)]
    assert by_due == [5, 4, 3, 2, 1, 0]
    projected = await c.find_one({"_id": 2}, {"due": 1})
    assert projected == {"_id": 2, "due": "2026-01-07"}
    assert await c.count_documents({"subject": "b"}) == 3
