"""RFC 9162 hashing, compact ranges, proof building and verification (hotline.shared.tlog)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from hotline.shared.tlog.compact import (
    CompactRange,
    NodeID,
    range_nodes,
    root_from_leaf_hashes,
)
from hotline.shared.tlog.errors import (
    HashSizeError,
    OutOfRangeError,
    ProofSizeError,
    RootMismatchError,
    StoredHashError,
    TlogError,
)
from hotline.shared.tlog.hashing import EMPTY_ROOT, hash_children, leaf_hash, node_hash
from hotline.shared.tlog.proof import (
    consistency_nodes,
    consistency_proof,
    inclusion_nodes,
    inclusion_proof,
)
from hotline.shared.tlog.verify import (
    root_from_consistency_proof,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

# Leaf inputs and roots of transparency-dev/merkle testonly/constants.go (Apache-2.0,
# commit 417fb0c314750d94e53942e9f92e79b6d35915db), the RFC 6962 reference tree.
REFERENCE_LEAVES = [
    bytes.fromhex(x)
    for x in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
REFERENCE_ROOTS = [
    bytes.fromhex(x)
    for x in (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]

MAX_SIZE = 300


class Tree:
    """A tree of MAX_SIZE leaves built once: every stored node, and the root of every size."""

    def __init__(self, size: int) -> None:
        self.leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
        self.stored: dict[NodeID, bytes] = {}
        self.roots = [EMPTY_ROOT]
        compact = CompactRange()
        for value in self.leaves:
            compact.append(value, self.stored.__setitem__)
            self.roots.append(compact.root())

    def get_hashes(self, nodes: Sequence[NodeID]) -> list[bytes]:
        return [self.stored[node] for node in nodes]


@pytest.fixture(scope="module")
def tree() -> Tree:
    return Tree(MAX_SIZE)


# RFC 9162 section 2.1 written out recursively: the reference our iterative code must match.
def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def rfc_root(leaves: Sequence[bytes]) -> bytes:
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(rfc_root(leaves[:k]), rfc_root(leaves[k:]))


def rfc_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if m < k:
        return rfc_path(m, leaves[:k]) + [rfc_root(leaves[k:])]
    return rfc_path(m - k, leaves[k:]) + [rfc_root(leaves[:k])]


def rfc_subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    if m == len(leaves):
        return [] if complete else [rfc_root(leaves)]
    k = _split(len(leaves))
    if m <= k:
        return rfc_subproof(m, leaves[:k], complete) + [rfc_root(leaves[k:])]
    return rfc_subproof(m - k, leaves[k:], False) + [rfc_root(leaves[:k])]


def test_hashing_known_answers() -> None:
    # transparency-dev/merkle rfc6962/rfc6962_test.go
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    assert leaf_hash(b"L123456").hex() == (
        "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    )
    assert hash_children(b"N123", b"N456").hex() == (
        "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    )


def test_node_hash_refuses_wrong_sizes() -> None:
    with pytest.raises(HashSizeError):
        node_hash(b"N123", b"N456")
    assert node_hash(EMPTY_ROOT, EMPTY_ROOT) == hash_children(EMPTY_ROOT, EMPTY_ROOT)


def test_reference_roots() -> None:
    leaves = [leaf_hash(x) for x in REFERENCE_LEAVES]
    compact = CompactRange()
    assert compact.root() == REFERENCE_ROOTS[0]
    for size in range(1, len(leaves) + 1):
        compact.append(leaves[size - 1])
        assert compact.root() == REFERENCE_ROOTS[size]
        assert root_from_leaf_hashes(leaves[:size]) == REFERENCE_ROOTS[size]
    assert root_from_leaf_hashes([]) == EMPTY_ROOT


def test_range_nodes() -> None:
    assert range_nodes(0, 0) == []
    assert range_nodes(0, 7) == [NodeID(2, 0), NodeID(1, 2), NodeID(0, 6)]
    # 0b110 .. 0b11101 decomposes into sizes 2, 8; 8, 4, 1 (compact/range.go's example).
    assert range_nodes(6, 29) == [
        NodeID(1, 3),
        NodeID(3, 1),
        NodeID(3, 2),
        NodeID(2, 6),
        NodeID(0, 28),
    ]
    for begin in range(0, 40):
        for end in range(begin, 40):
            nodes = range_nodes(begin, end)
            bounds = [begin] + [node.coverage()[1] for node in nodes]
            assert [node.coverage()[0] for node in nodes] == bounds[:-1]  # contiguous
            assert bounds[-1] == end
            for left, right in zip(nodes, nodes[1:], strict=False):  # minimal: none merge
                assert not (left.level == right.level and left.index % 2 == 0)
    with pytest.raises(OutOfRangeError):
        range_nodes(3, 2)


def test_compact_range_reports_every_stored_node_once(tree: Tree) -> None:
    expected = {
        NodeID(level, index)
        for level in range(MAX_SIZE.bit_length())
        for index in range(MAX_SIZE >> level)
    }
    assert set(tree.stored) == expected
    for node, value in tree.stored.items():
        begin, end = node.coverage()
        assert value == rfc_root(tree.leaves[begin:end])


def test_compact_range_resumes_from_stored_nodes(tree: Tree) -> None:
    for size in (0, 1, 5, 64, 255, 256, 299):
        compact = CompactRange.from_stored(size, tree.get_hashes)
        assert compact.root() == tree.roots[size]
        new: dict[NodeID, bytes] = {}
        compact.extend(tree.leaves[size:], new.__setitem__)
        assert compact.size == MAX_SIZE
        assert compact.root() == tree.roots[MAX_SIZE]
        assert all(tree.stored[node] == value for node, value in new.items())
        assert {n for n in tree.stored if n.coverage()[1] > size} == set(new)


def test_compact_range_contract() -> None:
    with pytest.raises(StoredHashError):
        CompactRange(3, [EMPTY_ROOT])
    with pytest.raises(HashSizeError):
        CompactRange(1, [b"short"])
    with pytest.raises(HashSizeError):
        CompactRange().append(b"short")
    with pytest.raises(OutOfRangeError):
        CompactRange(-1)
    with pytest.raises(StoredHashError):
        CompactRange.from_stored(3, lambda nodes: [EMPTY_ROOT])


def test_root_from_leaf_hashes_matches_rfc(tree: Tree) -> None:
    for size in range(0, 70):
        assert root_from_leaf_hashes(tree.leaves[:size]) == rfc_root(tree.leaves[:size])
    assert root_from_leaf_hashes(tree.leaves) == tree.roots[MAX_SIZE]
    with pytest.raises(HashSizeError):
        root_from_leaf_hashes([EMPTY_ROOT, b"x"])


def test_proofs_equal_rfc_definitions(tree: Tree) -> None:
    """Our node selection builds exactly RFC 9162's PATH and PROOF (sizes 1..64)."""
    for size in range(1, 65):
        leaves = tree.leaves[:size]
        for index in range(size):
            assert inclusion_proof(index, size, tree.get_hashes) == rfc_path(index, leaves)
        for size1 in range(1, size):
            want = rfc_subproof(size1, leaves, True)
            assert consistency_proof(size1, size, tree.get_hashes) == want


def test_every_proof_verifies_up_to_300(tree: Tree) -> None:
    """Every leaf of every tree size 1..300, and every older size, proves and verifies."""
    checked = 0
    for size in range(1, MAX_SIZE + 1):
        root = tree.roots[size]
        for index in range(size):
            proof = inclusion_proof(index, size, tree.get_hashes)
            verify_inclusion(index, size, tree.leaves[index], proof, root)
            checked += 1
        for size1 in range(1, size + 1):
            proof = consistency_proof(size1, size, tree.get_hashes)
            verify_consistency(size1, size, proof, tree.roots[size1], root)
            checked += 1
    assert checked == MAX_SIZE * (MAX_SIZE + 1)


def test_proofs_fail_against_other_trees(tree: Tree) -> None:
    for size in (1, 2, 7, 8, 9, 100, 256, 257):
        for index in {0, size // 2, size - 1}:
            proof = inclusion_proof(index, size, tree.get_hashes)
            other = tree.leaves[(index + 1) % MAX_SIZE]
            with pytest.raises(RootMismatchError):
                verify_inclusion(index, size, other, proof, tree.roots[size])
            with pytest.raises(RootMismatchError):
                verify_inclusion(index, size, tree.leaves[index], proof, tree.roots[size + 1])
        for size1 in {1, size // 2 or 1, size - 1 or 1}:
            proof = consistency_proof(size1, size, tree.get_hashes)
            with pytest.raises(RootMismatchError):
                verify_consistency(size1, size, proof, tree.roots[size1], tree.roots[size - 1])
            if size1 < size:
                with pytest.raises(RootMismatchError):
                    verify_consistency(size1, size, proof, tree.roots[size1 - 1], tree.roots[size])


def test_every_truncation_or_extension_is_refused(tree: Tree) -> None:
    size, index, size1 = 13, 6, 5
    root = tree.roots[size]
    proof = inclusion_proof(index, size, tree.get_hashes)
    for bad in (proof[:-1], proof + [EMPTY_ROOT], [EMPTY_ROOT] + proof):
        with pytest.raises(ProofSizeError):
            verify_inclusion(index, size, tree.leaves[index], bad, root)
    cproof = consistency_proof(size1, size, tree.get_hashes)
    for bad in (cproof[:-1], cproof + [EMPTY_ROOT], [], [EMPTY_ROOT] + cproof):
        with pytest.raises(ProofSizeError):
            verify_consistency(size1, size, bad, tree.roots[size1], root)
    with pytest.raises(HashSizeError):
        verify_inclusion(index, size, tree.leaves[index], [*proof[:-1], b"\x00" * 31], root)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 1), (5, 3), (-1, 4), (2**64, 2**64)])
def test_inclusion_preconditions(index: int, size: int) -> None:
    with pytest.raises(OutOfRangeError):
        inclusion_nodes(index, size)
    with pytest.raises(OutOfRangeError):
        root_from_inclusion_proof(index, size, EMPTY_ROOT, [])


@pytest.mark.parametrize(("size1", "size2"), [(0, 0), (0, 5), (6, 5), (-1, 3)])
def test_consistency_preconditions(size1: int, size2: int) -> None:
    with pytest.raises(OutOfRangeError):
        consistency_nodes(size1, size2)
    with pytest.raises(OutOfRangeError):
        root_from_consistency_proof(size1, size2, [], EMPTY_ROOT)


def test_equal_sizes() -> None:
    assert consistency_nodes(7, 7).ids == ()
    verify_consistency(7, 7, [], EMPTY_ROOT, EMPTY_ROOT)
    with pytest.raises(RootMismatchError):
        verify_consistency(7, 7, [], EMPTY_ROOT, leaf_hash(b""))
    with pytest.raises(ProofSizeError):
        verify_consistency(7, 7, [EMPTY_ROOT], EMPTY_ROOT, EMPTY_ROOT)


def test_node_selection_shapes() -> None:
    # Leaf 2 of 7 leaves: sibling leaf 3, node (1, 0), then the ephemeral [4, 7) folded from
    # (0, 6) and (1, 2).
    nodes = inclusion_nodes(2, 7)
    assert nodes.ids == (NodeID(0, 3), NodeID(1, 0), NodeID(0, 6), NodeID(1, 2))
    assert (nodes.begin, nodes.end) == (2, 4)
    # Power-of-two old size: its root is known, so the proof starts at its sibling.
    assert consistency_nodes(4, 8).ids == (NodeID(2, 1),)
    assert consistency_nodes(3, 4).ids == (NodeID(0, 2), NodeID(0, 3), NodeID(1, 0))


def test_bad_hash_source_is_refused(tree: Tree) -> None:
    with pytest.raises(StoredHashError):
        inclusion_proof(3, 10, lambda nodes: tree.get_hashes(nodes)[:-1])
    with pytest.raises(StoredHashError):
        consistency_proof(3, 10, lambda nodes: [b"x" for _ in nodes])


def test_errors_are_typed() -> None:
    for error in (HashSizeError, OutOfRangeError, ProofSizeError, StoredHashError):
        assert issubclass(error, TlogError)
    mismatch = RootMismatchError(expected=EMPTY_ROOT, calculated=leaf_hash(b""))
    assert isinstance(mismatch, TlogError)
    assert mismatch.expected == EMPTY_ROOT
