"""Versioned event schemas. One topic per fact; the subject (case id, key id...) is the key.

Every event is an `Event` envelope (id, type, time, subject, schema, data); `data` is
validated against the model registered for (type, schema). Times are UTC truncated to the
hour: a worker's precise timestamp is never stored (DESIGN.md, Data classes).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

TOPIC_PREFIX = "hotline."
DEAD_LETTER_TOPIC = "hotline.deadletter"

EnvelopeClass = Literal["content", "identity"]
OrgKind = Literal["operator", "buyer", "factory"]


class EventError(ValueError):
    """A message that is not a valid event (poison: goes to the dead-letter topic)."""


def coarse_now() -> str:
    """Current UTC time truncated to the hour, ISO 8601."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return now.isoformat().replace("+00:00", "Z")


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReportSubmitted(_Data):
    """A worker's report was accepted by intake: routing metadata and the two envelopes."""

    factory: str
    categories: list[str]
    urgent: bool
    language: str
    channel: Literal["web", "web-nojs", "phone"]
    server_encrypted: bool
    content: dict[str, Any]
    identity: dict[str, Any] | None = None


class CaseTriaged(_Data):
    severity: Literal["critical", "high", "normal"]
    due: str  # ISO time by which the operator must act
    categories: list[str]
    factory: str


class CaseEscalated(_Data):
    severity: Literal["critical", "high", "normal"]
    reason: str  # a code from the rule table, never free text
    due: str


class CaseStatusChanged(_Data):
    status: str


class MessagePosted(_Data):
    author_role: str
    envelope: dict[str, Any]


class DigestIssued(_Data):
    buyer: str
    factory: str
    envelope_hash: str
    recipient_key_ids: list[str]


class Principal(_Data):
    role: str
    org: str | None = None
    subject: str | None = None  # Keycloak user id of the principal (not a worker)


class EnvelopeDisclosed(_Data):
    """An envelope is handed out to a principal; published BEFORE the ciphertext leaves."""

    principal: Principal
    envelope_class: EnvelopeClass
    envelope_hash: str
    recipient_key_ids: list[str]


class KeyRegistered(_Data):
    key_id: str
    public_key: str  # base64 X25519 public key
    org: str
    org_kind: OrgKind


class KeyRevoked(_Data):
    key_id: str
    org: str
    org_kind: OrgKind


class RegistryChanged(_Data):
    change: Literal["factory-added", "buyer-added", "link-added"]
    factory: str | None = None
    buyer: str | None = None


DATA_MODELS: dict[tuple[str, int], type[_Data]] = {
    ("report.submitted", 1): ReportSubmitted,
    ("case.triaged", 1): CaseTriaged,
    ("case.escalated", 1): CaseEscalated,
    ("case.status-changed", 1): CaseStatusChanged,
    ("message.posted", 1): MessagePosted,
    ("digest.issued", 1): DigestIssued,
    ("envelope.disclosed", 1): EnvelopeDisclosed,
    ("key.registered", 1): KeyRegistered,
    ("key.revoked", 1): KeyRevoked,
    ("registry.changed", 1): RegistryChanged,
}
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


def new_event(event_type: str, subject: str, data: _Data) -> Event:
    """Build an event whose data is checked against the registered schema."""
    if DATA_MODELS.get((event_type, 1)) is not type(data):
        raise EventError(f"{type(data).__name__} is not the schema of {event_type}")
    return Event(type=event_type, subject=subject, data=data.model_dump(mode="json"))


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
