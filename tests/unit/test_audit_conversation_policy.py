"""The conversation's rules of the non-exposure policy (hotline.shared.audit.policy) over
hand-built entries: a whole conversation that breaks none, and for each rule the logs that
break it, with the rule named and the entry that broke it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from hotline.shared.audit.entry import (
    AuditEntry,
    DisclosedTo,
    EnvelopeDisclosedEntry,
    EnvelopeSummary,
    KeyRegisteredEntry,
    MessagePostedEntry,
    RegistryChangedEntry,
    ReportSubmittedEntry,
)
from hotline.shared.audit.failures import Rule
from hotline.shared.audit.policy import NonExposurePolicy
from hotline.shared.events import OrgKind
from hotline.shared.messages import MessageKind, decision_id

OPERATOR, BUYER, FACTORY_KEY = "x25519:op", "x25519:buyer", "x25519:fac"
REPLY, LATE = "x25519:reply", "x25519:late"
OPERATOR_ROLE, WORKER, BUYER_ROLE = "triage-analyst", "worker", "buyer"
COMMON: dict[str, Any] = {"time": "2026-03-01T10:00:00Z", "schema_version": 1}
CASE, OTHER_CASE = "case-1", "case-2"


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


def report(case: str, reply_key: str | None = REPLY) -> ReportSubmittedEntry:
    content = EnvelopeSummary(envelope_class="content", hash=f"c-{case}", recipients=[OPERATOR])
    return ReportSubmittedEntry(
        event_id=f"report-{case}",
        subject=case,
        envelopes=[content],
        reply_key=reply_key,
        **COMMON,
    )


def message(
    kind: MessageKind,
    author: str,
    to: Sequence[str] | None,
    *,
    case: str = CASE,
    message_id: str | None = None,
    in_reply_to: str | None = None,
    attachments: Sequence[Sequence[str]] = (),
) -> MessagePostedEntry:
    """A message entry: its envelope sealed to `to` (None: no envelope), and one attachment
    sealed to each list of `attachments`. A decision's id follows from its question."""
    if message_id is None:
        message_id = decision_id(in_reply_to) if in_reply_to else str(uuid.uuid4())
    envelopes = [] if to is None else [summary("message", f"m-{message_id}", to)]
    envelopes += [summary("attachment", f"a{n}-{message_id}", a) for n, a in enumerate(attachments)]
    return MessagePostedEntry(
        event_id=f"message-{message_id}",
        subject=case,
        message_id=message_id,
        kind=kind,
        author_role=author,
        in_reply_to=in_reply_to,
        envelopes=envelopes,
        **COMMON,
    )


def summary(envelope_class: Any, hash: str, to: Sequence[str]) -> EnvelopeSummary:
    return EnvelopeSummary(envelope_class=envelope_class, hash=hash, recipients=list(to))


def disclosed_to_worker(
    forward: MessagePostedEntry,
    *,
    case: str = CASE,
    role: str = WORKER,
    envelope_class: Any = "message",
) -> EnvelopeDisclosedEntry:
    """The disclosure triage writes with a forward (class message, to the worker)."""
    return EnvelopeDisclosedEntry(
        event_id=f"disclosed-{forward.message_id}",
        subject=case,
        principal=DisclosedTo(role=role, org=None),
        envelope_class=envelope_class,
        envelope_hash=forward.envelopes[0].hash,
        recipients=forward.envelopes[0].recipients,
        **COMMON,
    )


def question(case: str = CASE, to: Sequence[str] = (OPERATOR,)) -> MessagePostedEntry:
    return message("question", BUYER_ROLE, to, case=case)


def forward(of: MessagePostedEntry, to: Sequence[str] = (REPLY,)) -> MessagePostedEntry:
    return message("forward", OPERATOR_ROLE, to, in_reply_to=of.message_id)


# Entries 0-4: an operator key, a factory with a key, a buyer's key, then the case's report.
PROLOGUE: list[AuditEntry] = [
    key(OPERATOR, "hotline-operator", "operator"),
    RegistryChangedEntry(
        event_id="factory-F-1",
        subject="F-1",
        change="factory-added",
        factory="F-1",
        buyer=None,
        **COMMON,
    ),
    key(FACTORY_KEY, "F-1", "factory"),
    key(BUYER, "buyer-1", "buyer"),
    report(CASE),
]
FIRST = len(PROLOGUE)  # the index of the first entry a test adds


def failures(entries: Sequence[AuditEntry]) -> tuple[NonExposurePolicy, list[tuple[int, str, str]]]:
    """Run the policy over the prologue and `entries`; return it and its violations, each
    as (entry index, rule, message)."""
    policy = NonExposurePolicy()
    for index, entry in enumerate([*PROLOGUE, *entries]):
        policy.add(index, entry.leaf())
    return policy, [(f.index or 0, str(f.rule), f.detail) for f in policy.finish()]


def test_a_whole_conversation_breaks_no_rule_and_is_counted() -> None:
    asked, declined = question(), question()
    forwarded = forward(asked)
    policy, found = failures(
        [
            message("acknowledgement", OPERATOR_ROLE, [REPLY]),
            message("reply", OPERATOR_ROLE, [REPLY]),
            message("answer", WORKER, [OPERATOR], attachments=[[OPERATOR], [OPERATOR]]),
            asked,
            forwarded,
            disclosed_to_worker(forwarded),
            declined,
            message("decline", OPERATOR_ROLE, None, in_reply_to=declined.message_id),
            message("feedback", OPERATOR_ROLE, [REPLY]),
        ]
    )
    assert found == []
    counts = policy.counts
    assert (counts.messages_to_worker, counts.answers_and_questions, counts.forwards) == (4, 3, 1)


def test_the_disclosure_of_a_forward_may_come_after_it_in_the_log() -> None:
    """Triage writes both in one outbox write, but they travel on two topics: the log may
    sequence the forward first."""
    asked = question()
    forwarded = forward(asked)
    _, found = failures([asked, disclosed_to_worker(forwarded), forwarded])
    assert found == []
    _, found = failures([asked, forwarded, disclosed_to_worker(forwarded)])
    assert found == []


# --- messages-to-the-worker-sealed-to-its-reply-key-only -----------------------------------


def reply(to: Sequence[str], case: str = CASE) -> MessagePostedEntry:
    return message("reply", OPERATOR_ROLE, to, case=case)


def test_a_reply_sealed_to_a_factory_key_instead_of_the_reply_key() -> None:
    _, found = failures([reply([FACTORY_KEY])])
    assert found == [
        (
            FIRST,
            Rule.REPLY_KEY_ONLY,
            f"the message envelope of the reply is sealed to {FACTORY_KEY} (registered for F-1, "
            f"a factory, at entry 2), not to the case's reply key {REPLY} alone (report at "
            "entry 4)",
        )
    ]


def test_a_reply_sealed_to_the_reply_key_that_a_factory_registered_later() -> None:
    """The reply key of a case must be no organisation's, wherever in the log it is
    registered: a report naming a factory's key as the reply key would hand every reply
    to the factory."""
    _, found = failures([reply([REPLY]), key(REPLY, "F-1", "factory")])
    assert found == [
        (
            FIRST,
            Rule.REPLY_KEY_ONLY,
            f"the message envelope of the reply is sealed to the case's reply key {REPLY} "
            "(report at entry 4), but that key is registered for F-1, a factory, at entry 6: "
            "a worker's reply key is no org's",
        )
    ]


@pytest.mark.parametrize(
    "entries,index,says",
    [
        (lambda: [reply([REPLY, OPERATOR])], FIRST, f"{OPERATOR} (registered for hotline-op"),
        (lambda: [reply([])], FIRST, "is sealed to no key, not to the case's reply key"),
        (lambda: [reply([LATE], case=OTHER_CASE)], FIRST, "no report of case case-2 earlier"),
        (
            lambda: [reply([REPLY], case=OTHER_CASE), report(OTHER_CASE)],
            FIRST,
            "but no report of case case-2 earlier in the log gives the worker's reply key",
        ),
        (
            lambda: [report(OTHER_CASE, reply_key=None), reply([REPLY], case=OTHER_CASE)],
            FIRST + 1,
            f"sealed to {REPLY} (registered for no organisation), but the case's report "
            "(entry 5) has no reply key",
        ),
        (lambda: [message("feedback", OPERATOR_ROLE, [BUYER])], FIRST, "registered for buyer-1"),
        (
            lambda: [message("acknowledgement", OPERATOR_ROLE, [OPERATOR])],
            FIRST,
            "the message envelope of the acknowledgement is sealed to x25519:op",
        ),
    ],
    ids=[
        "two recipients",
        "no recipient",
        "no report",
        "report later",
        "report without reply key",
        "feedback to a buyer",
        "acknowledgement to the operator",
    ],
)
def test_a_message_to_the_worker_not_sealed_to_its_reply_key_alone(
    entries: Callable[[], list[AuditEntry]], index: int, says: str
) -> None:
    _, found = failures(entries())
    assert [(i, rule) for i, rule, _ in found] == [(index, Rule.REPLY_KEY_ONLY)]
    assert says in found[0][2]


def test_a_forward_is_a_message_to_the_worker_too() -> None:
    asked = question()
    forwarded = forward(asked, to=[BUYER])
    _, found = failures([asked, forwarded, disclosed_to_worker(forwarded)])
    assert [(i, rule) for i, rule, _ in found] == [(FIRST + 1, Rule.REPLY_KEY_ONLY)]


# --- answers-and-questions-sealed-to-operator-keys-only ------------------------------------


def answer(to: Sequence[str], attachments: Sequence[Sequence[str]] = ()) -> MessagePostedEntry:
    return message("answer", WORKER, to, attachments=attachments)


@pytest.mark.parametrize(
    "entries,index,says",
    [
        (
            lambda: [answer([OPERATOR, BUYER])],
            FIRST,
            f"the message envelope of the answer is sealed to {BUYER}, which is not an operator "
            "key registered earlier in the log (registered for buyer-1 at entry 3)",
        ),
        (
            lambda: [answer([OPERATOR], attachments=[[OPERATOR], [FACTORY_KEY]])],
            FIRST,
            f"the attachment envelope of the answer is sealed to {FACTORY_KEY}",
        ),
        (lambda: [answer([REPLY])], FIRST, "(never registered so far)"),
        (lambda: [answer([])], FIRST, "the message envelope of the answer is sealed to no key"),
        (
            lambda: [question(to=[LATE]), key(LATE, "hotline-operator", "operator")],
            FIRST,
            f"the message envelope of the question is sealed to {LATE}, which is not an "
            "operator key registered earlier in the log (never registered so far)",
        ),
    ],
    ids=["answer to a buyer", "photo to a factory", "answer to the reply key", "no key", "late"],
)
def test_an_answer_or_question_sealed_to_a_key_that_is_not_an_operators(
    entries: Callable[[], list[AuditEntry]], index: int, says: str
) -> None:
    _, found = failures(entries())
    assert [(i, rule) for i, rule, _ in found] == [(index, Rule.OPERATOR_KEYS_ONLY)]
    assert says in found[0][2]


# --- message-kind-matches-author -------------------------------------------------------------


def kind_cases() -> list[tuple[str, Callable[[], list[AuditEntry]], int, str]]:
    asked, elsewhere = question(), question(case=OTHER_CASE)

    def forwarded(of: MessagePostedEntry) -> list[AuditEntry]:
        sent = forward(of)
        return [sent, disclosed_to_worker(sent)]

    unknown = str(uuid.uuid4())
    orphan = message("forward", OPERATOR_ROLE, [REPLY], message_id=unknown)
    return [
        (
            "a buyer writes a reply",
            lambda: [message("reply", BUYER_ROLE, [REPLY])],
            FIRST,
            "a reply by author role buyer, which writes only noted, question",
        ),
        (
            "the worker writes a question",
            lambda: [message("question", WORKER, [OPERATOR])],
            FIRST,
            "a question by author role worker, which writes only answer",
        ),
        (
            "a factory manager writes an answer",
            lambda: [message("answer", "factory-manager", [OPERATOR])],
            FIRST,
            "a message (answer) by author role factory-manager, which writes no messages",
        ),
        (
            "a decline with an envelope",
            lambda: [
                asked,
                message("decline", OPERATOR_ROLE, [BUYER], in_reply_to=asked.message_id),
            ],
            FIRST + 1,
            "a decline carries a message envelope (a decline carries none)",
        ),
        (
            "a reply without an envelope",
            lambda: [message("reply", OPERATOR_ROLE, None)],
            FIRST,
            "the reply carries 0 message envelopes, not one",
        ),
        (
            "a reply with a photo",
            lambda: [message("reply", OPERATOR_ROLE, [REPLY], attachments=[[REPLY]])],
            FIRST,
            "the reply carries attachments (only a worker's answer does)",
        ),
        (
            "a reply naming a question",
            lambda: [asked, message("reply", OPERATOR_ROLE, [REPLY], in_reply_to=asked.message_id)],
            FIRST + 1,
            f"the reply names question {asked.message_id} (only a forward or decline does)",
        ),
        (
            "a forward of no question",
            lambda: [orphan, disclosed_to_worker(orphan)],
            FIRST,
            "the forward names no question",
        ),
        (
            "a decline of an unknown question",
            lambda: [message("decline", OPERATOR_ROLE, None, in_reply_to=unknown)],
            FIRST,
            f"the decline decides {unknown}, which is no question earlier in the log",
        ),
        (
            "a forward before its question",
            lambda: [*forwarded(asked), asked],
            FIRST,
            f"the forward decides {asked.message_id}, which is no question earlier in the log",
        ),
        (
            "a forward of another case's question",
            lambda: [report(OTHER_CASE), elsewhere, *forwarded(elsewhere)],
            FIRST + 2,
            f"the forward decides question {elsewhere.message_id} of another case (case-2, "
            "entry 6)",
        ),
    ]


@pytest.mark.parametrize(
    "name,entries,index,says", kind_cases(), ids=[case[0] for case in kind_cases()]
)
def test_a_message_of_a_kind_or_shape_its_author_does_not_write(
    name: str, entries: Callable[[], list[AuditEntry]], index: int, says: str
) -> None:
    _, found = failures(entries())
    assert [(i, rule) for i, rule, _ in found] == [(index, Rule.KIND_MATCHES_AUTHOR)], name
    assert found[0][2] == says


# --- forwards-disclosed ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "disclosure",
    [
        lambda sent: [],
        lambda sent: [disclosed_to_worker(sent, case=OTHER_CASE)],
        lambda sent: [disclosed_to_worker(sent, role=OPERATOR_ROLE)],
        lambda sent: [disclosed_to_worker(sent, envelope_class="content")],
    ],
    ids=["never disclosed", "another case", "to the operator", "as content"],
)
def test_a_forward_that_was_not_disclosed_to_the_worker(
    disclosure: Callable[[MessagePostedEntry], list[AuditEntry]],
) -> None:
    asked = question()
    sent = forward(asked)
    _, found = failures([asked, sent, *disclosure(sent)])
    assert found == [
        (
            FIRST + 1,
            Rule.FORWARDS_DISCLOSED,
            f"the forward's envelope {sent.envelopes[0].hash} was never disclosed to the worker "
            "(no envelope.disclosed entry of class message, role worker, for case case-1)",
        )
    ]
