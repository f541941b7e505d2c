"""Which stored nodes an inclusion or consistency proof needs, and building the proof.

A proof is a list of node hashes ordered from the lowest level up (RFC 9162 section 2.1.3
and 2.1.4). Most of them are stored nodes; at most one is ephemeral (a right-border node of
an imperfect tree), and it is rebuilt from the stored nodes under it. `ProofNodes` says which
stored nodes to fetch and which of them fold into the ephemeral one, so a server (reading
its own storage) and an auditor (reading tiles) build proofs with the same code.

Nodes are addressed `NodeID(level, index)` (see `compact`). Ranges are half-open.
"""

from __future__ import annotations

from dataclasses import dataclass

from .compact import GetHashes, NodeID, fetch_hashes, range_nodes
from .errors import OutOfRangeError, StoredHashError
from .hashing import hash_children


@dataclass(frozen=True, slots=True)
class ProofNodes:
    """The stored nodes a proof needs.

    `ids` are the nodes to fetch. `ids[begin:end]` (lowest level first, each further one to
    the left of the previous) fold into the single ephemeral node of the proof; when
    begin == end there is none.
    """

    ids: tuple[NodeID, ...]
    begin: int = 0
    end: int = 0

    def rehash(self, hashes: list[bytes]) -> list[bytes]:
        """Return the proof from the hashes of `ids` (same order): folds the ephemeral block.

        Requires len(hashes) == len(ids); raises StoredHashError otherwise.
        """
        if len(hashes) != len(self.ids):
            raise StoredHashError(f"got {len(hashes)} hashes for {len(self.ids)} nodes")
        if self.end - self.begin < 2:
            return list(hashes)
        ephemeral = hashes[self.begin]
        for left in hashes[self.begin + 1 : self.end]:
            ephemeral = hash_children(left, ephemeral)
        return [*hashes[: self.begin], ephemeral, *hashes[self.end :]]


def inclusion_nodes(index: int, size: int) -> ProofNodes:
    """Return the nodes of the inclusion proof of leaf `index` in the tree of `size` leaves.

    Requires 0 <= index < size.
    """
    if not 0 <= index < size:
        raise OutOfRangeError(f"index {index} out of range for size {size}")
    return _skip_first(_path_nodes(index, 0, size))


def consistency_nodes(size1: int, size2: int) -> ProofNodes:
    """Return the nodes of the consistency proof from tree size `size1` to `size2`.

    Requires 0 < size1 <= size2 (a proof from the empty tree is meaningless); the proof
    for size1 == size2 is empty.
    """
    if not 0 < size1 <= size2:
        raise OutOfRangeError(f"consistency needs 0 < size1 <= size2, got {size1}, {size2}")
    if size1 == size2:
        return ProofNodes(ids=())
    # Start at the root of the largest perfect subtree ending at size1; the verifier already
    # knows it when it is the whole old tree (size1 a power of two), so it is then left out.
    level = (size1 & -size1).bit_length() - 1
    nodes = _path_nodes((size1 - 1) >> level, level, size2)
    return _skip_first(nodes) if size1 & (size1 - 1) == 0 else nodes


def inclusion_proof(index: int, size: int, get_hashes: GetHashes) -> list[bytes]:
    """Return the inclusion proof of leaf `index` in the tree of `size` leaves.

    Requires 0 <= index < size, and `get_hashes` to return the stored hash of each node asked.
    """
    nodes = inclusion_nodes(index, size)
    return nodes.rehash(fetch_hashes(get_hashes, nodes.ids))


def consistency_proof(size1: int, size2: int, get_hashes: GetHashes) -> list[bytes]:
    """Return the consistency proof from tree size `size1` to `size2`.

    Requires 0 < size1 <= size2, and `get_hashes` to return the stored hash of each node asked.
    """
    nodes = consistency_nodes(size1, size2)
    return nodes.rehash(fetch_hashes(get_hashes, nodes.ids))


def _path_nodes(index: int, level: int, size: int) -> ProofNodes:
    """Return node (level, index) then the nodes proving it is in the tree of `size` leaves.

    Requires the node to be stored in that tree. Order: the node itself, its siblings up to
    the fork (where its path leaves the right border), the nodes right of the fork (lowest
    first: they make the ephemeral sibling), then the nodes left of the fork (lowest first).
    """
    inner = (index ^ (size >> level)).bit_length() - 1
    fork = NodeID(level + inner, index >> inner)
    node = NodeID(level, index)
    ids = [node]
    while node.level < fork.level:
        ids.append(node.sibling())
        node = node.parent()
    begin, end = fork.coverage()
    right = range_nodes(end, size)[::-1]
    first = len(ids)
    ids.extend(right)
    ids.extend(range_nodes(0, begin)[::-1])
    if not right:
        return ProofNodes(ids=tuple(ids))
    return ProofNodes(ids=tuple(ids), begin=first, end=first + len(right))


def _skip_first(nodes: ProofNodes) -> ProofNodes:
    """Drop the first node (the one being proven, which the verifier already has)."""
    if nodes.begin < nodes.end:
        return ProofNodes(ids=nodes.ids[1:], begin=nodes.begin - 1, end=nodes.end - 1)
    return ProofNodes(ids=nodes.ids[1:])
