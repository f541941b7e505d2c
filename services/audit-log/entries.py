"""What the audit log records of each event: hashes and metadata, never ciphertext or content.

Pure: `audit_entry(event)` is the typed entry (hotline.shared.audit.entry, which the
auditor's policy reads back); its `leaf()` is the RFC 8785 canonical form, the bytes anyone
re-hashes (RFC 9162 leaf hash) to recompute the tree.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from hotline.shared.audit.entry import (
    AuditEntry,
    CaseEscalatedEntry,
    CaseStatusChangedEntry,
    CaseTriagedEntry,
    DigestIssuedEntry,
    DisclosedTo,
    EnvelopeDisclosedEntry,
    EnvelopeSummary,
    KeyRegisteredEntry,
    KeyRevokedEntry,
    MessagePostedEntry,
    RegistryChangedEntry,
    ReportSubmittedEntry,
    SummaryClass,
)
from hotline.shared.envelope import envelope_hash, envelope_recipients
from hotline.shared.events import (
    DATA_MODELS,
    CaseEscalated,
    CaseStatusChanged,
    CaseTriaged,
    DigestIssued,
    EnvelopeDisclosed,
    Event,
    EventError,
    KeyRegistered,
    KeyRevoked,
    MessagePosted,
    RegistryChanged,
    ReportSubmitted,
)


def _summary(envelope: Any, envelope_class: SummaryClass) -> EnvelopeSummary:
    return EnvelopeSummary(
        envelope_class=envelope_class,
        hash=envelope_hash(envelope),
        recipients=sorted(envelope_recipients(envelope)),
    )


def audit_entry(event: Event) -> AuditEntry:
    """The entry recorded for `event`: common fields plus the facts its type needs.

    Raises EventError when the event's data does not validate against its type's model.
    """
    model = DATA_MODELS.get((event.type, event.schema_version))
    if model is None:
        raise EventError(f"unknown event type/schema {event.type!r} v{event.schema_version}")
    try:
        data = model.model_validate(event.data)
    except ValidationError as exc:
        raise EventError(f"bad data for {event.type}: {exc.error_count()} error(s)") from None
    common: dict[str, Any] = {
        "event_id": event.id,
        "time": event.time,
        "subject": event.subject,
        "schema_version": event.schema_version,
    }
    match data:
        case ReportSubmitted():
            # The routing metadata (factory, categories, urgency, channel, language) stays
            # out: it would tell a factory which reports are about it.
            envelopes = [_summary(data.content, "content")]
            if data.identity is not None:
                envelopes.append(_summary(data.identity, "identity"))
            envelopes += [
                EnvelopeSummary(
                    envelope_class="attachment",
                    hash=attachment.hash,
                    recipients=sorted(attachment.recipients),
                )
                for attachment in data.attachments
            ]
            return ReportSubmittedEntry(**common, envelopes=envelopes)
        case EnvelopeDisclosed():
            return EnvelopeDisclosedEntry(
                **common,
                principal=DisclosedTo(role=data.principal.role, org=data.principal.org),
                envelope_class=data.envelope_class,
                envelope_hash=data.envelope_hash,
                recipients=data.recipient_key_ids,
            )
        case DigestIssued():
            # No factory: under the case id it would name the report's factory.
            return DigestIssuedEntry(
                **common,
                buyer=data.buyer,
                envelope_hash=data.envelope_hash,
                recipients=data.recipient_key_ids,
            )
        case MessagePosted():
            return MessagePostedEntry(
                **common,
                author_role=data.author_role,
                envelopes=[_summary(data.envelope, "message")],
            )
        case KeyRegistered():
            return KeyRegisteredEntry(
                **common,
                key_id=data.key_id,
                org=data.org,
                org_kind=data.org_kind,
                public_key=data.public_key,
            )
        case KeyRevoked():
            return KeyRevokedEntry(
                **common, key_id=data.key_id, org=data.org, org_kind=data.org_kind
            )
        # That the case was triaged or escalated, never its severity, deadline or reason:
        # they follow from the worker's urgency and categories (docs/audit-entries.md).
        case CaseTriaged():
            return CaseTriagedEntry(**common)
        case CaseEscalated():
            return CaseEscalatedEntry(**common)
        case CaseStatusChanged():
            return CaseStatusChangedEntry(**common, status=data.status)
        case RegistryChanged():
            return RegistryChangedEntry(
                **common, change=data.change, factory=data.factory, buyer=data.buyer
            )
    raise EventError(f"the audit log has no entry for events of type {event.type!r}")
