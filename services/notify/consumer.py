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

A poll is applied together (`apply_poll`): its reports (`add_all_to_digests`: each buyer's
records in one ordered insert, numbered as one run, instead of about eight round trips per
report; on nx-27017 every write is a disk sync), then its case events (`apply_case_events`:
the states read once, each buyer's "changed" records in one insert, each case's state set
once). The two are different topics, which Kafka orders neither way, and each side writes
first and reads the other after. Deletions go one by one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
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
from hotline.shared.store import Document

from .erasure import delete_copies
from .issuance import Issuer

log = logging.getLogger("hotline.notify")

REPORTS = frozenset({EventType.REPORT_SUBMITTED.value})
CASE_EVENTS = frozenset(
    {
        EventType.CASE_TRIAGED.value,
        EventType.CASE_ESCALATED.value,
        EventType.CASE_STATUS_CHANGED.value,
    }
)
BATCHED = REPORTS | CASE_EVENTS  # what the consumer applies a poll at a time (`apply_poll`)
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


async def apply_poll(issuer: Issuer, events: Sequence[Event]) -> None:
    """The reports of a poll's `BATCHED` events, then its case events (module docstring)."""
    reports = [event for event in events if event.type in REPORTS]
    if reports:
        await add_all_to_digests(issuer, reports)
    changes = [event for event in events if event.type in CASE_EVENTS]
    if changes:
        await apply_case_events(issuer, changes)


async def add_to_digests(issuer: Issuer, event: Event) -> None:
    """A "new" record per linked buyer the content was sealed to; then urgent digests if
    the case is already known to be critical."""
    await add_all_to_digests(issuer, [event])


async def add_all_to_digests(issuer: Issuer, events: Sequence[Event]) -> None:
    """`add_to_digests` for the reports of `events` (in partition order): the linked buyers
    read once per factory, each buyer's records in one insert, the cases' states read once
    after them (a deletion or a severity that arrived meanwhile is seen: each side writes
    first and reads the other after), then urgent digests for the critical cases."""
    buyers_of: dict[str, list[Document]] = {}
    records: dict[str, tuple[Document, list[tuple[str, ReportSubmitted, str]]]] = {}
    for event in events:
        report = event_data(event, ReportSubmitted)
        if report.factory not in buyers_of:
            buyers_of[report.factory] = await registry.buyers_of(issuer.store, report.factory)
        sealed_to = envelope_recipients(report.content)
        for buyer in buyers_of[report.factory]:
            if sealed_to.isdisjoint(registry.buyer_key_ids(buyer)):
                # Linked after the report was sealed: this buyer cannot read it, so it is not sent.
                log.info("buyer key not a recipient", extra={"case_id": event.subject})
                continue
            _, reports = records.setdefault(buyer["_id"], (buyer, []))
            reports.append((event.subject, report, event.time))
    recorded: dict[str, list[str]] = {}  # case id -> the buyers it was recorded for
    for buyer, reports in records.values():
        for case_id, _, _ in reports:
            recorded.setdefault(case_id, []).append(buyer["_id"])
        await issuer.record_reports(buyer, reports)
    cases = await issuer.case_states(list(dict.fromkeys(event.subject for event in events)))
    deleted = [case_id for case_id in recorded if "deleted" in cases.get(case_id, {})]
    await issuer.clear_records(deleted)  # a deletion is never missed: read after the insert
    await issuer.urgent(recorded, cases)


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
    await apply_case_events(issuer, [event])


async def apply_case_events(issuer: Issuer, events: Sequence[Event]) -> None:
    """`apply_case_event` for case events in partition order: the states read once, each
    event judged against the state the events before it left; the "changed" records of
    those a digest shows written before the states are set, and after them for the reports
    recorded meanwhile (the buyers' reports are read again: what that read finds new gets
    its records, and it names the buyers of the urgent digests)."""
    case_ids = list(dict.fromkeys(event.subject for event in events))
    states = await issuer.case_states(case_ids)
    fields_of: dict[str, dict[str, Any]] = {}  # case id -> what the events set of its state
    changes: list[tuple[str, str]] = []  # (case id, event id) of each event a digest shows
    for event in events:
        fields = case_fields(event)
        now = {**states.get(event.subject, {}), **fields_of.get(event.subject, {})}
        if issuer.changes_visible(now, fields):
            changes.append((event.subject, event.id))
        fields_of.setdefault(event.subject, {}).update(fields)
    before = await issuer.reports_of(case_ids) if changes else {}
    await issuer.record_changes(changes, before)
    await issuer.set_case_states(fields_of, states)
    reports = await issuer.reports_of(case_ids)
    seen = {new["_id"] for news in before.values() for new in news}
    recorded_meanwhile = {
        case_id: [new for new in news if new["_id"] not in seen]
        for case_id, news in reports.items()
    }
    await issuer.record_changes(changes, recorded_meanwhile)
    now = {case_id: {**states.get(case_id, {}), **fields_of[case_id]} for case_id in case_ids}
    buyers = {case_id: [new["buyer"] for new in news] for case_id, news in reports.items()}
    await issuer.urgent(buyers, now)
