"""The outbox: a state change and the events announcing it in ONE single-document write, and
the relay that publishes them (DESIGN.md, Events and Storage). The whole protocol is here.

A document with an outbox carries:
- `outbox`: event id -> event, written with `$set: {"outbox.<event id>": event}` in the same
  write as the state change (never a pushed array: nx-27017 corrupts pushed documents); the
  map keeps insertion order, which is the order the events are published in;
- `outbox_pending`: how many entries the relay still has to publish. This counter is the
  pending marker and it is indexed: nx-27017 refuses `{"outbox": {"$ne": {}}}`, and an
  indexed `outbox_pending > 0` lets a relay pass over published documents read none;
- `version`: set to 1 on insert and bumped by every guarded update.

The relay publishes a pending document's entries in order; after Kafka acknowledges them,
ONE update unsets their keys and decrements the counter by as many, conditional on every
key still being there (entry by entry if not), so two relays racing over one entry
decrement once. Delivery is at-least-once: a process that dies between publishing and
unsetting leaves the entry pending, and the next periodic pass (the reconciler, in any
replica of the service) publishes it again; consumers are idempotent by event id.

Writes go through an `OutboxCollection`, which `outbox_of` hands out only for a collection
the store's service declared as an outbox collection (`outbox_collection(...)` in its
`collections.py`), and the service's relay publishes every such collection: an outbox that
no relay publishes cannot be written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from .aio import Batched, cancel_and_wait, honour_a_lost_cancellation, wait_at_most
from .bus import publish_all
from .events import Event
from .store import Collection, Document, Store, insert_each, insert_new

log = logging.getLogger("hotline.outbox")

PENDING_FIELD = "outbox_pending"
PENDING: Mapping[str, Any] = {PENDING_FIELD: {"$gt": 0}}
PENDING_INDEX = IndexModel([(PENDING_FIELD, ASCENDING)])
# What a relay pass reads of a pending document: not the state (envelopes can be large).
RELAY_PROJECTION: Mapping[str, Any] = {"outbox": 1, PENDING_FIELD: 1, "version": 1}
PROTOCOL_FIELDS = frozenset({"outbox", PENDING_FIELD, "version"})
BATCH = 500  # pending documents a relay pass lists at a time


class UndeclaredOutbox(LookupError):
    """An outbox write into a collection the service did not declare as an outbox
    collection: its relay would never publish the events."""


def outbox_collection(name: str, *indexes: IndexModel) -> Collection:
    """The declaration of a collection whose documents carry an outbox (with its pending index)."""
    return Collection(name, (*indexes, PENDING_INDEX), outbox=True)


def outbox_of(store: Store, name: str) -> OutboxCollection:
    """The outbox writer of `name`; raises UndeclaredOutbox unless the store's service
    declared it as an outbox collection (so that its relay publishes it)."""
    if name not in store.collections.outbox_names():
        raise UndeclaredOutbox(
            f"service {store.collections.service!r} did not declare {name!r} as an outbox "
            "collection: declare it in the service's collections.py so that its relay publishes it"
        )
    return OutboxCollection(store.db[name], store.batched_inserts(name))


def _entries(events: Sequence[Event]) -> dict[str, Any]:
    return {event.id: event.model_dump() for event in events}


class OutboxCollection:
    """A collection whose documents carry an outbox: the write helpers and the relay pass."""

    def __init__(
        self,
        collection: AsyncCollection[Document],
        inserts: Batched[Document, None] | None = None,
    ) -> None:
        self.collection = collection
        self.inserts = inserts if inserts is not None else Batched(insert_each(collection))

    @property
    def name(self) -> str:
        return self.collection.name

    async def insert(self, document: Document, *events: Event) -> Document:
        """Insert `document` with the events announcing it, in one write (sent with this
        process's other inserts into the collection that arrive meanwhile: `Batched`); the
        relay publishes them. Raises DuplicateKeyError as `insert_one` does (nothing is
        written then)."""
        _check_state(document)
        stored = {**document, "version": 1, "outbox": _entries(events), PENDING_FIELD: len(events)}
        await self.inserts(stored)
        return stored

    async def insert_many(self, documents: Sequence[tuple[Document, Sequence[Event]]]) -> set[Any]:
        """Insert each document with the events announcing it (each still one write of its
        own document), in one unordered command; return the ids inserted now. A document
        meeting a duplicate key is left as it is (a redelivery); any other error is raised."""
        stored = []
        for document, events in documents:
            _check_state(document)
            entries = _entries(events)
            stored.append({**document, "version": 1, "outbox": entries, PENDING_FIELD: len(events)})
        if not stored:
            return set()
        refused = await insert_new(self.collection, stored)
        return {doc["_id"] for index, doc in enumerate(stored) if index not in refused}

    async def update(
        self, document_id: Any, version: int, change: Mapping[str, Any], *events: Event
    ) -> bool:
        """Apply `change` (an update document) and add `events` in one write, only if the
        document is still at `version`; bumps the version. False when another writer got
        there first: re-read the document and decide again."""
        result = await self.collection.update_one(
            {"_id": document_id, "version": version}, _with_events(change, events)
        )
        return result.modified_count == 1

    async def update_each_where(
        self, updates: Sequence[tuple[Mapping[str, Any], Mapping[str, Any], Sequence[Event]]]
    ) -> int:
        """For each (filter, change, events): apply `change` and add `events` in one write to
        the document `filter` matches, if it does (a filter that says what the change makes
        untrue, such as a field not there yet, makes it a once-only write); bumps the
        version. All in one unordered command; return how many documents were changed."""
        if not updates:
            return 0
        result = await self.collection.bulk_write(
            [
                UpdateOne(dict(where), _with_events(change, events))
                for where, change, events in updates
            ],
            ordered=False,
        )
        return result.modified_count

    async def pending_count(self) -> int:
        """How many documents have entries the relay has yet to publish."""
        return await self.collection.count_documents(dict(PENDING))

    async def publish_pending(self, producer: AIOKafkaProducer) -> int:
        """One relay pass over this collection; return how many events were published.

        Pending documents are listed BATCH at a time, each list read in full before any of
        its documents is published and updated: no cursor stays open on the server while
        the pass updates the very documents it lists. A list's events are sent together
        (in order: one document's events keep theirs on their partition) and marked
        published in one bulk write of one update per document, only once Kafka has them
        (on nx-27017 each update is a disk sync); a document's events after
        one that failed stay pending with it, so they are never published ahead of it."""
        published = 0
        while True:
            pending = await self.collection.find(dict(PENDING), dict(RELAY_PROJECTION)).to_list(
                BATCH
            )
            published += await self._publish_documents(pending, producer)
            if len(pending) < BATCH:
                return published

    async def _publish_documents(
        self, documents: Sequence[Document], producer: AIOKafkaProducer
    ) -> int:
        entries = []  # (document id, event id, event), documents in order, events in theirs
        for document in documents:
            outbox: dict[str, Any] = document.get("outbox") or {}
            if not outbox:
                await self._reset_empty(document)
                continue
            for event_id, raw in outbox.items():  # insertion order = the order written
                entries.append((document["_id"], event_id, Event.model_validate(raw)))
        if not entries:
            return 0
        failures = await publish_all(producer, [event for _, _, event in entries])
        published: dict[Any, list[str]] = {}  # document id -> its entries Kafka has, in order
        failed, first_error = set(), None
        for (document_id, event_id, _), error in zip(entries, failures, strict=True):
            if error is not None or document_id in failed:
                failed.add(document_id)
                first_error = first_error or error
                continue
            published.setdefault(document_id, []).append(event_id)
        await self._mark_published(published)
        if first_error is not None:
            raise first_error
        return sum(len(event_ids) for event_ids in published.values())

    async def _mark_published(self, published: Mapping[Any, Sequence[str]]) -> None:
        """Unset each document's published entries and decrement its counter by as many, in
        one write per document, conditional on every one of them still being there; where
        another relay has marked some of them meanwhile, entry by entry, each conditional on
        its own key: each entry is counted down once."""
        if not published:
            return
        whole = [_mark(document_id, event_ids) for document_id, event_ids in published.items()]
        result = await self.collection.bulk_write(whole, ordered=False)
        if result.modified_count < len(whole):  # a race: which documents is not said
            await self.collection.bulk_write(
                [
                    _mark(document_id, [event_id])
                    for document_id, event_ids in published.items()
                    for event_id in event_ids
                ],
                ordered=False,
            )

    async def _reset_empty(self, document: Document) -> None:
        """Counted pending with nothing to publish (written before the relay decremented
        the counter): reset it, unless a writer has added an entry since it was read."""
        await self.collection.update_one(
            {
                "_id": document["_id"],
                "version": document.get("version"),
                PENDING_FIELD: document[PENDING_FIELD],
            },
            {"$set": {PENDING_FIELD: 0}},
        )


def _mark(document_id: Any, event_ids: Sequence[str]) -> UpdateOne:
    """The write that counts `event_ids` of the document published, if all are pending."""
    keys = [f"outbox.{event_id}" for event_id in event_ids]
    return UpdateOne(
        {"_id": document_id, **{key: {"$exists": True} for key in keys}},
        {"$unset": dict.fromkeys(keys, ""), "$inc": {PENDING_FIELD: -len(keys)}},
    )


def _with_events(change: Mapping[str, Any], events: Sequence[Event]) -> dict[str, Any]:
    """The update document that applies `change`, adds `events` to the outbox and bumps the
    version."""
    update: dict[str, dict[str, Any]] = {}
    for operator, fields in change.items():
        _check_state(fields)
        update[operator] = dict(fields)
    update.setdefault("$set", {}).update(
        {f"outbox.{event_id}": raw for event_id, raw in _entries(events).items()}
    )
    update.setdefault("$inc", {}).update({"version": 1, PENDING_FIELD: len(events)})
    return update


def _check_state(fields: Mapping[str, Any]) -> None:
    """The protocol's own fields are written by this module only."""
    taken = PROTOCOL_FIELDS.intersection(key.split(".")[0] for key in fields)
    if taken:
        raise ValueError(f"fields {sorted(taken)} belong to the outbox protocol")


class OutboxRelay:
    """Publishes the pending outbox entries of one service's outbox collections.

    Wakes on `poke()` (after a local write) and every `interval` seconds otherwise; the
    periodic pass is the reconciler for entries a process that died left behind.
    """

    def __init__(
        self,
        producer: AIOKafkaProducer,
        collections: Sequence[OutboxCollection],
        interval: float = 1.0,
    ) -> None:
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
            honour_a_lost_cancellation()
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the relay must outlive a Kafka outage
                log.warning("outbox relay pass failed", extra={"error_type": type(exc).__name__})
            await wait_at_most(self._wake, self.interval)
            self._wake.clear()

    async def flush(self) -> int:
        """One relay pass: publish every pending entry; return how many were published."""
        published = 0
        for collection in self.collections:
            published += await collection.publish_pending(self.producer)
        return published


def relay_for(store: Store, producer: AIOKafkaProducer, interval: float = 1.0) -> OutboxRelay:
    """The relay of every outbox collection the store's service declared, and only those."""
    names = store.collections.outbox_names()
    return OutboxRelay(producer, [outbox_of(store, name) for name in names], interval)
