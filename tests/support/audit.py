"""Helpers for the audit-log tests: a small, well-behaved world of events, a log held in
memory, a separate audit-log process over a database of its own, and the session's log as a
client sees it.

Used by tests/integration/test_audit_service.py, tests/e2e/test_audit_verify.py,
tests/e2e/test_audit_conversation.py and the unit tests of the auditor's checks (the events
and the in-memory log are pure).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from pymongo import MongoClient

from hotline.audit_log import storage
from hotline.audit_log.entries import audit_entry
from hotline.audit_log.integrator import integrate
from hotline.audit_log.sequencer import Sequencer
from hotline.cli.engines.process import ManagedProcess, free_port, http_ready
from hotline.cli.http import tls
from hotline.shared.bus import make_producer, publish
from hotline.shared.config import Settings
from hotline.shared.envelope import Envelope, EnvelopeKind, envelope_hash, seal_envelope
from hotline.shared.events import (
    AttachmentRef,
    CaseEscalated,
    CaseStatusChanged,
    EnvelopeClass,
    EnvelopeDisclosed,
    Event,
    KeyRegistered,
    MessagePosted,
    OrgKind,
    Principal,
    RegistryChanged,
    ReportSubmitted,
    new_event,
)
from hotline.shared.keys import b64encode, generate_keypair, key_id
from hotline.shared.messages import WORKER, MessageKind, decision_id, message_routing
from hotline.shared.store import Databases, Store
from hotline.shared.tlog.checkpoint import Checkpoint, parse_checkpoint, sign_checkpoint
from hotline.shared.tlog.note import Ed25519Signer, parse_note
from tests.support.waiting import wait_for

# --- events of a small, well-behaved world ------------------------------------------------


@dataclass
class Org:
    """A recipient key of an organisation, and the event registering it."""

    org: str
    kind: OrgKind
    public: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        _, self.public = generate_keypair()

    @property
    def key_id(self) -> str:
        return key_id(self.public)

    def registered(self) -> Event:
        data = KeyRegistered(
            key_id=self.key_id, public_key=b64encode(self.public), org=self.org, org_kind=self.kind
        )
        return new_event(self.key_id, data)


def factory_added(code: str) -> Event:
    return new_event(code, RegistryChanged(change="factory-added", factory=code))


def report(case: str, factory: str, content_to: Sequence[Org], identity_to: Sequence[Org]) -> Event:
    routing = {"factory": factory, "categories": ["safety"], "urgent": False, "language": "en"}

    def sealed(kind: EnvelopeKind, orgs: Sequence[Org]) -> Envelope:
        recipients = {org.key_id: org.public for org in orgs}
        return seal_envelope(
            b"words", case_id=case, kind=kind, routing=routing, recipients=recipients
        )

    data = ReportSubmitted(
        factory=factory,
        categories=["safety"],
        urgent=False,
        language="en",
        channel="web",
        server_encrypted=False,
        content=sealed("content", content_to),
        identity=sealed("identity", identity_to) if identity_to else None,
    )
    return new_event(case, data)


def disclosed(
    case: str, role: str, org: str | None, kind: EnvelopeClass, to: Sequence[Org]
) -> Event:
    data = EnvelopeDisclosed(
        principal=Principal(role=role, org=org),
        envelope_class=kind,
        envelope_hash=secrets.token_hex(32),
        recipient_key_ids=sorted(o.key_id for o in to),
    )
    return new_event(case, data)


def status(case: str, value: str) -> Event:
    return new_event(case, CaseStatusChanged(status=value))


def probe(case: str) -> Event:
    """A harmless event for the session's Kafka. Not case.status-changed:
    tests/integration/test_bus.py reads that topic from its start and counts what it finds."""
    data = CaseEscalated(severity="normal", reason="audit-probe", due="2026-01-01T00:00:00Z")
    return new_event(case, data)


@dataclass
class World:
    """An operator, a buyer and a factory, registered in that order."""

    operator: Org = field(default_factory=lambda: Org("hotline-operator", "operator"))
    buyer: Org = field(default_factory=lambda: Org("buyer-t", "buyer"))
    factory: str = "F-T01"

    def prologue(self) -> list[Event]:
        return [self.operator.registered(), factory_added(self.factory), self.buyer.registered()]

    def case(self, case: str) -> list[Event]:
        """A well-behaved case: report, identity to the operator, content to the buyer."""
        return [
            report(case, self.factory, [self.operator, self.buyer], [self.operator]),
            disclosed(case, "triage-analyst", "hotline-operator", "identity", [self.operator]),
            disclosed(case, "buyer", self.buyer.org, "content", [self.operator, self.buyer]),
        ]

    def log(self, cases: int) -> list[Event]:
        return self.prologue() + [e for n in range(cases) for e in self.case(f"case-{n:04d}")]


# --- the conversation of a case (issue 17) -----------------------------------------------------


def keys_of(*orgs: Org) -> dict[str, bytes]:
    """The recipients of an envelope sealed to `orgs`: key id -> public key."""
    return {org.key_id: org.public for org in orgs}


def message(
    case: str,
    kind: MessageKind,
    author_role: str,
    to: Mapping[str, bytes],
    *,
    in_reply_to: str | None = None,
    photos: int = 0,
) -> Event:
    """A message of `case` as its author's service publishes it: one content envelope
    sealed to `to` (key id -> public key) binding the message's routing (none for a
    decline), and `photos` attachments sealed to `to` too, as references. A decision's
    message id follows from the question it decides (`decision_id`)."""
    message_id = decision_id(in_reply_to) if in_reply_to else str(uuid.uuid4())

    def sealed(envelope_kind: EnvelopeKind, plaintext: bytes) -> Envelope:
        routing = message_routing(message_id, kind)
        return seal_envelope(
            plaintext, case_id=case, kind=envelope_kind, routing=routing, recipients=dict(to)
        )

    photo = b"image/jpeg\n" + secrets.token_bytes(64)
    data = MessagePosted(
        message_id=message_id,
        kind=kind,
        author_role=author_role,
        envelope=None if kind == "decline" else sealed("content", b"words"),
        in_reply_to=in_reply_to,
        attachments=[attachment_ref(sealed("attachment", photo)) for _ in range(photos)],
    )
    return new_event(case, data)


def attachment_ref(envelope: Envelope) -> AttachmentRef:
    """How an event refers to an attachment envelope (which stays in intake's store)."""
    return AttachmentRef(
        hash=envelope_hash(envelope),
        size=len(base64.b64decode(envelope.ciphertext)),
        recipients=sorted(envelope.recipients),
    )


def forward(question: Event, reply_key: Mapping[str, bytes], author_role: str) -> list[Event]:
    """An operator's forward of `question` (a `message` event), re-sealed to the case's
    reply key, as triage commits it: the disclosure to the worker, then the message."""
    case = question.subject
    forwarded = message(
        case, "forward", author_role, reply_key, in_reply_to=question.data["message_id"]
    )
    disclosure = EnvelopeDisclosed(
        principal=Principal(role=WORKER),
        envelope_class="message",
        envelope_hash=envelope_hash(forwarded.data["envelope"]),
        recipient_key_ids=sorted(reply_key),
    )
    return [new_event(case, disclosure), forwarded]


# --- a log held in memory ----------------------------------------------------------------------


@dataclass
class MemoryLog:
    """The tiles and bundles of `leaves` as the audit log integrates and serves them, and
    checkpoints of the tree signed by `signer`."""

    leaves: list[bytes]
    signer: Ed25519Signer = field(
        default_factory=lambda: Ed25519Signer("test.local/memory", secrets.token_bytes(32))
    )
    resources: dict[str, bytes] = field(init=False)
    root: bytes = field(init=False)

    def __post_init__(self) -> None:
        built = integrate(0, {}, self.leaves)
        self.resources, self.root = built.resources, built.root

    @classmethod
    def of_events(cls, events: Sequence[Event]) -> MemoryLog:
        return cls([audit_entry(event).leaf() for event in events])

    @property
    def size(self) -> int:
        return len(self.leaves)

    @property
    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.signer.name, self.size, self.root)

    @property
    def note(self) -> str:
        return sign_checkpoint(self.checkpoint, [self.signer])

    def fetch_many(self, paths: Sequence[str]) -> list[bytes | None]:
        return [self.resources.get(path) for path in paths]


# --- a separate audit-log process over its own database ------------------------------------


@dataclass
class LogInstance:
    """`python -m hotline.audit_log --no-consume` over database `database`."""

    base: Settings
    database: str
    witnesses: str = ""
    interval: float = 0.2  # seconds between integration passes (the first runs at start)
    seed: str = field(default_factory=lambda: secrets.token_hex(32))
    port: int = field(default_factory=free_port)
    process: ManagedProcess | None = None

    @property
    def settings(self) -> Settings:
        return self.base.model_copy(update={"mongo_db": self.database})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def origin(self) -> str:
        return f"test.local/{self.database}"

    @property
    def signer(self) -> Ed25519Signer:
        return Ed25519Signer(self.origin, bytes.fromhex(self.seed))

    @property
    def vkey(self) -> str:
        return self.signer.verifier().vkey()

    def launch(self) -> ManagedProcess:
        self.process = ManagedProcess(
            name=f"audit-log-{self.database}",
            command=[sys.executable, "-m", "hotline.audit_log", "--no-consume"],
            log_path=self.base.logs_dir / f"audit-log-{self.database}.log",
            env={
                "HOTLINE_MONGO_DB": self.database,
                "HOTLINE_AUDIT_PORT": str(self.port),
                "HOTLINE_SIGNING_KEY": self.seed,
                "HOTLINE_AUDIT_ORIGIN": self.origin,
                "HOTLINE_AUDIT_WITNESSES": self.witnesses,
                "HOTLINE_AUDIT_CHECKPOINT_INTERVAL": str(self.interval),
            },
        )
        return self.process.start()

    def start(self) -> LogInstance:
        self.launch().wait_until(http_ready(f"{self.url}/healthz"), timeout=60)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def sequence(self, events: Sequence[Event]) -> list[int]:
        return asyncio.run(sequence_into(self.settings, events))

    def wait_for_size(self, size: int) -> str:
        """Wait until the served checkpoint has `size` entries; return its note."""

        def served() -> str | None:
            note = checkpoint_note(self.url)
            return note if note and served_size(self.url) == size else None

        return wait_for(served, timeout=60, what=f"a checkpoint of size {size} at {self.url}")

    def db(self, client: MongoClient[dict[str, Any]]) -> Any:
        return Databases(client, self.database)


async def sequence_into(settings: Settings, events: Sequence[Event]) -> list[int]:
    store = Store(settings)
    try:
        await store.ensure_indexes()
        await storage.ensure_indexes(store)
        return await Sequencer(store).sequence_many(events)
    finally:
        await store.close()


def served_size(url: str) -> int:
    """The size of the checkpoint `url` serves (-1 when none), signature not checked."""
    note = checkpoint_note(url)
    return -1 if note is None else parse_checkpoint(parse_note(note)[0]).size


def checkpoint_note(url: str) -> str | None:
    try:
        response = httpx.get(f"{url}/checkpoint", timeout=5, verify=tls())
    except httpx.HTTPError:
        return None
    return response.text if response.status_code == 200 else None


# --- the session's system ------------------------------------------------------------------


def publish_events(settings: Settings, events: Sequence[Event]) -> None:
    async def send() -> None:
        producer: AIOKafkaProducer = make_producer(settings)
        await producer.start()
        try:
            for event in events:
                await publish(producer, event)
        finally:
            await producer.stop()

    asyncio.run(send())


def system_entries(settings: Settings, case: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{settings.audit_url}/api/entries", params={"case": case, "limit": 1000}, verify=tls()
    )
    response.raise_for_status()
    entries: list[dict[str, Any]] = response.json()
    return entries
