"""Case proof files (hotline.shared.audit.proofs): built from the tiles of a walk, checked
offline; every kind of forgery is refused naming what is wrong."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from hotline.shared.audit.failures import AuditFailure, Rule
from hotline.shared.audit.proofs import build_case_proof, case_entries, check_case_proof
from hotline.shared.audit.walk import walk_log
from hotline.shared.events import EventType
from hotline.shared.tlog.note import Ed25519Signer
from tests.support.audit import MemoryLog, World

CASE = "case-0090"  # its entries lie in the second bundle of a log of 303 entries


@pytest.fixture(scope="module")
def log() -> MemoryLog:
    return MemoryLog.of_events(World().log(100))


def proof_of(log: MemoryLog, case: str) -> dict[str, Any]:
    """The proof file as `hotline audit prove` writes it, read back from its JSON."""
    found, on_bundle = case_entries(case)
    result = walk_log(log.size, log.fetch_many, on_bundle)
    proof = build_case_proof(case, log.note, log.checkpoint, found, result.tiles)
    document: dict[str, Any] = json.loads(json.dumps(proof))
    return document


def refused(document: dict[str, Any], log: MemoryLog) -> AuditFailure:
    with pytest.raises(AuditFailure) as failed:
        check_case_proof(document, log.signer.verifier())
    return failed.value


def test_a_proof_round_trips_and_holds_every_entry_of_the_case(log: MemoryLog) -> None:
    document = proof_of(log, CASE)
    checked = check_case_proof(document, log.signer.verifier())
    assert checked.case == CASE and checked.checkpoint == log.checkpoint
    logged = [i for i, leaf in enumerate(log.leaves) if f'"subject":"{CASE}"'.encode() in leaf]
    assert [index for index, _ in checked.entries] == logged == [273, 274, 275]
    assert [entry.type for _, entry in checked.entries] == [
        EventType.REPORT_SUBMITTED,
        EventType.ENVELOPE_DISCLOSED,
        EventType.ENVELOPE_DISCLOSED,
    ]
    assert all(entry.subject == CASE for _, entry in checked.entries)


def test_a_changed_entry_is_refused(log: MemoryLog) -> None:
    document = proof_of(log, CASE)
    entry = json.loads(document["entries"][0]["entry"])
    entry["factory"] = "F-OTHER"
    document["entries"][0]["entry"] = json.dumps(entry, separators=(",", ":"), sort_keys=True)
    failure = refused(document, log)
    assert (failure.rule, failure.index) == (Rule.PROOF, 273)
    assert failure.detail.startswith("inclusion proof refused: ")


def test_a_proof_hash_that_is_not_base64_is_refused(log: MemoryLog) -> None:
    document = proof_of(log, CASE)
    document["entries"][1]["proof"][0] = "not base64!"
    failure = refused(document, log)
    assert (failure.rule, failure.index) == (Rule.PROOF, 274)


def test_another_cases_entry_is_refused_though_it_is_in_the_log(log: MemoryLog) -> None:
    document = proof_of(log, CASE)
    document["entries"].append(proof_of(log, "case-0001")["entries"][0])
    failure = refused(document, log)
    assert (failure.rule, failure.index) == (Rule.PROOF, 6)
    assert failure.detail == f"the entry is not about case {CASE}"


def test_a_checkpoint_of_another_key_is_refused(log: MemoryLog) -> None:
    other = Ed25519Signer(log.signer.name, secrets.token_bytes(32))
    with pytest.raises(AuditFailure, match=r"\[rule checkpoint-signature\]"):
        check_case_proof(proof_of(log, CASE), other.verifier())


@pytest.mark.parametrize(
    "change,says",
    [
        ({"format": "something/v0"}, "not a hotline-audit-proof/v1 file"),
        ({"entries": None}, "the proof file lacks its case, checkpoint or entries"),
        ({"entries": ["x"]}, "an entry of the proof file is not an object"),
        ({"entries": [{"index": 1}]}, "an entry lacks its index, entry text or proof"),
    ],
)
def test_a_file_that_is_not_a_proof_is_refused(
    log: MemoryLog, change: dict[str, Any], says: str
) -> None:
    failure = refused({**proof_of(log, CASE), **change}, log)
    assert failure.rule == Rule.PROOF and failure.detail == says


def test_no_entry_is_found_for_an_unknown_case(log: MemoryLog) -> None:
    found, on_bundle = case_entries("case-9999")
    walk_log(log.size, log.fetch_many, on_bundle)
    assert found == []
