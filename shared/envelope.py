"""The versioned report envelope (DESIGN.md "Data classes" and "Cryptography").

One envelope carries one data class (``content``, ``identity``, or one ``attachment`` of the
content: a photo or voice note, plaintext = ASCII media type, ``\n``, the file's bytes) of one
case, for a fixed set of recipients. Its JSON shape, version 1 (all binary values standard
padded base64)::

    {
      "version": 1,
      "kind": "content",                      # or "identity"
      "case_id": "<case id>",
      "recipients": {"<key id>": "<base64 sealed box of the data key, 80 bytes>", ...},
      "nonce": "<base64, 24 bytes>",
      "ciphertext": "<base64, padded plaintext + 16-byte tag>"
    }

In Python an envelope crossing a boundary (an API body or response, an event's data) is an
:class:`Envelope` model: its validation IS :func:`validate_envelope_shape`, and its JSON is the
envelope's JSON above, field for field.

Construction:

1. The plaintext is padded with ISO/IEC 7816-4 padding (libsodium ``sodium_pad``: one 0x80
   byte, then zeros) up to the smallest size bucket that holds it plus that one byte. Buckets
   are the powers of two from 1 KiB to 64 KiB (:data:`PADDED_SIZES`), so a ciphertext reveals
   only which of seven buckets the report fell into; plaintexts of at most
   :data:`MAX_PLAINTEXT_BYTES` (64 KiB - 1) are accepted. Attachments use seven buckets from
   64 KiB to 4 MiB (:data:`ATTACHMENT_PADDED_SIZES`), at most :data:`MAX_ATTACHMENT_BYTES`.
   Powers of two (rather than Padme) because reports are short text where the waste is a few
   KiB, and seven buckets leak less than Padme's finer steps; 7816-4 because libsodium.js has
   the same ``pad``/``unpad``.
2. A random 32-byte data key encrypts it with XChaCha20-Poly1305 (IETF) under a random
   24-byte nonce. The associated data is :func:`associated_data`: the RFC 8785 canonical JSON
   of ``{"version", "kind", "case_id", "routing", "recipients": sorted key ids}``. Routing
   metadata is not inside the envelope; it is stored in plaintext beside it and bound here,
   so opening needs the case id and routing the caller believes in, and moving an envelope to
   another case, editing its routing, or adding or removing a recipient makes it fail.
3. The data key is wrapped for each recipient with a libsodium sealed box to its X25519
   public key, listed under the key id derived from that key (a mismatch is refused).

Limits of what this proves (inherent to anonymous submission, where the sender has no key):
whoever can rewrite stored data can replace a whole envelope by a fresh one with the same
associated data, and any recipient knows the data key and could forge a ciphertext other
recipients would accept. The audit log records :func:`envelope_hash` at submission so either
is detectable.

:func:`open_envelope` fails closed: every failure raises a typed :class:`EnvelopeError`,
and it never returns unauthenticated bytes. The no-JavaScript path calls
:func:`seal_envelope` on the server, in memory. The functions that read an envelope take an
:class:`Envelope` or its JSON object (as read from the store or the wire).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final, Literal, TypeAlias, get_args

import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.utils
import rfc8785
from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

from .canonical import canonical_json
from .keys import (
    KEY_BYTES,
    CryptoError,
    KeyFormatError,
    b64decode_strict,
    b64encode,
    check_key_id,
    key_id,
    public_key_of,
)

__all__ = [
    "ENVELOPE_VERSION",
    "Envelope",
    "ATTACHMENT_PADDED_SIZES",
    "MAX_ATTACHMENT_BYTES",
    "MAX_CASE_ID_CHARS",
    "MAX_PLAINTEXT_BYTES",
    "MAX_RECIPIENTS",
    "PADDED_SIZES",
    "EnvelopeError",
    "EnvelopeFormatError",
    "EnvelopeIntegrityError",
    "EnvelopeKind",
    "EnvelopeLike",
    "KeyIdMismatch",
    "NotARecipient",
    "PlaintextTooLarge",
    "associated_data",
    "envelope_hash",
    "envelope_recipients",
    "open_envelope",
    "padded_size",
    "seal_envelope",
    "validate_envelope_shape",
]

EnvelopeKind = Literal["content", "identity", "attachment"]

ENVELOPE_VERSION: Final = 1
PADDED_SIZES: Final[tuple[int, ...]] = tuple(1024 << i for i in range(7))  # 1 KiB .. 64 KiB
MAX_PLAINTEXT_BYTES: Final = PADDED_SIZES[-1] - 1  # padding always adds at least one byte
# Attachments (photos, voice notes) are larger: 64 KiB .. 4 MiB, seven buckets again.
ATTACHMENT_PADDED_SIZES: Final[tuple[int, ...]] = tuple((64 * 1024) << i for i in range(7))
MAX_ATTACHMENT_BYTES: Final = ATTACHMENT_PADDED_SIZES[-1] - 1
MAX_RECIPIENTS: Final = 64
MAX_CASE_ID_CHARS: Final = 128

_KINDS: Final[frozenset[str]] = frozenset(get_args(EnvelopeKind))
_FIELDS: Final = frozenset({"version", "kind", "case_id", "recipients", "nonce", "ciphertext"})
_NONCE_BYTES: Final = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
_TAG_BYTES: Final = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_ABYTES
_DATA_KEY_BYTES: Final = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_KEYBYTES
_WRAPPED_KEY_BYTES: Final = _DATA_KEY_BYTES + nacl.bindings.crypto_box_SEALBYTES


def _buckets(kind: str) -> tuple[int, ...]:
    return ATTACHMENT_PADDED_SIZES if kind == "attachment" else PADDED_SIZES


def _ciphertext_sizes(kind: str) -> frozenset[int]:
    return frozenset(size + _TAG_BYTES for size in _buckets(kind))


class EnvelopeError(CryptoError):
    """Base of envelope failures: bad input to seal, or an envelope that cannot be opened."""


class EnvelopeFormatError(EnvelopeError):
    """The envelope (or an argument) does not have the version-1 shape."""


class EnvelopeIntegrityError(EnvelopeError):
    """Authentication failed: tampered, or opened with another case id, routing or key list."""


class NotARecipient(EnvelopeError):
    """The given private key is not among the envelope's recipients."""


class KeyIdMismatch(EnvelopeError):
    """A recipient key id is not the id derived from the public key given with it."""


class PlaintextTooLarge(EnvelopeError):
    """The plaintext exceeds :data:`MAX_PLAINTEXT_BYTES`."""


class Envelope(BaseModel):
    """A version-1 envelope as a typed value, well-formed by construction.

    Validating one runs :func:`validate_envelope_shape` on the raw value, the one definition
    of the shape; a failure is a pydantic ValidationError of type ``envelope_shape`` with that
    function's message. ``model_dump()`` is the envelope's JSON object, field for field and in
    the same order, so an envelope reads and writes the same bytes as before it was typed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    kind: EnvelopeKind
    case_id: str
    recipients: dict[str, str]  # key id -> base64 sealed box of the data key
    nonce: str
    ciphertext: str

    @model_validator(mode="before")
    @classmethod
    def _well_formed(cls, data: Any) -> Any:
        if isinstance(data, Envelope):
            return data
        try:
            validate_envelope_shape(data)
        except EnvelopeError as exc:
            raise PydanticCustomError("envelope_shape", "{reason}", {"reason": str(exc)}) from None
        return data


EnvelopeLike: TypeAlias = Envelope | Mapping[str, Any]
"""What the functions reading an envelope accept: the model, or its JSON object."""


def _json_of(envelope: EnvelopeLike) -> Mapping[str, Any]:
    return envelope.model_dump() if isinstance(envelope, Envelope) else envelope


def _checked_json_of(envelope: EnvelopeLike) -> Mapping[str, Any]:
    """The envelope's JSON object, its shape checked unless it is an `Envelope` (checked when
    it was built: the audit log hashes every envelope of every event, so once is enough)."""
    if isinstance(envelope, Envelope):
        return envelope.model_dump()
    validate_envelope_shape(envelope)
    return envelope


def padded_size(length: int, kind: EnvelopeKind = "content") -> int:
    """Return the bucket a plaintext of ``length`` bytes of ``kind`` is padded to.

    Requires ``0 <= length <`` the kind's largest bucket (MAX_PLAINTEXT_BYTES, or
    MAX_ATTACHMENT_BYTES for attachments); raises PlaintextTooLarge above it.
    """
    if length < 0:
        raise ValueError("length must be >= 0")
    buckets = _buckets(kind)
    for size in buckets:
        if length < size:  # strictly: the 0x80 marker needs one byte
            return size
    raise PlaintextTooLarge(f"plaintext is {length} bytes; at most {buckets[-1] - 1}")


def _check_kind(kind: object) -> EnvelopeKind:
    if kind == "content":
        return "content"
    if kind == "identity":
        return "identity"
    if kind == "attachment":
        return "attachment"
    raise EnvelopeFormatError(f"kind must be one of {sorted(_KINDS)}")


def _check_case_id(case_id: object) -> str:
    if not isinstance(case_id, str) or not 0 < len(case_id) <= MAX_CASE_ID_CHARS:
        raise EnvelopeFormatError(f"case id must be a string of 1 to {MAX_CASE_ID_CHARS} chars")
    if not case_id.isprintable():
        raise EnvelopeFormatError("case id must not contain control characters")
    return case_id


def _check_recipient_ids(recipient_ids: list[str]) -> None:
    if not recipient_ids:
        raise EnvelopeFormatError("an envelope needs at least one recipient")
    if len(recipient_ids) > MAX_RECIPIENTS:
        raise EnvelopeFormatError(f"an envelope has at most {MAX_RECIPIENTS} recipients")
    for rid in recipient_ids:
        try:
            check_key_id(rid)
        except KeyFormatError as exc:
            raise EnvelopeFormatError(f"bad recipient key id: {exc}") from exc


def _decode(value: object, field: str) -> bytes:
    if not isinstance(value, str):
        raise EnvelopeFormatError(f"{field} must be a base64 string")
    try:
        return b64decode_strict(value)
    except KeyFormatError as exc:
        raise EnvelopeFormatError(f"{field}: {exc}") from exc


def associated_data(
    *, kind: EnvelopeKind, case_id: str, routing: Mapping[str, Any], recipient_ids: list[str]
) -> bytes:
    """Return the AEAD associated data binding an envelope to its case, routing and recipients.

    It is the RFC 8785 canonical JSON (UTF-8) of::

        {"case_id": case_id, "kind": kind, "recipients": sorted(recipient_ids),
         "routing": routing, "version": 1}

    ``routing`` must be JSON data (str keys; str, bool, None, int within +-(2^53-1), finite
    float, lists, objects); raises EnvelopeFormatError otherwise or on a bad kind, case id or
    key id list. The browser computes the same bytes, so keep routing to strings, integers,
    booleans and lists of those.
    """
    _check_recipient_ids(recipient_ids)
    if len(set(recipient_ids)) != len(recipient_ids):
        raise EnvelopeFormatError("recipient key ids must be distinct")
    if not isinstance(routing, Mapping):
        raise EnvelopeFormatError("routing must be a mapping")
    document = {
        "version": ENVELOPE_VERSION,
        "kind": _check_kind(kind),
        "case_id": _check_case_id(case_id),
        "routing": dict(routing),
        "recipients": sorted(recipient_ids),
    }
    try:
        return canonical_json(document)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise EnvelopeFormatError(f"routing is not canonicalisable JSON: {exc}") from exc


def seal_envelope(
    plaintext: bytes,
    *,
    case_id: str,
    kind: EnvelopeKind,
    routing: Mapping[str, Any],
    recipients: Mapping[str, bytes],
) -> Envelope:
    """Encrypt ``plaintext`` for ``recipients`` (key id -> X25519 public key); return the
    version-1 envelope (see the module docstring).

    Requires: ``plaintext`` bytes of at most MAX_PLAINTEXT_BYTES (else PlaintextTooLarge);
    1 to MAX_RECIPIENTS recipients, each key id equal to ``key_id`` of its public key (else
    KeyIdMismatch; a malformed or low-order key gives EnvelopeFormatError); a valid kind, case
    id and canonicalisable routing (else EnvelopeFormatError).
    """
    if not isinstance(plaintext, bytes):
        raise EnvelopeFormatError("plaintext must be bytes")
    size = padded_size(len(plaintext), _check_kind(kind))
    if not isinstance(recipients, Mapping):
        raise EnvelopeFormatError("recipients must map key ids to public keys")
    recipient_ids = list(recipients)
    _check_recipient_ids(recipient_ids)  # before sorting: key ids must be str
    recipient_ids.sort()
    aad = associated_data(kind=kind, case_id=case_id, routing=routing, recipient_ids=recipient_ids)
    for rid in recipient_ids:
        try:
            derived = key_id(recipients[rid])
        except KeyFormatError as exc:
            raise EnvelopeFormatError(f"public key of recipient {rid}: {exc}") from exc
        if derived != rid:
            raise KeyIdMismatch(f"key id {rid} is not the id of the public key given with it")

    data_key = nacl.utils.random(_DATA_KEY_BYTES)
    nonce = nacl.utils.random(_NONCE_BYTES)
    padded = nacl.bindings.sodium_pad(plaintext, size)
    ciphertext = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        padded, aad, nonce, data_key
    )
    wrapped = {
        rid: b64encode(
            nacl.public.SealedBox(nacl.public.PublicKey(recipients[rid])).encrypt(data_key)
        )
        for rid in recipient_ids
    }
    # Built from parts checked above, so pydantic's constructor for trusted data: validating
    # would decode every field again (a sixth of a seal; tests/unit/test_envelope.py
    # test_sealing_gives_the_model_whose_json_is_the_envelope_json: a sealed one validates).
    return Envelope.model_construct(
        version=ENVELOPE_VERSION,
        kind=kind,
        case_id=case_id,
        recipients=wrapped,
        nonce=b64encode(nonce),
        ciphertext=b64encode(ciphertext),
    )


def validate_envelope_shape(
    envelope: object,
    *,
    kind: EnvelopeKind | None = None,
    case_id: str | None = None,
) -> None:
    """Check that ``envelope`` is a well-formed version-1 envelope; raise EnvelopeFormatError.

    Checks, without any key: exactly the six fields; ``version`` is the integer 1; a known
    kind; a case id of 1 to MAX_CASE_ID_CHARS printable characters; 1 to MAX_RECIPIENTS
    recipients with well-formed key ids, each wrapping exactly a sealed 32-byte key; a 24-byte
    nonce; a ciphertext whose length is a padding bucket plus the tag (so an unpadded
    ciphertext from a faulty client is refused). When ``kind`` or ``case_id`` is given, the
    envelope must carry exactly that value (EnvelopeFormatError, resp. EnvelopeIntegrityError
    for a case id belonging to another case). It cannot tell whether decryption would succeed.
    An :class:`Envelope` is checked as its JSON object.
    """
    if isinstance(envelope, Envelope):
        envelope = envelope.model_dump()
    if not isinstance(envelope, Mapping):
        raise EnvelopeFormatError("an envelope is a JSON object")
    fields = set(envelope)
    if fields != _FIELDS:
        # Names the missing fields (ours), counts the unexpected ones (never echoes input).
        missing, extra = sorted(_FIELDS - fields), len(fields - _FIELDS)
        raise EnvelopeFormatError(f"envelope fields: missing {missing}, {extra} unexpected")
    version = envelope["version"]
    if type(version) is not int or version != ENVELOPE_VERSION:
        raise EnvelopeFormatError(f"unsupported envelope version; expected {ENVELOPE_VERSION}")
    found_kind = _check_kind(envelope["kind"])
    if kind is not None and found_kind != kind:
        raise EnvelopeFormatError(f"expected a {kind} envelope, got {found_kind}")
    found_case = _check_case_id(envelope["case_id"])
    if case_id is not None and found_case != case_id:
        raise EnvelopeIntegrityError("the envelope belongs to another case")
    recipients = envelope["recipients"]
    if not isinstance(recipients, Mapping):
        raise EnvelopeFormatError("recipients must be an object of key id -> wrapped key")
    _check_recipient_ids(list(recipients))
    for rid, wrapped in recipients.items():
        if len(_decode(wrapped, f"wrapped key of {rid}")) != _WRAPPED_KEY_BYTES:
            raise EnvelopeFormatError(f"wrapped key of {rid} must be {_WRAPPED_KEY_BYTES} bytes")
    if len(_decode(envelope["nonce"], "nonce")) != _NONCE_BYTES:
        raise EnvelopeFormatError(f"nonce must be {_NONCE_BYTES} bytes")
    if len(_decode(envelope["ciphertext"], "ciphertext")) not in _ciphertext_sizes(found_kind):
        raise EnvelopeFormatError("ciphertext length is not a padding bucket plus the tag")


def open_envelope(
    envelope: EnvelopeLike,
    *,
    private_key: bytes,
    case_id: str,
    routing: Mapping[str, Any],
) -> bytes:
    """Decrypt ``envelope`` with an X25519 ``private_key``; return the unpadded plaintext.

    The associated data is recomputed from the GIVEN ``case_id`` and ``routing`` (what the
    caller stores and believes), with the envelope's kind and recipient key ids. Raises:
    EnvelopeFormatError (malformed envelope or arguments), NotARecipient (this key's id is not
    listed), EnvelopeIntegrityError (another case, wrong routing, changed recipient list, or
    any tampered byte). Never returns unauthenticated data.
    """
    raw = _json_of(envelope)
    validate_envelope_shape(raw, case_id=case_id)
    if not isinstance(private_key, bytes) or len(private_key) != KEY_BYTES:
        raise EnvelopeFormatError(f"an X25519 private key is {KEY_BYTES} bytes")
    recipients: Mapping[str, str] = raw["recipients"]
    own_id = key_id(public_key_of(private_key))
    if own_id not in recipients:
        raise NotARecipient(f"key {own_id} is not a recipient of this envelope")
    aad = associated_data(
        kind=raw["kind"], case_id=case_id, routing=routing, recipient_ids=list(recipients)
    )
    box = nacl.public.SealedBox(nacl.public.PrivateKey(private_key))
    try:
        data_key = box.decrypt(b64decode_strict(recipients[own_id]))
        padded = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            b64decode_strict(raw["ciphertext"]),
            aad,
            b64decode_strict(raw["nonce"]),
            data_key,
        )
    except nacl.exceptions.CryptoError as exc:
        raise EnvelopeIntegrityError(
            "envelope does not authenticate (tampered, or wrong case id, routing or recipients)"
        ) from exc
    try:
        return nacl.bindings.sodium_unpad(padded, len(padded))
    except nacl.exceptions.CryptoError as exc:
        # Authenticated yet badly padded: the sealing client is faulty. Still refuse.
        raise EnvelopeIntegrityError("authenticated plaintext has invalid padding") from exc


def envelope_recipients(envelope: EnvelopeLike) -> set[str]:
    """Return the key ids an envelope is wrapped for; validates its shape first."""
    return set(_checked_json_of(envelope)["recipients"])


def envelope_hash(envelope: EnvelopeLike) -> str:
    """Return the SHA-256 (hex) of the envelope's RFC 8785 canonical JSON; validates first.

    This is what the audit log records for an envelope; equal envelopes hash equally whatever
    their key order or whitespace in transit.
    """
    raw = _checked_json_of(envelope)
    canonical = {field: raw[field] for field in _FIELDS}
    canonical["recipients"] = dict(raw["recipients"])
    return hashlib.sha256(canonical_json(canonical)).hexdigest()
