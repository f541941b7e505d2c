"""Notify's consumer: a digest item per linked buyer of each submitted case."""

from __future__ import annotations

import logging

from pymongo.errors import DuplicateKeyError

from hotline.shared import registry
from hotline.shared.envelope import envelope_hash, envelope_recipients
from hotline.shared.events import DigestIssued, Event, ReportSubmitted, event_data, new_event
from hotline.shared.outbox import outbox_of
from hotline.shared.service import Runtime

from .collections import NOTIFY_ITEMS

log = logging.getLogger("hotline.notify")


async def add_to_digests(runtime: Runtime, event: Event) -> None:
    """One digest item per linked buyer whose key the content was sealed to; idempotent."""
    report = event_data(event, ReportSubmitted)
    sealed_to = envelope_recipients(report.content)
    for buyer in await registry.buyers_of(runtime.store, report.factory):
        if buyer["key_id"] not in sealed_to:
            # Linked after the report was sealed: this buyer cannot read it, so it is not sent.
            log.info("buyer key not a recipient", extra={"case_id": event.subject})
            continue
        issued = new_event(
            event.subject,
            DigestIssued(
                buyer=buyer["_id"],
                factory=report.factory,
                envelope_hash=envelope_hash(report.content),
                recipient_key_ids=[buyer["key_id"]],
            ),
        )
        item = {
            "_id": f"{buyer['_id']}:{event.subject}",
            "buyer": buyer["_id"],
            "case_id": event.subject,
            "factory": report.factory,
            "categories": report.categories,
            "urgent": report.urgent,
            "language": report.language,
            "received": event.time,
            "content": report.content.model_dump(),
        }
        try:
            await outbox_of(runtime.store, NOTIFY_ITEMS.name).insert(item, issued)
        except DuplicateKeyError:
            continue  # this delivery was already applied
    runtime.relay.poke()
