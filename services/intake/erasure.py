"""Intake's copies of a case's envelopes, deleted on triage's `envelopes.deleted` event
(services/triage/retention.py decides when, under the case's retention policy).

- identity: the identity envelope of the case (`intake_cases.identity` set to None);
- content: the content and identity envelopes, every attachment of the report and of the
  worker's answers (`intake_attachments`), and the conversation as the status page shows it
  (`intake_messages`: the operators' messages sealed to the reply key, the answers'
  metadata). The case document stays, without envelopes: the status page still finds the
  case by its receipt and shows its status.

The case is marked `deleted.<scope>` = the deletion's hour in the same write that clears
its envelopes, as triage marks its own: after a content deletion intake takes no more
answers to the case and records no more messages to the worker (conversation.py), so
nothing sealed comes back once deleted.

Idempotent: setting None again and deleting what is gone change nothing.
"""

from __future__ import annotations

from typing import Any

from hotline.shared.events import EnvelopesDeleted, Event, event_data
from hotline.shared.service import Runtime

from .collections import INTAKE_ATTACHMENTS, INTAKE_CASES, INTAKE_MESSAGES


def content_deleted(case: dict[str, Any]) -> bool:
    """Whether retention deleted the case's content (and with it its conversation)."""
    return "content" in (case.get("deleted") or {})


async def delete_copies(runtime: Runtime, event: Event) -> None:
    """Delete intake's copies of what the event says was deleted."""
    deletion = event_data(event, EnvelopesDeleted)
    case_id = event.subject
    cleared: dict[str, Any] = {"identity": None, f"deleted.{deletion.scope}": event.time}
    if deletion.scope == "content":
        cleared["content"] = None
    await runtime.store.db[INTAKE_CASES.name].update_one({"_id": case_id}, {"$set": cleared})
    if deletion.scope == "content":
        await runtime.store.db[INTAKE_ATTACHMENTS.name].delete_many({"case_id": case_id})
        await runtime.store.db[INTAKE_MESSAGES.name].delete_many({"case_id": case_id})
