"""Notify's consumer (group "notify"): what each buyer is to be told, and the urgent digests.

- report.submitted: a "new" record for every linked buyer whose key (current, or one it
  held before a rotation) the content is sealed to; a buyer linked after the report was
  sealed cannot read it, so it gets nothing.
- case.triaged, case.escalated, case.status-changed: the case's state (severity, due,
  status, escalated) and, when what a digest says of the case changes, a "changed" record
  for every buyer that has its report. The records are written before the state (a crash in
  between leaves a record the redelivery does not lose) and again after it (for a report
  recorded meanwhile, whose digest may have read the old state).
- a critical or escalated case with a buyer's pending record: that buyer's urgent digest,
  whichever of the report and the severity arrives second (issuance.py).

Idempotent by construction: records are keyed by buyer and case (and the event, for a
change), the state is set, not counted, and issuance takes only what is pending.
"""

from __future__ import annotations

import logging
from typing import Any

from hotline.shared import registry
from hotline.shared.envelope import envelope_recipients
from hotline.shared.events import (
    CaseEscalated,
    CaseStatusChanged,
    CaseTriaged,
    Event,
    EventType,
    ReportSubmitted,
    event_data,
    topic_for,
)

from .erasure import delete_copies
from .issuance import Issuer

log = logging.getLogger("hotline.notify")

TOPICS = [
    topic_for(EventType.REPORT_SUBMITTED),
    topic_for(EventType.CASE_TRIAGED),
    topic_for(EventType.CASE_ESCALATED),
    topic_for(EventType.CASE_STATUS_CHANGED),
    topic_for(EventType.ENVELOPES_DELETED),  # retention: erasure.py deletes notify's copies
]


async def handle_event(issuer: Issuer, event: Event) -> None:
    """The handler of every event of `TOPICS`, by its type."""
    if event.type == EventType.REPORT_SUBMITTED:
        await add_to_digests(issuer, event)
    elif event.type == EventType.ENVELOPES_DELETED:
        await delete_copies(issuer.store, event)
    else:
        await apply_case_event(issuer, event)


async def add_to_digests(issuer: Issuer, event: Event) -> None:
    """A "new" record per linked buyer the content was sealed to; then urgent digests if
    the case is already known to be critical."""
    report = event_data(event, ReportSubmitted)
    sealed_to = envelope_recipients(report.content)
    recorded = []
    for buyer in await registry.buyers_of(issuer.store, report.factory):
        if sealed_to.isdisjoint(registry.buyer_key_ids(buyer)):
            # Linked after the report was sealed: this buyer cannot read it, so it is not sent.
            log.info("buyer key not a recipient", extra={"case_id": event.subject})
            continue
        await issuer.record_report(buyer, event.subject, report, event.time)
        recorded.append(buyer["_id"])
    await issuer.urgent(event.subject, recorded)


def case_fields(event: Event) -> dict[str, Any]:
    """What a triage event sets of the case's state."""
    if event.type == EventType.CASE_TRIAGED:
        triaged = event_data(event, CaseTriaged)
        return {"severity": triaged.severity, "due": triaged.due}
    if event.type == EventType.CASE_ESCALATED:
        escalated = event_data(event, CaseEscalated)
        return {"severity": escalated.severity, "due": escalated.due, "escalated": True}
    if event.type == EventType.CASE_STATUS_CHANGED:
        return {"status": event_data(event, CaseStatusChanged).status}
    raise ValueError(f"notify does not consume {event.type} events")


async def apply_case_event(issuer: Issuer, event: Event) -> None:
    """The case's new state, the buyers' "changed" records, and urgent digests."""
    case_id = event.subject
    fields = case_fields(event)
    visible = issuer.changes_visible(await issuer.case_state(case_id), fields)
    if visible:
        await issuer.record_change(case_id, event.id)
    await issuer.set_case_state(case_id, fields)
    if visible:
        await issuer.record_change(case_id, event.id)
    await issuer.urgent(case_id, await issuer.buyers_of_case(case_id))
