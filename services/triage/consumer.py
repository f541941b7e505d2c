"""Triage's consumer: rates each submitted case, sets its deadline, escalates the urgent."""

from __future__ import annotations

from datetime import datetime

from pymongo.errors import DuplicateKeyError

from hotline.shared.events import (
    CaseEscalated,
    CaseTriaged,
    Event,
    ReportSubmitted,
    event_data,
    new_event,
)
from hotline.shared.outbox import outbox_of
from hotline.shared.service import Runtime

from .collections import TRIAGE_CASES
from .rules import rate


async def triage_report(runtime: Runtime, event: Event) -> None:
    """Record the case with its rating; idempotent (the case id is the document id)."""
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
        "escalated": rating.escalate,
        "due": due,
        "received": event.time,
        "status": "new",
        "content": report.content.model_dump(),
        "identity": report.identity.model_dump() if report.identity else None,
    }
    try:
        await outbox_of(runtime.store, TRIAGE_CASES.name).insert(document, *events)
    except DuplicateKeyError:
        return  # already triaged by an earlier delivery
    runtime.relay.poke()
