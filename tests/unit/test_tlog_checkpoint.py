"""C2SP tlog-checkpoint bodies (hotline.shared.tlog.checkpoint)."""

from __future__ import annotations

import base64

import pytest

from hotline.shared.tlog.checkpoint import (
    Checkpoint,
    format_checkpoint,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from hotline.shared.tlog.errors import (
    CheckpointError,
    InvalidSignatureError,
    TlogError,
    UnverifiedNoteError,
)
from hotline.shared.tlog.hashing import EMPTY_ROOT
from hotline.shared.tlog.note import Cosigner, Ed25519Signer, format_note, open_note, sign_note

# The example body of c2sp.org/tlog-checkpoint, copied verbatim.
SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SPEC_ROOT = base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")


def test_spec_example_parses_and_formats() -> None:
    checkpoint = parse_checkpoint(SPEC_BODY)
    assert checkpoint == Checkpoint("example.com/behind-the-sofa", 20852163, SPEC_ROOT)
    assert format_checkpoint(checkpoint) == SPEC_BODY


def test_extensions_and_empty_tree() -> None:
    body = "log.example/x\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nextension one\nB\n"
    checkpoint = parse_checkpoint(body)
    assert (checkpoint.size, checkpoint.root_hash) == (0, EMPTY_ROOT)
    assert checkpoint.extensions == ("extension one", "B")
    assert format_checkpoint(checkpoint) == body


MUTATED_BODIES = {
    "plus sign": SPEC_BODY.replace("\n20852163\n", "\n+20852163\n"),
    "minus sign": SPEC_BODY.replace("\n20852163\n", "\n-20852163\n"),
    "leading zero": SPEC_BODY.replace("\n20852163\n", "\n020852163\n"),
    "zero padded zero": SPEC_BODY.replace("\n20852163\n", "\n00\n"),
    "space before size": SPEC_BODY.replace("\n20852163\n", "\n 20852163\n"),
    "space after size": SPEC_BODY.replace("\n20852163\n", "\n20852163 \n"),
    "underscore in size": SPEC_BODY.replace("\n20852163\n", "\n20_852_163\n"),
    "non-ASCII digits": SPEC_BODY.replace("\n20852163\n", "\n\u0662\u0660\n"),
    "hex size": SPEC_BODY.replace("\n20852163\n", "\n0x10\n"),
    "size over 64 bits": SPEC_BODY.replace("\n20852163\n", "\n18446744073709551616\n"),
    "huge size": SPEC_BODY.replace("\n20852163\n", "\n" + "9" * 5000 + "\n"),
    "empty size": SPEC_BODY.replace("\n20852163\n", "\n\n"),
    "space after root": SPEC_BODY.replace("2I=\n", "2I= \n"),
    "unpadded root": SPEC_BODY.replace("2I=\n", "2I\n"),
    "non-canonical root": SPEC_BODY.replace("2I=\n", "2J=\n"),
    "short root": SPEC_BODY.replace("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=", "CsUY"),
    "url-safe root": SPEC_BODY.replace("m/X", "m_X"),
    "no final newline": SPEC_BODY[:-1],
    "two lines": "example.com/behind-the-sofa\n20852163\n",
    "empty origin": "\n" + SPEC_BODY.split("\n", 1)[1],
    "empty extension line": SPEC_BODY + "\n",
    "empty extension then line": SPEC_BODY + "\nx\n",
    "carriage returns": SPEC_BODY.replace("\n", "\r\n"),
}


@pytest.mark.parametrize("name", sorted(MUTATED_BODIES))
def test_mutated_bodies_are_refused(name: str) -> None:
    with pytest.raises(CheckpointError):
        parse_checkpoint(MUTATED_BODIES[name])


@pytest.mark.parametrize(
    "fields",
    [
        ("", 1, EMPTY_ROOT, ()),
        ("a\nb", 1, EMPTY_ROOT, ()),
        ("o", -1, EMPTY_ROOT, ()),
        ("o", 2**64, EMPTY_ROOT, ()),
        ("o", 1, EMPTY_ROOT[:31], ()),
        ("o", 1, EMPTY_ROOT, ("",)),
        ("o", 1, EMPTY_ROOT, ("x\ny",)),
    ],
)
def test_checkpoint_contract(fields: tuple[str, int, bytes, tuple[str, ...]]) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint(*fields)


def test_sign_and_open() -> None:
    log = Ed25519Signer.generate("hotline.example/audit")
    checkpoint = Checkpoint("hotline.example/audit", 12, EMPTY_ROOT)
    signed = sign_checkpoint(checkpoint, [log])
    opened, note = open_checkpoint(signed.encode(), "hotline.example/audit", [log.verifier()])
    assert opened == checkpoint
    assert [s.name for s in note.signatures] == [log.name]

    with pytest.raises(CheckpointError):
        open_checkpoint(signed, "hotline.example/other", [log.verifier()])
    with pytest.raises(UnverifiedNoteError):
        open_checkpoint(signed, "hotline.example/audit", [Ed25519Signer.generate("x").verifier()])
    with pytest.raises(InvalidSignatureError):
        open_checkpoint(
            signed.replace("\n12\n", "\n13\n"), "hotline.example/audit", [log.verifier()]
        )

    # A validly signed note whose text is not a strict checkpoint.
    bad = sign_note(SPEC_BODY.replace("\n20852163\n", "\n+12\n"), [log])
    with pytest.raises(CheckpointError):
        open_checkpoint(bad, "example.com/behind-the-sofa", [log.verifier()])


def test_cosigned_checkpoint() -> None:
    log = Ed25519Signer.generate("hotline.example/audit")
    witness = Cosigner.generate("compliance.example/officer-1")
    signed = sign_checkpoint(Checkpoint("hotline.example/audit", 3, EMPTY_ROOT), [log])
    checkpoint, note = open_checkpoint(signed, "hotline.example/audit", [log.verifier()])
    cosigned = format_note(note.text, [*note.signatures, witness.cosign(note.text, 1700000000)])
    _, both = open_checkpoint(cosigned, checkpoint.origin, [log.verifier(), witness.verifier()])
    assert len(both.signatures) == 2
    assert open_note(cosigned, [witness.verifier()]).unverified == note.signatures


def test_errors_are_typed() -> None:
    assert issubclass(CheckpointError, TlogError)
