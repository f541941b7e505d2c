"""Sequencing: durably give each event the next index, once (idempotent by event id).

Integration (tiles, root, checkpoints) is separate and reads what was sequenced. Indices are
contiguous: an entry is one document whose `_id` is its index (also kept as the `index`
field: nx-27017 sorts integer `_id`s as text when no filter is given, so every sort is
on `index`); a unique index on `event_id`
makes a redelivered event a no-op, and a clash on `_id` (another sequencer won the index)
re-reads the next free index and tries again.

`sequence_many` writes a batch with one ordered `insert_many` (Tessera batches sequencing
too): an ordered insert stops at the first failing document (checked on nx-27017 in
tests/integration/test_audit_service.py), so the indices written stay contiguous, and the
clash is resolved before the rest of the batch is written again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo.errors import DuplicateKeyError

from hotline.shared.events import Event, EventType
from hotline.shared.store import Store, insert_ordered
from hotline.shared.tlog.hashing import leaf_hash
from hotline.shared.tlog.tiles import MAX_ENTRY_SIZE

from .entries import audit_entry


class EntryTooLargeError(ValueError):
    """An entry longer than an entry bundle can hold (65535 bytes): never sequenced."""


def entry_of(event: Event) -> bytes:
    """The canonical leaf bytes of `event`; raises EntryTooLargeError beyond the bundle limit."""
    leaf = audit_entry(event).leaf()
    if len(leaf) > MAX_ENTRY_SIZE:
        raise EntryTooLargeError(f"the entry of event {event.id} has {len(leaf)} bytes")
    return leaf


def entry_document(index: int, event: Event, leaf: bytes) -> dict[str, Any]:
    """The stored form of a sequenced entry (hashes as hex: binary subtypes do not survive)."""
    document = {
        "_id": index,
        "index": index,
        "event_id": event.id,
        "subject": event.subject,
        "entry": leaf.decode(),
        "leaf_hash": leaf_hash(leaf).hex(),
        "type": event.type,  # what the consumer's causal check reads (a case's report)
    }
    if event.type == EventType.KEY_REGISTERED:
        document["key_id"] = event.data["key_id"]  # what the consumer's causal check reads
    return document


class Sequencer:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._next: int | None = None

    async def size(self) -> int:
        """Number of sequenced entries (the next free index)."""
        last = await self.store.db.audit_entries.find_one({}, {"_id": 1}, sort=[("index", -1)])
        return 0 if last is None else int(last["_id"]) + 1

    async def sequence(self, event: Event) -> int:
        """Durably assign `event` its index; return it (the existing one on redelivery)."""
        leaf = entry_of(event)
        while True:
            if self._next is None:
                self._next = await self.size()
            index = self._next
            try:
                await self.store.db.audit_entries.insert_one(entry_document(index, event, leaf))
            except DuplicateKeyError:
                existing = await self._index_of(event.id)
                if existing is not None:
                    return existing
                self._next = None  # someone else took this index: re-read
                continue
            self._next = index + 1
            return index

    async def sequence_many(self, events: Sequence[Event]) -> list[int]:
        """Durably assign every event its index, in order; return the indices (existing ones
        for redelivered events, one index for an event repeated in the batch)."""
        leaves = {event.id: entry_of(event) for event in events}
        pending = [event for event in {e.id: e for e in events}.values()]
        indices: dict[str, int] = {}
        while pending:
            if self._next is None:
                self._next = await self.size()
            start = self._next
            written = await insert_ordered(
                self.store.db.audit_entries,
                [entry_document(start + i, e, leaves[e.id]) for i, e in enumerate(pending)],
            )
            indices.update((e.id, start + i) for i, e in enumerate(pending[:written]))
            self._next = start + written
            pending = pending[written:]
            if pending:  # pending[0] clashed: redelivered, or its index was taken meanwhile
                existing = await self._index_of(pending[0].id)
                if existing is None:
                    self._next = None
                else:
                    indices[pending[0].id] = existing
                    pending = pending[1:]
        return [indices[event.id] for event in events]

    async def _index_of(self, event_id: str) -> int | None:
        existing = await self.store.db.audit_entries.find_one({"event_id": event_id}, {"_id": 1})
        return None if existing is None else int(existing["_id"])
