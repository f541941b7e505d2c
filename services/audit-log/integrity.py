"""The start-up check: the stored tree must still be the tree the last checkpoint signed.

Nothing in the log is ever updated or deleted, so anything that differs was rewritten
behind the service's back. Before serving, the service re-reads the whole committed log and
refuses to start, saying what differs, when:

- the last checkpoint does not verify with this log's key and origin;
- a sequenced entry is missing, or no longer hashes to the leaf hash recorded for it;
- an entry bundle differs from the sequenced entries, or a tile (any level) from the
  hashes of the entries (the same `TreeWalk` the auditor's `hotline audit verify` runs:
  only the pure checks of hotline.shared.audit are imported, never the auditor's client);
- the root of the entries is not the checkpoint's root.

Cost: one read of every entry, bundle and tile (about 10 s per million entries here).
"""

from __future__ import annotations

from hotline.shared.audit.failures import AuditFailure, Rule
from hotline.shared.audit.trust import open_log_checkpoint
from hotline.shared.audit.walk import TreeWalk
from hotline.shared.store import Store
from hotline.shared.tlog.note import Ed25519Verifier
from hotline.shared.tlog.tiles import entries_path, tile_path, upper_tiles

from . import storage
from .checkpoints import StoredCheckpoint, latest_checkpoint


async def check_store(store: Store, log_key: Ed25519Verifier) -> StoredCheckpoint | None:
    """Check the committed log against its last checkpoint; return that checkpoint.

    Raises storage.StoreRewrittenError with what differs.
    """
    latest = await latest_checkpoint(store)
    if latest is None:
        return None
    try:
        open_log_checkpoint(latest.note, log_key)
    except AuditFailure as failure:
        raise storage.StoreRewrittenError(
            f"the last checkpoint (size {latest.size}) does not verify with this log's key and "
            f"origin (were HOTLINE_SIGNING_KEY or HOTLINE_AUDIT_ORIGIN changed?): {failure}"
        ) from None
    try:
        walk = TreeWalk(latest.size)
        for bundle in walk.tree_bundles:
            stored = await _resource(store, entries_path(bundle))
            tile = await _resource(store, tile_path(bundle.leaf_tile))
            await _check_sequenced(store, bundle.start, walk.add_bundle(bundle, stored, tile))
        for upper in upper_tiles(latest.size):
            walk.check_tile(upper, await _resource(store, tile_path(upper)))
        if walk.root() != latest.checkpoint.root_hash:
            raise AuditFailure(Rule.ROOT, "the stored tree has another root")
    except AuditFailure as failure:
        raise storage.StoreRewrittenError(
            f"the stored log differs from its last checkpoint (size {latest.size}): {failure}"
        ) from None
    return latest


async def _resource(store: Store, path: str) -> bytes:
    data = await storage.read_resource(store, path)
    if data is None:
        raise AuditFailure(Rule.MISSING, f"{path} is missing from the store")
    return data


async def _check_sequenced(store: Store, first: int, bundled: list[bytes]) -> None:
    """Raise unless the sequenced entries first, first + 1, ... are exactly `bundled`."""
    try:
        sequenced = await storage.read_entries(store, first, len(bundled))
    except storage.StoreRewrittenError as exc:
        raise AuditFailure(Rule.ENTRY, str(exc)) from None
    for offset, raw in enumerate(bundled):
        if offset >= len(sequenced):
            raise AuditFailure(Rule.ENTRY, "the sequenced entry is missing", first + offset)
        if sequenced[offset] != raw:
            raise AuditFailure(
                Rule.ENTRY,
                "the sequenced entry differs from the one in its entry bundle",
                first + offset,
            )
