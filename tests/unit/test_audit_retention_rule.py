"""Rule 9 of the non-exposure policy (hotline.shared.audit.policy): no envelope is disclosed
after an `envelopes.deleted` entry that lists it. The events are the small world of
tests/support/audit.py, made into entries as the audit log makes them: a case whose
envelopes were handed out before their deletion passes; a hand-out after the deletion fails,
naming the deletion's entry; and the whole audit's verdict says so over a log in memory."""

from __future__ import annotations

from collections.abc import Sequence

from hotline.audit_log.entries import audit_entry
from hotline.shared.audit.failures import Rule
from hotline.shared.audit.policy import NonExposurePolicy
from hotline.shared.audit.verdict import audit_log
from hotline.shared.envelope import envelope_hash
from hotline.shared.events import (
    DeletedEnvelope,
    DeletionScope,
    EnvelopeClass,
    EnvelopeDisclosed,
    EnvelopesDeleted,
    Event,
    Principal,
    ReportSubmitted,
    event_data,
    new_event,
)
from tests.support.audit import MemoryLog, Org, World, report

CASE = "case-retained"
OPERATOR_ROLE = "triage-analyst"


def envelopes_of(submitted: Event) -> dict[EnvelopeClass, str]:
    """The hashes of the report's content and identity envelopes."""
    data = event_data(submitted, ReportSubmitted)
    assert data.identity is not None
    return {"content": envelope_hash(data.content), "identity": envelope_hash(data.identity)}


def hand_out(submitted: Event, envelope_class: EnvelopeClass, to: Sequence[Org]) -> Event:
    """The disclosure of the report's envelope of `envelope_class` to an operator."""
    data = EnvelopeDisclosed(
        principal=Principal(role=OPERATOR_ROLE, org="hotline-operator"),
        envelope_class=envelope_class,
        envelope_hash=envelopes_of(submitted)[envelope_class],
        recipient_key_ids=sorted(org.key_id for org in to),
    )
    return new_event(submitted.subject, data)


def deletion(submitted: Event, scope: DeletionScope) -> Event:
    hashes = envelopes_of(submitted)
    classes: list[EnvelopeClass] = ["identity"] if scope == "identity" else ["content", "identity"]
    listed = [DeletedEnvelope(envelope_class=c, envelope_hash=hashes[c]) for c in classes]
    return new_event(
        submitted.subject, EnvelopesDeleted(scope=scope, policy="F-T01", envelopes=listed)
    )


def violations(events: Sequence[Event]) -> tuple[NonExposurePolicy, list[tuple[int, str, str]]]:
    policy = NonExposurePolicy()
    for index, event in enumerate(events):
        policy.add(index, audit_entry(event).leaf())
    return policy, [(f.index or 0, str(f.rule), f.detail) for f in policy.finish()]


def world_with_case() -> tuple[World, Event, list[Event]]:
    world = World()
    submitted = report(CASE, world.factory, [world.operator, world.buyer], [world.operator])
    return world, submitted, [*world.prologue(), submitted]


def test_hand_outs_before_the_deletion_pass() -> None:
    world, submitted, log = world_with_case()
    events = [
        *log,
        hand_out(submitted, "identity", [world.operator]),
        hand_out(submitted, "content", [world.operator, world.buyer]),
        deletion(submitted, "identity"),
        hand_out(submitted, "content", [world.operator, world.buyer]),  # content still exists
        deletion(submitted, "content"),
    ]
    policy, found = violations(events)
    assert found == []
    assert policy.counts.deleted_envelopes == 2  # identity once, then content


def test_a_hand_out_after_the_deletion_fails_naming_the_deletion_entry() -> None:
    world, submitted, log = world_with_case()
    deleted_at = len(log)
    events = [
        *log,
        deletion(submitted, "identity"),
        hand_out(submitted, "content", [world.operator, world.buyer]),
        hand_out(submitted, "identity", [world.operator]),
    ]
    _, found = violations(events)
    identity = envelopes_of(submitted)["identity"]
    assert found == [
        (
            deleted_at + 2,
            Rule.NO_HAND_OUT_AFTER_DELETION,
            f"the identity envelope {identity} of case {CASE} is disclosed to role "
            f"{OPERATOR_ROLE} after its deletion at entry {deleted_at}",
        )
    ]


def test_the_verdict_fails_on_a_hand_out_after_deletion() -> None:
    world, submitted, log = world_with_case()
    clean = [*log, deletion(submitted, "content")]
    memory = MemoryLog.of_events(clean)
    verdict, _ = audit_log(
        note=memory.note.encode(), log_key=memory.signer.verifier(), fetch_many=memory.fetch_many
    )
    assert verdict.ok, verdict.summary()
    assert verdict.to_json()["policy"]["deleted_envelopes"] == 2

    late = hand_out(submitted, "content", [world.operator, world.buyer])
    broken = MemoryLog.of_events([*clean, late])
    verdict, _ = audit_log(
        note=broken.note.encode(), log_key=broken.signer.verifier(), fetch_many=broken.fetch_many
    )
    assert [(f.index, f.rule) for f in verdict.failures] == [
        (len(clean), Rule.NO_HAND_OUT_AFTER_DELETION)
    ]
    assert verdict.to_json()["failures"][0]["rule"] == "no-hand-out-after-deletion"
