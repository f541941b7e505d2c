"""MongoDB through PyMongo's async API, kept to the subset nx-27017 serves faithfully.

Rules (DESIGN.md, Storage; each operation used here is exercised by
tests/test_store_conformance.py against the real server):
- single-document writes only; no transactions, no arrayFilters, no `$push` of documents;
- a state change and the event announcing it are ONE write: the event goes into the
  document's `outbox` map (`$set: {"outbox.<event id>": event}`) and `outbox_pending` is
  incremented in the same update (guarded by `version`); the relay publishes the event,
  then `$unset`s the key and decrements the counter;
- pending documents are found by `outbox_pending > 0`: nx-27017 0.8.1 refuses
  `{"outbox": {"$ne": {}}}` ("type 'dict' is not supported"), so the counter is the index;
- UUIDs are strings; indexes are declared here and created at start-up, never addressed by name.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from pymongo import ASCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from .aio import cancel_and_wait
from .bus import publish
from .config import Settings
from .events import Event

log = logging.getLogger("hotline.store")

Document = dict[str, Any]

# Every index of every collection, in one place: created at start-up by each service.
INDEXES: Mapping[str, Sequence[IndexModel]] = {
    "factories": [],
    "buyers": [IndexModel([("key_id", ASCENDING)], unique=True)],
    "links": [IndexModel([("factory", ASCENDING)]), IndexModel([("buyer", ASCENDING)])],
    "operator_keys": [],
    "registry_changes": [],
    "intake_cases": [IndexModel([("receipt_lookup", ASCENDING)], unique=True)],
    "triage_cases": [IndexModel([("status", ASCENDING), ("due", ASCENDING)])],
    "notify_items": [IndexModel([("buyer", ASCENDING), ("case_id", ASCENDING)])],
    "disclosures": [IndexModel([("case_id", ASCENDING)])],
    "applied_events": [IndexModel([("group", ASCENDING)])],
    "audit_entries": [IndexModel([("event_id", ASCENDING)], unique=True)],
}


class Store:
    """The database handle of one process; create it in a lifespan, close it there."""

    def __init__(self, settings: Settings) -> None:
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(
            settings.mongo_url, serverSelectionTimeoutMS=10_000, uuidRepresentation="standard"
        )
        self.db: AsyncDatabase[Document] = self.client[settings.mongo_db]

    async def ensure_indexes(self) -> None:
        for name, indexes in INDEXES.items():
            if indexes:
                await self.db[name].create_indexes(list(indexes))

    async def close(self) -> None:
        await self.client.close()


def update_with_outbox(update: dict[str, Any], *events: Event) -> dict[str, Any]:
    """`update` (a state change) plus the events announcing it, as one update document.
    The caller guards it with the document's `version` and `$inc`s that itself."""
    merged = {op: dict(fields) for op, fields in update.items()}
    merged.setdefault("$set", {}).update({f"outbox.{e.id}": e.model_dump() for e in events})
    merged.setdefault("$inc", {})["outbox_pending"] = len(events)
    return merged


def with_outbox(document: Document, *events: Event) -> Document:
    """A new document carrying its announcing events (inserted in the same single write)."""
    return {
        **document,
        "version": 1,
        "outbox": {e.id: e.model_dump() for e in events},
        "outbox_pending": len(events),
    }


class OutboxRelay:
    """Publishes outbox entries of the given collections and unsets each once Kafka has it.

    Wakes on `poke()` (after a local write) and every `interval` seconds otherwise; the
    periodic scan is also the reconciler for entries a crashed process left behind.
    """

    def __init__(
        self,
        store: Store,
        producer: AIOKafkaProducer,
        collections: Sequence[str],
        interval: float = 1.0,
    ) -> None:
        self.store = store
        self.producer = producer
        self.collections = list(collections)
        self.interval = interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        await self.flush()  # publish what the last requests wrote, if Kafka is there

    async def _run(self) -> None:
        while True:
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the relay must outlive a Kafka outage
                log.warning("outbox relay pass failed", extra={"error_type": type(exc).__name__})
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
            except TimeoutError:
                pass
            self._wake.clear()

    async def flush(self) -> int:
        """Publish every pending outbox entry; return how many were published."""
        published = 0
        for name in self.collections:
            collection = self.store.db[name]
            async for document in collection.find({"outbox_pending": {"$gt": 0}}):
                published += await publish_outbox(collection, document, self.producer)
        return published


async def publish_outbox(
    collection: AsyncCollection[Document], document: Document, producer: AIOKafkaProducer
) -> int:
    """Publish one document's outbox entries in order, unsetting each after Kafka acks it."""
    count = 0
    outbox: dict[str, Any] = document.get("outbox") or {}
    for event_id, raw in outbox.items():  # insertion order = the order they were written
        await publish(producer, Event.model_validate(raw))
        await collection.update_one(
            {"_id": document["_id"]}, {"$unset": {f"outbox.{event_id}": ""}}
        )
        count += 1
    return count
