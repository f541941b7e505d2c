"""Verify inclusion and consistency proofs: compute the root from the proof, then compare.

Every check that fails raises a `ProofError` subclass: `OutOfRangeError` for broken size or
index preconditions, `HashSizeError` for a hash that is not 32 bytes (roots included: a
stricter contract than transparency-dev/merkle, which compares roots of any length),
`ProofSizeError` for a proof of the wrong length, `RootMismatchError` when the computed root
differs. A function that returns has verified.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from .errors import OutOfRangeError, ProofSizeError, RootMismatchError
from .hashing import check_hash, hash_children


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that `proof` shows leaf `index` (hash `leaf_hash`) in the tree (`size`, `root`).

    Requires 0 <= index < size and 32-byte hashes.
    """
    check_hash(root, "root")
    _check_match(root_from_inclusion_proof(index, size, leaf_hash, proof), root)


def root_from_inclusion_proof(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """Return the root of the tree of `size` leaves implied by an inclusion proof.

    Requires 0 <= index < size, 32-byte hashes, and exactly as many proof hashes as the
    path from leaf `index` needs in that tree.
    """
    if not 0 <= index < size:
        raise OutOfRangeError(f"index {index} out of range for size {size}")
    check_hash(leaf_hash, "leaf hash")
    _check_proof(proof)
    inner, border = _decompose_inclusion(index, size)
    if len(proof) != inner + border:
        raise ProofSizeError(f"inclusion proof has {len(proof)} hashes, want {inner + border}")
    value = _chain_inner(leaf_hash, proof[:inner], index)
    return _chain_border_right(value, proof[inner:])


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that `proof` shows the tree (`size1`, `root1`) is a prefix of (`size2`, `root2`).

    Requires 0 < size1 <= size2 and 32-byte hashes. A checkpoint of size 0 is a prefix of
    every tree; callers holding one skip this check rather than call it.
    """
    check_hash(root2, "root2")
    _check_match(root_from_consistency_proof(size1, size2, proof, root1), root2)


def root_from_consistency_proof(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes
) -> bytes:
    """Return the root of the tree of `size2` leaves implied by a consistency proof.

    Requires 0 < size1 <= size2, 32-byte hashes, an empty proof when size1 == size2, and
    otherwise exactly as many hashes as the two sizes need. Raises RootMismatchError when
    the proof does not rebuild `root1`.
    """
    if not 0 < size1 <= size2:
        raise OutOfRangeError(f"consistency needs 0 < size1 <= size2, got {size1}, {size2}")
    check_hash(root1, "root1")
    _check_proof(proof)
    if size1 == size2:
        if proof:
            raise ProofSizeError("size1 == size2, but the proof is not empty")
        return root1
    # The proof starts at the largest perfect subtree ending at size1, then follows the
    # inclusion path of leaf size1 - 1 in the new tree, from that subtree's level up.
    shift = (size1 & -size1).bit_length() - 1
    fork, border = _decompose_inclusion(size1 - 1, size2)
    inner = fork - shift
    known = size1 == 1 << shift  # the old tree is that subtree: its root is root1
    want = (0 if known else 1) + inner + border
    if len(proof) != want:
        raise ProofSizeError(f"consistency proof has {len(proof)} hashes, want {want}")
    seed, rest = (root1, proof) if known else (proof[0], proof[1:])
    mask = (size1 - 1) >> shift
    old = _chain_border_right(_chain_inner_right(seed, rest[:inner], mask), rest[inner:])
    _check_match(old, root1)
    new = _chain_inner(seed, rest[:inner], mask)
    return _chain_border_right(new, rest[inner:])


def _check_proof(proof: Sequence[bytes]) -> None:
    """Raise HashSizeError unless every proof hash is 32 bytes."""
    for position, value in enumerate(proof):
        check_hash(value, f"proof[{position}]")


def _check_match(calculated: bytes, expected: bytes) -> None:
    """Raise RootMismatchError unless the two roots are equal."""
    if not hmac.compare_digest(calculated, expected):
        raise RootMismatchError(expected=expected, calculated=calculated)


def _decompose_inclusion(index: int, size: int) -> tuple[int, int]:
    """Split the proof length for leaf `index` in a tree of `size` into (inner, border).

    Inner nodes lie below the level where the paths to `index` and `size - 1` diverge
    (left or right siblings); border nodes above it are left siblings only.
    """
    inner = (index ^ (size - 1)).bit_length()
    return inner, (index >> inner).bit_count()


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    """Hash `seed` up through siblings `proof`; bit i of `index` says which side at level i."""
    for level, sibling in enumerate(proof):
        if (index >> level) & 1:
            seed = hash_children(sibling, seed)
        else:
            seed = hash_children(seed, sibling)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    """Like `_chain_inner` using only left siblings: the hash of the older, smaller subtree."""
    for level, sibling in enumerate(proof):
        if (index >> level) & 1:
            seed = hash_children(sibling, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    """Hash `seed` up the right border: every sibling in `proof` is on the left."""
    for sibling in proof:
        seed = hash_children(sibling, seed)
    return seed
