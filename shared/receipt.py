"""The worker's receipt: the one secret a worker keeps to come back to a case.

Format. A receipt is 40 decimal digits shown as ten groups of four
(``"4821 0937 5560 ..."``): 39 uniformly random digits (log2(10^39) = 129.6 bits, above the
128-bit floor) followed by one Damm check digit. Digits only, because a worker may type it on
a feature phone's keypad, in any script's keyboard, or read it aloud over the hotline; the
Damm digit catches every single mistyped digit and every swap of two neighbours before the
server is asked, so a typo is reported as a typo rather than "no such case".
:func:`normalise_receipt` accepts any Unicode decimal digits (fullwidth, Bengali, Devanagari,
Arabic-Indic ...), spaces and dashes, and returns the 40 ASCII digits.

Derivation (the same on the worker's device, in the crypto worker with libsodium.js, and on
the server for the no-JavaScript path, in memory): ``out`` = Argon2id(password =
``b"hotline-receipt-v2\x00" || digits``, salt = SHA-256(``b"hotline-receipt-salt-v2"``)[:16],
64 bytes, ops 3, 64 MiB). ``out[:32]`` is the lookup token, ``out[32:]`` the seed of the
worker's X25519 reply key pair (``crypto_box_seed_keypair``). Intake stores only
:func:`lookup_hash` of the token and the reply public key. No server secret enters the
derivation (DESIGN.md: no pepper), so whoever steals the database must guess receipts: each
guess costs one Argon2id evaluation at 64 MiB, and there are 10^39 receipts (2^129.6), so the
expected offline cost is about 2^128 evaluations. The salt is a constant because the receipt
alone must find the case; its 129 bits, not a per-case salt, are what make precomputation
useless. 64 MiB rather than libsodium's "moderate" 256 MiB because the derivation runs in a
cheap phone's browser.

Argon2id holds 64 MiB per call; a module-wide semaphore admits :data:`ARGON2_MAX_CONCURRENT`
derivations at once (GlobaLeaks bounds its KDF memory the same way). It blocks: call it from
a worker thread (``asyncio.to_thread``) in async code. Nothing here caches derived secrets, and
no error message contains a receipt or any part of one.
"""

from __future__ import annotations

import hashlib
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
    "LOOKUP_TOKEN_BYTES",
    "RECEIPT_DIGITS",
    "DerivedReceipt",
    "ReceiptChecksumError",
    "ReceiptError",
    "damm_check_digit",
    "derive_receipt",
    "format_receipt",
    "lookup_hash",
    "new_receipt",
    "normalise_receipt",
]

RECEIPT_DIGITS: Final = 40
_RANDOM_DIGITS: Final = RECEIPT_DIGITS - 1
_GROUP: Final = 4
# Longest input worth looking at: 40 digits with generous separators.
_MAX_INPUT_CHARS: Final = 200

ARGON2_OPSLIMIT: Final = 3
ARGON2_MEMLIMIT: Final = 64 * 1024 * 1024
ARGON2_MAX_CONCURRENT: Final = 2
_argon2_slots = threading.BoundedSemaphore(ARGON2_MAX_CONCURRENT)

LOOKUP_TOKEN_BYTES: Final = 32
_DERIVED_BYTES: Final = 64  # lookup token, then the reply key seed
_KDF_LABEL: Final = b"hotline-receipt-v2\x00"
_KDF_SALT: Final = hashlib.sha256(b"hotline-receipt-salt-v2").digest()[:16]
_LOOKUP_LABEL: Final = b"hotline-lookup-v2\x00"

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


@dataclass(frozen=True)
class DerivedReceipt:
    """What a receipt yields: the lookup token and the reply key pair (private kept out of
    ``repr``)."""

    lookup_token: bytes
    reply_public: bytes
    reply_private: bytes = field(repr=False)


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


def derive_receipt(receipt: str) -> DerivedReceipt:
    """Return the lookup token and reply key pair of a receipt (any accepted form).

    Deterministic; blocks while ARGON2_MAX_CONCURRENT other derivations run. Raises
    ReceiptError for a malformed receipt.
    """
    digits = normalise_receipt(receipt).encode("ascii")
    with _argon2_slots:
        out = nacl.pwhash.argon2id.kdf(
            _DERIVED_BYTES,
            _KDF_LABEL + digits,
            _KDF_SALT,
            opslimit=ARGON2_OPSLIMIT,
            memlimit=ARGON2_MEMLIMIT,
        )
    private = nacl.public.PrivateKey.from_seed(out[32:])
    return DerivedReceipt(
        lookup_token=out[:32],
        reply_public=bytes(private.public_key),
        reply_private=bytes(private),
    )


def lookup_hash(lookup_token: bytes) -> str:
    """Return what the server stores to find a case: hex SHA-256 of the labelled token."""
    if not isinstance(lookup_token, bytes) or len(lookup_token) != LOOKUP_TOKEN_BYTES:
        raise ReceiptError(f"a lookup token is {LOOKUP_TOKEN_BYTES} bytes")
    return hashlib.sha256(_LOOKUP_LABEL + lookup_token).hexdigest()
