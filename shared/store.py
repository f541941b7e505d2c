"""MongoDB through PyMongo's async API, kept to the subset nx-27017 serves faithfully.

Rules (DESIGN.md, Storage; each operation used is exercised by
tests/integration/test_store_conformance.py against the real server):
- single-document writes only; no transactions, no arrayFilters, no `$push` of documents;
- UUIDs are strings; indexes are declared in code and created at start-up, never addressed
  by name.

This module is the database handle and the declaration types: each service declares the
collections it owns once, in its own folder (`services/<name>/collections.py`), and its
`Store` creates only those indexes. The outbox protocol is `outbox.py`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from .config import Settings

Document = dict[str, Any]


@dataclass(frozen=True)
class Collection:
    """One collection a service owns: its name, its indexes, and whether its documents carry
    an outbox (declare those with `outbox.outbox_collection`, which adds the pending index)."""

    name: str
    indexes: tuple[IndexModel, ...] = ()
    outbox: bool = False


@dataclass(frozen=True)
class Collections:
    """Every collection one service owns, declared once (the service's `collections.py`)."""

    service: str
    declared: tuple[Collection, ...]

    def __init__(self, service: str, *declared: Collection) -> None:
        names = [c.name for c in declared]
        if len(set(names)) != len(names):
            raise ValueError(f"{service}: a collection is declared twice in {names}")
        object.__setattr__(self, "service", service)
        object.__setattr__(self, "declared", tuple(declared))

    def outbox_names(self) -> list[str]:
        """The collections whose outbox this service's relay publishes."""
        return [c.name for c in self.declared if c.outbox]


NO_COLLECTIONS = Collections("none")


# A reply the server never sends fails the call (the driver retries a read once) instead of
# holding it forever: nx-27017 now and then leaves one request unanswered under concurrent
# writers (seen: five writers and two relays on one document, about one run in three on a
# loaded machine, idle server). No single operation here takes near this long.
SOCKET_TIMEOUT_MS = 30_000


class Store:
    """The database handle of one process; create it in a lifespan, close it there.

    `collections` is what the process owns: `ensure_indexes` creates those indexes, and
    only those collections accept outbox writes (`outbox.outbox_of`)."""

    def __init__(self, settings: Settings, collections: Collections = NO_COLLECTIONS) -> None:
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(
            settings.mongo_url,
            serverSelectionTimeoutMS=10_000,
            socketTimeoutMS=SOCKET_TIMEOUT_MS,
            uuidRepresentation="standard",
        )
        self.db: AsyncDatabase[Document] = self.client[settings.mongo_db]
        self.collections = collections

    async def ensure_indexes(self) -> None:
        """Create the declared indexes (idempotent; run at every start)."""
        for collection in self.collections.declared:
            if collection.indexes:
                await self.db[collection.name].create_indexes(list(collection.indexes))

    async def close(self) -> None:
        await self.client.close()


DUPLICATE_KEY = 11000  # the server's error code of a unique index refusing a write


async def insert_new(
    collection: AsyncCollection[Document], documents: Sequence[Document]
) -> set[int]:
    """Insert `documents` in one unordered insert; return the positions of those a duplicate
    key refused (there already: a redelivery). Other errors raise."""
    try:
        await collection.insert_many(documents, ordered=False)
    except BulkWriteError as exc:
        return duplicate_positions(exc)
    return set()


def duplicate_positions(exc: BulkWriteError) -> set[int]:
    """The positions of the writes an unordered bulk write refused for a duplicate key;
    raises `exc` again if it failed for anything else (or names no refused write, as a
    write concern error does)."""
    errors = exc.details.get("writeErrors", [])
    if not errors or any(error.get("code") != DUPLICATE_KEY for error in errors):
        raise exc
    return {int(error["index"]) for error in errors}


async def insert_ordered(collection: AsyncCollection[Document], documents: list[Document]) -> int:
    """Insert `documents` in order; return how many were written before a duplicate key
    stopped it (an ordered insert stops at its first refused document, so what is written
    has no gap: the audit log's sequence, a buyer's record numbers). Other errors raise."""
    try:
        await collection.insert_many(documents, ordered=True)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if not errors or errors[0].get("code") != DUPLICATE_KEY:
            raise
        return int(exc.details.get("nInserted", 0))
    return len(documents)
