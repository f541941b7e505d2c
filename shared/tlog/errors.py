"""Typed errors of the transparency-log functions.

Every failure in `hotline.shared.tlog` raises a subclass of `TlogError`; no function answers
a failed check with False or None. Catch `TlogError` to refuse anything the log, a tile or a
note got wrong; catch a subclass to tell the reasons apart.

    TlogError
    ├── ProofError               a proof, or a request for one, is wrong
    │   ├── OutOfRangeError      index/size precondition broken (index >= size, size1 > size2 ...)
    │   ├── HashSizeError        a hash is not 32 bytes
    │   ├── ProofSizeError       a proof has the wrong number of hashes
    │   ├── RootMismatchError    the root computed from the proof is not the expected one
    │   └── StoredHashError      a hash source answered with the wrong count or size
    ├── NoteError                a signed note, key or signature is wrong
    │   ├── MalformedNoteError   the note breaks the signed-note syntax
    │   ├── MalformedKeyError    a verifier/signer key string or key name is malformed
    │   ├── AmbiguousKeyError    two different verifiers share a name and key id
    │   ├── InvalidSignatureError a known key's signature does not verify
    │   └── UnverifiedNoteError  no signature from a known key
    ├── CheckpointError          a checkpoint body breaks tlog-checkpoint
    └── TileError                a tile or entry-bundle path, or its data, is wrong
"""

from __future__ import annotations


class TlogError(Exception):
    """Root of every error raised by `hotline.shared.tlog`."""


class ProofError(TlogError):
    """A Merkle proof, or the request for one, is wrong."""


class OutOfRangeError(ProofError):
    """A precondition on indices or sizes is broken (e.g. not 0 <= index < size)."""


class HashSizeError(ProofError):
    """A hash that must be 32 bytes (SHA-256) is not."""


class ProofSizeError(ProofError):
    """A proof holds a different number of hashes than the sizes require."""


class RootMismatchError(ProofError):
    """The root computed from a proof differs from the expected root."""

    def __init__(self, expected: bytes, calculated: bytes) -> None:
        super().__init__(
            f"calculated root {calculated.hex()} does not match expected root {expected.hex()}"
        )
        self.expected = expected
        self.calculated = calculated


class StoredHashError(ProofError):
    """A stored-hash source returned the wrong number of hashes, or a hash of the wrong size."""


class NoteError(TlogError):
    """A signed note, a key string or a signature is wrong."""


class MalformedNoteError(NoteError):
    """The text breaks the C2SP signed-note syntax."""


class MalformedKeyError(NoteError):
    """A verifier key, signer key or key name is malformed or inconsistent."""


class AmbiguousKeyError(NoteError):
    """Two different verifiers were given for the same (name, key id)."""


class InvalidSignatureError(NoteError):
    """A signature from a known key does not verify: the whole note is refused."""


class UnverifiedNoteError(NoteError):
    """No signature from a known key is on the note."""


class CheckpointError(TlogError):
    """A checkpoint body breaks C2SP tlog-checkpoint."""


class TileError(TlogError):
    """A tile or entry-bundle path, or its contents, breaks C2SP tlog-tiles."""
