"""The audit entry model (hotline.shared.audit.entry): the leaf bytes of each event type are
pinned, byte for byte, so existing logs still verify; leaves read back into the same model."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hotline.audit_log.entries import audit_entry
from hotline.shared.audit.entry import (
    KeyRegisteredEntry,
    MalformedEntryError,
    MessagePostedEntry,
    ReportSubmittedEntry,
    parse_entry,
)
from hotline.shared.envelope import Envelope, EnvelopeKind, envelope_hash, padded_size
from hotline.shared.events import (
    AttachmentRef,
    CaseEscalated,
    CaseStatusChanged,
    CaseTriaged,
    ClockBreached,
    ClockStarted,
    ClockStopped,
    DeletedEnvelope,
    DigestIssued,
    EnvelopeDisclosed,
    EnvelopesDeleted,
    Event,
    EventError,
    EventType,
    IncidentLinked,
    KeyRegistered,
    KeyRevoked,
    MessagePosted,
    Principal,
    RegistryChanged,
    ReportSubmitted,
    new_event,
)
from hotline.shared.keys import b64encode, key_id
from hotline.shared.messages import decision_id

OPERATOR = key_id(bytes([1]) * 32)
BUYER = key_id(bytes([2]) * 32)
REPLY_PUBLIC = b64encode(bytes([3]) * 32)  # the worker's reply key, as the report gives it
REPLY = key_id(bytes([3]) * 32)
REPLY_ID = "00000000-0000-4000-8000-0000000000a0"
QUESTION_ID = "00000000-0000-4000-8000-0000000000a1"
ANSWER_ID = "00000000-0000-4000-8000-0000000000a2"


def envelope(kind: EnvelopeKind, to: list[str]) -> Envelope:
    """A well-formed envelope with fixed bytes (never opened: only its hash is recorded)."""
    return Envelope.model_validate(
        {
            "version": 1,
            "kind": kind,
            "case_id": "case-1",
            "recipients": {k: b64encode(bytes(80)) for k in to},
            "nonce": b64encode(bytes(24)),
            "ciphertext": b64encode(bytes(padded_size(1) + 16)),
        }
    )


def event(subject: str, data: Any) -> Event:
    """The event of `data`, with a fixed id and time (what a leaf records of them)."""
    fixed = {"id": "00000000-0000-4000-8000-000000000001", "time": "2026-03-01T10:00:00Z"}
    return new_event(subject, data).model_copy(update=fixed)


EVENTS: dict[str, Event] = {
    "report": event(
        "case-1",
        ReportSubmitted(
            factory="F-001",
            categories=["safety", "wages"],
            urgent=True,
            language="en",
            channel="web",
            server_encrypted=False,
            content=envelope("content", [BUYER, OPERATOR]),
            identity=envelope("identity", [OPERATOR]),
            attachments=[
                AttachmentRef(hash="a1" * 32, size=65_552, recipients=[OPERATOR, BUYER]),
                AttachmentRef(hash="a2" * 32, size=131_088, recipients=[OPERATOR]),
            ],
            reply_key=REPLY_PUBLIC,
        ),
    ),
    "triaged": event(
        "case-1",
        CaseTriaged(
            severity="high", due="2026-03-02T10:00:00Z", categories=["safety"], factory="F-001"
        ),
    ),
    "escalated": event(
        "case-1",
        CaseEscalated(severity="critical", reason="no-response", due="2026-03-01T12:00:00Z"),
    ),
    "status": event("case-1", CaseStatusChanged(status="closed")),
    "message": event(
        "case-1",
        MessagePosted(
            message_id=REPLY_ID,
            kind="reply",
            author_role="triage-analyst",
            envelope=envelope("content", [REPLY]),
        ),
    ),
    "digest": event(
        "B-001:7",
        DigestIssued(
            buyer="B-001", seq=7, digest_hash="ab" * 32, previous="cd" * 32, cases=["case-1"]
        ),
    ),
    "disclosed": event(
        "case-1",
        EnvelopeDisclosed(
            principal=Principal(role="triage-analyst", org="hotline-operator", subject="u-1"),
            envelope_class="identity",
            envelope_hash="cd" * 32,
            recipient_key_ids=[OPERATOR],
        ),
    ),
    "key_registered": event(
        OPERATOR,
        KeyRegistered(
            key_id=OPERATOR,
            public_key=b64encode(bytes([1]) * 32),
            org="hotline-operator",
            org_kind="operator",
        ),
    ),
    "key_revoked": event(
        OPERATOR, KeyRevoked(key_id=OPERATOR, org="hotline-operator", org_kind="operator")
    ),
    "factory_added": event("F-001", RegistryChanged(change="factory-added", factory="F-001")),
    "report_without_identity": event(
        "case-2",
        ReportSubmitted(
            factory="F-001",
            categories=["safety"],
            urgent=False,
            language="en",
            channel="phone",
            server_encrypted=True,
            content=envelope("content", [OPERATOR]),
        ),
    ),
    "disclosed_to_no_org": event(
        "case-2",
        EnvelopeDisclosed(
            principal=Principal(role="platform-admin"),
            envelope_class="content",
            envelope_hash="ef" * 32,
            recipient_key_ids=[],
        ),
    ),
    "buyer_added": event("B-001", RegistryChanged(change="buyer-added", buyer="B-001")),
    # A buyer's question forwarded to the worker: the disclosure, then the forward.
    "forward_disclosed": event(
        "case-1",
        EnvelopeDisclosed(
            principal=Principal(role="worker"),
            envelope_class="message",
            envelope_hash=envelope_hash(envelope("content", [REPLY])),
            recipient_key_ids=[REPLY],
        ),
    ),
    "forward": event(
        "case-1",
        MessagePosted(
            message_id=decision_id(QUESTION_ID),
            kind="forward",
            author_role="triage-analyst",
            envelope=envelope("content", [REPLY]),
            in_reply_to=QUESTION_ID,
        ),
    ),
    "answer_with_attachment": event(
        "case-1",
        MessagePosted(
            message_id=ANSWER_ID,
            kind="answer",
            author_role="worker",
            envelope=envelope("content", [OPERATOR]),
            attachments=[AttachmentRef(hash="a3" * 32, size=65_552, recipients=[OPERATOR])],
        ),
    ),
    "clock_started": event(
        "case-1", ClockStarted(clock="acknowledgement", due="2026-03-08T10:00:00Z")
    ),
    "clock_stopped": event("case-1", ClockStopped(clock="acknowledgement", met=True)),
    "clock_breached": event(
        "case-1", ClockBreached(clock="first-action", due="2026-03-01T14:00:00Z")
    ),
    "incident_linked": event(
        "case-1", IncidentLinked(incident="incident-1", factory="F-001", category="safety")
    ),
    "envelopes_deleted": event(
        "case-1",
        EnvelopesDeleted(
            scope="identity",
            policy="default",
            envelopes=[DeletedEnvelope(envelope_class="identity", envelope_hash="ab" * 32)],
        ),
    ),
}

# The leaves the audit log wrote for these events before the typed model (RFC 8785: keys
# sorted, no spaces; absent optional values as null, where the log has always written them).
# Since issue 16 (docs/audit-entries.md): report leaves hold envelopes only, no routing
# metadata; triage and escalation leaves only that they happened; digest leaves no factory.
# Since issue 17: report leaves give the key id of the worker's reply key (null before
# replies existed); message leaves the message's id, kind, the question a decision decides,
# and one summary per envelope (the message's, then one per attachment).
LEAVES: dict[str, bytes] = {
    "report": (
        b'{"envelopes":[{"class":"content",'
        b'"hash":"3b423fac00264fcc5bf928e5d5f5d288ffdd48605e91e9b6d965b7a800f70125",'
        b'"recipients":["x25519:16158b9e944de5de52fb5ba4217c610a27581b075629735bd810735a1036862c",'
        b'"x25519:d53100a789907980aa234f4927110ce74070303efa131f743a6729a7926e3446"]},'
        b'{"class":"identity",'
        b'"hash":"98aea18938e4147531a8b73b6785aea1d3e40430995f2c3ddb51a78bbc8a7362",'
        b'"recipients":["x25519:16158b9e944de5de52fb5ba4217c610a27581b075629735bd810735a1036862c"]'
        b'},{"class":"attachment",'
        b'"hash":"a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1",'
        b'"recipients":["x25519:16158b9e944de5de52fb5ba4217c610a27581b075629735bd810735a1036862c",'
        b'"x25519:d53100a789907980aa234f4927110ce74070303efa131f743a6729a7926e3446"]},'
        b'{"class":"attachment",'
        b'"hash":"a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2",'
        b'"recipients":["x25519:16158b9e944de5de52fb5ba4217c610a27581b075629735bd810735a1036862c"]'
        b'}],"event_id":"00000000-0000-4000-8000-000000000001",'
        b'"reply_key":"x25519:5f26f4deafd1baf1636ed573a283043ff59a7b7f7a3416994372db226cb41518",'
        b'"schema":1,"subject":"case-1","time":"2026-03-01T10:00:00Z","type":"report.submitted"}'
    ),
    "triaged": (
        b'{"event_id":"00000000-0000-4000-8000-000000000001","schema":1,"subject":"case-1",'
        b'"time":"2026-03-01T10:00:00Z","type":"case.triaged"}'
    ),
    "escalated": (
        b'{"event_id":"00000000-0000-4000-8000-000000000001","schema":1,"subject":"case-1",'
        b'"time":"2026-03-01T10:00:00Z","type":"case.escalated"}'
    ),
    "status": (
        b'{"event_id":"00000000-0000-4000-8000-000000000001","schema":1,"status":"closed",'
        b'"subject":"case-1","time":"2026-03-01T10:00:00Z","type":"case.status-changed"}'
    ),
    "message": (
        b'{"author_role":"triage-analyst","envelopes":[{"class":"message",'
        b'"hash":"f1b87f8744551a2f1a736aa921b4eaa0303c6a757c6129948c482ee07e1f216b",'
        b'"recipients":["x25519:5f26f4deafd1baf1636ed573a283043ff59a7b7f7a3416994372db226cb41518"]'
        b'}],"event_id":"00000000-0000-4000-8000-000000000001","in_reply_to":null,"kind":"reply",'
        b'"message_id":"00000000-0000-4000-8000-0000000000a0","schema":1,"subject":"case-1",'
        b'"time":"2026-03-01T10:00:00Z","type":"message.posted"}'
    ),
    # Issue 19: one entry per signed digest of a buyer (subject `<buyer>:<seq>`), no longer
    # one per case sent: its seq, hash, the previous digest's hash and the cases it lists.
    "digest": (
        b'{"buyer":"B-001","cases":["case-1"],'
        b'"digest_hash":"abababababababababababababababababababababababababababababababab",'
        b'"event_id":"00000000-0000-4000-8000-000000000001",'
        b'"previous":"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd",'
        b'"schema":1,"seq":7,"subject":"B-001:7","time":"2026-03-01T10:00:00Z",'
        b'"type":"digest.issued"}'
    ),
    "disclosed": (
        b'{"class":"identity","envelope_hash":"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdc'
        b'dcdcdcdcdcdcdcdcd","event_id":"00000000-0000-4000-8000-000000000001",'
        b'"principal":{"org":"hotline-operator","role":"triage-analyst"},'
        b'"recipients":["x25519:16158b9e944de5de52fb5ba4217c610a27581b075629735bd810735a103686'
        b'2c"],"schema":1,"subject":"case-1","time":"2026-03-01T10:00:00Z",'
        b'"type":"envelope.disclosed"}'
    ),
    "key_registered": (
        b'{"event_id":"00000000-0000-4000-8000-000000000001",'
        b'"key_id":"x25519:16158b9e944de5de52fb5ba4217c610a27581b075629735bd810735a1036862c",'
        b'"org":"hotline-operator","org_kind":"operator",'
        b'"public_key":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=","schema":1,'
        b'"subject":"x25519:16158b9e944de5de52fb5ba4217c610a27581b075629735bd810735a1036862c",'
        b'"time":"2026-03-01T10:00:00Z","type":"key.registered"}'
    ),
    "key_revoked": (
        b'{"event_id":"00000000-0000-4000-8000-000000000001",'
        b'"key_id":"x25519:16158b9e944de5de52fb5ba4217c610a27581b075629735bd810735a1036862c",'
        b'"org":"hotline-operator","org_kind":"operator","schema":1,'
        b'"subject":"x25519:16158b9e944de5de52fb5ba4217c610a27581b075629735bd810735a1036862c",'
        b'"time":"2026-03-01T10:00:00Z","type":"key.revoked"}'
    ),
    "factory_added": (
        b'{"buyer":null,"change":"factory-added",'
        b'"event_id":"00000000-0000-4000-8000-000000000001","factory":"F-001","schema":1,'
        b'"subject":"F-001","time":"2026-03-01T10:00:00Z","type":"registry.changed"}'
    ),
    "report_without_identity": (
        b'{"envelopes":[{"class":"content",'
        b'"hash":"37ddbc5a9819a63206e336f3b13a1476cc32cd97cca8bcfe564e7678741fe39a",'
        b'"recipients":["x25519:16158b9e944de5de52fb5ba4217c610a27581b075629735bd810735a1036862c"]'
        b'}],"event_id":"00000000-0000-4000-8000-000000000001","reply_key":null,"schema":1,'
        b'"subject":"case-2","time":"2026-03-01T10:00:00Z","type":"report.submitted"}'
    ),
    "disclosed_to_no_org": (
        b'{"class":"content","envelope_hash":"efefefefefefefefefefefefefefefefefefefefefefefef'
        b'efefefefefefefef","event_id":"00000000-0000-4000-8000-000000000001",'
        b'"principal":{"org":null,"role":"platform-admin"},"recipients":[],"schema":1,'
        b'"subject":"case-2","time":"2026-03-01T10:00:00Z","type":"envelope.disclosed"}'
    ),
    "buyer_added": (
        b'{"buyer":"B-001","change":"buyer-added",'
        b'"event_id":"00000000-0000-4000-8000-000000000001","factory":null,"schema":1,'
        b'"subject":"B-001","time":"2026-03-01T10:00:00Z","type":"registry.changed"}'
    ),
    # Issue 17: the conversation (a forward with its disclosure, an answer with a photo).
    "forward_disclosed": (
        b'{"class":"message",'
        b'"envelope_hash":"f1b87f8744551a2f1a736aa921b4eaa0303c6a757c6129948c482ee07e1f216b",'
        b'"event_id":"00000000-0000-4000-8000-000000000001","principal":{"org":null,'
        b'"role":"worker"},"recipients":["x25519:5f26f4deafd1baf1636ed573a283043ff59a7b7f7a3416994'
        b'372db226cb41518"],"schema":1,"subject":"case-1","time":"2026-03-01T10:00:00Z",'
        b'"type":"envelope.disclosed"}'
    ),
    "forward": (
        b'{"author_role":"triage-analyst","envelopes":[{"class":"message",'
        b'"hash":"f1b87f8744551a2f1a736aa921b4eaa0303c6a757c6129948c482ee07e1f216b",'
        b'"recipients":["x25519:5f26f4deafd1baf1636ed573a283043ff59a7b7f7a3416994372db226cb41518"]'
        b'}],"event_id":"00000000-0000-4000-8000-000000000001",'
        b'"in_reply_to":"00000000-0000-4000-8000-0000000000a1","kind":"forward",'
        b'"message_id":"de512efd-a7a7-5092-812d-c7fbcdee3baf","schema":1,"subject":"case-1",'
        b'"time":"2026-03-01T10:00:00Z","type":"message.posted"}'
    ),
    "answer_with_attachment": (
        b'{"author_role":"worker","envelopes":[{"class":"message",'
        b'"hash":"37ddbc5a9819a63206e336f3b13a1476cc32cd97cca8bcfe564e7678741fe39a",'
        b'"recipients":["x25519:16158b9e944de5de52fb5ba4217c610a27581b075629735bd810735a1036862c"]'
        b'},{"class":"attachment",'
        b'"hash":"a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3",'
        b'"recipients":["x25519:16158b9e944de5de52fb5ba4217c610a27581b075629735bd810735a1036862c"]'
        b'}],"event_id":"00000000-0000-4000-8000-000000000001","in_reply_to":null,"kind":"answer",'
        b'"message_id":"00000000-0000-4000-8000-0000000000a2","schema":1,"subject":"case-1",'
        b'"time":"2026-03-01T10:00:00Z","type":"message.posted"}'
    ),
    "clock_started": (
        b'{"clock":"acknowledgement","due":"2026-03-08T10:00:00Z",'
        b'"event_id":"00000000-0000-4000-8000-000000000001","schema":1,"subject":"case-1",'
        b'"time":"2026-03-01T10:00:00Z","type":"clock.started"}'
    ),
    "clock_stopped": (
        b'{"clock":"acknowledgement","event_id":"00000000-0000-4000-8000-000000000001",'
        b'"met":true,"schema":1,"subject":"case-1","time":"2026-03-01T10:00:00Z",'
        b'"type":"clock.stopped"}'
    ),
    "clock_breached": (
        b'{"clock":"first-action","due":"2026-03-01T14:00:00Z",'
        b'"event_id":"00000000-0000-4000-8000-000000000001","schema":1,"subject":"case-1",'
        b'"time":"2026-03-01T10:00:00Z","type":"clock.breached"}'
    ),
    "incident_linked": (
        b'{"event_id":"00000000-0000-4000-8000-000000000001","incident":"incident-1",'
        b'"schema":1,"subject":"case-1","time":"2026-03-01T10:00:00Z",'
        b'"type":"incident.linked"}'
    ),
    "envelopes_deleted": (
        b'{"envelopes":[{"class":"identity",'
        b'"hash":"abababababababababababababababababababababababababababababababab"}],'
        b'"event_id":"00000000-0000-4000-8000-000000000001","schema":1,'
        b'"scope":"identity","subject":"case-1","time":"2026-03-01T10:00:00Z",'
        b'"type":"envelopes.deleted"}'
    ),
}


def test_every_event_type_is_pinned() -> None:
    assert {e.type for e in EVENTS.values()} == set(EventType)
    assert set(LEAVES) == set(EVENTS)


@pytest.mark.parametrize("name", list(EVENTS))
def test_the_leaf_bytes_of_each_entry_are_pinned(name: str) -> None:
    assert audit_entry(EVENTS[name]).leaf() == LEAVES[name]


@pytest.mark.parametrize("name", list(EVENTS))
def test_a_leaf_reads_back_into_the_entry_it_was_written_from(name: str) -> None:
    entry = parse_entry(LEAVES[name])
    assert entry == audit_entry(EVENTS[name])
    assert entry.leaf() == LEAVES[name]


def test_entries_are_typed_per_event_type() -> None:
    report = parse_entry(LEAVES["report"])
    assert isinstance(report, ReportSubmittedEntry)
    classes = [e.envelope_class for e in report.envelopes]
    assert classes == ["content", "identity", "attachment", "attachment"]
    assert report.envelopes[1].recipients == [OPERATOR]
    assert report.envelopes[2].recipients == sorted([OPERATOR, BUYER])
    key = parse_entry(LEAVES["key_registered"])
    assert isinstance(key, KeyRegisteredEntry) and key.org_kind == "operator"
    answer = parse_entry(LEAVES["answer_with_attachment"])
    assert isinstance(answer, MessagePostedEntry)
    assert (answer.kind, answer.author_role, answer.in_reply_to) == ("answer", "worker", None)
    assert [e.envelope_class for e in answer.envelopes] == ["message", "attachment"]
    assert answer.envelopes[1].hash == "a3" * 32
    forward = parse_entry(LEAVES["forward"])
    assert isinstance(forward, MessagePostedEntry) and forward.in_reply_to == QUESTION_ID
    assert forward.message_id == decision_id(QUESTION_ID)


def test_a_report_names_its_reply_key_by_key_id_not_the_key() -> None:
    """Replies name their recipients by key id, so the report's entry does too; the key
    itself stays in the event (triage seals replies to it)."""
    report = parse_entry(LEAVES["report"])
    assert isinstance(report, ReportSubmittedEntry) and report.reply_key == REPLY
    assert REPLY_PUBLIC.encode() not in LEAVES["report"]
    old = parse_entry(LEAVES["report_without_identity"])
    assert isinstance(old, ReportSubmittedEntry) and old.reply_key is None


@pytest.mark.parametrize("reply_key", ["not base64!", b64encode(bytes(31)), b64encode(bytes(32))])
def test_a_report_whose_reply_key_is_no_public_key_is_bad_data(reply_key: str) -> None:
    """Intake refuses such a report; an event carrying one anyway is dead-lettered as bad
    data, like any event whose data does not validate (all zeros: a low-order point)."""
    data = dict(EVENTS["report"].data, reply_key=reply_key)
    bad = EVENTS["report"].model_copy(update={"data": data})
    with pytest.raises(EventError, match="reply_key is not a public key"):
        audit_entry(bad)


def test_a_decline_carries_no_envelope_summary() -> None:
    decline = MessagePosted(
        message_id=decision_id(QUESTION_ID),
        kind="decline",
        author_role="triage-analyst",
        envelope=None,
        in_reply_to=QUESTION_ID,
    )
    entry = audit_entry(event("case-1", decline))
    assert isinstance(entry, MessagePostedEntry) and entry.envelopes == []
    assert parse_entry(entry.leaf()) == entry


def test_no_entry_of_a_case_names_its_factory_severity_deadline_or_reason() -> None:
    """What triage and notify publish about a case (factory, severity, due, reason) stays in
    their events; the public entries under the case id say none of it."""
    revealing = [
        "F-001",
        "critical",
        "high",
        "2026-03-02T10:00:00Z",
        "2026-03-01T12:00:00Z",
        "no-response",
    ]
    # A digest's entry is under `<buyer>:<seq>` and lists case ids: it is held to it too.
    cases = [n for n, e in EVENTS.items() if e.subject.startswith("case-") or n == "digest"]
    assert {EVENTS[n].type for n in cases} >= {
        EventType.CASE_TRIAGED,
        EventType.CASE_ESCALATED,
        EventType.DIGEST_ISSUED,
    }
    for name in cases:
        leaf = audit_entry(EVENTS[name]).leaf().decode()
        assert [word for word in revealing if word in leaf] == [], name


def edited(name: str, **changes: Any) -> bytes:
    """The pinned leaf of `name` with fields replaced (None: removed), as JSON text."""
    entry = json.loads(LEAVES[name])
    for field, value in changes.items():
        if value is None:
            del entry[field]
        else:
            entry[field] = value
    return json.dumps(entry).encode()


@pytest.mark.parametrize(
    "leaf,says",
    [
        (b"not json", "Invalid JSON"),
        (b"[1, 2]", "not an audit entry"),
        (edited("status", type="case.deleted"), "does not match any of the expected tags"),
        (edited("status", type=None), "Unable to extract tag"),
        (edited("status", status=None), "case.status-changed.status: Field required"),
        (edited("status", schema="1"), "case.status-changed.schema: Input should be a valid"),
        (edited("status", note="hidden"), "case.status-changed.note: Extra inputs"),
        (edited("report", factory="F-001"), "report.submitted.factory: Extra inputs"),
        (edited("report", urgent=True), "report.submitted.urgent: Extra inputs"),
        (edited("triaged", severity="high"), "case.triaged.severity: Extra inputs"),
        (edited("escalated", due="2026-03-01T14:00:00Z"), "case.escalated.due: Extra inputs"),
        (edited("escalated", reason="worker-marked-urgent"), "case.escalated.reason: Extra"),
        (edited("digest", factory="F-001"), "digest.issued.factory: Extra inputs"),
        (edited("key_registered", org_kind="god"), "key.registered.org_kind: Input should be"),
        (edited("disclosed", principal={"role": "x"}), "principal.org: Field required"),
        (edited("report", reply_key=None), "report.submitted.reply_key: Field required"),
        (edited("message", kind="gossip"), "message.posted.kind: Input should be"),
        (edited("message", message_id=None), "message.posted.message_id: Field required"),
        (edited("message", in_reply_to=None), "message.posted.in_reply_to: Field required"),
        (edited("forward", text="hello"), "message.posted.text: Extra inputs"),
    ],
)
def test_a_leaf_that_is_not_an_entry_is_refused_saying_where(leaf: bytes, says: str) -> None:
    with pytest.raises(MalformedEntryError, match="not an audit entry") as refused:
        parse_entry(leaf)
    assert says in str(refused.value)


def test_only_the_json_names_are_read_not_the_python_ones() -> None:
    """`class` and `schema` are the names in a leaf; `envelope_class`/`schema_version` (the
    model's field names) are extra fields there, so no entry has two spellings."""
    renamed = edited("status", schema=None, schema_version=1)
    with pytest.raises(MalformedEntryError, match="schema"):
        parse_entry(renamed)
    disclosed = edited("disclosed", **{"class": None}, envelope_class="identity")
    with pytest.raises(MalformedEntryError, match="class"):
        parse_entry(disclosed)
