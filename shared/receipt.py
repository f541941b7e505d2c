"""The worker's receipt: the one secret a worker keeps to come back to a case.

Format. A receipt is 40 decimal digits shown as ten groups of four
(``"4821 0937 5560 ..."``): 39 uniformly random digits (log2(10^39) = 129.6 bits, above the
128-bit floor) followed by one Damm check digit. Digits only, because a worker may type it on
a feature phone's keypad, in any script's keyboard, or read it aloud over the hotline; the
Damm digit catches every single mistyped digit and every swap of two neighbours before the
server is asked, so a typo is reported as a typo rather than "no such case".
:func:`normalise_receipt` accepts any Unicode decimal digits (fullwidth, Bengali, Devanagari,
Arabic-Indic ...), spaces and dashes, and returns the 40 ASCII digits.

Derivations, each domain-separated so they can never coincide:

- lookup id = hex(HMAC-SHA256(pepper, b"hotline-receipt-lookup-v1\\x00" || digits)): the only
  thing the server stores to find the case. ``pepper`` is a server secret (at least
  16 bytes; 32 random bytes recommended).
- receipt key pair = X25519 ``crypto_box_seed_keypair`` of Argon2id(
  b"hotline-receipt-key-v1\\x00" || digits, salt, 32 bytes, ops 3, 64 MiB). Operators and
  buyers seal replies to its public key; only someone holding the receipt can open them. The
  16-byte salt is stored with the case and handed to the worker's browser, which derives the
  same pair with libsodium.js. 64 MiB rather than libsodium's "moderate" 256 MiB because the
  derivation must also run in a cheap phone's browser; the receipt's own 129 bits, not the
  Argon2 cost, are what resist guessing.
- :func:`derive_receipt_secrets` computes both and, like SecureDrop's two distinct peppers,
  refuses a salt contained in the pepper: the salt is public, so equal values would publish
  the pepper.

Argon2id holds 64 MiB per call; a module-wide semaphore admits :data:`ARGON2_MAX_CONCURRENT`
derivations at once (GlobaLeaks bounds its KDF memory the same way). It blocks: call it from
a worker thread (``asyncio.to_thread``) in async code. Nothing here caches derived secrets, and
no error message contains a receipt or any part of one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import unicodedata
from dataclasses import dataclass, field
from typing import Final

import nacl.public
import nacl.pwhash.argon2id

from .keys import CryptoError

__all__ = [
    "ARGON2_MAX_CONCURRENT",
    "ARGON2_MEMLIMIT",
    "ARGON2_OPSLIMIT",
    "MIN_PEPPER_BYTES",
    "RECEIPT_DIGITS",
    "SALT_BYTES",
    "ReceiptChecksumError",
    "ReceiptConfigError",
    "ReceiptError",
    "ReceiptSecrets",
    "damm_check_digit",
    "derive_receipt_secrets",
    "format_receipt",
    "new_receipt",
    "new_receipt_salt",
    "normalise_receipt",
    "receipt_keypair",
    "receipt_lookup_id",
]

RECEIPT_DIGITS: Final = 40
_RANDOM_DIGITS: Final = RECEIPT_DIGITS - 1
_GROUP: Final = 4
# Longest input worth looking at: 40 digits with generous separators.
_MAX_INPUT_CHARS: Final = 200

MIN_PEPPER_BYTES: Final = 16
SALT_BYTES: Final = nacl.pwhash.argon2id.SALTBYTES  # 16
ARGON2_OPSLIMIT: Final = 3
ARGON2_MEMLIMIT: Final = 64 * 1024 * 1024
ARGON2_MAX_CONCURRENT: Final = 2
_argon2_slots = threading.BoundedSemaphore(ARGON2_MAX_CONCURRENT)

_LOOKUP_LABEL: Final = b"hotline-receipt-lookup-v1\x00"
_KEY_LABEL: Final = b"hotline-receipt-key-v1\x00"

# Damm's totally anti-symmetric quasigroup of order 10 (H. M. Damm, 2004), as published.
_DAMM: Final = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


class ReceiptError(CryptoError):
    """Text that is not a receipt: wrong characters or wrong number of digits."""


class ReceiptChecksumError(ReceiptError):
    """The receipt's check digit does not match: a digit was mistyped or two were swapped."""


class ReceiptConfigError(CryptoError):
    """A pepper or salt unfit for deriving receipt secrets (too short, or the two overlap)."""


@dataclass(frozen=True)
class ReceiptSecrets:
    """What a receipt yields on the server. ``private_key`` is kept out of ``repr``."""

    lookup_id: str
    public_key: bytes
    private_key: bytes = field(repr=False)


def damm_check_digit(digits: str) -> int:
    """Return the Damm check digit of a string of ASCII digits (0 for the empty string).

    A string followed by its check digit has check digit 0. Raises ValueError on non-digits.
    """
    if not (digits.isascii() and (digits.isdigit() or digits == "")):
        raise ValueError("Damm check digits are computed over ASCII digits only")
    interim = 0
    for digit in digits:
        interim = _DAMM[interim][ord(digit) - 48]
    return interim


def new_receipt() -> str:
    """Return a fresh receipt, formatted for display (ten groups of four digits)."""
    body = str(secrets.randbelow(10**_RANDOM_DIGITS)).zfill(_RANDOM_DIGITS)
    return format_receipt(body + str(damm_check_digit(body)))


def normalise_receipt(text: str) -> str:
    """Return the canonical form of a typed receipt: its 40 ASCII digits, nothing else.

    Accepts any Unicode decimal digits, whitespace and dash punctuation (ignored) in at most
    200 characters. Raises ReceiptError on anything else or a digit count other than 40, and
    ReceiptChecksumError when the check digit fails. Idempotent.
    """
    if not isinstance(text, str):
        raise ReceiptError("a receipt is text")
    if len(text) > _MAX_INPUT_CHARS:
        raise ReceiptError(f"a receipt is {RECEIPT_DIGITS} digits; this input is far longer")
    digits: list[str] = []
    for char in text:
        if char.isspace() or unicodedata.category(char) == "Pd":
            continue
        value = unicodedata.decimal(char, None)
        if value is None:
            raise ReceiptError("a receipt contains only digits, spaces and dashes")
        digits.append(chr(48 + value))
    if len(digits) != RECEIPT_DIGITS:
        raise ReceiptError(f"a receipt has {RECEIPT_DIGITS} digits; {len(digits)} were given")
    canonical = "".join(digits)
    if damm_check_digit(canonical) != 0:
        raise ReceiptChecksumError("the receipt does not check out: a digit is mistyped")
    return canonical


def format_receipt(receipt: str) -> str:
    """Return a receipt (any accepted form) as ten space-separated groups of four digits."""
    digits = normalise_receipt(receipt)
    return " ".join(digits[i : i + _GROUP] for i in range(0, RECEIPT_DIGITS, _GROUP))


def new_receipt_salt() -> bytes:
    """Return a fresh random salt for :func:`receipt_keypair` (stored with the case)."""
    return secrets.token_bytes(SALT_BYTES)


def _check_pepper(pepper: bytes) -> bytes:
    if not isinstance(pepper, bytes) or len(pepper) < MIN_PEPPER_BYTES:
        raise ReceiptConfigError(f"the receipt pepper must be at least {MIN_PEPPER_BYTES} bytes")
    return pepper


def _check_salt(salt: bytes) -> bytes:
    if not isinstance(salt, bytes) or len(salt) != SALT_BYTES:
        raise ReceiptConfigError(f"the receipt key salt must be {SALT_BYTES} bytes")
    return salt


def receipt_lookup_id(receipt: str, pepper: bytes) -> str:
    """Return the lookup id (64 hex digits) under which the server files the receipt's case.

    Deterministic for one receipt and pepper; unrelated across peppers. Raises ReceiptError
    for a malformed receipt and ReceiptConfigError for a pepper under MIN_PEPPER_BYTES.
    """
    digits = normalise_receipt(receipt).encode("ascii")
    mac = hmac.new(_check_pepper(pepper), _LOOKUP_LABEL + digits, hashlib.sha256)
    return mac.hexdigest()


def receipt_keypair(receipt: str, salt: bytes) -> tuple[bytes, bytes]:
    """Return the X25519 ``(private_key, public_key)`` derived from a receipt and salt.

    Deterministic for one receipt and 16-byte salt. Blocks while ARGON2_MAX_CONCURRENT other
    derivations run. Raises ReceiptError (malformed receipt) or ReceiptConfigError (salt).
    """
    digits = normalise_receipt(receipt).encode("ascii")
    _check_salt(salt)
    with _argon2_slots:
        seed = nacl.pwhash.argon2id.kdf(
            nacl.public.PrivateKey.SEED_SIZE,
            _KEY_LABEL + digits,
            salt,
            opslimit=ARGON2_OPSLIMIT,
            memlimit=ARGON2_MEMLIMIT,
        )
    private = nacl.public.PrivateKey.from_seed(seed)
    return bytes(private), bytes(private.public_key)


def derive_receipt_secrets(receipt: str, *, pepper: bytes, salt: bytes) -> ReceiptSecrets:
    """Return the lookup id and key pair of a receipt, refusing overlapping pepper and salt.

    The salt is handed to the worker's browser and so is public; raises ReceiptConfigError if
    it occurs inside the (secret) pepper, as SecureDrop refuses equal peppers.
    """
    if _check_salt(salt) in _check_pepper(pepper):
        raise ReceiptConfigError("the receipt key salt must not be (part of) the lookup pepper")
    lookup_id = receipt_lookup_id(receipt, pepper)
    private_key, public_key = receipt_keypair(receipt, salt)
    return ReceiptSecrets(lookup_id=lookup_id, public_key=public_key, private_key=private_key)
