"""C2SP signed notes (c2sp.org/signed-note) with Ed25519, and tlog-cosignature/v1.

A signed note is a UTF-8 text ending in a newline, a blank line, then one or more lines
`— <key name> base64(key id (4 bytes, big-endian) || signature)` (em dash U+2014, space).
The key id of an Ed25519 key is SHA-256(name || 0x0A || 0x01 || public key)[:4]; a verifier
key is written `name+hex(key id)+base64(0x01 || public key)` and a signer key
`PRIVATE+KEY+name+hex(key id)+base64(0x01 || seed)`.

A cosignature (c2sp.org/tlog-cosignature, Ed25519 `cosignature/v1`) is a note signature by
a witness with signature type 0x04: its key id is SHA-256(name || 0x0A || 0x04 || public
key)[:4], and it signs `cosignature/v1\\ntime <t>\\n` followed by the whole checkpoint text;
the signature bytes are the 8-byte big-endian timestamp then the 64-byte Ed25519 signature.

Parsing is strict, as in golang.org/x/mod/sumdb/note: no control characters but newline,
the last blank line splits text from signatures, every signature line is well formed,
base64 is canonical, at most 100 signatures. Signatures from unknown (name, key id) pairs
are kept aside unverified; a known key whose signature fails refuses the whole note; a note
with no verified signature is refused. Ed25519 itself is the `cryptography` package's.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import ClassVar, Protocol, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import (
    AmbiguousKeyError,
    InvalidSignatureError,
    MalformedKeyError,
    MalformedNoteError,
    TlogError,
    UnverifiedNoteError,
)

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
MAX_SIGNATURES = 100
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
ED25519_KEY_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
TIMESTAMP_SIZE = 8
MAX_TIMESTAMP = 2**63 - 1

_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")
_HEX_KEY_ID = re.compile("[0-9a-f]{8}")


class NoteVerifier(Protocol):
    """Checks signatures of one (name, key id)."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def verify(self, text: bytes, signature: bytes) -> None:
        """Return if `signature` (key id stripped) signs `text`; else InvalidSignatureError."""


class NoteSigner(Protocol):
    """Signs note texts as one (name, key id)."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def sign(self, text: bytes) -> bytes:
        """Return the signature bytes (without the key id) over `text`."""


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: key name, key id, and the signature bytes after the key id."""

    name: str
    key_id: int
    signature: bytes

    def line(self) -> str:
        """Return the signature line `— <name> <base64(key id || signature)>\\n`."""
        raw = self.key_id.to_bytes(4, "big") + self.signature
        return f"{SIGNATURE_PREFIX}{self.name} {base64.b64encode(raw).decode()}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """An opened note: its text, the signatures verified, and those from unknown keys."""

    text: str
    signatures: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...]


def key_id(name: str, alg: int, public_key: bytes) -> int:
    """Return SHA-256(name || 0x0A || alg || public_key)[:4] as a big-endian uint32.

    Requires a valid key name and 0 <= alg <= 255.
    """
    check_key_name(name)
    if not 0 <= alg <= 0xFF:
        raise MalformedKeyError(f"signature type {alg} is not one byte")
    digest = sha256(name.encode() + b"\n" + bytes([alg]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def check_key_name(name: str) -> str:
    """Return `name` if it is a valid key name: non-empty, no spaces, no '+', no controls."""
    if not name or "+" in name or any(ch.isspace() or ch < " " for ch in name):
        raise MalformedKeyError(f"invalid key name {name!r}")
    return name


def decode_base64(text: str, error: type[TlogError], what: str) -> bytes:
    """Decode canonical standard base64 (RFC 4648 section 4, padded); else raise `error`."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise error(f"{what} is not valid base64") from None
    if base64.b64encode(raw).decode() != text:
        raise error(f"{what} is not canonical base64")
    return raw


def format_verifier_key(name: str, alg: int, public_key: bytes) -> str:
    """Return the vkey `name+hex(key id)+base64(alg || public_key)`."""
    key_hash = key_id(name, alg, public_key)
    return f"{name}+{key_hash:08x}+{base64.b64encode(bytes([alg]) + public_key).decode()}"


@dataclass(frozen=True, slots=True)
class _VerifierKey:
    """A named Ed25519 public key of signature type ALG (shared by both verifier kinds)."""

    ALG: ClassVar[int]
    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if len(self.public_key) != ED25519_KEY_SIZE:
            raise MalformedKeyError(f"Ed25519 public key has {len(self.public_key)} bytes")

    @property
    def key_id(self) -> int:
        """The note key id of this key for its signature type."""
        return key_id(self.name, self.ALG, self.public_key)

    def vkey(self) -> str:
        """Return this key as a verifier key string."""
        return format_verifier_key(self.name, self.ALG, self.public_key)


@dataclass(frozen=True, slots=True)
class Ed25519Verifier(_VerifierKey):
    """Verifies Ed25519 note signatures (signature type 0x01) of one named key."""

    ALG: ClassVar[int] = ALG_ED25519

    def verify(self, text: bytes, signature: bytes) -> None:
        """Return if `signature` is this key's Ed25519 signature of `text`, else raise."""
        _ed25519_verify(self.public_key, text, signature, self.name)


@dataclass(frozen=True, slots=True)
class CosignatureVerifier(_VerifierKey):
    """Verifies Ed25519 cosignature/v1 signatures (signature type 0x04) of one witness."""

    ALG: ClassVar[int] = ALG_COSIGNATURE_V1

    @classmethod
    def from_ed25519(cls, verifier: Ed25519Verifier) -> CosignatureVerifier:
        """Use a plain Ed25519 note key (type 0x01) as a cosigner key (type 0x04)."""
        return cls(verifier.name, verifier.public_key)

    def verify(self, text: bytes, signature: bytes) -> None:
        """Return if `signature` (timestamp || Ed25519 sig) cosigns `text`, else raise."""
        if len(signature) != TIMESTAMP_SIZE + ED25519_SIGNATURE_SIZE:
            raise InvalidSignatureError(f"cosignature by {self.name} has {len(signature)} bytes")
        timestamp = int.from_bytes(signature[:TIMESTAMP_SIZE], "big")
        if timestamp > MAX_TIMESTAMP:
            raise InvalidSignatureError(f"cosignature by {self.name} has timestamp {timestamp}")
        message = _cosignature_message(text, timestamp)
        _ed25519_verify(self.public_key, message, signature[TIMESTAMP_SIZE:], self.name)


class _SignerKey:
    """A named Ed25519 private key of signature type ALG. Never shows its seed in repr."""

    ALG: ClassVar[int]
    __slots__ = ("_key", "_name")

    def __init__(self, name: str, seed: bytes) -> None:
        """Requires a valid key name and a 32-byte Ed25519 seed."""
        check_key_name(name)
        if len(seed) != ED25519_KEY_SIZE:
            raise MalformedKeyError(f"Ed25519 seed has {len(seed)} bytes")
        self._name = name
        self._key = Ed25519PrivateKey.from_private_bytes(seed)

    @classmethod
    def generate(cls, name: str) -> Self:
        """Return a key with a fresh random seed."""
        return cls(name, Ed25519PrivateKey.generate().private_bytes_raw())

    @property
    def name(self) -> str:
        """The key name."""
        return self._name

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        return self._key.public_key().public_bytes_raw()

    @property
    def key_id(self) -> int:
        """The note key id of this key for its signature type."""
        return key_id(self._name, self.ALG, self.public_key)

    def skey(self) -> str:
        """Return `PRIVATE+KEY+name+hex(key id)+base64(type || seed)`: a secret, never log it."""
        material = base64.b64encode(bytes([self.ALG]) + self._key.private_bytes_raw()).decode()
        return f"PRIVATE+KEY+{self._name}+{self.key_id:08x}+{material}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r}, key_id={self.key_id:08x})"


class Ed25519Signer(_SignerKey):
    """Signs notes with an Ed25519 key (signature type 0x01)."""

    ALG: ClassVar[int] = ALG_ED25519
    __slots__ = ()

    def verifier(self) -> Ed25519Verifier:
        """Return the verifier of this key."""
        return Ed25519Verifier(self._name, self.public_key)

    def sign(self, text: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of `text`."""
        return self._key.sign(text)


class Cosigner(_SignerKey):
    """A witness key producing Ed25519 cosignature/v1 signatures (signature type 0x04)."""

    ALG: ClassVar[int] = ALG_COSIGNATURE_V1
    __slots__ = ()

    def verifier(self) -> CosignatureVerifier:
        """Return the verifier of this cosigner."""
        return CosignatureVerifier(self._name, self.public_key)

    def cosign(self, text: str, timestamp: int) -> NoteSignature:
        """Return the cosignature of note text `text` at POSIX time `timestamp`.

        Requires 0 <= timestamp <= 2**63 - 1 and a note text (see `format_note`).
        """
        message = cosignature_message(text, timestamp)
        signature = timestamp.to_bytes(TIMESTAMP_SIZE, "big") + self._key.sign(message)
        return NoteSignature(self._name, self.key_id, signature)


def cosignature_message(text: str, timestamp: int) -> bytes:
    """Return the bytes a cosignature/v1 signs: header, time line, then the note text.

    Requires 0 <= timestamp <= 2**63 - 1 and a note text ending in a newline.
    """
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise MalformedNoteError(f"timestamp {timestamp} out of range")
    return _cosignature_message(_encode_text(text), timestamp)


def cosignature_timestamp(signature: NoteSignature) -> int:
    """Return the POSIX timestamp inside a cosignature/v1 signature (not verified)."""
    if len(signature.signature) != TIMESTAMP_SIZE + ED25519_SIGNATURE_SIZE:
        raise MalformedNoteError(f"not a cosignature: {len(signature.signature)} bytes")
    return int.from_bytes(signature.signature[:TIMESTAMP_SIZE], "big")


def parse_verifier_key(vkey: str) -> Ed25519Verifier | CosignatureVerifier:
    """Parse `name+hex(key id)+base64(type || key)`; type 0x01 or 0x04, id must match."""
    fields = vkey.split("+", 2)
    if len(fields) != 3:
        raise MalformedKeyError("a verifier key has 3 '+'-separated parts")
    name, key_hash, alg, public_key = _key_fields(*fields)
    verifier: Ed25519Verifier | CosignatureVerifier
    if alg == ALG_ED25519:
        verifier = Ed25519Verifier(name, public_key)
    elif alg == ALG_COSIGNATURE_V1:
        verifier = CosignatureVerifier(name, public_key)
    else:
        raise MalformedKeyError(f"unknown signature type {alg:#04x}")
    if verifier.key_id != key_hash:
        raise MalformedKeyError(f"key id {key_hash:08x} does not match key {name}")
    return verifier


def parse_signer_key(skey: str) -> Ed25519Signer | Cosigner:
    """Parse `PRIVATE+KEY+name+hex(key id)+base64(type || seed)`; type 0x01 or 0x04."""
    fields = skey.split("+", 4)
    if len(fields) != 5 or fields[:2] != ["PRIVATE", "KEY"]:
        raise MalformedKeyError("a signer key is PRIVATE+KEY+ and 3 '+'-separated parts")
    name, key_hash, alg, seed = _key_fields(*fields[2:])
    signer: Ed25519Signer | Cosigner
    if alg == ALG_ED25519:
        signer = Ed25519Signer(name, seed)
    elif alg == ALG_COSIGNATURE_V1:
        signer = Cosigner(name, seed)
    else:
        raise MalformedKeyError(f"unknown signature type {alg:#04x}")
    if signer.key_id != key_hash:
        raise MalformedKeyError(f"key id {key_hash:08x} does not match key {name}")
    return signer


def signature_for(text: str, signer: NoteSigner) -> NoteSignature:
    """Return `signer`'s signature line over note text `text` (see `format_note`)."""
    signature = signer.sign(_encode_text(text))
    return NoteSignature(check_key_name(signer.name), signer.key_id, signature)


def sign_note(text: str, signers: Sequence[NoteSigner]) -> str:
    """Return `text` signed by every signer. Requires a note text and at least one signer."""
    return format_note(text, [signature_for(text, signer) for signer in signers])


def format_note(text: str, signatures: Iterable[NoteSignature]) -> str:
    """Return the signed note: `text`, a blank line, one line per signature.

    Requires `text` to end in a newline and hold no control character but newline, and
    1 to 100 signatures; a repeated (name, key id) keeps its first signature only.
    """
    _encode_text(text)
    lines: dict[tuple[str, int], str] = {}
    for signature in signatures:
        check_key_name(signature.name)
        lines.setdefault((signature.name, signature.key_id), signature.line())
    if not 0 < len(lines) <= MAX_SIGNATURES:
        raise MalformedNoteError(f"a note needs 1 to {MAX_SIGNATURES} signatures, got {len(lines)}")
    return text + "\n" + "".join(lines.values())


def parse_note(message: bytes | str) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text and signatures, checking syntax only (no crypto)."""
    note = _decode_note(message)
    split = note.rfind("\n\n")
    if split < 0:
        raise MalformedNoteError("no blank line before the signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block.endswith("\n"):
        raise MalformedNoteError("the note does not end with a signature line and newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNoteError(f"more than {MAX_SIGNATURES} signatures")
    return text, [_parse_signature_line(line) for line in lines]


def open_note(message: bytes | str, verifiers: Iterable[NoteVerifier]) -> Note:
    """Parse a signed note and verify it against the known `verifiers`.

    Raises MalformedNoteError on bad syntax, AmbiguousKeyError when two verifiers share a
    (name, key id), InvalidSignatureError when a known key's signature fails, and
    UnverifiedNoteError when no known key signed. Unknown keys are ignored (kept aside).
    """
    known = _verifier_map(verifiers)
    text, signatures = parse_note(message)
    encoded = text.encode()
    verified: dict[tuple[str, int], NoteSignature] = {}
    unverified: dict[NoteSignature, None] = {}
    for signature in signatures:
        ident = (signature.name, signature.key_id)
        verifier = known.get(ident)
        if verifier is None:
            unverified.setdefault(signature)
        elif ident not in verified:
            verifier.verify(encoded, signature.signature)
            verified[ident] = signature
    if not verified:
        raise UnverifiedNoteError("no signature from a known key")
    return Note(text, tuple(verified.values()), tuple(unverified))


def _verifier_map(verifiers: Iterable[NoteVerifier]) -> dict[tuple[str, int], NoteVerifier]:
    """Index verifiers by (name, key id); refuse two different ones under one index."""
    known: dict[tuple[str, int], NoteVerifier] = {}
    for verifier in verifiers:
        ident = (verifier.name, verifier.key_id)
        if known.setdefault(ident, verifier) != verifier:
            raise AmbiguousKeyError(f"two verifiers for {verifier.name}+{verifier.key_id:08x}")
    return known


def _parse_signature_line(line: str) -> NoteSignature:
    """Parse `— <name> <base64(key id || signature)>` (no newline)."""
    if not line.startswith(SIGNATURE_PREFIX):
        raise MalformedNoteError("a signature line must start with an em dash and a space")
    name, _, sig64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
    try:
        check_key_name(name)
    except MalformedKeyError:
        raise MalformedNoteError(f"invalid key name {name!r} in a signature line") from None
    raw = decode_base64(sig64, MalformedNoteError, "signature")
    if len(raw) < 5:
        raise MalformedNoteError("a signature must hold a key id and at least one byte")
    return NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:])


def _decode_note(message: bytes | str) -> str:
    """Return the note as text: valid UTF-8, no control character but newline."""
    if isinstance(message, bytes):
        try:
            message = message.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedNoteError("the note is not valid UTF-8") from None
    _encode_text(message, require_final_newline=False)
    return message


def _encode_text(text: str, require_final_newline: bool = True) -> bytes:
    """Return `text` as UTF-8 after checking it is a note text (else MalformedNoteError)."""
    if require_final_newline and not text.endswith("\n"):
        raise MalformedNoteError("note text must end with a newline")
    if _CONTROL.search(text):
        raise MalformedNoteError("note holds a control character other than newline")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedNoteError("note text is not encodable as UTF-8") from None


def _key_fields(name: str, key_hash: str, key64: str) -> tuple[str, int, int, bytes]:
    """Check a key string's name, hex key id and base64(type || 32-byte Ed25519 material).

    Returns (name, key id, type, material); the caller checks the key id against the key.
    """
    check_key_name(name)
    if not _HEX_KEY_ID.fullmatch(key_hash):
        raise MalformedKeyError("the key id must be 8 lowercase hex digits")
    raw = decode_base64(key64, MalformedKeyError, "key")
    if len(raw) != 1 + ED25519_KEY_SIZE:
        raise MalformedKeyError(f"key material has {len(raw)} bytes, want 1 + 32")
    return name, int(key_hash, 16), raw[0], raw[1:]


def _cosignature_message(text: bytes, timestamp: int) -> bytes:
    """Return b"cosignature/v1\\ntime <timestamp>\\n" + text."""
    return b"cosignature/v1\ntime %d\n" % timestamp + text


def _ed25519_verify(public_key: bytes, message: bytes, signature: bytes, name: str) -> None:
    """Raise InvalidSignatureError unless `signature` is a valid Ed25519 signature."""
    if len(signature) != ED25519_SIGNATURE_SIZE:
        raise InvalidSignatureError(f"signature by {name} has {len(signature)} bytes")
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        raise InvalidSignatureError(f"signature by {name} does not verify") from None
