"""Triage's consumer (group "triage"): rates each submitted case (recording the version of
the rule table that did), sets its deadline, escalates the urgent and starts its regulation
clocks (clocks.py); records every posted message and applies what it does to the case (an
operator's message stops the clocks it answers).

Both are idempotent by construction: a case is stored under its case id, a message under its
author's role and message id, and a change of the case is decided on its current state (an
acknowledgement of an acknowledged case, or feedback older than the latest, changes nothing).

The reports of a poll are triaged together (`triage_reports`): one read per incident they
join, one insert of their cases (which carries the links of incidents that are ones
already), and a write only for an incident that gains founders, instead of about five
round trips per report (on nx-27017 every write is a disk sync). The other events go one
by one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from hotline.shared.events import (
    CaseEscalated,
    CaseTriaged,
    Event,
    EventType,
    MessagePosted,
    ReportSubmitted,
    event_data,
    new_event,
    topic_for,
)
from hotline.shared.outbox import outbox_of
from hotline.shared.roles import Role
from hotline.shared.service import Runtime
from hotline.shared.store import Document

from .cases import Change, queue_keys, status_change, update_case
from .clocks import clock_changes, initial_clocks, restarted_by_acknowledgement, stopped_by_message
from .collections import TRIAGE_CASES
from .contract import INITIAL_STATUS
from .incidents import NewCase, link_all, plan_links
from .messages import record_message
from .retention import delete_copies
from .rules import rate

REPORTS = frozenset({EventType.REPORT_SUBMITTED.value})  # what the consumer takes in batches
TOPICS = [
    topic_for(EventType.REPORT_SUBMITTED),
    topic_for(EventType.MESSAGE_POSTED),
    topic_for(EventType.ENVELOPES_DELETED),
]


async def handle_event(runtime: Runtime, event: Event) -> None:
    """The handler of every event of `TOPICS`, by its type."""
    handlers: dict[str, Callable[[Runtime, Event], Awaitable[None]]] = {
        EventType.REPORT_SUBMITTED: triage_report,
        EventType.MESSAGE_POSTED: apply_message,
        EventType.ENVELOPES_DELETED: delete_copies,
    }
    await handlers[event.type](runtime, event)


async def triage_report(runtime: Runtime, event: Event) -> None:
    """Record the case with its rating; idempotent (the case id is the document id)."""
    await triage_reports(runtime, [event])


async def triage_reports(runtime: Runtime, events: Sequence[Event]) -> None:
    """Record the cases of `events` (report.submitted, in partition order) with their ratings,
    in one insert, then link their incidents; idempotent: a case already stored (an earlier
    delivery, which may have stopped before linking) is left as it is and linked again."""
    triaged = {event.subject: _triaged(event) for event in events}
    joinings = await plan_links(runtime, [case for _, _, case in triaged.values()])
    # A case that joins what is an incident already carries the link and its event.
    for joining in joinings:
        for case_id, linked in joining.linked_on_arrival().items():
            document, announced, _ = triaged[case_id]
            document.setdefault("incidents", {})[joining.incident["public_id"]] = joining.category
            announced.append(linked)
    writer = outbox_of(runtime.store, TRIAGE_CASES.name)
    stored = await writer.insert_many(
        [(document, announced) for document, announced, _ in triaged.values()]
    )
    if stored:
        runtime.relay.poke()
    # Joined after the cases are stored: a crash in between joins them on the redelivery,
    # and the cases a join links have documents to record it.
    await link_all(runtime, joinings, inserted=frozenset(stored))


def _triaged(event: Event) -> tuple[Document, list[Event], NewCase]:
    """The case document of a report, the events announcing it, and what incidents need."""
    report = event_data(event, ReportSubmitted)
    received = datetime.fromisoformat(event.time.replace("Z", "+00:00"))
    rating = rate(report.categories, report.urgent, received)
    due = rating.due.isoformat().replace("+00:00", "Z")
    events = [
        new_event(
            event.subject,
            CaseTriaged(
                severity=rating.severity,
                due=due,
                categories=report.categories,
                factory=report.factory,
                rule_version=rating.rule_version,
            ),
        )
    ]
    if rating.escalate:
        events.append(
            new_event(
                event.subject,
                CaseEscalated(severity=rating.severity, reason=rating.reason, due=due),
            )
        )
    # The clocks start with the case: in its document and its outbox, in one write.
    clock_fields, clock_events = initial_clocks(event.subject, rating.severity, received)
    events.extend(clock_events)
    document = {
        "_id": event.subject,
        "factory": report.factory,
        "categories": report.categories,
        "urgent": report.urgent,
        "language": report.language,
        "channel": report.channel,
        "server_encrypted": report.server_encrypted,
        "severity": rating.severity,
        "reason": rating.reason,
        "rule_version": rating.rule_version,  # the rule table that decided severity and due
        "escalated": rating.escalate,
        "due": due,
        "received": event.time,
        "status": INITIAL_STATUS,
        "reply_key": report.reply_key,
        "acknowledged": None,  # the hour of the first acknowledgement
        "feedback": None,  # the hour of the latest feedback
        "content": report.content.model_dump(),
        "identity": report.identity.model_dump() if report.identity else None,
        # The attachments' references (hash, size, recipients; the envelopes stay in
        # intake): what retention lists when it deletes the content (retention.py).
        "attachments": [ref.model_dump() for ref in report.attachments],
        **clock_fields,
    }
    document.update(queue_keys(document))  # where the case sorts in the operator's queue
    return document, events, NewCase(event.subject, report.factory, report.categories, event.time)


async def apply_message(runtime: Runtime, event: Event) -> None:
    """Record a posted message (any author); an operator's message stops the clocks it
    answers, an acknowledgement acknowledges the case and feedback dates it."""
    posted = event_data(event, MessagePosted)
    await record_message(runtime, event, posted)
    if posted.author_role != Role.OPERATOR.value:
        return  # a worker's answer or a buyer's question changes nothing of the case
    await update_case(
        runtime, event.subject, lambda case: message_effects(case, posted, event.time)
    )


def message_effects(case: Document, posted: MessagePosted, hour: str) -> Change | None:
    """What an operator's message posted in `hour` does to the case (None: nothing more)."""
    fields: dict[str, object] = {}
    events: list[Event] = []
    restart = {}
    if posted.kind == "acknowledgement":
        restart = restarted_by_acknowledgement(case, hour)  # (before it is acknowledged)
        moved = acknowledged(case, hour)
    elif posted.kind == "feedback":
        moved = fed_back(case, hour)
    else:
        moved = None
    if moved is not None:
        fields.update(moved[0])
        events.extend(moved[1])
    clock_fields, clock_events = clock_changes(
        case, hour, stop=stopped_by_message(posted.kind), restart=restart
    )
    fields.update(clock_fields)
    events.extend(clock_events)
    return (fields, events) if fields else None


def acknowledged(case: Document, hour: str) -> Change | None:
    """The first acknowledgement's hour, and the move to `acknowledged` (once)."""
    fields: dict[str, object] = {}
    events: list[Event] = []
    if case.get("acknowledged") is None:
        fields["acknowledged"] = hour
    moved = status_change(case, "acknowledged")
    if moved is not None:
        fields.update(moved[0])
        events.extend(moved[1])
    return (fields, events) if fields else None


def fed_back(case: Document, hour: str) -> Change | None:
    """The latest feedback's hour (hours are ISO strings of one format: they sort as text)."""
    latest = case.get("feedback")
    if latest is not None and latest >= hour:
        return None
    return {"feedback": hour}, []
