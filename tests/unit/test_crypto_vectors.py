"""The shared crypto vectors (tests/vectors/crypto, see its README) against the Python side,
and the browser's crypto worker against the same vectors under Node (run_node.mjs): the
worker's own selftest passes every vector, and what it seals PyNaCl opens."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import nacl.bindings
import pytest

from hotline.shared.audit.entry import KeyRegisteredEntry, MalformedEntryError, parse_entry
from hotline.shared.envelope import (
    EnvelopeFormatError,
    EnvelopeIntegrityError,
    KeyIdMismatch,
    NotARecipient,
    PlaintextTooLarge,
    associated_data,
    open_envelope,
    padded_size,
)
from hotline.shared.keys import KeyFormatError, b64decode_strict, key_id
from hotline.shared.pow import leading_zero_bits, pow_digest, solve
from hotline.shared.receipt import (
    ReceiptError,
    damm_check_digit,
    derive_receipt,
    lookup_hash,
    normalise_receipt,
)
from hotline.shared.tlog.checkpoint import open_checkpoint
from hotline.shared.tlog.errors import (
    CheckpointError,
    InvalidSignatureError,
    MalformedKeyError,
    MalformedNoteError,
    TlogError,
    UnverifiedNoteError,
)
from hotline.shared.tlog.hashing import leaf_hash
from hotline.shared.tlog.note import parse_verifier_key
from hotline.shared.tlog.verify import verify_inclusion

VECTORS = Path(__file__).parents[1] / "vectors"
RUN_NODE = VECTORS / "crypto" / "run_node.mjs"
Vector = dict[str, Any]

# The failure each vector name stands for, on the Python side.
ERRORS: dict[str, type[Exception]] = {
    "bad-envelope": EnvelopeFormatError,
    "bad-key": KeyFormatError,
    "integrity": EnvelopeIntegrityError,
    "key-mismatch": KeyIdMismatch,
    "not-a-recipient": NotARecipient,
    "too-large": PlaintextTooLarge,
    "bad-receipt": ReceiptError,
    "bad-signature": InvalidSignatureError,
    "unverified": UnverifiedNoteError,
    "malformed-key": MalformedKeyError,
    "malformed-note": MalformedNoteError,
    "bad-checkpoint": CheckpointError,
}


def vectors(stem: str) -> list[Vector]:
    document = json.loads((VECTORS / "crypto" / f"{stem}.json").read_text(encoding="utf-8"))
    found: list[Vector] = document["vectors"]
    return found


def cases(stem: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("vector", vectors(stem), ids=lambda vector: vector["name"])


def b64(text: str) -> bytes:
    return b64decode_strict(text)


def expect(vector: Vector, action: Callable[[], object], key: str = "error") -> object:
    """Run `action`; when the vector names a failure, it must raise exactly that."""
    if key in vector:
        with pytest.raises(ERRORS[vector[key]]):
            action()
        return None
    return action()


@cases("key_ids")
def test_key_id(vector: Vector) -> None:
    found = expect(vector, lambda: key_id(base64.b64decode(vector["public_key"])))
    assert found == vector.get("key_id")


@cases("associated_data")
def test_associated_data(vector: Vector) -> None:
    found = expect(
        vector,
        lambda: associated_data(
            kind=vector["kind"],
            case_id=vector["case_id"],
            routing=vector["routing"],
            recipient_ids=vector["recipient_ids"],
        ),
    )
    assert found == (vector["aad"].encode() if "aad" in vector else None)


@cases("padding")
def test_padded_size(vector: Vector) -> None:
    found = expect(vector, lambda: padded_size(vector["length"], vector["kind"]))
    assert found == vector.get("padded_size")


@cases("aead")
def test_padded_xchacha20poly1305(vector: Vector) -> None:
    aad = associated_data(
        kind=vector["kind"],
        case_id=vector["case_id"],
        routing=vector["routing"],
        recipient_ids=vector["recipient_ids"],
    )
    key, nonce, ciphertext = (
        b64(vector["data_key"]),
        b64(vector["nonce"]),
        b64(vector["ciphertext"]),
    )
    if "error" in vector:
        with pytest.raises(nacl.exceptions.CryptoError):
            nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, aad, nonce, key)
        return
    plaintext = b64(vector["plaintext"])
    padded = nacl.bindings.sodium_pad(plaintext, padded_size(len(plaintext), vector["kind"]))
    assert (
        nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(padded, aad, nonce, key)
        == ciphertext
    )


@cases("envelopes")
def test_open_envelope(vector: Vector) -> None:
    found = expect(
        vector,
        lambda: open_envelope(
            vector["envelope"],
            private_key=b64(vector["private_key"]),
            case_id=vector["case_id"],
            routing=vector["routing"],
        ),
    )
    assert found == (b64(vector["plaintext"]) if "plaintext" in vector else None)


@cases("receipts")
def test_derive_receipt(vector: Vector) -> None:
    derived = derive_receipt(vector["receipt"])
    assert derived.lookup_token.hex() == vector["lookup_token"]
    assert lookup_hash(derived.lookup_token) == vector["lookup_hash"]
    assert derived.reply_public == b64(vector["reply_public"])


@cases("receipt_digits")
def test_receipt_digits(vector: Vector) -> None:
    if "check_digit" in vector:
        assert damm_check_digit(vector["digits"]) == vector["check_digit"]
    else:
        assert expect(vector, lambda: normalise_receipt(vector["text"])) == vector.get("digits")


@cases("pow")
def test_proof_of_work(vector: Vector) -> None:
    assert leading_zero_bits(bytes.fromhex(vector["digest"])) == vector["leading_zero_bits"]
    if "challenge" in vector:
        assert pow_digest(vector["challenge"], vector["solution"]).hex() == vector["digest"]
        assert solve(vector["challenge"], vector["difficulty"]) == vector["solution"]


@cases("notes")
def test_checkpoint_note(vector: Vector) -> None:
    def opened() -> dict[str, str]:
        verifier = parse_verifier_key(vector["vkey"])
        checkpoint, _ = open_checkpoint(vector["note"], verifier.name, [verifier])
        root = base64.b64encode(checkpoint.root_hash).decode()
        return {"origin": checkpoint.origin, "size": str(checkpoint.size), "root_hash": root}

    assert expect(vector, opened) == vector.get("checkpoint")


def page_verdict(recipients: Vector, vkey: str) -> str | None:
    """What the page must say of a recipients answer (contract §6), with hotline.shared.tlog:
    the reference the JavaScript (static/crypto/recipients.js) is checked against."""
    verifier = parse_verifier_key(vkey)
    transparency = recipients["transparency"]
    try:
        checkpoint, _ = open_checkpoint(transparency["checkpoint"], verifier.name, [verifier])
    except TlogError:
        return "bad-checkpoint"
    if not recipients["content"]:
        return "not-in-log"
    org_kinds: dict[str, str] = {}
    for group in ("content", "identity"):
        for kid, public_key in recipients[group].items():
            proof = transparency["proofs"].get(kid)
            if proof is None:
                return "not-in-log"
            try:
                if key_id(b64(public_key)) != kid:
                    return "key-mismatch"
                entry = parse_entry(b64(proof["entry"]))
            except (KeyFormatError, MalformedEntryError):
                return "key-mismatch"
            if not isinstance(entry, KeyRegisteredEntry) or (entry.key_id, entry.public_key) != (
                kid,
                public_key,
            ):
                return "key-mismatch"
            path = [b64(node) for node in proof["inclusion"]]
            try:
                leaf = leaf_hash(b64(proof["entry"]))
                verify_inclusion(proof["index"], checkpoint.size, leaf, path, checkpoint.root_hash)
            except TlogError:
                return "bad-proof"
            org_kinds[kid] = entry.org_kind
    if "factory" in org_kinds.values():
        return "factory-key"
    if any(org_kinds[kid] != "operator" for kid in recipients["identity"]):
        return "identity-not-operator"
    return None


@cases("recipients")
def test_recipients_verdict(vector: Vector) -> None:
    assert page_verdict(vector["recipients"], vector["vkey"]) == vector.get("reason")


def vector_count() -> int:
    crypto = sum(len(vectors(path.stem)) for path in (VECTORS / "crypto").glob("*.json"))
    return crypto + len(list((VECTORS / "merkle" / "inclusion").rglob("*.json")))


@cache
def node_run() -> Vector:
    """One run of the crypto worker under Node (about a second, two Argon2id derivations)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH: the JavaScript side of the vectors is not run")
    done = subprocess.run(
        [node, str(RUN_NODE)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    result: Vector = json.loads(done.stdout)
    return result


def test_the_worker_passes_every_vector_under_node() -> None:
    assert node_run()["selftest"] == {"passed": vector_count(), "failed": []}


def test_what_the_worker_seals_pynacl_opens() -> None:
    [keyholder] = [v for v in vectors("envelopes") if v["name"] == "content, opened by the buyer"]
    sealed = node_run()["sealed"]
    assert [item["kind"] for item in sealed] == ["content", "identity", "attachment"]
    for item in sealed:
        opened = open_envelope(
            item["envelope"],
            private_key=b64(keyholder["private_key"]),
            case_id=item["case_id"],
            routing=item["routing"],
        )
        assert opened == b64(item["plaintext"])
    # The attachment (70 011 bytes) went into the 128 KiB bucket, plus the 16-byte tag.
    assert len(b64(sealed[2]["envelope"]["ciphertext"])) == 128 * 1024 + 16


def test_a_worker_receipt_derives_what_the_server_derives() -> None:
    replies = node_run()["replies"]
    receipt = replies["new-receipt"]["result"]["receipt"]
    assert [len(group) for group in receipt.split(" ")] == [4] * 10
    derived = derive_receipt(receipt)  # also checks the Damm digit
    assert replies["derive"]["result"] == {
        "lookup_token": derived.lookup_token.hex(),
        "reply_key": base64.b64encode(derived.reply_public).decode(),
    }


def test_worker_replies_to_other_requests() -> None:
    replies = node_run()["replies"]
    solution = replies["pow"]["result"]["solution"]
    assert leading_zero_bits(pow_digest("v1.node.10.0.mac", solution)) >= 10
    assert solution == solve("v1.node.10.0.mac", 10)
    assert replies["open"]["ok"] is True
    refusals = {
        op: (reply["ok"], reply["reason"])
        for op, reply in replies.items()
        if op in ("pow-too-hard", "derive-typo", "no-such-op")
    }
    assert refusals == {
        "pow-too-hard": (False, "bad-request"),
        "derive-typo": (False, "bad-receipt"),
        "no-such-op": (False, "bad-request"),
    }
