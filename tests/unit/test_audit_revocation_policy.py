"""Rule 8 of the non-exposure policy (hotline.shared.audit.policy): no envelope of a report or
a message is sealed to a key revoked EARLIER in the log. Hand-built entries: a rotation that
breaks nothing, then each kind of envelope sealed to a revoked key, with the rule named and
the entry that broke it; and the whole audit's verdict over a log held in memory."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from hotline.shared.audit.entry import (
    AuditEntry,
    DisclosedTo,
    EnvelopeDisclosedEntry,
    EnvelopeSummary,
    KeyRegisteredEntry,
    KeyRevokedEntry,
    MessagePostedEntry,
    ReportSubmittedEntry,
)
from hotline.shared.audit.failures import Rule
from hotline.shared.audit.policy import NonExposurePolicy
from hotline.shared.audit.verdict import audit_log
from hotline.shared.events import OrgKind
from hotline.shared.messages import MessageKind
from tests.support.audit import MemoryLog

OPERATOR, NEW_OPERATOR = "x25519:op", "x25519:op2"
OLD, NEW = "x25519:buyer-old", "x25519:buyer-new"
REPLY = "x25519:reply"
COMMON: dict[str, Any] = {"time": "2026-03-01T10:00:00Z", "schema_version": 1}


def key(key_id: str, org: str, kind: OrgKind) -> KeyRegisteredEntry:
    return KeyRegisteredEntry(
        event_id=f"key-{key_id}-{uuid.uuid4()}",
        subject=key_id,
        key_id=key_id,
        org=org,
        org_kind=kind,
        public_key="AAAA",
        **COMMON,
    )


def revoked(key_id: str, org: str, kind: OrgKind) -> KeyRevokedEntry:
    return KeyRevokedEntry(
        event_id=f"revoked-{key_id}-{uuid.uuid4()}",
        subject=key_id,
        key_id=key_id,
        org=org,
        org_kind=kind,
        **COMMON,
    )


def summary(envelope_class: Any, to: Sequence[str]) -> EnvelopeSummary:
    return EnvelopeSummary(
        envelope_class=envelope_class, hash=uuid.uuid4().hex, recipients=sorted(to)
    )


def report(
    case: str,
    content_to: Sequence[str],
    *,
    identity_to: Sequence[str] = (OPERATOR,),
    attachments_to: Sequence[Sequence[str]] = (),
) -> ReportSubmittedEntry:
    envelopes = [summary("content", content_to), summary("identity", identity_to)]
    envelopes += [summary("attachment", to) for to in attachments_to]
    return ReportSubmittedEntry(
        event_id=f"report-{case}",
        subject=case,
        envelopes=envelopes,
        reply_key=REPLY,
        **COMMON,
    )


def message(
    case: str,
    kind: MessageKind,
    author_role: str,
    to: Sequence[str],
    attachments_to: Sequence[Sequence[str]] = (),
) -> MessagePostedEntry:
    envelopes = [summary("message", to)] + [summary("attachment", a) for a in attachments_to]
    message_id = str(uuid.uuid4())
    return MessagePostedEntry(
        event_id=f"message-{message_id}",
        subject=case,
        message_id=message_id,
        kind=kind,
        author_role=author_role,
        in_reply_to=None,
        envelopes=envelopes,
        **COMMON,
    )


def disclosed_to_buyer(of: ReportSubmittedEntry) -> EnvelopeDisclosedEntry:
    content = of.envelopes[0]
    return EnvelopeDisclosedEntry(
        event_id=f"disclosed-{uuid.uuid4()}",
        subject=of.subject,
        principal=DisclosedTo(role="buyer", org="buyer-1"),
        envelope_class="content",
        envelope_hash=content.hash,
        recipients=content.recipients,
        **COMMON,
    )


# Entries 0-4: the operator key, buyer-1's first key, a report sealed to it, then the
# rotation as the registry writes it: the new key registered, the old one revoked.
BEFORE = report("case-before", [OPERATOR, OLD])
PROLOGUE: list[AuditEntry] = [
    key(OPERATOR, "hotline-operator", "operator"),
    key(OLD, "buyer-1", "buyer"),
    BEFORE,
    key(NEW, "buyer-1", "buyer"),
    revoked(OLD, "buyer-1", "buyer"),
]
FIRST = len(PROLOGUE)  # the index of the first entry a test adds


def failures(entries: Sequence[AuditEntry]) -> tuple[NonExposurePolicy, list[tuple[int, str, str]]]:
    """Run the policy over the prologue and `entries`; return it and its violations, each
    as (entry index, rule, message)."""
    policy = NonExposurePolicy()
    for index, entry in enumerate([*PROLOGUE, *entries]):
        policy.add(index, entry.leaf())
    return policy, [(f.index or 0, str(f.rule), f.detail) for f in policy.finish()]


def test_a_rotation_breaks_no_rule_and_the_old_envelope_may_still_be_handed_out() -> None:
    after = report("case-after", [OPERATOR, NEW], attachments_to=[[OPERATOR, NEW]])
    question = message("case-after", "question", "buyer", [OPERATOR])
    policy, found = failures([after, question, disclosed_to_buyer(BEFORE)])
    assert found == []
    # 2 envelopes of the report before, 3 of the report after, 1 of the question.
    assert (policy.counts.revoked_keys, policy.counts.sealed_envelopes) == (1, 6)


def test_a_report_sealed_to_the_revoked_key_after_its_revocation() -> None:
    _, found = failures([report("case-late", [OPERATOR, OLD])])
    assert found == [
        (
            FIRST,
            Rule.NOT_REVOKED,
            f"the content envelope of the report is sealed to {OLD}, a key of buyer-1 revoked "
            "at entry 4",
        )
    ]


def test_an_attachment_sealed_to_the_revoked_key_is_caught_too() -> None:
    _, found = failures(
        [report("case-photo", [OPERATOR, NEW], attachments_to=[[OPERATOR, NEW], [OLD, OPERATOR]])]
    )
    assert [(i, rule) for i, rule, _ in found] == [(FIRST, Rule.NOT_REVOKED)]
    assert found[0][2].startswith(f"the attachment envelope of the report is sealed to {OLD}")


def test_identity_and_messages_sealed_to_a_revoked_operator_key() -> None:
    """Any key's revocation counts, not only a buyer's: an operator key revoked and still
    sealed to, by a report's identity and by a worker's answer and its photo."""
    _, found = failures(
        [
            key(NEW_OPERATOR, "hotline-operator", "operator"),
            revoked(OPERATOR, "hotline-operator", "operator"),
            report("case-2", [NEW_OPERATOR, NEW], identity_to=[OPERATOR, NEW_OPERATOR]),
            message("case-2", "answer", "worker", [NEW_OPERATOR], attachments_to=[[OPERATOR]]),
        ]
    )
    assert found == [
        (
            FIRST + 2,
            Rule.NOT_REVOKED,
            f"the identity envelope of the report is sealed to {OPERATOR}, a key of "
            f"hotline-operator revoked at entry {FIRST + 1}",
        ),
        (
            FIRST + 3,
            Rule.NOT_REVOKED,
            f"the attachment envelope of the answer is sealed to {OPERATOR}, a key of "
            f"hotline-operator revoked at entry {FIRST + 1}",
        ),
    ]


def test_a_revocation_later_in_the_log_does_not_reach_back() -> None:
    """Only a revocation EARLIER than the envelope counts: what was sealed before the key was
    revoked was sealed to a valid key."""
    policy, found = failures(
        [
            report("case-3", [OPERATOR, NEW]),
            message("case-3", "question", "buyer", [OPERATOR]),
            revoked(NEW, "buyer-1", "buyer"),
        ]
    )
    assert found == []
    assert policy.counts.revoked_keys == 2


def test_registering_a_revoked_key_again_does_not_lift_its_revocation() -> None:
    _, found = failures(
        [
            key(OLD, "buyer-1", "buyer"),
            revoked(OLD, "buyer-1", "buyer"),  # a second revocation: the first one is named
            report("case-4", [OPERATOR, OLD]),
        ]
    )
    assert found == [
        (
            FIRST + 2,
            Rule.NOT_REVOKED,
            f"the content envelope of the report is sealed to {OLD}, a key of buyer-1 revoked "
            "at entry 4",
        )
    ]


def test_the_verdict_counts_revocations_and_fails_on_an_envelope_sealed_to_one() -> None:
    clean = MemoryLog([entry.leaf() for entry in PROLOGUE])
    verdict, _ = audit_log(
        note=clean.note.encode(), log_key=clean.signer.verifier(), fetch_many=clean.fetch_many
    )
    assert verdict.ok, verdict.summary()
    assert "revocations: 2 report and message envelopes against 1 revoked keys" in (
        verdict.summary()
    )
    assert verdict.summary()[-1].endswith("and nothing was sealed to a revoked key")
    counts = verdict.to_json()["policy"]
    assert (counts["revoked_keys"], counts["sealed_envelopes"]) == (1, 2)

    late = report("case-late", [OPERATOR, OLD])
    broken = MemoryLog([entry.leaf() for entry in [*PROLOGUE, late]])
    verdict, _ = audit_log(
        note=broken.note.encode(), log_key=broken.signer.verifier(), fetch_many=broken.fetch_many
    )
    assert [(f.index, f.rule) for f in verdict.failures] == [(FIRST, Rule.NOT_REVOKED)]
    assert verdict.to_json()["failures"][0]["rule"] == "no-envelope-sealed-to-a-revoked-key"
    assert verdict.summary()[-1] == "VERDICT: FAILED (1 failure(s))"
