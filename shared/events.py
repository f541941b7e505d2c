"""Versioned event schemas. One topic per fact; the subject (case id, key id...) is the key.

Every event is an `Event` envelope (id, type, time, subject, schema, data); `data` is
validated against the model registered for (type, schema). Times are UTC truncated to the
hour: a worker's precise timestamp is never stored (DESIGN.md, Data classes).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .envelope import Envelope
from .messages import MessageKind

TOPIC_PREFIX = "hotline."
DEAD_LETTER_TOPIC = "hotline.deadletter"

# "message": an envelope of the case's conversation (shared/messages.py).
EnvelopeClass = Literal["content", "identity", "attachment", "message"]
Severity = Literal["critical", "high", "normal", "low"]
Channel = Literal["web", "web-nojs", "phone"]
RegistryChange = Literal["factory-added", "buyer-added", "link-added"]
# The regulation clocks of a case (services/triage/clocks.py): acknowledge it (EU Directive
# 2019/1937 Art. 9: 7 days; 24 hours if critical), act on a critical case (4 hours), give
# the worker feedback (3 months).
Clock = Literal["acknowledgement", "first-action", "feedback"]
# What a retention deletion removed: the identity envelope, or everything sealed (content,
# attachments, the conversation and the identity with it).
DeletionScope = Literal["identity", "content"]


class EventType(StrEnum):
    """Every event type, declared once; the topic is `hotline.<type>`."""

    REPORT_SUBMITTED = "report.submitted"
    CASE_TRIAGED = "case.triaged"
    CASE_ESCALATED = "case.escalated"
    CASE_STATUS_CHANGED = "case.status-changed"
    MESSAGE_POSTED = "message.posted"
    DIGEST_ISSUED = "digest.issued"
    ENVELOPE_DISCLOSED = "envelope.disclosed"
    KEY_REGISTERED = "key.registered"
    KEY_REVOKED = "key.revoked"
    REGISTRY_CHANGED = "registry.changed"
    CLOCK_STARTED = "clock.started"
    CLOCK_STOPPED = "clock.stopped"
    CLOCK_BREACHED = "clock.breached"
    INCIDENT_LINKED = "incident.linked"
    ENVELOPES_DELETED = "envelopes.deleted"


OrgKind = Literal["operator", "buyer", "factory"]


class EventError(ValueError):
    """A message that is not a valid event (poison: goes to the dead-letter topic)."""


def coarse_now() -> str:
    """Current UTC time truncated to the hour, ISO 8601."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return now.isoformat().replace("+00:00", "Z")


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    TYPE: ClassVar[EventType]  # the event type this is the data of (schema version 1)


class AttachmentRef(BaseModel):
    """An attachment (photo, voice note) as events carry it: its envelope stays in intake's
    store, never in Kafka; the hash and recipients are what the audit log records."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hash: str  # envelope_hash of the attachment envelope
    size: int  # bytes of its ciphertext (a padding bucket plus the tag)
    recipients: list[str]  # key ids, sorted


class ReportSubmitted(_Data):
    """A worker's report was accepted by intake: routing metadata, the two envelopes, and
    references to the attachments' envelopes."""

    TYPE = EventType.REPORT_SUBMITTED
    factory: str
    categories: list[str]
    urgent: bool
    language: str
    channel: Channel
    server_encrypted: bool
    content: Envelope
    identity: Envelope | None = None
    attachments: list[AttachmentRef] = []
    # The X25519 public key (base64) the worker's replies are sealed to, derived from the
    # receipt on the worker's side; None only for reports made before replies existed.
    reply_key: str | None = None


class CaseTriaged(_Data):
    TYPE = EventType.CASE_TRIAGED
    severity: Severity
    due: str  # ISO time by which the operator must act
    categories: list[str]
    factory: str
    rule_version: str | None = None  # of triage's severity rules; None before they had one


class CaseEscalated(_Data):
    TYPE = EventType.CASE_ESCALATED
    severity: Severity
    reason: str  # a code from the rule table, never free text
    due: str


class CaseStatusChanged(_Data):
    TYPE = EventType.CASE_STATUS_CHANGED
    status: str


class MessagePosted(_Data):
    """A message of the case's conversation (shared/messages.py: kinds, who writes them, to
    whom each is sealed). Attachments travel as references, as a report's do."""

    TYPE = EventType.MESSAGE_POSTED
    message_id: str
    kind: MessageKind
    author_role: str  # triage-analyst, buyer, or worker
    envelope: Envelope | None  # None for a decline only
    in_reply_to: str | None = None  # the question a forward or decline decides
    attachments: list[AttachmentRef] = []


class DigestIssued(_Data):
    """Notify issued digest `seq` of a buyer (subject `<buyer>:<seq>`): the SHA-256 of its
    canonical body, the previous digest's (None for the first), and the cases it lists."""

    TYPE = EventType.DIGEST_ISSUED
    buyer: str
    seq: int
    digest_hash: str
    previous: str | None
    cases: list[str]


class Principal(_Data):
    role: str
    org: str | None = None
    subject: str | None = None  # Keycloak user id of the principal (not a worker)


class EnvelopeDisclosed(_Data):
    """An envelope is handed out to a principal; published BEFORE the ciphertext leaves."""

    TYPE = EventType.ENVELOPE_DISCLOSED
    principal: Principal
    envelope_class: EnvelopeClass
    envelope_hash: str
    recipient_key_ids: list[str]


class KeyRegistered(_Data):
    TYPE = EventType.KEY_REGISTERED
    key_id: str
    public_key: str  # base64 X25519 public key
    org: str
    org_kind: OrgKind


class KeyRevoked(_Data):
    TYPE = EventType.KEY_REVOKED
    key_id: str
    org: str
    org_kind: OrgKind


class RegistryChanged(_Data):
    TYPE = EventType.REGISTRY_CHANGED
    change: RegistryChange
    factory: str | None = None
    buyer: str | None = None


class ClockStarted(_Data):
    """A case's clock started (subject: the case id): it must stop by `due` (ISO hour)."""

    TYPE = EventType.CLOCK_STARTED
    clock: Clock
    due: str


class ClockStopped(_Data):
    """A case's clock stopped: what it waited for happened (`met`: by its due time)."""

    TYPE = EventType.CLOCK_STOPPED
    clock: Clock
    met: bool


class ClockBreached(_Data):
    """A case's clock passed its due time before it stopped; published once per clock."""

    TYPE = EventType.CLOCK_BREACHED
    clock: Clock
    due: str


class IncidentLinked(_Data):
    """The case (subject) joins incident `incident`: reports of one category at one factory
    within one window (a strike, a fire risk). Cases are linked, never merged: each keeps
    its own envelopes, and the incident holds no identity."""

    TYPE = EventType.INCIDENT_LINKED
    incident: str
    factory: str
    category: str


class DeletedEnvelope(_Data):
    envelope_class: EnvelopeClass
    envelope_hash: str


class EnvelopesDeleted(_Data):
    """Retention deleted the case's (subject's) envelopes of `scope` under the retention
    policy of organisation `policy`: every service deletes its copies on this event, and
    no envelope listed here may be handed out after it (`hotline audit verify`)."""

    TYPE = EventType.ENVELOPES_DELETED
    scope: DeletionScope
    policy: str
    envelopes: list[DeletedEnvelope]


DATA_MODELS: dict[tuple[str, int], type[_Data]] = {
    (model.TYPE, 1): model
    for model in (
        ReportSubmitted,
        CaseTriaged,
        CaseEscalated,
        CaseStatusChanged,
        MessagePosted,
        DigestIssued,
        EnvelopeDisclosed,
        KeyRegistered,
        KeyRevoked,
        RegistryChanged,
        ClockStarted,
        ClockStopped,
        ClockBreached,
        IncidentLinked,
        EnvelopesDeleted,
    )
}
assert {event_type for event_type, _ in DATA_MODELS} == set(EventType), "a type without schema"
EVENT_TYPES = frozenset(event_type for event_type, _ in DATA_MODELS)


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    type: str
    time: str = Field(default_factory=coarse_now)
    subject: str
    schema_version: int = 1
    data: dict[str, Any]

    @property
    def topic(self) -> str:
        return topic_for(self.type)

    def to_bytes(self) -> bytes:
        return json.dumps(self.model_dump(), separators=(",", ":"), sort_keys=True).encode()


def topic_for(event_type: str) -> str:
    if event_type not in EVENT_TYPES:
        raise EventError(f"unknown event type {event_type!r}")
    return TOPIC_PREFIX + event_type


def new_event(subject: str, data: _Data) -> Event:
    """The event whose data is `data` (its type follows from the data's model)."""
    return Event(type=data.TYPE, subject=subject, data=data.model_dump(mode="json"))


def parse_event(raw: bytes) -> Event:
    """Parse and validate a message value; raise EventError on anything malformed."""
    try:
        event = Event.model_validate_json(raw)
    except ValidationError as exc:
        raise EventError(f"not an event: {exc.error_count()} validation error(s)") from None
    model = DATA_MODELS.get((event.type, event.schema_version))
    if model is None:
        raise EventError(f"unknown event type/schema {event.type!r} v{event.schema_version}")
    try:
        model.model_validate(event.data)
    except ValidationError as exc:
        raise EventError(f"bad data for {event.type}: {exc.error_count()} error(s)") from None
    return event


T = TypeVar("T", bound=_Data)


def event_data(event: Event, model: type[T]) -> T:
    return model.model_validate(event.data)
