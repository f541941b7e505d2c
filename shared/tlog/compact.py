"""Node addressing, compact ranges, and the root of a tree from its leaf hashes.

Addressing: a node is `NodeID(level, index)`. Level 0 holds the leaves; node (level, index)
is the root of the perfect subtree over leaves [index * 2**level, (index + 1) * 2**level).
This is transparency-dev/merkle's `compact.NodeID` and the numbering of C2SP tlog-tiles
(the hash at position i of tile (L, N) is node (8*L, 256*N + i)). A node is *stored* (it
never changes once it exists) when its whole leaf range lies inside the tree; the other
nodes on the right border are *ephemeral* and are recomputed from stored ones.

A compact range for [0, size) is the list of roots of the perfect subtrees that cover those
leaves, largest (leftmost) first: one per set bit of `size`. Appending a leaf merges equal
subtrees like a binary counter, and every node it completes is reported to a visitor, so
the integrator learns exactly the new stored nodes it must write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .errors import OutOfRangeError, StoredHashError
from .hashing import EMPTY_ROOT, HASH_SIZE, check_hash, hash_children


@dataclass(frozen=True, slots=True, order=True)
class NodeID:
    """A node of the Merkle tree: `level` (0 = leaves) and `index` within that level."""

    level: int
    index: int

    def parent(self) -> NodeID:
        """Return the node one level up whose subtree contains this one."""
        return NodeID(self.level + 1, self.index >> 1)

    def sibling(self) -> NodeID:
        """Return the other child of this node's parent."""
        return NodeID(self.level, self.index ^ 1)

    def coverage(self) -> tuple[int, int]:
        """Return the half-open leaf range [begin, end) under this node."""
        return self.index << self.level, (self.index + 1) << self.level


Visitor = Callable[[NodeID, bytes], None]
"""Called with each stored node (and its hash) that an append creates."""

GetHashes = Callable[[Sequence[NodeID]], Sequence[bytes]]
"""Returns the stored hashes of the given nodes, in the same order."""


def range_nodes(begin: int, end: int) -> list[NodeID]:
    """Return the minimal perfect subtrees covering leaves [begin, end), left to right.

    Requires 0 <= begin <= end.
    """
    if not 0 <= begin <= end:
        raise OutOfRangeError(f"invalid range [{begin}, {end})")
    nodes: list[NodeID] = []
    pos = begin
    while pos < end:
        fit = (end - pos).bit_length() - 1  # the largest subtree that still fits
        aligned = (pos & -pos).bit_length() - 1 if pos else fit  # the largest pos starts
        level = min(fit, aligned)
        nodes.append(NodeID(level, pos >> level))
        pos += 1 << level
    return nodes


def fetch_hashes(get_hashes: GetHashes, nodes: Sequence[NodeID]) -> list[bytes]:
    """Return `get_hashes(nodes)` after checking it gave one 32-byte hash per node.

    Raises StoredHashError when the source answers with the wrong count or sizes.
    """
    hashes = list(get_hashes(nodes)) if nodes else []
    if len(hashes) != len(nodes):
        raise StoredHashError(f"asked for {len(nodes)} hashes, got {len(hashes)}")
    for node, value in zip(nodes, hashes, strict=True):
        if len(value) != HASH_SIZE:
            raise StoredHashError(f"stored hash of {node} has {len(value)} bytes")
    return hashes


class CompactRange:
    """The compact range of leaves [0, size): append leaf hashes, read the root.

    Invariant: `hashes` are the roots of `range_nodes(0, size)`, in that order.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        """Build the range for [0, size) from the roots of `range_nodes(0, size)`.

        Requires size >= 0 and exactly one 32-byte hash per set bit of `size`.
        """
        if size < 0:
            raise OutOfRangeError(f"size must be >= 0, got {size}")
        if len(hashes) != size.bit_count():
            raise StoredHashError(f"size {size} needs {size.bit_count()} hashes, got {len(hashes)}")
        self._size = size
        self._hashes = [check_hash(h, "compact range hash") for h in hashes]

    @classmethod
    def from_stored(cls, size: int, get_hashes: GetHashes) -> CompactRange:
        """Load the range for [0, size) from stored node hashes. Requires size >= 0."""
        return cls(size, fetch_hashes(get_hashes, range_nodes(0, size)))

    @property
    def size(self) -> int:
        """The number of leaves covered: the range is [0, size)."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The roots of `range_nodes(0, size)`, left to right."""
        return tuple(self._hashes)

    def append(self, leaf_hash: bytes, visit: Visitor | None = None) -> None:
        """Append one leaf hash (32 bytes); report the leaf and every node it completes."""
        check_hash(leaf_hash, "leaf hash")
        index = self._size
        if visit is not None:
            visit(NodeID(0, index), leaf_hash)
        value, level, hashes = leaf_hash, 0, self._hashes
        while index & 1:  # the new subtree has a left sibling of equal size: merge them
            value = hash_children(hashes.pop(), value)
            index >>= 1
            level += 1
            if visit is not None:
                visit(NodeID(level, index), value)
        hashes.append(value)
        self._size += 1

    def extend(self, leaf_hashes: Iterable[bytes], visit: Visitor | None = None) -> None:
        """Append each leaf hash in order (see `append`)."""
        for value in leaf_hashes:
            self.append(value, visit)

    def root(self) -> bytes:
        """Return the RFC 9162 root of the tree of `size` leaves (EMPTY_ROOT when empty)."""
        if not self._hashes:
            return EMPTY_ROOT
        value = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            value = hash_children(left, value)
        return value


def root_from_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the RFC 9162 root (MTH) of the tree whose leaves hash to `leaf_hashes`.

    Requires every hash to be 32 bytes. Hashes level by level, carrying an odd last node
    up unchanged, which yields the same tree as RFC 9162's split at the largest power of 2.
    """
    for value in leaf_hashes:
        check_hash(value, "leaf hash")
    level = list(leaf_hashes)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        pairs = iter(level)
        upper = [hash_children(left, right) for left, right in zip(pairs, pairs, strict=False)]
        if len(level) & 1:
            upper.append(level[-1])
        level = upper
    return level[0]
