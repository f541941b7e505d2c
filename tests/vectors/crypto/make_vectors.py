"""Generate the shared crypto vectors (tests/vectors/crypto/*.json) from the Python side.

Run `.venv/bin/python tests/vectors/crypto/make_vectors.py` from the repository root; it
rewrites every JSON file next to it. Every input is fixed (seeds, keys, nonces, data keys), so
all files but `envelopes.json` come out byte for byte the same each run; sealed boxes are
randomised by design (an ephemeral key per box), so that file's envelopes change while what
they open to does not. Expected values and failures are whatever hotline.shared computes:
tests/unit/test_crypto_vectors.py checks Python against the files, and the crypto worker's
`selftest-vectors` (tests/vectors/crypto/run_node.mjs under Node) checks the JavaScript.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nacl.bindings
import nacl.public

from hotline.shared.audit.entry import KeyRegisteredEntry, RegistryChangedEntry
from hotline.shared.envelope import (
    EnvelopeFormatError,
    EnvelopeIntegrityError,
    EnvelopeKind,
    KeyIdMismatch,
    NotARecipient,
    PlaintextTooLarge,
    associated_data,
    open_envelope,
    padded_size,
    seal_envelope,
)
from hotline.shared.events import OrgKind
from hotline.shared.keys import KeyFormatError, key_id
from hotline.shared.pow import leading_zero_bits, pow_digest, solve
from hotline.shared.receipt import (
    ReceiptError,
    damm_check_digit,
    derive_receipt,
    format_receipt,
    lookup_hash,
    normalise_receipt,
)
from hotline.shared.tlog.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from hotline.shared.tlog.compact import CompactRange, NodeID
from hotline.shared.tlog.errors import (
    CheckpointError,
    InvalidSignatureError,
    MalformedKeyError,
    MalformedNoteError,
    TlogError,
    UnverifiedNoteError,
)
from hotline.shared.tlog.hashing import leaf_hash
from hotline.shared.tlog.note import Ed25519Signer, parse_verifier_key, sign_note
from hotline.shared.tlog.proof import inclusion_proof

HERE = Path(__file__).parent
Json = dict[str, Any]

CASE_ID = "3f2b8c1e-6d4a-4b7e-9c0f-1a2b3c4d5e6f"
ROUTING: Json = {
    "categories": ["safety", "wages"],
    "factory": "F-001",
    "language": "zh-hans",
    "urgent": True,
}
LOG_NAME = "audit.hotline.example/log"

# The failure names the vectors use, from the Python exception (most specific first).
ENVELOPE_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (KeyIdMismatch, "key-mismatch"),
    (NotARecipient, "not-a-recipient"),
    (PlaintextTooLarge, "too-large"),
    (EnvelopeIntegrityError, "integrity"),
    (EnvelopeFormatError, "bad-envelope"),
    (KeyFormatError, "bad-key"),
)
TLOG_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (InvalidSignatureError, "bad-signature"),
    (UnverifiedNoteError, "unverified"),
    (MalformedKeyError, "malformed-key"),
    (MalformedNoteError, "malformed-note"),
    (CheckpointError, "bad-checkpoint"),
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def stream(label: str, length: int) -> bytes:
    """Deterministic filler bytes (SHA-256 in counter mode over `label`)."""
    out = b"".join(
        hashlib.sha256(f"{label}/{i}".encode()).digest() for i in range(length // 32 + 1)
    )
    return out[:length]


def x25519(name: str) -> nacl.public.PrivateKey:
    """A fixed X25519 key pair, named so vectors can say whose key it is."""
    return nacl.public.PrivateKey.from_seed(
        hashlib.sha256(f"vector x25519 {name}".encode()).digest()
    )


def pub(key: nacl.public.PrivateKey) -> bytes:
    return bytes(key.public_key)


def ed25519(name: str, label: str) -> Ed25519Signer:
    return Ed25519Signer(name, hashlib.sha256(f"vector ed25519 {label}".encode()).digest())


def failure(action: Callable[[], object], errors: tuple[tuple[type[Exception], str], ...]) -> str:
    """The vector name of the error `action` raises; fails loudly if it raises none."""
    try:
        action()
    except Exception as exc:
        for error_type, name in errors:
            if isinstance(exc, error_type):
                return name
        raise
    raise AssertionError("expected a failure, got none")


def key_id_vectors() -> list[Json]:
    vectors: list[Json] = [
        {"name": name, "public_key": b64(pub(x25519(name))), "key_id": key_id(pub(x25519(name)))}
        for name in ("operator", "buyer", "factory")
    ]
    for name, raw in (("low-order point (zero)", bytes(32)), ("31 bytes", bytes(range(31)))):
        vectors.append(
            {
                "name": name,
                "public_key": b64(raw),
                "error": failure(functools.partial(key_id, raw), ENVELOPE_ERRORS),
            }
        )
    return vectors


def aad_vector(name: str, kind: EnvelopeKind, routing: Json, ids: list[str]) -> Json:
    vector: Json = {"name": name, "kind": kind, "case_id": CASE_ID, "routing": routing}
    vector["recipient_ids"] = ids
    try:
        vector["aad"] = associated_data(
            kind=kind, case_id=CASE_ID, routing=routing, recipient_ids=ids
        ).decode("utf-8")
    except EnvelopeFormatError:
        vector["error"] = "bad-envelope"
    return vector


def associated_data_vectors() -> list[Json]:
    ids = [key_id(pub(x25519(name))) for name in ("operator", "buyer")]
    # Keys whose UTF-16 order differs from their code point order (U+1F600 is a surrogate
    # pair, D83D, so it sorts before U+FF41), escapes, and non-ASCII text.
    tricky: Json = {
        "\uff41": 1,
        "\U0001f600": [True, False, None],
        "e\u0301": "caf\u00e9 \u5de5\u5382",
        "quote": '"\\/\b\f\n\r\t\u0001\u001f\u007f\u2028',
        "big": 9007199254740991,
        "neg": -42,
        "": {},
    }
    return [
        aad_vector("content, two recipients given unsorted", "content", ROUTING, ids[::-1]),
        aad_vector("identity, one recipient", "identity", ROUTING, ids[:1]),
        aad_vector("attachment", "attachment", ROUTING, ids),
        aad_vector("key order, escapes and unicode", "content", tricky, ids),
        aad_vector("duplicate recipient id", "content", ROUTING, [ids[0], ids[0]]),
        aad_vector("malformed key id", "content", ROUTING, ["x25519:ABC"]),
    ]


def padding_vectors() -> list[Json]:
    vectors: list[Json] = []
    kib = 1024
    cases: list[tuple[EnvelopeKind, int]] = [
        ("content", 0), ("content", kib - 1), ("content", kib), ("identity", 5000),
        ("content", 64 * kib - 1), ("content", 64 * kib),
        ("attachment", 0), ("attachment", 64 * kib - 1), ("attachment", 64 * kib),
        ("attachment", 4 * kib * kib - 64), ("attachment", 4 * kib * kib - 1),
        ("attachment", 4 * kib * kib),
    ]  # fmt: skip
    for kind, length in cases:
        vector: Json = {"name": f"{kind} {length}", "kind": kind, "length": length}
        try:
            vector["padded_size"] = padded_size(length, kind)
        except PlaintextTooLarge:
            vector["error"] = "too-large"
        vectors.append(vector)
    return vectors


def aead_vectors() -> list[Json]:
    """XChaCha20-Poly1305-IETF over the padded plaintext with a fixed data key and nonce."""
    ids = [key_id(pub(x25519(name))) for name in ("operator", "buyer")]
    cases: list[tuple[str, EnvelopeKind, bytes]] = [
        ("content, Chinese text", "content", "工资拖欠了三个月。\n".encode()),
        ("identity, 1 KiB exactly: next bucket", "identity", stream("identity", 1024)),
        ("attachment, jpeg", "attachment", b"image/jpeg\n" + stream("jpeg", 3000)),
        ("content, empty", "content", b""),
    ]
    vectors: list[Json] = []
    for number, (name, kind, plaintext) in enumerate(cases):
        data_key = hashlib.sha256(f"vector data key {number}".encode()).digest()
        nonce = hashlib.sha256(f"vector nonce {number}".encode()).digest()[:24]
        aad = associated_data(kind=kind, case_id=CASE_ID, routing=ROUTING, recipient_ids=ids)
        padded = nacl.bindings.sodium_pad(plaintext, padded_size(len(plaintext), kind))
        ciphertext = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            padded, aad, nonce, data_key
        )
        vectors.append(
            {
                "name": name,
                "kind": kind,
                "case_id": CASE_ID,
                "routing": ROUTING,
                "recipient_ids": ids,
                "data_key": b64(data_key),
                "nonce": b64(nonce),
                "plaintext": b64(plaintext),
                "ciphertext": b64(ciphertext),
            }
        )
    tampered = dict(vectors[0], name="tampered ciphertext: one bit flipped")
    raw = bytearray(base64.b64decode(vectors[0]["ciphertext"]))
    raw[5] ^= 0x01
    tampered["ciphertext"] = b64(bytes(raw))
    tampered["error"] = "integrity"
    del tampered["plaintext"]
    wrong_routing = dict(vectors[0], name="routing differs from the sealed one")
    wrong_routing["routing"] = dict(ROUTING, urgent=False)
    wrong_routing["error"] = "integrity"
    del wrong_routing["plaintext"]
    return [*vectors, tampered, wrong_routing]


def envelope_vectors() -> list[Json]:
    """PyNaCl-sealed envelopes, opened with a fixed private key (sealing is randomised)."""
    operator, buyer, stranger = x25519("operator"), x25519("buyer"), x25519("stranger")
    both = {key_id(pub(key)): pub(key) for key in (operator, buyer)}

    def sealed(kind: EnvelopeKind, plaintext: bytes) -> Json:
        envelope = seal_envelope(
            plaintext, case_id=CASE_ID, kind=kind, routing=ROUTING, recipients=both
        )
        return envelope.model_dump()

    content = sealed("content", "工资拖欠了三个月，加班没有报酬。".encode())
    attachment = sealed("attachment", b"audio/webm\n" + stream("webm", 70000))
    vectors: list[Json] = [
        {"name": "content, opened by the operator", "envelope": content, "key": operator},
        {"name": "content, opened by the buyer", "envelope": content, "key": buyer},
        {
            "name": "identity",
            "envelope": sealed("identity", b"WeChat: li-wei-1990"),
            "key": operator,
        },
        {"name": "attachment, 128 KiB bucket", "envelope": attachment, "key": buyer},
        {"name": "not a recipient", "envelope": content, "key": stranger},
        {"name": "another case id", "envelope": content, "key": operator, "case_id": "case-2"},
        {
            "name": "routing changed",
            "envelope": content,
            "key": operator,
            "routing": dict(ROUTING, categories=["wages"]),
        },
    ]
    flipped = bytearray(base64.b64decode(content["ciphertext"]))
    flipped[-1] ^= 0x80
    vectors.append(
        {
            "name": "tampered tag",
            "envelope": dict(content, ciphertext=b64(bytes(flipped))),
            "key": operator,
        }
    )
    buyer_only = {k: v for k, v in content["recipients"].items() if k == key_id(pub(buyer))}
    vectors.append(
        {
            "name": "recipient removed",
            "envelope": dict(content, recipients=buyer_only),
            "key": buyer,
        }
    )
    short_nonce = b64(base64.b64decode(content["nonce"])[:23])
    vectors.append(
        {"name": "23-byte nonce", "envelope": dict(content, nonce=short_nonce), "key": operator}
    )
    unpadded = b64(base64.b64decode(content["ciphertext"])[:-1])
    vectors.append(
        {
            "name": "ciphertext not a bucket",
            "envelope": dict(content, ciphertext=unpadded),
            "key": operator,
        }
    )
    vectors.append({"name": "version 2", "envelope": dict(content, version=2), "key": operator})
    out: list[Json] = []
    for vector in vectors:
        key: nacl.public.PrivateKey = vector.pop("key")
        vector.setdefault("case_id", CASE_ID)
        vector.setdefault("routing", ROUTING)
        vector["private_key"] = b64(bytes(key))
        vector["recipient_public_keys"] = {kid: b64(value) for kid, value in both.items()}

        def opened(key: nacl.public.PrivateKey = key, vector: Json = vector) -> bytes:
            return open_envelope(
                vector["envelope"],
                private_key=bytes(key),
                case_id=vector["case_id"],
                routing=vector["routing"],
            )

        try:
            vector["plaintext"] = b64(opened())
        except Exception:
            vector["error"] = failure(opened, ENVELOPE_ERRORS)
        out.append(vector)
    return out


def receipt_vectors() -> list[Json]:
    """Receipt -> lookup token, its stored hash, reply public key (Argon2id 64 MiB: two only)."""
    vectors: list[Json] = []
    for name, body in (
        ("ascending digits", "123456789012345678901234567890123456789"),
        ("from a hash", str(int.from_bytes(hashlib.sha256(b"receipt").digest()))[:39]),
    ):
        receipt = format_receipt(body + str(damm_check_digit(body)))
        derived = derive_receipt(receipt)
        vectors.append(
            {
                "name": name,
                "receipt": receipt,
                "lookup_token": derived.lookup_token.hex(),
                "lookup_hash": lookup_hash(derived.lookup_token),
                "reply_public": b64(derived.reply_public),
            }
        )
    return vectors


def receipt_digit_vectors() -> list[Json]:
    """Damm check digits and typed-receipt normalisation (ASCII digits, spaces, dashes)."""
    good = "123456789012345678901234567890123456789"
    good += str(damm_check_digit(good))
    typo = good[:7] + str((int(good[7]) + 1) % 10) + good[8:]
    swapped = good[:10] + good[11] + good[10] + good[12:]
    vectors: list[Json] = [
        {
            "name": f"damm {digits or 'empty'}",
            "digits": digits,
            "check_digit": damm_check_digit(digits),
        }
        for digits in ("", "572", "0000", "9999999999", good[:39])
    ]
    for name, text in (
        ("grouped", format_receipt(good)),
        ("dashes and no spaces", "-".join(good[i : i + 8] for i in range(0, 40, 8))),
        ("one digit mistyped", typo),
        ("two neighbours swapped", swapped),
        ("39 digits", good[:39]),
        ("a letter", good[:39] + "a"),
    ):
        vector: Json = {"name": name, "text": text}
        try:
            vector["digits"] = normalise_receipt(text)
        except ReceiptError:
            vector["error"] = "bad-receipt"
        vectors.append(vector)
    return vectors


def pow_vectors() -> list[Json]:
    key = hashlib.sha256(b"vector challenge key").digest()
    vectors: list[Json] = []
    for difficulty in (0, 4, 8, 12):
        nonce = base64.urlsafe_b64encode(stream(f"nonce {difficulty}", 16)).rstrip(b"=").decode()
        body = f"v1.{nonce}.{difficulty}.29500000"
        mac = base64.urlsafe_b64encode(hmac.new(key, body.encode(), hashlib.sha256).digest())
        challenge = f"{body}.{mac.rstrip(b'=').decode()}"
        solution = solve(challenge, difficulty)
        digest = pow_digest(challenge, solution)
        vectors.append(
            {
                "name": f"difficulty {difficulty}",
                "challenge": challenge,
                "difficulty": difficulty,
                "solution": solution,
                "digest": digest.hex(),
                "leading_zero_bits": leading_zero_bits(digest),
            }
        )
    for name, digest in (("all zero", bytes(32)), ("0x01 first", b"\x01" + bytes(31))):
        vectors.append(
            {"name": name, "digest": digest.hex(), "leading_zero_bits": leading_zero_bits(digest)}
        )
    return vectors


def note_vectors() -> list[Json]:
    """Signed checkpoints opened with one pinned Ed25519 verifier key."""
    log = ed25519(LOG_NAME, "log")
    other = ed25519("other.example/log", "other")
    impostor = ed25519(LOG_NAME, "impostor")  # same name, another key
    vkey = log.verifier().vkey()
    root = hashlib.sha256(b"vector root").digest()
    body = Checkpoint(LOG_NAME, 7, root)
    signed = sign_checkpoint(body, [log])
    text, _, signature_line = signed.rpartition("\n\n")
    name_and_sig = signature_line.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(name_and_sig[1]))
    raw[10] ^= 0x01
    bad_signature = f"{text}\n\n{name_and_sig[0]} {b64(bytes(raw))}\n"
    # 68 signature bytes end in "X=": setting X's unused low bit spells the same bytes anew.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet[alphabet.index(signed[-3]) ^ 1]
    non_canonical = signed[:-3] + last + "=\n"
    cases: list[tuple[str, str, str]] = [
        ("signed by the log key", vkey, signed),
        (
            "with an extension line",
            vkey,
            sign_checkpoint(Checkpoint(LOG_NAME, 0, root, ("x",)), [log]),
        ),
        ("also signed by an unknown key", vkey, sign_checkpoint(body, [other, log])),
        ("one signature bit flipped", vkey, bad_signature),
        ("signed by another key only", vkey, sign_checkpoint(body, [other])),
        ("same name, another key", vkey, sign_checkpoint(body, [impostor])),
        (
            "checkpoint of another origin",
            vkey,
            sign_checkpoint(Checkpoint("x.example/log", 7, root), [log]),
        ),
        ("size with a leading zero", vkey, sign_note(f"{LOG_NAME}\n07\n{b64(root)}\n", [log])),
        ("31-byte root", vkey, sign_note(f"{LOG_NAME}\n7\n{b64(root[:31])}\n", [log])),
        ("two lines only", vkey, sign_note(f"{LOG_NAME}\n7\n", [log])),
        ("tab in the note", vkey, signed.replace("\n7\n", "\n7\t\n")),
        ("no blank line", vkey, signed.replace("\n\n", "\n")),
        ("non-canonical signature base64", vkey, non_canonical),
        (
            "verifier key with a wrong key id",
            f"{LOG_NAME}+00000000+{vkey.split('+', 2)[2]}",
            signed,
        ),
    ]
    vectors: list[Json] = []
    for name, key_text, note in cases:
        vector: Json = {"name": name, "vkey": key_text, "note": note}

        def opened(key_text: str = key_text, note: str = note) -> Checkpoint:
            verifier = parse_verifier_key(key_text)
            return open_checkpoint(note, verifier.name, [verifier])[0]

        try:
            checkpoint = opened()
            vector["checkpoint"] = {
                "origin": checkpoint.origin,
                "size": str(checkpoint.size),
                "root_hash": b64(checkpoint.root_hash),
            }
        except TlogError:
            vector["error"] = failure(opened, TLOG_ERRORS)
        vectors.append(vector)
    return vectors


def registration(kid: str, public_key: bytes, org: str, org_kind: OrgKind, n: int) -> bytes:
    entry = KeyRegisteredEntry(
        event_id=f"00000000-0000-4000-8000-{n:012d}",
        time="2026-03-01T10:00:00Z",
        subject=kid,
        schema_version=1,
        key_id=kid,
        org=org,
        org_kind=org_kind,
        public_key=b64(public_key),
    )
    return entry.leaf()


def recipients_vectors() -> list[Json]:
    """GET /api/recipients answers and what the page must say of each (contract §6)."""
    keys = {
        name: x25519(name) for name in ("operator", "operator2", "buyer", "factory", "stranger")
    }
    kid = {name: key_id(pub(key)) for name, key in keys.items()}
    orgs: dict[str, tuple[str, OrgKind]] = {
        "operator": ("hotline-operator", "operator"),
        "operator2": ("hotline-operator", "operator"),
        "buyer": ("buyer-1", "buyer"),
        "factory": ("F-001", "factory"),
    }
    filler = RegistryChangedEntry(
        event_id="00000000-0000-4000-8000-000000000000",
        time="2026-03-01T09:00:00Z",
        subject="F-001",
        schema_version=1,
        change="factory-added",
        factory="F-001",
        buyer=None,
    ).leaf()
    leaves = [filler]
    index: dict[str, int] = {}
    for n, (name, (org, org_kind)) in enumerate(orgs.items(), start=1):
        index[name] = len(leaves)
        leaves.append(registration(kid[name], pub(keys[name]), org, org_kind, n))
    leaves.append(filler)  # 6 leaves: an imperfect tree, so a proof has an ephemeral node
    nodes: dict[NodeID, bytes] = {}
    tree = CompactRange()
    for position, leaf in enumerate(leaves):
        nodes[NodeID(0, position)] = leaf_hash(leaf)
        tree.append(leaf_hash(leaf), visit=nodes.__setitem__)
    size = len(leaves)
    log = ed25519(LOG_NAME, "log")
    checkpoint = sign_checkpoint(Checkpoint(LOG_NAME, size, tree.root()), [log])

    def proof(name: str) -> Json:
        path = inclusion_proof(index[name], size, lambda ids: [nodes[i] for i in ids])
        return {
            "index": index[name],
            "entry": b64(leaves[index[name]]),
            "inclusion": [b64(h) for h in path],
        }

    def answer(content: list[str], identity: list[str]) -> Json:
        proofs = {kid[name]: proof(name) for name in sorted({*content, *identity}) if name in index}
        return {
            "factory": "F-001",
            "content": {kid[name]: b64(pub(keys[name])) for name in content},
            "identity": {kid[name]: b64(pub(keys[name])) for name in identity},
            "transparency": {"checkpoint": checkpoint, "proofs": proofs},
        }

    good = answer(["operator", "buyer"], ["operator", "operator2"])
    tampered = json.loads(json.dumps(good))
    tampered["transparency"]["proofs"][kid["buyer"]]["inclusion"][0] = b64(bytes(32))
    shifted = json.loads(json.dumps(good))
    shifted["transparency"]["proofs"][kid["buyer"]]["index"] += 1
    swapped_key = json.loads(json.dumps(good))
    swapped_key["content"][kid["buyer"]] = b64(pub(keys["operator2"]))
    borrowed = json.loads(json.dumps(good))
    borrowed["content"][kid["stranger"]] = b64(pub(keys["stranger"]))
    borrowed["transparency"]["proofs"][kid["stranger"]] = proof("buyer")
    other_log = ed25519(LOG_NAME, "impostor")
    impostor_checkpoint = sign_checkpoint(Checkpoint(LOG_NAME, size, tree.root()), [other_log])
    operator_only = answer(["operator"], ["operator"])
    vectors: list[Json] = [
        {"name": "all keys in the log", "recipients": good},
        {"name": "identity empty", "recipients": answer(["operator"], [])},
        {
            "name": "a key without a proof",
            "recipients": answer(["operator", "stranger"], ["operator"]),
            "reason": "not-in-log",
        },
        {"name": "a tampered proof hash", "recipients": tampered, "reason": "bad-proof"},
        {"name": "a proof for another index", "recipients": shifted, "reason": "bad-proof"},
        {"name": "key id of another key", "recipients": swapped_key, "reason": "key-mismatch"},
        {"name": "another key's registration", "recipients": borrowed, "reason": "key-mismatch"},
        {
            "name": "a factory key in content",
            "recipients": answer(["operator", "factory"], ["operator"]),
            "reason": "factory-key",
        },
        {
            "name": "a buyer key in identity",
            "recipients": answer(["operator"], ["operator", "buyer"]),
            "reason": "identity-not-operator",
        },
        {
            "name": "checkpoint signed by another key",
            "recipients": dict(
                operator_only,
                transparency=dict(operator_only["transparency"], checkpoint=impostor_checkpoint),
            ),
            "reason": "bad-checkpoint",
        },
    ]
    return [{"vkey": log.verifier().vkey(), **vector} for vector in vectors]


FILES: dict[str, tuple[str, Callable[[], list[Json]]]] = {
    "key_ids": ("Key id of an X25519 public key", key_id_vectors),
    "associated_data": ("RFC 8785 associated data of an envelope", associated_data_vectors),
    "padding": ("Padding bucket of a plaintext length, per kind", padding_vectors),
    "aead": ("Padded XChaCha20-Poly1305-IETF, fixed data key and nonce", aead_vectors),
    "envelopes": ("PyNaCl-sealed envelopes, the fixed private key opening them", envelope_vectors),
    "receipts": ("Receipt -> lookup token, its hash, reply public key (Argon2id)", receipt_vectors),
    "receipt_digits": ("Damm check digits, typed-receipt normalisation", receipt_digit_vectors),
    "pow": ("Proof-of-work digests, leading zero bits, smallest solutions", pow_vectors),
    "notes": ("Signed checkpoint notes against a pinned log verifier key", note_vectors),
    "recipients": ("Recipient lists with log proofs, and the page's verdict", recipients_vectors),
}


def main() -> None:
    for stem, (description, make) in FILES.items():
        document = {"description": description, "generator": "make_vectors.py", "vectors": make()}
        text = json.dumps(document, ensure_ascii=False, indent=1) + "\n"
        (HERE / f"{stem}.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
