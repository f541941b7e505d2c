"""MongoDB through PyMongo's async API, kept to the subset nx-27017 serves faithfully.

Rules (DESIGN.md, Storage; each operation used is exercised by
tests/integration/test_store_conformance.py against the real server):
- single-document writes only; no transactions, no arrayFilters, no `$push` of documents;
- UUIDs are strings; indexes are declared in code and created at start-up, never addressed
  by name.

This module is the database handle and the declaration types: each service declares the
collections it owns once, in its own folder (`services/<name>/collections.py`), and its
`Store` creates only those indexes. The outbox protocol is `outbox.py`'s.

A database per service (`Databases`): a service's own collections, named `<service>_...`,
live in the database `<HOTLINE_MONGO_DB>_<service>`; the registry every service reads (and
any other unprefixed collection) in `<HOTLINE_MONGO_DB>` itself. The name alone says where
a collection is, so a process reads another service's collection where it lives. Why: on
nx-27017 each database is its own SQLite file behind its own lock, so one service's writes
no longer queue behind another's (docs/decisions.md, "A database per service").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError

from .aio import Batched
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

# The services whose own collections have a database of their own (their name's prefix).
SERVICE_DATABASES = ("intake", "triage", "notify", "audit")

C = TypeVar("C")  # the collection type of the client: async for services, sync for tools
C_co = TypeVar("C_co", covariant=True)


class _Database(Protocol[C_co]):
    def __getitem__(self, name: str, /) -> C_co: ...


class _Client(Protocol[C_co]):
    def __getitem__(self, name: str, /) -> _Database[C_co]: ...


def database_of(base: str, collection: str) -> str:
    """The database that holds `collection` (module docstring): `<base>_<service>` for a
    service's own (`<service>_...`), else `base`."""
    service = collection.split("_", 1)[0]
    return f"{base}_{service}" if service in SERVICE_DATABASES else base


class Databases(Generic[C]):
    """A client's collections, each in the database `database_of` names for it: use it as
    a database (`db[name]`, `db.name`). `base` is HOTLINE_MONGO_DB."""

    def __init__(self, client: _Client[C], base: str) -> None:
        self.client = client
        self.base = base

    def names(self) -> list[str]:
        """Every database these collections may live in."""
        return [self.base, *(f"{self.base}_{service}" for service in SERVICE_DATABASES)]

    def __getitem__(self, collection: str) -> C:
        return self.client[database_of(self.base, collection)][collection]

    def __getattr__(self, collection: str) -> C:
        if collection.startswith("_"):  # not a collection: copy, pickle and the like ask
            raise AttributeError(collection)
        return self[collection]

    def command(self, *args: Any, **kwargs: Any) -> Any:
        """A command run against the base database (`ping`)."""
        return self.client[self.base].command(*args, **kwargs)  # type: ignore[attr-defined]


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
        self.db: Databases[AsyncCollection[Document]] = Databases(self.client, settings.mongo_db)
        self.collections = collections
        self._inserts: dict[str, Batched[Document, None]] = {}
        self._exists: dict[str, Batched[Any, bool]] = {}

    def batched_inserts(self, name: str) -> Batched[Document, None]:
        """This process's single-document inserts into `name`, sent in batches: a group
        commit (`shared.aio.Batched`). Each caller gets its own DuplicateKeyError."""
        if name not in self._inserts:
            self._inserts[name] = Batched(insert_each(self.db[name]))
        return self._inserts[name]

    def batched_exists(self, name: str) -> Batched[Any, bool]:
        """Whether `name` holds a document of this `_id`, asked in batches: one `find` of
        `$in` (which nx-27017 serves from the `_id` index) for the calls that arrive while
        one is in flight."""
        if name not in self._exists:
            self._exists[name] = Batched(find_each(self.db[name]))
        return self._exists[name]

    async def ensure_indexes(self) -> None:
        """Create the declared indexes (idempotent; run at every start)."""
        for collection in self.collections.declared:
            if collection.indexes:
                await self.db[collection.name].create_indexes(list(collection.indexes))

    async def drop_databases(self) -> None:
        """Drop every database of these settings (a bench's or a test's own, when done)."""
        for name in self.db.names():
            await self.client.drop_database(name)

    async def close(self) -> None:
        await self.client.close()


DUPLICATE_KEY = 11000  # the server's error code of a unique index refusing a write


def insert_each(
    collection: AsyncCollection[Document],
) -> Callable[[list[Document]], Awaitable[list[None | Exception]]]:
    """What a `Batched` of single-document inserts sends: one unordered `insert_many`, and
    for each document None or the error that refused it (DuplicateKeyError, WriteError)."""

    async def send(documents: list[Document]) -> list[None | Exception]:
        try:
            await collection.insert_many(documents, ordered=False)
        except BulkWriteError as exc:
            errors = {int(error["index"]): error for error in exc.details.get("writeErrors", [])}
            if not errors:  # a write concern error: it says nothing of which documents
                raise
            return [
                _refusal(errors[index]) if index in errors else None
                for index in range(len(documents))
            ]
        return [None] * len(documents)

    return send


def find_each(
    collection: AsyncCollection[Document],
) -> Callable[[list[Any]], Awaitable[list[bool]]]:
    """What a `Batched` of "is this `_id` there?" sends: one find of them all."""

    async def send(ids: list[Any]) -> list[bool]:
        wanted = list(dict.fromkeys(ids))
        found = {doc["_id"] async for doc in collection.find({"_id": {"$in": wanted}}, {"_id": 1})}
        return [document_id in found for document_id in ids]

    return send


def _refusal(error: dict[str, Any]) -> Exception:
    kind = DuplicateKeyError if error.get("code") == DUPLICATE_KEY else WriteError
    return kind(error.get("errmsg", ""), error.get("code"), error)


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
