"""The worker's receipt (hotline.shared.receipt)."""

from __future__ import annotations

import re
import sys
import threading
from itertools import product
from typing import Any

import nacl.pwhash.argon2id
import pytest

from hotline.shared import receipt as receipt_module
from hotline.shared.envelope import open_envelope, seal_envelope
from hotline.shared.keys import CryptoError, b64encode, key_id, public_key_of
from hotline.shared.receipt import (
    ARGON2_MAX_CONCURRENT,
    RECEIPT_DIGITS,
    DerivedReceipt,
    ReceiptChecksumError,
    ReceiptError,
    damm_check_digit,
    derive_receipt,
    format_receipt,
    lookup_hash,
    new_receipt,
    normalise_receipt,
)
from tests.support.waiting import wait_for

# Vector: 39 chosen digits and their Damm check digit (5).
RECEIPT = "4821 0937 5560 1234 9876 5432 1012 3456 7890 1235"
DIGITS = RECEIPT.replace(" ", "")
# Expected values of the derivation (Argon2id ops 3, 64 MiB; see shared/receipt.py), which
# the browser's crypto worker must reproduce (tests/vectors/crypto).
LOOKUP_TOKEN = "f891b7f0ba3d8dc111e839efc0833d9f9fdb3710239a3fe3dda7b48def6839b7"
LOOKUP_HASH = "25c3e2e2a04905354dc043672c77e36189b3bcb2ee1e4950c8b95491f5984a60"
RECEIPT_PUBLIC_B64 = "AIuxqyIXieFyxiQywne9awu3LioD3GvAzzVrD7+eqAk="
DISPLAY = re.compile(r"\d{4}( \d{4}){9}")


# --- Damm check digit -----------------------------------------------------------------------


def test_damm_table_is_a_totally_anti_symmetric_quasigroup() -> None:
    table = receipt_module._DAMM
    digits = range(10)
    assert all(sorted(row) == list(digits) for row in table)
    assert all(sorted(table[r][c] for r in digits) == list(digits) for c in digits)
    assert all(table[d][d] == 0 for d in digits)
    for c, x, y in product(digits, repeat=3):
        if table[table[c][x]][y] == table[table[c][y]][x]:
            assert x == y


def test_damm_published_example() -> None:
    assert damm_check_digit("572") == 4
    assert damm_check_digit("5724") == 0
    with pytest.raises(ValueError):
        damm_check_digit("57a")


# --- generation and normalisation -----------------------------------------------------------


def test_new_receipt_format_and_entropy() -> None:
    receipts = {new_receipt() for _ in range(200)}
    assert len(receipts) == 200
    for text in receipts:
        assert DISPLAY.fullmatch(text)
        assert normalise_receipt(text) == text.replace(" ", "")
    # 39 free digits: at least 128 bits.
    assert 10 ** (RECEIPT_DIGITS - 1) >= 2**128


@pytest.mark.parametrize(
    "typed",
    [
        RECEIPT,
        DIGITS,
        "-".join(RECEIPT.split()),
        "  " + RECEIPT.replace(" ", "\u3000") + "\n",  # ideographic spaces
        RECEIPT.translate(str.maketrans("0123456789", "０１２３４５６７８９")),  # fullwidth
        RECEIPT.translate(str.maketrans("0123456789", "০১২৩৪৫৬৭৮৯")),  # Bengali
        RECEIPT.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")),  # Arabic-Indic
        RECEIPT.replace(" ", "\u2013"),  # en dash
    ],
)
def test_normalise_accepts_how_people_type(typed: str) -> None:
    assert normalise_receipt(typed) == DIGITS
    assert format_receipt(typed) == RECEIPT


def test_normalise_is_idempotent() -> None:
    assert normalise_receipt(normalise_receipt(RECEIPT)) == DIGITS


@pytest.mark.parametrize(
    "typed",
    [
        "",
        DIGITS[:-1],
        DIGITS + "0",
        RECEIPT.replace("1", "l"),
        DIGITS[:20] + "." + DIGITS[20:],
        "²" + DIGITS[1:],
        "1" * 201,
        " " * 201,
    ],
)
def test_normalise_refuses_non_receipts(typed: str) -> None:
    with pytest.raises(ReceiptError):
        normalise_receipt(typed)


def test_normalise_refuses_non_text() -> None:
    with pytest.raises(ReceiptError):
        normalise_receipt(DIGITS.encode())  # type: ignore[arg-type]


def test_every_single_digit_typo_is_caught() -> None:
    for position, digit in product(range(RECEIPT_DIGITS), "0123456789"):
        if DIGITS[position] == digit:
            continue
        typo = DIGITS[:position] + digit + DIGITS[position + 1 :]
        with pytest.raises(ReceiptChecksumError):
            normalise_receipt(typo)


def test_every_adjacent_swap_is_caught() -> None:
    for position in range(RECEIPT_DIGITS - 1):
        a, b = DIGITS[position], DIGITS[position + 1]
        if a == b:
            continue
        swapped = DIGITS[:position] + b + a + DIGITS[position + 2 :]
        with pytest.raises(ReceiptChecksumError):
            normalise_receipt(swapped)


def test_errors_never_echo_the_receipt() -> None:
    attempts = [DIGITS[:-1], DIGITS[:-1] + "0", RECEIPT + "x"]
    for attempt in attempts:
        with pytest.raises(ReceiptError) as caught:
            normalise_receipt(attempt)
        message = str(caught.value)
        assert not any(DIGITS[i : i + 4] in message for i in range(0, RECEIPT_DIGITS, 4))


# --- derivation: lookup token and reply key pair ------------------------------------------


def test_derivation_vector_and_determinism() -> None:
    derived = derive_receipt(RECEIPT)
    assert derived.lookup_token.hex() == LOOKUP_TOKEN
    assert b64encode(derived.reply_public) == RECEIPT_PUBLIC_B64
    assert public_key_of(derived.reply_private) == derived.reply_public
    assert derive_receipt(DIGITS) == derived  # any accepted form
    assert lookup_hash(derived.lookup_token) == LOOKUP_HASH


def test_another_receipt_derives_other_values() -> None:
    other = derive_receipt(new_receipt())
    assert other.lookup_token.hex() != LOOKUP_TOKEN
    assert b64encode(other.reply_public) != RECEIPT_PUBLIC_B64


def test_what_the_server_stores_never_contains_the_receipt_or_the_token() -> None:
    stored = lookup_hash(bytes.fromhex(LOOKUP_TOKEN))
    assert DIGITS not in stored and LOOKUP_TOKEN not in stored


def test_derivation_refuses_a_malformed_receipt_and_lookup_hash_a_bad_token() -> None:
    with pytest.raises(ReceiptError):
        derive_receipt(DIGITS[:-1])
    for token in (b"", bytes(31), "ab" * 32):
        with pytest.raises(ReceiptError):
            lookup_hash(token)  # type: ignore[arg-type]


def test_derived_private_key_is_kept_out_of_repr() -> None:
    derived = derive_receipt(RECEIPT)
    assert isinstance(derived, DerivedReceipt)
    assert "reply_private" not in repr(derived)
    assert repr(derived.reply_private) not in repr(derived)


def test_replies_sealed_to_the_reply_key_open_with_the_receipt() -> None:
    worker_receipt = new_receipt()
    public = derive_receipt(worker_receipt).reply_public
    reply = seal_envelope(
        b"We will visit the factory on Monday.",
        case_id="case-0001",
        kind="content",
        routing={},
        recipients={key_id(public): public},
    )
    private = derive_receipt(format_receipt(worker_receipt)).reply_private
    assert (
        open_envelope(reply, private_key=private, case_id="case-0001", routing={})
        == b"We will visit the factory on Monday."
    )


def _waiting_for_a_slot(thread: threading.Thread) -> bool:
    """True while `thread` is parked in the semaphore's `acquire` (not merely on its way)."""
    frame = sys._current_frames().get(thread.ident or -1)
    return (
        frame is not None
        and frame.f_code.co_name == "wait"
        and frame.f_back is not None
        and frame.f_back.f_code.co_name == "acquire"
        and frame.f_back.f_code.co_filename == threading.__file__
    )


def test_argon2_concurrency_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """ARGON2_MAX_CONCURRENT derivations run at once; every further one waits for a slot."""
    callers = 8
    inside: set[int] = set()  # threads now in the KDF
    peak = 0
    condition = threading.Condition()
    release = threading.Event()

    def held_kdf(size: int, password: bytes, salt: bytes, **_: Any) -> bytes:
        nonlocal peak
        with condition:
            inside.add(threading.get_ident())
            peak = max(peak, len(inside))
            condition.notify_all()
        release.wait(timeout=30)
        with condition:
            inside.discard(threading.get_ident())
        return bytes(size)

    monkeypatch.setattr(nacl.pwhash.argon2id, "kdf", held_kdf)
    threads = [threading.Thread(target=derive_receipt, args=(RECEIPT,)) for _ in range(callers)]
    for thread in threads:
        thread.start()
    try:
        with condition:
            full = condition.wait_for(lambda: len(inside) >= ARGON2_MAX_CONCURRENT, timeout=30)
        assert full, f"{ARGON2_MAX_CONCURRENT} derivations never ran at once"
        outside = [t for t in threads if t.ident not in inside]
        wait_for(
            lambda: all(_waiting_for_a_slot(t) for t in outside),
            what="the other callers to wait for a slot",
        )
        with condition:
            assert len(inside) == ARGON2_MAX_CONCURRENT
    finally:
        release.set()
        for thread in threads:
            thread.join(timeout=30)
    assert peak == ARGON2_MAX_CONCURRENT
    assert not any(thread.is_alive() for thread in threads)


def test_errors_share_one_base() -> None:
    assert issubclass(ReceiptChecksumError, ReceiptError)
    assert issubclass(ReceiptError, CryptoError)
