"""RFC 9162 (RFC 6962) Merkle tree hashing with SHA-256, and nothing else.

A leaf hash is SHA-256(0x00 || entry), a node hash SHA-256(0x01 || left || right), and the
root of the empty tree is SHA-256 of nothing (RFC 9162 section 2.1.1).
"""

from __future__ import annotations

from hashlib import sha256

from .errors import HashSizeError

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    """Return the leaf hash SHA-256(0x00 || entry) of a log entry (any length, even empty)."""
    return sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the interior node hash SHA-256(0x01 || left || right).

    Requires both children to be 32 bytes; raises HashSizeError otherwise.
    """
    if len(left) != HASH_SIZE or len(right) != HASH_SIZE:
        raise HashSizeError(f"node children must be {HASH_SIZE} bytes: {len(left)}, {len(right)}")
    return hash_children(left, right)


def hash_children(left: bytes, right: bytes) -> bytes:
    """Return SHA-256(0x01 || left || right) WITHOUT checking sizes.

    For hot loops whose inputs were checked once at their boundary; anything else calls
    `node_hash`.
    """
    return sha256(NODE_PREFIX + left + right).digest()


def check_hash(value: bytes, what: str = "hash") -> bytes:
    """Return `value` if it is 32 bytes, else raise HashSizeError naming `what`."""
    if len(value) != HASH_SIZE:
        raise HashSizeError(f"{what} must be {HASH_SIZE} bytes, got {len(value)}")
    return value
