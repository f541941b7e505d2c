"""Where the audit log keeps its tree: MongoDB, write-once.

Collections (all append-only; nothing here updates or deletes):

- `audit_entries`  sequenced entries, `_id` = index (see sequencer.py).
- `audit_tiles`    tiles and entry bundles, `_id` = C2SP path (`tile/0/x001/234`,
                   `tile/entries/005.p/17`), `data` = base64 (nx-27017 loses binary
                   subtypes). A path's contents never change, partial tiles included,
                   because the width is part of the path.
- `audit_checkpoints` and `audit_cosignatures`: see checkpoints.py.

Why MongoDB and not files under the data directory: the log then lives where everything it
proves lives, in the one store that is replicated and backed up; the service keeps no local
state, so replicas (compose `--scale`) serve the same tiles; and a tile and the entries it
commits to cannot be restored from different backups. Full tiles are immutable and served
with a one-year cache lifetime, so a cache in front takes the read load off the store.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence

from pymongo import ASCENDING, IndexModel
from pymongo.errors import BulkWriteError, DuplicateKeyError

from hotline.shared.store import Store
from hotline.shared.tlog.hashing import leaf_hash

TILES = "audit_tiles"
ENTRIES = "audit_entries"
CHECKPOINTS = "audit_checkpoints"
COSIGNATURES = "audit_cosignatures"

# The audit log's indexes, declared here only and created at its start-up. `event_id` is
# unique: sequencing is idempotent by event id. Sorts and ranges use the numeric fields,
# never an integer `_id`: nx-27017 orders those as text when a query has no filter
# (`find_one({}, sort=[("_id", -1)])` answered 99 in a log of 403), and a range on `_id`
# scans the whole collection (0.5 s at 100,000 entries). A query on `subject` (a case's
# entries, a key's registration) needs the single-field index: nx-27017 uses neither it nor
# the compound one without it (checked with `explain` in tests/integration/test_key_proofs.py).
INDEXES = {
    ENTRIES: [
        IndexModel([("event_id", ASCENDING)], unique=True),
        IndexModel([("index", ASCENDING)], unique=True),
        IndexModel([("subject", ASCENDING)]),
        IndexModel([("subject", ASCENDING), ("index", ASCENDING)]),
    ],
    CHECKPOINTS: [IndexModel([("size", ASCENDING)], unique=True)],
    COSIGNATURES: [IndexModel([("size", ASCENDING)])],
}


class StoreRewrittenError(RuntimeError):
    """What the store holds contradicts what the log already committed to."""


async def ensure_indexes(store: Store) -> None:
    for name, indexes in INDEXES.items():
        await store.db[name].create_indexes(indexes)


async def read_entries(store: Store, start: int, limit: int) -> list[bytes]:
    """Sequenced entries start, start + 1, ... up to `limit`, stopping at the first gap.

    Raises StoreRewrittenError when an entry no longer hashes to the leaf hash recorded
    when it was sequenced.
    """
    # A range on `index` (indexed); on nx-27017 a range on `_id` scans the collection.
    found = store.db[ENTRIES].find(
        {"index": {"$gte": start, "$lt": start + limit}}, {"entry": 1, "leaf_hash": 1}
    )
    docs = sorted([doc async for doc in found], key=lambda doc: int(doc["_id"]))
    entries: list[bytes] = []
    for doc in docs:
        if doc["_id"] != start + len(entries):
            break  # a gap: an index is being written; integrate up to it
        raw = doc["entry"].encode()
        if leaf_hash(raw).hex() != doc["leaf_hash"]:
            raise StoreRewrittenError(
                f"sequenced entry {doc['_id']} no longer matches its recorded leaf hash"
            )
        entries.append(raw)
    return entries


async def read_resources(store: Store, paths: Sequence[str]) -> dict[str, bytes]:
    """The stored contents of `paths` (missing paths are left out)."""
    if not paths:
        return {}
    found = store.db[TILES].find({"_id": {"$in": list(paths)}})
    return {doc["_id"]: base64.b64decode(doc["data"]) async for doc in found}


async def read_resource(store: Store, path: str) -> bytes | None:
    """The stored contents of one tile or bundle, or None."""
    doc = await store.db[TILES].find_one({"_id": path})
    return None if doc is None else base64.b64decode(doc["data"])


async def write_resources(store: Store, resources: Mapping[str, bytes]) -> None:
    """Write tiles and bundles once. Rewriting equal bytes is a no-op (a pass repeated after
    a crash); different bytes at an existing path raise StoreRewrittenError."""
    docs = [
        {"_id": path, "data": base64.b64encode(data).decode()} for path, data in resources.items()
    ]
    if not docs:
        return
    try:
        await store.db[TILES].insert_many(docs, ordered=True)
        return
    except BulkWriteError as exc:
        done = int(exc.details.get("nInserted", 0))
    for doc in docs[done:]:  # the rest, one by one, telling repeats from conflicts
        try:
            await store.db[TILES].insert_one(doc)
        except DuplicateKeyError:
            existing = await store.db[TILES].find_one({"_id": doc["_id"]})
            if existing is None or existing["data"] != doc["data"]:
                raise StoreRewrittenError(
                    f"{doc['_id']} is stored with other contents than the entries give"
                ) from None
