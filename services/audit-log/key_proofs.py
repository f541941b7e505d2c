"""Key proofs: for recipient keys, their `key.registered` entries with RFC 9162 inclusion
proofs in the tree of the latest checkpoint.

The worker's page checks these before sealing anything (contract of issue 16, section 6):
every key it seals to must be in the log, registered to an operator or a buyer. Intake asks
for the proofs of the keys it offers and passes them through, so the page learns what the
log says without trusting intake.

A key's registration is found by the entry's subject (the event subject of `key.registered`
is the key id), on the `subject` index of audit_entries; the proof's hashes are
read from the stored tiles of the checkpoint's tree, as an auditor would read them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hotline.shared.store import Store
from hotline.shared.tlog.proof import inclusion_nodes
from hotline.shared.tlog.tiles import hashes_from_tiles, tile_path, tiles_for_nodes

from . import storage


@dataclass(frozen=True)
class KeyProof:
    """A key's registration entry (its exact leaf bytes) and its inclusion proof."""

    index: int
    leaf: bytes
    inclusion: list[bytes]


def registration_filter(key_id: str, size: int) -> dict[str, Any]:
    """The query for one key's entries in the tree of `size`: equality on `subject`, which
    its index serves (on nx-27017 an `$in` scans the collection, so one query per key)."""
    return {"subject": key_id, "index": {"$lt": size}}


async def registration(store: Store, key_id: str, size: int) -> tuple[int, bytes] | None:
    """(index, leaf bytes) of the key's first `key.registered` entry below `size`, or None."""
    # Only a registration's document has `key_id` (sequencer.entry_document): the key's
    # other entries (its revocation) share the subject and are skipped.
    found = store.db[storage.ENTRIES].find(
        registration_filter(key_id, size), {"index": 1, "key_id": 1, "entry": 1}
    )
    first: tuple[int, bytes] | None = None
    async for doc in found:
        index = int(doc["index"])
        if doc.get("key_id") == key_id and (first is None or index < first[0]):
            first = (index, doc["entry"].encode())
    return first


async def key_proofs(store: Store, key_ids: Sequence[str], size: int) -> dict[str, KeyProof]:
    """The proofs, in the tree of `size` (a published checkpoint's), of every key of
    `key_ids` registered below it; the others are left out."""
    found = {}
    for kid in key_ids:
        registered = await registration(store, kid, size)
        if registered is not None:
            found[kid] = registered
    nodes = {kid: inclusion_nodes(index, size) for kid, (index, _) in found.items()}
    tiles = tiles_for_nodes((node for proof in nodes.values() for node in proof.ids), size)
    stored = await storage.read_resources(store, [tile_path(tile) for tile in tiles])
    contents = {tile: stored[tile_path(tile)] for tile in tiles if tile_path(tile) in stored}
    return {
        kid: KeyProof(
            index=found[kid][0],
            leaf=found[kid][1],
            inclusion=proof.rehash(hashes_from_tiles(proof.ids, contents, size)),
        )
        for kid, proof in nodes.items()
    }
