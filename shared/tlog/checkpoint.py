"""C2SP tlog-checkpoint: the note text naming a log's tree head, parsed strictly.

    <origin>\\n
    <size, decimal, no leading zeros (0 for the empty tree), no sign>\\n
    <base64 of the 32-byte RFC 9162 root hash>\\n
    [<extension line, non-empty>\\n]...

No whitespace is trimmed, no '+', no leading zero, no non-ASCII digit: a checkpoint has one
spelling, so two logs' or witnesses' views can be compared as text. Signing and opening go
through `note`; `open_checkpoint` also requires the expected origin.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import CheckpointError
from .hashing import HASH_SIZE
from .note import Note, NoteSigner, NoteVerifier, decode_base64, open_note, sign_note

MAX_SIZE = 2**64 - 1
_SIZE = re.compile("0|[1-9][0-9]{0,19}")  # at most 20 digits: 2**64 - 1 fits


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's tree head: origin, size (number of leaves), root hash, extension lines.

    Construction checks the contract: non-empty origin and extension lines without newline,
    0 <= size <= 2**64 - 1, a 32-byte root hash.
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for line, what in ((self.origin, "origin"), *((x, "extension") for x in self.extensions)):
            if not line or "\n" in line:
                raise CheckpointError(f"{what} line must be non-empty and one line: {line!r}")
        if not 0 <= self.size <= MAX_SIZE:
            raise CheckpointError(f"tree size {self.size} out of range")
        if len(self.root_hash) != HASH_SIZE:
            raise CheckpointError(f"root hash has {len(self.root_hash)} bytes, want {HASH_SIZE}")


def format_checkpoint(checkpoint: Checkpoint) -> str:
    """Return the note text (body) of `checkpoint`, ending in a newline."""
    root = base64.b64encode(checkpoint.root_hash).decode()
    lines = [checkpoint.origin, str(checkpoint.size), root, *checkpoint.extensions]
    return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint note text strictly; raise CheckpointError on any deviation.

    Requires at least three lines, each ending in a newline, and the spelling above.
    """
    if not text.endswith("\n"):
        raise CheckpointError("checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError(f"checkpoint needs 3 lines, got {len(lines)}")
    origin, size, root, *extensions = lines
    if not _SIZE.fullmatch(size):
        raise CheckpointError(f"tree size {size!r} is not a canonical decimal")
    root_hash = decode_base64(root, CheckpointError, "root hash")
    return Checkpoint(origin, int(size), root_hash, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[NoteSigner]) -> str:
    """Return the signed note of `checkpoint`. Requires at least one signer."""
    return sign_note(format_checkpoint(checkpoint), signers)


def open_checkpoint(
    message: bytes | str, origin: str, verifiers: Iterable[NoteVerifier]
) -> tuple[Checkpoint, Note]:
    """Verify a signed checkpoint from log `origin` and parse its text.

    Raises the `note` errors when no known key verifies it, and CheckpointError when the
    text is not a checkpoint or names another origin.
    """
    note = open_note(message, verifiers)
    checkpoint = parse_checkpoint(note.text)
    if checkpoint.origin != origin:
        raise CheckpointError(f"checkpoint origin {checkpoint.origin!r}, want {origin!r}")
    return checkpoint, note
