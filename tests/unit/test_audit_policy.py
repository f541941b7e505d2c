"""The non-exposure policy (hotline.shared.audit.policy) over hand-built entries: each rule's
failure, the entries that do not break it, and malformed leaves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hotline.shared.audit.entry import (
    AuditEntry,
    DisclosedTo,
    EnvelopeDisclosedEntry,
    EnvelopeSummary,
    KeyRegisteredEntry,
    RegistryChangedEntry,
    ReportSubmittedEntry,
)
from hotline.shared.audit.failures import AuditFailure, Rule
from hotline.shared.audit.policy import NonExposurePolicy
from hotline.shared.events import EnvelopeClass, OrgKind

OPERATOR, BUYER, FACTORY_KEY, LATE = "x25519:op", "x25519:buyer", "x25519:fac", "x25519:late"
COMMON: dict[str, Any] = {"time": "2026-03-01T10:00:00Z", "schema_version": 1}


def key(key_id: str, org: str, kind: OrgKind) -> KeyRegisteredEntry:
    return KeyRegisteredEntry(
        event_id=f"key-{key_id}",
        subject=key_id,
        key_id=key_id,
        org=org,
        org_kind=kind,
        public_key="AAAA",
        **COMMON,
    )


def factory_added(code: str | None) -> RegistryChangedEntry:
    return RegistryChangedEntry(
        event_id=f"factory-{code}",
        subject=code or "-",
        change="factory-added",
        factory=code,
        buyer=None,
        **COMMON,
    )


def report(case: str, identity_to: Sequence[str]) -> ReportSubmittedEntry:
    envelopes = [EnvelopeSummary(envelope_class="content", hash="c1", recipients=[OPERATOR])]
    if identity_to:
        envelopes.append(
            EnvelopeSummary(envelope_class="identity", hash="i1", recipients=list(identity_to))
        )
    return ReportSubmittedEntry(
        event_id=f"report-{case}",
        subject=case,
        envelopes=envelopes,
        reply_key=None,
        **COMMON,
    )


def disclosed(
    case: str, role: str, org: str | None, kind: EnvelopeClass, to: Sequence[str]
) -> EnvelopeDisclosedEntry:
    return EnvelopeDisclosedEntry(
        event_id=f"disclosed-{case}-{role}",
        subject=case,
        principal=DisclosedTo(role=role, org=org),
        envelope_class=kind,
        envelope_hash="e1",
        recipients=list(to),
        **COMMON,
    )


PROLOGUE: list[AuditEntry] = [
    key(OPERATOR, "hotline-operator", "operator"),
    factory_added("F-1"),
    key(BUYER, "buyer-1", "buyer"),
]


def violations(entries: Sequence[AuditEntry | bytes]) -> tuple[NonExposurePolicy, list[str]]:
    """Run the policy over `entries` (typed, or raw leaves); return it and its violations,
    each as `index rule: message`."""
    policy = NonExposurePolicy()
    for index, entry in enumerate(entries):
        policy.add(index, entry if isinstance(entry, bytes) else entry.leaf())
    return policy, [_shown(failure) for failure in policy.finish()]


def _shown(failure: AuditFailure) -> str:
    return f"{failure.index} {failure.rule}: {failure.detail}"


def test_a_well_behaved_log_breaks_no_rule_and_is_counted() -> None:
    policy, found = violations(
        [
            *PROLOGUE,
            report("case-1", [OPERATOR]),
            disclosed("case-1", "triage-analyst", "hotline-operator", "identity", [OPERATOR]),
            disclosed("case-1", "buyer", "buyer-1", "content", [OPERATOR, BUYER]),
            disclosed("case-1", "factory-manager", "F-1", "content", [OPERATOR]),
        ]
    )
    assert found == []
    counts = policy.counts
    assert (counts.entries, counts.identity_envelopes, counts.identity_recipients) == (7, 2, 2)
    assert (counts.disclosures, counts.identity_disclosures) == (3, 1)
    assert (counts.operator_keys, counts.factory_keys, counts.factories) == (1, 0, 1)


def test_identity_sealed_to_a_key_that_is_not_an_operators() -> None:
    _, found = violations([*PROLOGUE, report("case-1", [OPERATOR, BUYER])])
    assert found == [
        f"3 {Rule.OPERATOR_ONLY}: identity envelope of report.submitted sealed to {BUYER}, "
        "which is not an operator key registered earlier in the log (registered for buyer-1 "
        "at entry 2)"
    ]


def test_identity_sealed_to_an_operator_key_registered_later() -> None:
    late = key(LATE, "hotline-operator", "operator")
    _, found = violations([*PROLOGUE, report("case-1", [LATE]), late])
    assert found == [
        f"3 {Rule.OPERATOR_ONLY}: identity envelope of report.submitted sealed to {LATE}, "
        "which is not an operator key registered earlier in the log (never registered so far)"
    ]


def test_a_disclosed_identity_envelope_is_held_to_rule_one_too() -> None:
    _, found = violations(
        [*PROLOGUE, disclosed("case-1", "triage-analyst", "hotline-operator", "identity", [BUYER])]
    )
    assert [f.split(":")[0] for f in found] == [f"3 {Rule.OPERATOR_ONLY}"]
    assert "disclosed identity envelope sealed to x25519:buyer" in found[0]


def test_identity_disclosed_to_a_factory_manager() -> None:
    _, found = violations(
        [*PROLOGUE, disclosed("case-1", "factory-manager", None, "identity", [OPERATOR])]
    )
    assert found == [
        f"3 {Rule.NO_FACTORY_DISCLOSURE}: identity disclosed to a principal with role "
        "factory-manager (org None)"
    ]


def test_identity_disclosed_to_a_factorys_org_even_one_added_later() -> None:
    _, found = violations(
        [
            *PROLOGUE,
            disclosed("case-1", "triage-analyst", "F-1", "identity", [OPERATOR]),
            disclosed("case-1", "triage-analyst", "F-2", "identity", [OPERATOR]),
            factory_added("F-2"),
        ]
    )
    assert found == [
        f"3 {Rule.NO_FACTORY_DISCLOSURE}: identity disclosed to org F-1, a factory (added at "
        "entry 1)",
        f"4 {Rule.NO_FACTORY_DISCLOSURE}: identity disclosed to org F-2, a factory (added at "
        "entry 5)",
    ]


def test_identity_sealed_to_a_factory_key_registered_anywhere_in_the_log() -> None:
    _, found = violations(
        [*PROLOGUE, report("case-1", [FACTORY_KEY]), key(FACTORY_KEY, "F-9", "factory")]
    )
    rules = [f.split(":")[0] for f in found]
    assert rules == [f"3 {Rule.OPERATOR_ONLY}", f"3 {Rule.NO_FACTORY_KEY}"]
    assert found[1].endswith(f"sealed to {FACTORY_KEY}, a key registered for a factory at entry 4")


def test_a_factory_key_makes_its_org_a_factory() -> None:
    policy, found = violations(
        [
            *PROLOGUE,
            key(FACTORY_KEY, "F-9", "factory"),
            disclosed("case-1", "triage-analyst", "F-9", "identity", [OPERATOR]),
        ]
    )
    assert found == [
        f"4 {Rule.NO_FACTORY_DISCLOSURE}: identity disclosed to org F-9, a factory (added at "
        "entry 3)"
    ]
    assert (policy.counts.factories, policy.counts.factory_keys) == (2, 1)


def test_an_attachment_is_content_not_identity() -> None:
    """A photo or voice note goes where the content goes (buyers, even a factory's key):
    none of the identity rules hold it."""
    with_photo = report("case-1", [OPERATOR])
    photo = EnvelopeSummary(envelope_class="attachment", hash="a1", recipients=[BUYER, FACTORY_KEY])
    with_photo = with_photo.model_copy(update={"envelopes": [*with_photo.envelopes, photo]})
    policy, found = violations([*PROLOGUE, key(FACTORY_KEY, "F-9", "factory"), with_photo])
    assert found == []
    assert (policy.counts.identity_envelopes, policy.counts.identity_recipients) == (1, 1)


def test_malformed_leaves_are_violations_and_the_rest_is_still_read() -> None:
    no_recipient = report("case-1", [OPERATOR]).leaf().replace(b'["x25519:op"]}]', b"[]}]")
    _, found = violations(
        [
            *PROLOGUE,
            b"not json",
            no_recipient,
            factory_added(None),
            report("case-2", [BUYER]),
        ]
    )
    assert [f.split(":")[0] for f in found] == [
        f"3 {Rule.ENTRY}",
        f"4 {Rule.ENTRY}",
        f"5 {Rule.ENTRY}",
        f"6 {Rule.OPERATOR_ONLY}",
    ]
    assert found[0].startswith(f"3 {Rule.ENTRY}: not an audit entry: Invalid JSON")
    assert found[1] == f"4 {Rule.ENTRY}: identity envelope of report.submitted has no recipient"
    assert found[2] == f"5 {Rule.ENTRY}: a factory-added registry change names no factory"


def test_json_escapes_cannot_hide_an_identity_envelope() -> None:
    """The policy reads the JSON value, not the bytes: `identit\\u0079` is `identity`."""
    leaf = report("case-1", [BUYER]).leaf()
    escaped = leaf.replace(b'"class":"identity"', b'"class":"identit\\u0079"')
    assert escaped != leaf
    _, found = violations([*PROLOGUE, escaped])
    assert [f.split(":")[0] for f in found] == [f"3 {Rule.OPERATOR_ONLY}"]
