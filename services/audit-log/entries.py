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
    ClockBreachedEntry,
    ClockStartedEntry,
    ClockStoppedEntry,
    DeletedEnvelopeSummary,
    DigestIssuedEntry,
    DisclosedTo,
    EnvelopeDisclosedEntry,
    EnvelopesDeletedEntry,
    EnvelopeSummary,
    IncidentLinkedEntry,
    KeyRegisteredEntry,
    KeyRevokedEntry,
    MessagePostedEntry,
    RegistryChangedEntry,
    ReportSubmittedEntry,
)
from hotline.shared.envelope import envelope_hash, envelope_recipients
from hotline.shared.events import (
    DATA_MODELS,
    AttachmentRef,
    CaseEscalated,
    CaseStatusChanged,
    CaseTriaged,
    ClockBreached,
    ClockStarted,
    ClockStopped,
    DigestIssued,
    EnvelopeClass,
    EnvelopeDisclosed,
    EnvelopesDeleted,
    Event,
    EventError,
    IncidentLinked,
    KeyRegistered,
    KeyRevoked,
    MessagePosted,
    RegistryChanged,
    ReportSubmitted,
)
from hotline.shared.keys import KeyFormatError, key_id, load_public_key


def _summary(envelope: Any, envelope_class: EnvelopeClass) -> EnvelopeSummary:
    return EnvelopeSummary(
        envelope_class=envelope_class,
        hash=envelope_hash(envelope),
        recipients=sorted(envelope_recipients(envelope)),
    )


def _attachment_summary(attachment: AttachmentRef) -> EnvelopeSummary:
    """An attachment as its reference gives it (its envelope stays in intake's store)."""
    return EnvelopeSummary(
        envelope_class="attachment",
        hash=attachment.hash,
        recipients=sorted(attachment.recipients),
    )


def _reply_key_id(reply_key: str | None) -> str | None:
    """The key id of a report's reply key: what the policy compares replies' recipients to.
    A reply key that is not an X25519 public key makes the event bad data (dead-lettered,
    as any event whose data does not validate); intake never publishes one."""
    if reply_key is None:
        return None
    try:
        return key_id(load_public_key(reply_key))
    except KeyFormatError:
        raise EventError("bad data for report.submitted: reply_key is not a public key") from None


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
            envelopes += [_attachment_summary(attachment) for attachment in data.attachments]
            return ReportSubmittedEntry(
                **common, envelopes=envelopes, reply_key=_reply_key_id(data.reply_key)
            )
        case EnvelopeDisclosed():
            return EnvelopeDisclosedEntry(
                **common,
                principal=DisclosedTo(role=data.principal.role, org=data.principal.org),
                envelope_class=data.envelope_class,
                envelope_hash=data.envelope_hash,
                recipients=data.recipient_key_ids,
            )
        case DigestIssued():
            # The event holds no factory either; the cases' factories stay in notify's store.
            return DigestIssuedEntry(
                **common,
                buyer=data.buyer,
                seq=data.seq,
                digest_hash=data.digest_hash,
                previous=data.previous,
                cases=data.cases,
            )
        case MessagePosted():
            # Kind, author and envelopes' recipients: what the conversation rules read. Not
            # the attachments' sizes (a padding bucket says photo or voice note).
            message = [] if data.envelope is None else [_summary(data.envelope, "message")]
            return MessagePostedEntry(
                **common,
                message_id=data.message_id,
                kind=data.kind,
                author_role=data.author_role,
                in_reply_to=data.in_reply_to,
                envelopes=message + [_attachment_summary(a) for a in data.attachments],
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
        case ClockStarted():
            return ClockStartedEntry(**common, clock=data.clock, due=data.due)
        case ClockStopped():
            return ClockStoppedEntry(**common, clock=data.clock, met=data.met)
        case ClockBreached():
            return ClockBreachedEntry(**common, clock=data.clock, due=data.due)
        case IncidentLinked():
            # The incident only: its factory and category would name the case's.
            return IncidentLinkedEntry(**common, incident=data.incident)
        case EnvelopesDeleted():
            return EnvelopesDeletedEntry(
                **common,
                scope=data.scope,  # not the policy's org: it may be the case's factory
                envelopes=[
                    DeletedEnvelopeSummary(envelope_class=e.envelope_class, hash=e.envelope_hash)
                    for e in data.envelopes
                ],
            )
    raise EventError(f"the audit log has no entry for events of type {event.type!r}")
