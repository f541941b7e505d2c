"""Pure transparency-log functions: RFC 9162 Merkle trees and the C2SP formats. No I/O.

One module per concern (after transparency-dev/merkle and the C2SP specifications):

- `errors`     – `TlogError` and its subclasses; every failed check raises one.
- `hashing`    – leaf hash SHA-256(0x00 || entry), node hash SHA-256(0x01 || l || r), empty root.
- `compact`    – `NodeID(level, index)` addressing, range decomposition, `CompactRange`
                 (append leaves, get the root and the new stored nodes), root from leaf hashes.
- `proof`      – which stored nodes an inclusion / consistency proof needs; building proofs
                 from a `get_hashes(nodes)` callable.
- `verify`     – verify inclusion and consistency proofs (compute the root, then compare).
- `note`       – C2SP signed notes with Ed25519 (keys, sign, strict open) and
                 tlog-cosignature/v1 (witness cosignatures).
- `checkpoint` – C2SP tlog-checkpoint bodies: strict parse and format, sign and open.
- `tiles`      – C2SP tlog-tiles: paths, tile geometry (which tiles and bundles a tree holds,
                 their widths), tile contents from stored hashes, node hashes from tiles,
                 entry bundles.

Ranges are half-open [begin, end); a tree of `size` leaves holds indices 0 .. size - 1.
"""
