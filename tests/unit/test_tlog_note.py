"""C2SP signed notes and tlog-cosignature/v1 (hotline.shared.tlog.note)."""

from __future__ import annotations

import base64
from hashlib import sha256

import pytest

from hotline.shared.tlog.errors import (
    AmbiguousKeyError,
    InvalidSignatureError,
    MalformedKeyError,
    MalformedNoteError,
    NoteError,
    TlogError,
    UnverifiedNoteError,
)
from hotline.shared.tlog.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    CosignatureVerifier,
    Cosigner,
    Ed25519Signer,
    Ed25519Verifier,
    NoteSignature,
    cosignature_message,
    cosignature_timestamp,
    format_note,
    key_id,
    open_note,
    parse_note,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
)

# The example of c2sp.org/signed-note, section "Verifier keys / Example", copied verbatim.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n"
    "\n"
    "— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3m"
    "FXmRKuwHjG1Yu72IneyaQM=\n"
)

# golang.org/x/mod sumdb/note/note_test.go (BSD-3-Clause): a signer key, its verifier key,
# a second verifier key, and the signatures their notes carry.
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotp"
    "RZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33"
    "WWd1RvMc+QQ=\n"
)

# The example of c2sp.org/tlog-cosignature: a checkpoint carrying a witness cosignature, and
# the message that cosignature signs.
COSIGNED_CHECKPOINT = (
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcy"
    "v2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2"
    "oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)
COSIGNED_MESSAGE = (
    "cosignature/v1\n"
    "time 1679315147\n"
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)

# transparency-dev/formats note/note_cosigv1_test.go (BSD-3-Clause): a witness's native
# cosignature/v1 verifier key (type 0x04), and a type 0x01 key whose base64 holds a '+'.
WITNESS_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
PLUS_VKEY = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"


def test_spec_example_verifies() -> None:
    verifier = parse_verifier_key(SPEC_VKEY)
    assert isinstance(verifier, Ed25519Verifier)
    assert (verifier.name, verifier.key_id) == ("example.com/foo", 0x530D903A)
    assert verifier.vkey() == SPEC_VKEY
    note = open_note(SPEC_NOTE.encode(), [verifier])
    assert note.text == "This is an example message.\n"
    assert [(s.name, s.key_id) for s in note.signatures] == [("example.com/foo", 0x530D903A)]
    assert note.unverified == ()
    assert open_note(SPEC_NOTE, [verifier]) == note  # str or bytes alike


def _flip_signature_byte(note: str) -> str:
    head, sig64 = note.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(sig64))
    raw[10] ^= 1
    return f"{head} {base64.b64encode(bytes(raw)).decode()}\n"


MUTATED_NOTES = {
    "changed body": (
        SPEC_NOTE.replace("example message", "example massage"),
        InvalidSignatureError,
    ),
    "bad signature": (_flip_signature_byte(SPEC_NOTE), InvalidSignatureError),
    "wrong key name": (
        SPEC_NOTE.replace("— example.com/foo", "— example.com/bar"),
        UnverifiedNoteError,
    ),
    "wrong key id": (SPEC_NOTE.replace(" Uw2Q", " Uw2R"), UnverifiedNoteError),
    "missing final newline": (SPEC_NOTE[:-1], MalformedNoteError),
    "missing blank line": (SPEC_NOTE.replace("\n\n", "\n"), MalformedNoteError),
    "hyphen for em dash": (SPEC_NOTE.replace("—", "-"), MalformedNoteError),
    "two spaces after name": (SPEC_NOTE.replace("foo U", "foo  U"), MalformedNoteError),
    "space before newline": (SPEC_NOTE[:-1] + " \n", MalformedNoteError),
    "carriage return": (SPEC_NOTE.replace("\n", "\r\n"), MalformedNoteError),
    "tab in text": (SPEC_NOTE.replace(" is ", "\tis "), MalformedNoteError),
    "unexpected last line": (SPEC_NOTE + "Unexpected line.\n", MalformedNoteError),
    "blank line at end": (SPEC_NOTE + "\n", MalformedNoteError),
    "unpadded base64": (SPEC_NOTE.replace("QM=\n", "QM\n"), MalformedNoteError),
    "non-canonical base64": (SPEC_NOTE.replace("aQM=\n", "aQN=\n"), MalformedNoteError),
    "signature too short": (
        SPEC_NOTE.split("— ")[0] + "— example.com/foo Uw2QOg==\n",
        MalformedNoteError,
    ),
    "empty key name": (SPEC_NOTE.replace("— example.com/foo", "— "), MalformedNoteError),
    "plus in key name": (SPEC_NOTE.replace("example.com/foo", "example+com"), MalformedNoteError),
    "no signatures": (SPEC_NOTE.split("— ")[0], MalformedNoteError),
}


@pytest.mark.parametrize("name", sorted(MUTATED_NOTES))
def test_spec_example_mutations_are_refused(name: str) -> None:
    message, error = MUTATED_NOTES[name]
    verifier = parse_verifier_key(SPEC_VKEY)
    with pytest.raises(error):
        open_note(message, [verifier])
    with pytest.raises(error):
        open_note(message.encode(), [verifier])


def test_invalid_utf8_is_refused() -> None:
    verifier = parse_verifier_key(SPEC_VKEY)
    with pytest.raises(MalformedNoteError):
        open_note(b"\xff" + SPEC_NOTE.encode(), [verifier])


def test_go_example_signs_deterministically() -> None:
    signer = parse_signer_key(PETER_SKEY)
    assert isinstance(signer, Ed25519Signer)
    assert signer.skey() == PETER_SKEY
    assert signer.verifier().vkey() == PETER_VKEY
    assert sign_note(GO_TEXT, [signer]) == GO_TEXT + "\n" + PETER_SIG
    assert "AYEKFALV" not in repr(signer)  # the seed never shows


def test_unknown_keys_are_kept_aside() -> None:
    peter, enoch = parse_verifier_key(PETER_VKEY), parse_verifier_key(ENOCH_VKEY)
    message = GO_TEXT + "\n" + PETER_SIG + ENOCH_SIG
    note = open_note(message, [peter])
    assert [s.name for s in note.signatures] == ["PeterNeumann"]
    assert [s.name for s in note.unverified] == ["EnochRoot"]
    both = open_note(message, [peter, enoch])
    assert [s.name for s in both.signatures] == ["PeterNeumann", "EnochRoot"]
    with pytest.raises(UnverifiedNoteError):
        open_note(message, [])
    # A repeated signature line is verified once.
    assert open_note(GO_TEXT + "\n" + PETER_SIG * 3, [peter]).signatures == note.signatures
    # A corrupted signature from an unknown key does not matter...
    corrupt_enoch = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    assert open_note(GO_TEXT + "\n" + PETER_SIG + corrupt_enoch, [peter]).signatures
    # ...but one from a known key refuses the whole note.
    with pytest.raises(InvalidSignatureError):
        open_note(GO_TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:], [peter])


def test_signature_count_limit() -> None:
    peter = parse_verifier_key(PETER_VKEY)
    assert open_note(GO_TEXT + "\n" + PETER_SIG * 100, [peter]).signatures
    with pytest.raises(MalformedNoteError):
        open_note(GO_TEXT + "\n" + PETER_SIG * 101, [peter])
    with pytest.raises(MalformedNoteError):
        open_note(GO_TEXT + "\n" + PETER_SIG * 101, [])


def test_ambiguous_verifiers_are_refused() -> None:
    peter = parse_verifier_key(PETER_VKEY)
    assert open_note(GO_TEXT + "\n" + PETER_SIG, [peter, parse_verifier_key(PETER_VKEY)])

    class Impostor:
        name, key_id = peter.name, peter.key_id

        def verify(self, text: bytes, signature: bytes) -> None:
            return None

    with pytest.raises(AmbiguousKeyError):
        open_note(GO_TEXT + "\n" + PETER_SIG, [peter, Impostor()])


@pytest.mark.parametrize("key", [SPEC_VKEY, PETER_VKEY, WITNESS_VKEY])
def test_every_mangled_verifier_key_is_refused(key: str) -> None:
    parse_verifier_key(key)
    for begin in range(len(key)):
        for end in range(begin + 1, len(key) + 1):
            if (begin, end) != (0, len(key)):
                with pytest.raises(MalformedKeyError):
                    parse_verifier_key(key[begin:end])
    for position in range(len(key)):
        mangled = key[:position] + chr(ord(key[position]) + 1) + key[position + 1 :]
        with pytest.raises(MalformedKeyError):
            parse_verifier_key(mangled)


def test_every_mangled_signer_key_is_refused() -> None:
    for begin in range(len(PETER_SKEY)):
        for end in range(begin + 1, len(PETER_SKEY) + 1):
            if (begin, end) != (0, len(PETER_SKEY)):
                with pytest.raises(MalformedKeyError):
                    parse_signer_key(PETER_SKEY[begin:end])
    for position in range(len(PETER_SKEY)):
        char = chr(ord(PETER_SKEY[position]) + 1)
        with pytest.raises(MalformedKeyError):
            parse_signer_key(PETER_SKEY[:position] + char + PETER_SKEY[position + 1 :])


def test_key_strings() -> None:
    assert parse_verifier_key(PLUS_VKEY).vkey() == PLUS_VKEY  # '+' inside the base64
    with pytest.raises(MalformedKeyError):
        parse_verifier_key(SPEC_VKEY.replace("530d903a", "530D903A"))  # hex is lowercase
    unknown_type = "example.com/foo+00000000+" + base64.b64encode(b"\x07" + b"\0" * 32).decode()
    with pytest.raises(MalformedKeyError):
        parse_verifier_key(unknown_type)
    for bad_name in ("", "a b", "a+b", "a\u00a0b", "tab\tname"):
        with pytest.raises(MalformedKeyError):
            Ed25519Signer(bad_name, b"\0" * 32)
    with pytest.raises(MalformedKeyError):
        Ed25519Signer("name", b"\0" * 31)


def test_key_id_derivation() -> None:
    public_key = bytes(range(32))
    digest = sha256(b"example.com/foo\n\x01" + public_key).digest()
    assert key_id("example.com/foo", ALG_ED25519, public_key) == int.from_bytes(digest[:4])
    digest = sha256(b"example.com/foo\n\x04" + public_key).digest()
    assert key_id("example.com/foo", ALG_COSIGNATURE_V1, public_key) == int.from_bytes(digest[:4])


def test_generated_keys_round_trip() -> None:
    signer = Ed25519Signer.generate("hotline.example/log")
    verifier = parse_verifier_key(signer.verifier().vkey())
    assert parse_signer_key(signer.skey()).verifier() == verifier
    signed = sign_note("hello\n\nworld\n", [signer])  # the text may hold empty lines
    assert open_note(signed, [verifier]).text == "hello\n\nworld\n"


@pytest.mark.parametrize("text", ["no final newline", "bad\rline\n", "tab\there\n", ""])
def test_signing_refuses_bad_text(text: str) -> None:
    with pytest.raises(MalformedNoteError):
        sign_note(text, [Ed25519Signer.generate("n")])


def test_format_note_contract() -> None:
    signature = NoteSignature("n", 1, b"sig")
    with pytest.raises(MalformedNoteError):
        format_note("text\n", [])
    with pytest.raises(MalformedNoteError):
        format_note("text\n", [NoteSignature(f"n{i}", i, b"s") for i in range(101)])
    assert format_note("text\n", [signature, NoteSignature("n", 1, b"other")]).count("—") == 1


def test_spec_cosignature_example() -> None:
    text, signatures = parse_note(COSIGNED_CHECKPOINT)
    assert text == COSIGNED_MESSAGE.split("\n", 2)[2]
    witness = signatures[1]
    assert witness.name == "witness.example.com/w1"
    assert cosignature_timestamp(witness) == 1679315147
    assert cosignature_message(text, 1679315147) == COSIGNED_MESSAGE.encode()
    with pytest.raises(MalformedNoteError):
        cosignature_timestamp(signatures[0])  # a plain Ed25519 signature: 64 bytes only


def test_native_cosigner_vkey() -> None:
    verifier = parse_verifier_key(WITNESS_VKEY)
    assert isinstance(verifier, CosignatureVerifier)
    assert verifier.key_id == 0xDA77ADE7
    assert verifier.vkey() == WITNESS_VKEY


def test_cosignature_round_trip() -> None:
    log = Ed25519Signer.generate("hotline.example/audit")
    witness = Cosigner.generate("compliance.example/officer-1")
    checkpoint = "hotline.example/audit\n7\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    signed = sign_note(checkpoint, [log])

    # The witness verifies the log's signature, then adds its cosignature.
    opened = open_note(signed, [log.verifier()])
    cosignature = witness.cosign(opened.text, 1700000000)
    assert cosignature.key_id == witness.verifier().key_id
    cosigned = format_note(opened.text, [*opened.signatures, cosignature])

    witness_vkey = witness.verifier().vkey()
    assert base64.b64decode(witness_vkey.split("+", 2)[2])[0] == ALG_COSIGNATURE_V1
    both = open_note(cosigned, [log.verifier(), parse_verifier_key(witness_vkey)])
    assert [s.name for s in both.signatures] == [log.name, witness.name]
    assert cosignature_timestamp(both.signatures[1]) == 1700000000
    assert parse_signer_key(witness.skey()).verifier() == witness.verifier()

    # A changed timestamp, or the same key read as a plain Ed25519 key, does not verify.
    raw = bytearray(cosignature.signature)
    raw[7] ^= 1
    forged = NoteSignature(cosignature.name, cosignature.key_id, bytes(raw))
    with pytest.raises(InvalidSignatureError):
        open_note(format_note(opened.text, [forged]), [witness.verifier()])
    plain = Ed25519Verifier(witness.name, witness.verifier().public_key)
    with pytest.raises(UnverifiedNoteError):
        open_note(cosigned, [plain])
    assert CosignatureVerifier.from_ed25519(plain) == witness.verifier()
    with pytest.raises(MalformedNoteError):
        witness.cosign(opened.text, -1)


def test_errors_are_typed() -> None:
    for error in (
        MalformedNoteError,
        MalformedKeyError,
        AmbiguousKeyError,
        InvalidSignatureError,
        UnverifiedNoteError,
    ):
        assert issubclass(error, NoteError)
        assert issubclass(error, TlogError)
