"""The whole audit (hotline.shared.audit.verdict.audit_log) over logs held in memory: each
check runs in order, integrity failures stop it, policy violations are all reported."""

from __future__ import annotations

import secrets

from hotline.shared.audit.failures import Rule
from hotline.shared.audit.verdict import audit_log
from hotline.shared.tlog.note import Ed25519Signer
from tests.support.audit import MemoryLog, World, disclosed


def test_an_intact_log_gets_an_ok_verdict_with_what_was_checked() -> None:
    log = MemoryLog.of_events(World().log(100))
    progress: list[int] = []
    verdict, checkpoint = audit_log(
        note=log.note.encode(),
        log_key=log.signer.verifier(),
        fetch_many=log.fetch_many,
        progress=progress.append,
    )
    assert verdict.ok and checkpoint == log.checkpoint
    assert sum(progress) == log.size == 303
    assert (verdict.size, verdict.bundles, verdict.tiles, verdict.trusted_size) == (303, 2, 3, None)
    counts = verdict.to_json()["policy"]
    assert counts["entries"] == 303 and counts["identity_envelopes"] == 200
    assert (counts["operator_keys"], counts["factories"]) == (1, 1)
    assert verdict.summary()[-1].startswith("VERDICT: OK")


def test_a_grown_log_is_proved_consistent_with_the_trusted_checkpoint() -> None:
    signer = Ed25519Signer("test.local/grown", secrets.token_bytes(32))
    events = World().log(100)
    trusted = MemoryLog.of_events(events[:150])
    trusted.signer = signer
    current = MemoryLog(trusted.leaves + MemoryLog.of_events(events[150:]).leaves, signer)
    verdict, _ = audit_log(
        note=current.note.encode(),
        log_key=signer.verifier(),
        fetch_many=current.fetch_many,
        trusted_note=trusted.note,
    )
    assert verdict.ok, verdict.summary()
    assert verdict.trusted_size == 150 and verdict.consistency_proved
    assert "consistent with the checkpoint of size 150 you trusted" in verdict.summary()[1]


def test_a_rollback_stops_the_audit_before_the_walk() -> None:
    signer = Ed25519Signer("test.local/rolled", secrets.token_bytes(32))
    log = MemoryLog.of_events(World().log(3))
    log.signer = signer
    smaller = MemoryLog(log.leaves[:-1], signer)
    verdict, _ = audit_log(
        note=smaller.note.encode(),
        log_key=signer.verifier(),
        fetch_many=smaller.fetch_many,
        trusted_note=log.note,
    )
    assert [f.rule for f in verdict.failures] == [Rule.ROLLBACK]
    assert verdict.bundles == 0 and verdict.summary()[-1] == "VERDICT: FAILED (1 failure(s))"


def test_entries_that_hash_to_another_root_than_the_signed_one() -> None:
    log = MemoryLog.of_events(World().log(3))
    forged = MemoryLog([*log.leaves[:-1], log.leaves[0]], log.signer)  # same size, other root
    verdict, _ = audit_log(
        note=forged.note.encode(), log_key=log.signer.verifier(), fetch_many=log.fetch_many
    )
    [failure] = verdict.failures
    assert failure.rule == Rule.ROOT and "but the signed checkpoint of size 12 says" in str(failure)


def test_policy_violations_are_all_reported_and_the_tree_still_checked() -> None:
    world = World()
    leak = [
        disclosed("case-0000", "factory-manager", world.factory, "identity", [world.operator]),
        disclosed("case-0001", "triage-analyst", "hotline-operator", "identity", [world.buyer]),
    ]
    log = MemoryLog.of_events(world.log(2) + leak)
    verdict, _ = audit_log(
        note=log.note.encode(), log_key=log.signer.verifier(), fetch_many=log.fetch_many
    )
    assert [(f.index, f.rule) for f in verdict.failures] == [
        (9, Rule.NO_FACTORY_DISCLOSURE),
        (9, Rule.NO_FACTORY_DISCLOSURE),
        (10, Rule.OPERATOR_ONLY),
    ]
    assert verdict.bundles == 1 and verdict.to_json()["failures"][2]["index"] == 10


def test_a_checkpoint_of_another_key_is_refused_without_a_walk() -> None:
    log = MemoryLog.of_events(World().log(1))
    other = Ed25519Signer(log.signer.name, secrets.token_bytes(32))
    verdict, checkpoint = audit_log(
        note=log.note.encode(), log_key=other.verifier(), fetch_many=log.fetch_many
    )
    assert checkpoint is None and [f.rule for f in verdict.failures] == [Rule.SIGNATURE]
