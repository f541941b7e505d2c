"""Store conformance: every MongoDB operation the code uses, against the real nx-27017 server.

nx-27017 deviates silently in places (DESIGN.md, Storage), so each operation that shared/ and
services/ rely on is asserted here; a server that breaks one fails this file, not production.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from pymongo import ASCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from hotline.cli.engines.process import ManagedProcess
from hotline.shared.config import Settings
from hotline.shared.events import CaseStatusChanged, new_event
from hotline.shared.store import Store, update_with_outbox, with_outbox


@pytest.fixture(scope="module")
async def store(test_settings: Settings, mongo_engine: ManagedProcess) -> AsyncIterator[Store]:
    s = Store(test_settings)
    await s.ensure_indexes()
    yield s
    await s.close()


def collection_name() -> str:
    return f"conformance_{uuid.uuid4().hex[:8]}"


def event(subject: str = "c"):  # type: ignore[no-untyped-def]
    return new_event(subject, CaseStatusChanged(status="open"))


async def test_ping_and_indexes_created_at_startup(store: Store) -> None:
    assert (await store.db.command("ping"))["ok"] == 1
    await store.ensure_indexes()  # idempotent at every start
    with pytest.raises(DuplicateKeyError):
        await store.db.audit_entries.insert_one({"_id": -1, "event_id": "dup-test"})
        await store.db.audit_entries.insert_one({"_id": -2, "event_id": "dup-test"})
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


async def test_outbox_pending_query_and_unset(store: Store) -> None:
    c = store.db[collection_name()]
    first, second = event(), event()
    await c.insert_one(with_outbox({"_id": "with"}, first, second))
    await c.insert_one(with_outbox({"_id": "without"}))
    pending = [d["_id"] async for d in c.find({"outbox_pending": {"$gt": 0}})]
    assert pending == ["with"]
    doc = await c.find_one({"_id": "with"})
    assert doc is not None and list(doc["outbox"]) == [first.id, second.id], "insertion order kept"
    assert doc["outbox"][first.id] == first.model_dump()
    published = {"$unset": {f"outbox.{first.id}": ""}, "$inc": {"outbox_pending": -1}}
    guard = {"_id": "with", f"outbox.{first.id}": {"$exists": True}}
    assert (await c.update_one(guard, published)).modified_count == 1
    assert (await c.update_one(guard, published)).modified_count == 0, "a second relay is a no-op"
    doc = await c.find_one({"_id": "with"})
    assert doc is not None and list(doc["outbox"]) == [second.id] and doc["outbox_pending"] == 1
    await c.update_one(
        {"_id": "with"}, {"$unset": {f"outbox.{second.id}": ""}, "$inc": {"outbox_pending": -1}}
    )
    assert [d async for d in c.find({"outbox_pending": {"$gt": 0}})] == []


async def test_state_change_and_event_in_one_guarded_write_with_concurrent_writers(
    store: Store,
) -> None:
    c = store.db[collection_name()]
    await c.insert_one(with_outbox({"_id": "case", "status": "new"}))

    async def writer(n: int) -> int:
        wins = 0
        for _ in range(5):
            doc = await c.find_one({"_id": "case"})
            assert doc is not None
            result = await c.update_one(
                {"_id": "case", "version": doc["version"]},
                update_with_outbox({"$set": {"status": f"s{n}"}, "$inc": {"version": 1}}, event()),
            )
            wins += result.modified_count
        return wins

    wins = sum(await asyncio.gather(*(writer(n) for n in range(5))))
    doc = await c.find_one({"_id": "case"})
    assert doc is not None
    assert doc["version"] == 1 + wins, "each winning write bumped the version once"
    assert len(doc["outbox"]) == wins, "each winning write left exactly its event"
    assert doc["outbox_pending"] == wins


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
