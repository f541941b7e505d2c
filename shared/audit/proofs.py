"""Case proof files: every entry of one case, each with its RFC 9162 inclusion proof, and
the signed checkpoint they are proven against. Built from the tiles the auditor downloaded
(`hotline audit prove`: the log never learns which case was looked at), checked offline.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import rfc8785

from hotline.shared.keys import b64encode
from hotline.shared.tlog.checkpoint import Checkpoint
from hotline.shared.tlog.errors import TlogError
from hotline.shared.tlog.hashing import HASH_SIZE, leaf_hash
from hotline.shared.tlog.note import Ed25519Verifier
from hotline.shared.tlog.proof import inclusion_proof
from hotline.shared.tlog.tiles import Tile, hashes_from_tiles
from hotline.shared.tlog.verify import verify_inclusion

from .entry import AuditEntry, MalformedEntryError, parse_entry
from .failures import AuditFailure, Rule
from .trust import open_log_checkpoint
from .walk import OnBundle

PROOF_FORMAT = "hotline-audit-proof/v1"


def case_entries(case_id: str) -> tuple[list[tuple[int, bytes]], OnBundle]:
    """A list that fills with (index, leaf) of `case_id`'s entries, and the `on_bundle`
    callback for `walk_log` that fills it (keeping the level-0 tiles the proofs need)."""
    found: list[tuple[int, bytes]] = []
    needle = rfc8785.dumps(case_id)  # the subject as a canonical leaf spells it: a cheap filter

    def on_bundle(first: int, entries: list[bytes]) -> bool:
        hit = False
        for offset, leaf in enumerate(entries):
            if needle in leaf and _subject(leaf) == case_id:
                found.append((first + offset, leaf))
                hit = True
        return hit

    return found, on_bundle


def _subject(leaf: bytes) -> str | None:
    try:
        return parse_entry(leaf).subject
    except MalformedEntryError:
        return None


def build_case_proof(
    case_id: str,
    note: str,
    checkpoint: Checkpoint,
    entries: Sequence[tuple[int, bytes]],
    tiles: Mapping[Tile, bytes],
) -> dict[str, Any]:
    """The self-contained proof file: the signed checkpoint, and each entry of the case with
    its RFC 9162 inclusion proof computed from `tiles` (which must hold every tile needed)."""
    size = checkpoint.size
    proved = []
    for index, leaf in entries:
        proof = inclusion_proof(index, size, lambda nodes: hashes_from_tiles(nodes, tiles, size))
        proved.append(
            {"index": index, "entry": leaf.decode(), "proof": [b64encode(h) for h in proof]}
        )
    return {"format": PROOF_FORMAT, "case": case_id, "checkpoint": note, "entries": proved}


@dataclass(frozen=True)
class CaseProof:
    """A checked proof file: the case, the checkpoint, and the entries proven in it."""

    case: str
    checkpoint: Checkpoint
    entries: tuple[tuple[int, AuditEntry], ...]


def check_case_proof(document: Mapping[str, Any], log_key: Ed25519Verifier) -> CaseProof:
    """Verify a proof file offline: checkpoint signature, then every inclusion proof, and
    that every entry belongs to the case. Raises AuditFailure naming the first problem."""
    if document.get("format") != PROOF_FORMAT:
        raise AuditFailure(Rule.PROOF, f"not a {PROOF_FORMAT} file")
    case = document.get("case")
    note = document.get("checkpoint")
    items = document.get("entries")
    if not isinstance(case, str) or not isinstance(note, str) or not isinstance(items, list):
        raise AuditFailure(Rule.PROOF, "the proof file lacks its case, checkpoint or entries")
    checkpoint = open_log_checkpoint(note, log_key)
    checked = []
    for item in items:
        index, entry = _check_included(item, checkpoint)
        if entry.subject != case:
            raise AuditFailure(Rule.PROOF, f"the entry is not about case {case}", index)
        checked.append((index, entry))
    return CaseProof(case, checkpoint, tuple(checked))


def _check_included(item: object, checkpoint: Checkpoint) -> tuple[int, AuditEntry]:
    """Verify one {index, entry, proof} item against the checkpoint; return its entry."""
    if not isinstance(item, dict):
        raise AuditFailure(Rule.PROOF, "an entry of the proof file is not an object")
    index, entry, proof = item.get("index"), item.get("entry"), item.get("proof")
    if not isinstance(index, int) or not isinstance(entry, str) or not isinstance(proof, list):
        raise AuditFailure(Rule.PROOF, "an entry lacks its index, entry text or proof")
    leaf = entry.encode()
    try:
        hashes = [base64.b64decode(h, validate=True) for h in proof]
        if any(len(h) != HASH_SIZE for h in hashes):
            raise ValueError("a proof hash is not 32 bytes")
        verify_inclusion(index, checkpoint.size, leaf_hash(leaf), hashes, checkpoint.root_hash)
    except (TlogError, ValueError, TypeError) as exc:
        raise AuditFailure(Rule.PROOF, f"inclusion proof refused: {exc}", index) from None
    try:
        return index, parse_entry(leaf)
    except MalformedEntryError as exc:
        raise AuditFailure(Rule.PROOF, str(exc), index) from None
