"""Notify's copies of a case's content, deleted on triage's `envelopes.deleted` event of
scope "content" (services/triage/retention.py). Identity never reaches notify, so an
identity deletion changes nothing here.

Where notify holds the content envelope of a case, and what becomes of it:
- each buyer's "new" record (`notify_items`): content None and no attachments, so a digest
  issued later lists the case without anything sealed;
- each issued digest listing the case (`notify_digests`): the item's content set to None
  and its attachments dropped in the stored body, the case recorded under
  `redacted.<case id>` (the hour). The signed note and `digest_hash` stay as issued: the
  note still verifies and the chain (each digest's `previous`, the `digest.issued` entry of
  the audit log) is unchanged, but the redacted body no longer hashes to the signed hash.
  A buyer verifies the copy it pulled before the deletion; what notify serves after it is
  the redacted body (docs/retention.md says why this is the choice: a signed body cannot
  keep a ciphertext that must go). A digest not handed out yet then discloses nothing of
  the case (its item has no content);
- each webhook message (`notify_webhook_messages`): the case's alert loses its content,
  and each digest message carries the redacted digest file.

Idempotent: a second delivery finds nothing left with content.
"""

from __future__ import annotations

import json
from typing import Any

from hotline.shared.events import EnvelopesDeleted, Event, event_data
from hotline.shared.store import Document, Store

from .collections import NOTIFY_DIGESTS, NOTIFY_ITEMS, NOTIFY_WEBHOOK_MESSAGES
from .digest import canonical
from .digests import digest_file_json
from .webhooks import alert_message_id, digest_message_id, payload_text


async def delete_copies(store: Store, event: Event) -> None:
    """Delete notify's copies of the case's content (scope "content" only)."""
    if event_data(event, EnvelopesDeleted).scope != "content":
        return
    case_id = event.subject
    items = store.db[NOTIFY_ITEMS.name]
    news = await items.find({"case_id": case_id, "change": "new"}, {"buyer": 1}).to_list(None)
    await items.update_many(
        {"case_id": case_id, "change": "new"}, {"$set": {"content": None, "attachments": []}}
    )
    messages = store.db[NOTIFY_WEBHOOK_MESSAGES.name]
    for buyer in {record["buyer"] for record in news}:
        await _redact_alert(messages, f"{buyer}:{alert_message_id(case_id)}")
    digests = store.db[NOTIFY_DIGESTS.name]
    for digest in await digests.find({"cases": case_id}).to_list(None):
        redacted = redact_body(digest["body"], case_id)
        if redacted != digest["body"]:
            await digests.update_one(
                {"_id": digest["_id"]},
                {"$set": {"body": redacted, f"redacted.{case_id}": event.time}},
            )
        served = digest_file_json({**digest, "body": redacted})
        message_id = f"{digest['buyer']}:{digest_message_id(digest['buyer'], digest['seq'])}"
        await messages.update_one({"_id": message_id}, {"$set": {"payload": served}})


def redact_body(body: str, case_id: str) -> str:
    """A digest's stored body (canonical JSON text) with the case's items holding nothing
    sealed: content None, no attachments. Pure; unchanged when nothing is left to redact."""
    parsed: Document = json.loads(body)
    changed = False
    for item in parsed["items"]:
        if item["case_id"] == case_id and (item["content"] is not None or item["attachments"]):
            item["content"], item["attachments"] = None, []
            changed = True
    return canonical(parsed).decode() if changed else body


async def _redact_alert(messages: Any, message_id: str) -> None:
    message = await messages.find_one({"_id": message_id}, {"payload": 1})
    if message is None:
        return
    alert = json.loads(message["payload"])
    if alert.get("content") is not None:
        alert["content"] = None
        await messages.update_one({"_id": message_id}, {"$set": {"payload": payload_text(alert)}})
