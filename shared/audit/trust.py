"""Whether to trust a checkpoint: the log's signature, witness cosignatures, and history.

1. The checkpoint (C2SP tlog-checkpoint) is signed by the log's key; its origin is the key's
   name. Witness cosignatures (C2SP tlog-cosignature) are counted against a quorum.
2. Against the checkpoint the auditor trusted last: a smaller tree is a rollback, the same
   size with another root is a fork, and a larger tree must be consistent with it (RFC 9162
   consistency proof computed from tiles).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hotline.shared.keys import b64encode
from hotline.shared.tlog.checkpoint import Checkpoint, open_checkpoint
from hotline.shared.tlog.errors import NoteError, TlogError, UnverifiedNoteError
from hotline.shared.tlog.note import CosignatureVerifier, Ed25519Verifier, open_note
from hotline.shared.tlog.proof import consistency_nodes, consistency_proof
from hotline.shared.tlog.tiles import Tile, hashes_from_tiles, tiles_for_nodes
from hotline.shared.tlog.verify import verify_consistency

from .failures import AuditFailure, Rule


def open_log_checkpoint(note: bytes | str, log_key: Ed25519Verifier) -> Checkpoint:
    """Return the checkpoint of a signed note from the log whose origin is `log_key`'s name.

    Raises AuditFailure(Rule.SIGNATURE) when the note is malformed, unsigned by that key,
    badly signed, or names another origin.
    """
    try:
        checkpoint, _ = open_checkpoint(note, log_key.name, [log_key])
    except TlogError as exc:
        raise AuditFailure(Rule.SIGNATURE, f"checkpoint refused: {exc}") from None
    return checkpoint


def count_cosignatures(
    note: bytes | str, witnesses: Sequence[CosignatureVerifier], quorum: int
) -> int:
    """Return how many of `witnesses` validly cosigned `note`; require at least `quorum`.

    Requires 0 <= quorum <= len(witnesses). Raises AuditFailure(Rule.COSIGNATURE) when a
    listed witness's cosignature does not verify, AuditFailure(Rule.QUORUM) when too few.
    """
    if not 0 <= quorum <= len(witnesses):
        raise ValueError(f"quorum {quorum} needs 0 to {len(witnesses)} witnesses")
    if not witnesses:
        return 0
    try:
        count = len(open_note(note, witnesses).signatures)
    except UnverifiedNoteError:
        count = 0
    except NoteError as exc:
        raise AuditFailure(Rule.COSIGNATURE, f"witness cosignature refused: {exc}") from None
    if count < quorum:
        raise AuditFailure(
            Rule.QUORUM,
            f"checkpoint carries {count} cosignature(s) from the given witnesses, "
            f"{quorum} required",
        )
    return count


def check_against_trusted(trusted: Checkpoint | None, current: Checkpoint) -> None:
    """Refuse a rollback (smaller tree) or a fork at the same size; bigger trees need a proof
    (`check_consistency`). Requires both checkpoints to be verified already."""
    if trusted is None:
        return
    if current.size < trusted.size:
        raise AuditFailure(
            Rule.ROLLBACK,
            f"the log shows size {current.size}, smaller than the size {trusted.size} you "
            "trusted before: the log was rolled back or forked",
        )
    if current.size == trusted.size and current.root_hash != trusted.root_hash:
        raise AuditFailure(
            Rule.FORK,
            f"FORK: two different checkpoints of size {current.size}: the log now shows "
            f"root {b64encode(current.root_hash)}, you trusted root "
            f"{b64encode(trusted.root_hash)}",
        )


def consistency_tiles(trusted: Checkpoint | None, current: Checkpoint) -> list[Tile]:
    """The tiles (of the current tree) that the consistency proof from `trusted` needs."""
    if trusted is None or not 0 < trusted.size < current.size:
        return []
    return tiles_for_nodes(consistency_nodes(trusted.size, current.size).ids, current.size)


def check_consistency(
    trusted: Checkpoint | None, current: Checkpoint, tiles: Mapping[Tile, bytes]
) -> bool:
    """Prove from `tiles` that `current` extends `trusted`; return True if a proof was needed.

    Requires `tiles` to hold every tile of `consistency_tiles(trusted, current)`. Raises
    AuditFailure(Rule.FORK) when the proof does not rebuild both roots.
    """
    if trusted is None or not 0 < trusted.size < current.size:
        return False
    size1, size2 = trusted.size, current.size
    try:
        proof = consistency_proof(
            size1, size2, lambda nodes: hashes_from_tiles(nodes, tiles, size2)
        )
        verify_consistency(size1, size2, proof, trusted.root_hash, current.root_hash)
    except TlogError as exc:
        raise AuditFailure(
            Rule.FORK,
            f"FORK: the tree of size {size2} is not an extension of the checkpoint of size "
            f"{size1} you trusted ({exc})",
        ) from None
    return True
