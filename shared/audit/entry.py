"""The audit log's entries: one typed model per event type, and the leaf bytes of each.

An entry is what the log records of one event: hashes and metadata, never ciphertext or
content. Its leaf is the RFC 8785 canonical JSON of the model (`AuditEntryBase.leaf`): the
bytes anyone re-hashes (RFC 9162 leaf hash) to recompute the tree. The audit log builds
entries from events (services/audit-log/entries.py); the auditor's policy and proof files
read leaves back with `parse_entry`. The fields, their JSON names and which are present
(null included) fix the leaf bytes, so changing any of them changes every later leaf:
tests/unit/test_audit_entry.py pins the bytes of one entry of each type.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from hotline.shared.canonical import canonical_json
from hotline.shared.events import (
    Clock,
    DeletionScope,
    EnvelopeClass,
    EventType,
    OrgKind,
    RegistryChange,
)
from hotline.shared.messages import MessageKind


class _Model(BaseModel):
    # Strict and closed: a leaf is exactly what the writer writes, or it is malformed (the
    # log must not hide facts in fields, spellings or types an auditor would not read).
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


class EnvelopeSummary(_Model):
    """An envelope as the log records it: its class, hash and recipient key ids (sorted)."""

    envelope_class: EnvelopeClass = Field(validation_alias="class", serialization_alias="class")
    hash: str
    recipients: list[str]


class DisclosedTo(_Model):
    """The principal an envelope was disclosed to: role and org only."""

    role: str
    org: str | None


class AuditEntryBase(_Model):
    """The fields every entry has; `type` (each subclass's) says which event it records."""

    event_id: str
    time: str  # the event's time, truncated to the hour
    subject: str
    schema_version: int = Field(validation_alias="schema", serialization_alias="schema")

    def leaf(self) -> bytes:
        """RFC 8785 canonical JSON of the entry: the exact bytes hashed as its leaf."""
        return canonical_json(self.model_dump(mode="json"))


class ReportSubmittedEntry(AuditEntryBase):
    """A report: its envelopes only. No factory, category, urgency, channel or language: the
    public log must tell a factory nothing that narrows down a worker, and the policy needs
    only classes and recipients (docs/audit-entries.md)."""

    type: Literal[EventType.REPORT_SUBMITTED] = EventType.REPORT_SUBMITTED
    envelopes: list[EnvelopeSummary]  # content, identity when the worker gave it, attachments
    # The key id of the worker's reply key (None for a report made before replies): what
    # every message to the worker must be sealed to, and nothing else.
    reply_key: str | None


class CaseTriagedEntry(AuditEntryBase):
    """That the case was triaged, at an hour. No severity or deadline: both follow from the
    worker's urgency and categories, and no policy rule reads them."""

    type: Literal[EventType.CASE_TRIAGED] = EventType.CASE_TRIAGED


class CaseEscalatedEntry(AuditEntryBase):
    """That the case was escalated, at an hour: the compliance officer can prove it was. No
    severity, deadline or reason (they say how urgent and why); the entry's existence still
    says the case was critical (docs/audit-entries.md, residuals)."""

    type: Literal[EventType.CASE_ESCALATED] = EventType.CASE_ESCALATED


class CaseStatusChangedEntry(AuditEntryBase):
    type: Literal[EventType.CASE_STATUS_CHANGED] = EventType.CASE_STATUS_CHANGED
    status: str


class MessagePostedEntry(AuditEntryBase):
    """A message of the case's conversation: who wrote which kind, and to whom each envelope
    is sealed; never a word of it. The message id is there so that a forward or decline can
    be matched to the question it decides (`in_reply_to`)."""

    type: Literal[EventType.MESSAGE_POSTED] = EventType.MESSAGE_POSTED
    message_id: str
    kind: MessageKind
    author_role: str
    in_reply_to: str | None
    envelopes: list[EnvelopeSummary]  # the message (none for a decline), then attachments


class DigestIssuedEntry(AuditEntryBase):
    """Notify issued a buyer's signed digest (subject `<buyer>:<seq>`): its sequence number,
    the SHA-256 of its canonical body and of the previous digest's (null for the first), and
    the cases it lists. A buyer checks that each digest it holds is here, and the chain shows
    a dropped or rewritten one. No factory: beside the case ids it would name the reports'
    factories, which their own entries do not."""

    type: Literal[EventType.DIGEST_ISSUED] = EventType.DIGEST_ISSUED
    buyer: str
    seq: int
    digest_hash: str
    previous: str | None
    cases: list[str]


class EnvelopeDisclosedEntry(AuditEntryBase):
    type: Literal[EventType.ENVELOPE_DISCLOSED] = EventType.ENVELOPE_DISCLOSED
    principal: DisclosedTo
    envelope_class: EnvelopeClass = Field(validation_alias="class", serialization_alias="class")
    envelope_hash: str
    recipients: list[str]


class KeyRegisteredEntry(AuditEntryBase):
    type: Literal[EventType.KEY_REGISTERED] = EventType.KEY_REGISTERED
    key_id: str
    org: str
    org_kind: OrgKind
    public_key: str


class KeyRevokedEntry(AuditEntryBase):
    type: Literal[EventType.KEY_REVOKED] = EventType.KEY_REVOKED
    key_id: str
    org: str
    org_kind: OrgKind


class RegistryChangedEntry(AuditEntryBase):
    type: Literal[EventType.REGISTRY_CHANGED] = EventType.REGISTRY_CHANGED
    change: RegistryChange
    factory: str | None
    buyer: str | None


class ClockStartedEntry(AuditEntryBase):
    """A case's regulation clock started, at an hour; its due time is the rule's (the entry
    of `first-action` says the case was critical, as an escalation's does)."""

    type: Literal[EventType.CLOCK_STARTED] = EventType.CLOCK_STARTED
    clock: Clock
    due: str


class ClockStoppedEntry(AuditEntryBase):
    type: Literal[EventType.CLOCK_STOPPED] = EventType.CLOCK_STOPPED
    clock: Clock
    met: bool


class ClockBreachedEntry(AuditEntryBase):
    type: Literal[EventType.CLOCK_BREACHED] = EventType.CLOCK_BREACHED
    clock: Clock
    due: str


class IncidentLinkedEntry(AuditEntryBase):
    """The case joined an incident. No factory or category: beside the case id they would
    tell a factory which reports are about it."""

    type: Literal[EventType.INCIDENT_LINKED] = EventType.INCIDENT_LINKED
    incident: str


class DeletedEnvelopeSummary(_Model):
    envelope_class: EnvelopeClass = Field(validation_alias="class", serialization_alias="class")
    hash: str


class EnvelopesDeletedEntry(AuditEntryBase):
    """Retention deleted these envelopes of the case (the log keeps their hashes, so it
    still verifies); none of them may be disclosed after this entry."""

    type: Literal[EventType.ENVELOPES_DELETED] = EventType.ENVELOPES_DELETED
    scope: DeletionScope
    # Not the policy's organisation: a factory's own policy would name the case's factory.
    envelopes: list[DeletedEnvelopeSummary]


AuditEntry = Annotated[
    ReportSubmittedEntry
    | CaseTriagedEntry
    | CaseEscalatedEntry
    | CaseStatusChangedEntry
    | MessagePostedEntry
    | DigestIssuedEntry
    | EnvelopeDisclosedEntry
    | KeyRegisteredEntry
    | KeyRevokedEntry
    | RegistryChangedEntry
    | ClockStartedEntry
    | ClockStoppedEntry
    | ClockBreachedEntry
    | IncidentLinkedEntry
    | EnvelopesDeletedEntry,
    Field(discriminator="type"),
]
"""An entry of the log, of whichever event type its `type` names."""

_ENTRY: TypeAdapter[AuditEntry] = TypeAdapter(AuditEntry)


class MalformedEntryError(ValueError):
    """A leaf that is not an audit entry (not JSON, an unknown type, a field missing,
    extra or of the wrong type)."""


def parse_entry(leaf: bytes) -> AuditEntry:
    """Read a leaf back into its typed entry; raise MalformedEntryError saying what is wrong.

    Only the JSON names are accepted (`class`, `schema`), never the Python field names.
    """
    try:
        return _ENTRY.validate_json(leaf, by_alias=True, by_name=False)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise MalformedEntryError(
            f"not an audit entry: {where + ': ' if where else ''}{first['msg']}{more}"
        ) from None
