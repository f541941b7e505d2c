"""Trust of checkpoints (hotline.shared.audit.trust): the log's signature, witness quorum, and
the checkpoint trusted last (rollback, fork, consistency proof from tiles)."""

from __future__ import annotations

import secrets

import pytest

from hotline.shared.audit.failures import AuditFailure, Rule
from hotline.shared.audit.trust import (
    check_against_trusted,
    check_consistency,
    consistency_tiles,
    count_cosignatures,
    open_log_checkpoint,
)
from hotline.shared.tlog.note import (
    Cosigner,
    Ed25519Signer,
    NoteSignature,
    format_note,
    parse_note,
)
from hotline.shared.tlog.tiles import Tile, parse_tile_path
from tests.support.audit import MemoryLog


def leaves(size: int, tag: bytes = b"") -> list[bytes]:
    return [tag + b"entry %d" % n for n in range(size)]


def refused(rule: Rule) -> pytest.RaisesExc[AuditFailure]:
    return pytest.raises(AuditFailure, match=rf"\[rule {rule}\]$")


def test_the_checkpoint_must_be_signed_by_the_logs_key() -> None:
    seed = secrets.token_bytes(32)
    log = MemoryLog(leaves(3), Ed25519Signer("test.local/log", seed))
    assert open_log_checkpoint(log.note, log.signer.verifier()) == log.checkpoint
    other = Ed25519Signer("test.local/log", secrets.token_bytes(32))  # same origin, other key
    with refused(Rule.SIGNATURE):
        open_log_checkpoint(log.note, other.verifier())
    elsewhere = Ed25519Signer("test.local/other", seed)  # same key, another origin
    with refused(Rule.SIGNATURE) as failed:
        open_log_checkpoint(log.note, elsewhere.verifier())
    assert failed.value.detail.startswith("checkpoint refused: ")


def cosigned(log: MemoryLog, *witnesses: Cosigner) -> str:
    text, signatures = parse_note(log.note)
    return format_note(text, [*signatures, *(w.cosign(text, 1_700_000_000) for w in witnesses)])


def test_witness_cosignatures_are_counted_against_the_quorum() -> None:
    log = MemoryLog(leaves(3))
    one, two = Cosigner.generate("w1.test"), Cosigner.generate("w2.test")
    keys = [one.verifier(), two.verifier()]
    assert count_cosignatures(cosigned(log, one, two), keys, 2) == 2
    assert count_cosignatures(cosigned(log, one), keys, 1) == 1
    with refused(Rule.QUORUM) as failed:
        count_cosignatures(cosigned(log, one), keys, 2)
    assert "carries 1 cosignature(s) from the given witnesses, 2 required" in str(failed.value)
    with refused(Rule.QUORUM):
        count_cosignatures(log.note, keys, 1)
    with pytest.raises(ValueError, match="quorum 3 needs 0 to 2 witnesses"):
        count_cosignatures(log.note, keys, 3)


def test_a_bad_cosignature_from_a_listed_witness_is_refused() -> None:
    log = MemoryLog(leaves(3))
    witness = Cosigner.generate("w1.test")
    text, signatures = parse_note(log.note)
    good = witness.cosign(text, 1_700_000_000)
    flipped = good.signature[:-1] + bytes([good.signature[-1] ^ 1])
    bad = NoteSignature(good.name, good.key_id, flipped)
    with refused(Rule.COSIGNATURE):
        count_cosignatures(format_note(text, [*signatures, bad]), [witness.verifier()], 0)


def test_a_smaller_tree_than_trusted_is_a_rollback() -> None:
    trusted, current = MemoryLog(leaves(600)), MemoryLog(leaves(599))
    with refused(Rule.ROLLBACK) as failed:
        check_against_trusted(trusted.checkpoint, current.checkpoint)
    assert "the log shows size 599, smaller than the size 600 you trusted" in str(failed.value)


def test_another_root_at_the_trusted_size_is_a_fork() -> None:
    trusted, current = MemoryLog(leaves(600)), MemoryLog(leaves(600, b"forked "))
    with refused(Rule.FORK) as failed:
        check_against_trusted(trusted.checkpoint, current.checkpoint)
    assert "FORK: two different checkpoints of size 600" in str(failed.value)
    check_against_trusted(trusted.checkpoint, trusted.checkpoint)
    check_against_trusted(None, current.checkpoint)


def tiles_for(trusted: MemoryLog, current: MemoryLog) -> dict[Tile, bytes]:
    """The tiles of `current` that a consistency proof from `trusted` needs, as served."""
    needed = consistency_tiles(trusted.checkpoint, current.checkpoint)
    by_path = {parse_tile_path(p): d for p, d in current.resources.items() if "entries" not in p}
    return {tile: by_path[tile] for tile in needed}


def test_a_bigger_tree_must_extend_the_trusted_one() -> None:
    trusted = MemoryLog(leaves(300))
    current = MemoryLog(leaves(70_000))
    assert consistency_tiles(trusted.checkpoint, current.checkpoint)
    tiles = tiles_for(trusted, current)
    check_against_trusted(trusted.checkpoint, current.checkpoint)
    assert check_consistency(trusted.checkpoint, current.checkpoint, tiles) is True
    assert check_consistency(None, current.checkpoint, {}) is False
    assert check_consistency(current.checkpoint, current.checkpoint, {}) is False


def test_a_bigger_tree_that_rewrote_the_trusted_one_is_a_fork() -> None:
    trusted = MemoryLog(leaves(300))
    current = MemoryLog([b"rewritten", *leaves(600)[1:]])
    tiles = tiles_for(trusted, current)
    with refused(Rule.FORK) as failed:
        check_consistency(trusted.checkpoint, current.checkpoint, tiles)
    assert "FORK: the tree of size 600 is not an extension of the checkpoint of size 300" in (
        str(failed.value)
    )
