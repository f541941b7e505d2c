"""Sequencing: durably give each event the next index, once (idempotent by event id).

Integration (tiles, root, checkpoints) is separate and reads what was sequenced. Indices are
contiguous: an entry is one insert whose `_id` is its index; a unique index on `event_id`
makes a redelivered event a no-op, and a clash on `_id` (another sequencer won the index)
re-reads the next free index and tries again.
"""

from __future__ import annotations

from pymongo.errors import DuplicateKeyError

from hotline.shared.events import Event
from hotline.shared.store import Store
from hotline.shared.tlog.hashing import leaf_hash

from .entries import audit_entry, entry_bytes


class Sequencer:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._next: int | None = None

    async def size(self) -> int:
        """Number of sequenced entries (the next free index)."""
        last = await self.store.db.audit_entries.find_one({}, sort=[("_id", -1)])
        return 0 if last is None else int(last["_id"]) + 1

    async def sequence(self, event: Event) -> int:
        """Durably assign `event` its index; return it (the existing one on redelivery)."""
        leaf = entry_bytes(audit_entry(event))
        while True:
            if self._next is None:
                self._next = await self.size()
            index = self._next
            try:
                await self.store.db.audit_entries.insert_one(
                    {
                        "_id": index,
                        "event_id": event.id,
                        "subject": event.subject,
                        "entry": leaf.decode(),
                        "leaf_hash": leaf_hash(leaf).hex(),
                    }
                )
            except DuplicateKeyError:
                existing = await self.store.db.audit_entries.find_one({"event_id": event.id})
                if existing is not None:
                    return int(existing["_id"])
                self._next = None  # someone else took this index: re-read
                continue
            self._next = index + 1
            return index
