"""Notify's copies of a case's content, deleted on triage's `envelopes.deleted` event of
scope "content" (services/triage/retention.py). Identity never reaches notify, so an
identity deletion changes nothing here.

First the case is marked deleted in notify's own case state (`notify_cases.deleted` = the
hour), before any copy is touched: whatever is built or handed out from then on leaves the
case's envelopes out (issuance.py builds digests without them and checks again after
storing one; digests.py redacts them from what it hands out), so a digest written while
this deletion runs cannot keep the ciphertext for good. Then, where notify holds the
content envelope of a case:
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

`redact_digest` is the one redaction of a stored digest and its webhook message, used here
and by the issuer after it stores a digest; it redacts every case of the digest whose state
says deleted, each write guarded by the text it replaces, so two redactions racing never
put back what the other took out. Idempotent: a second delivery finds nothing left with
content.
"""

from __future__ import annotations

import json
from typing import Any

from pymongo.errors import DuplicateKeyError

from hotline.shared.events import EnvelopesDeleted, Event, event_data
from hotline.shared.store import Document, Store

from .collections import NOTIFY_CASES, NOTIFY_DIGESTS, NOTIFY_ITEMS, NOTIFY_WEBHOOK_MESSAGES
from .digest import canonical
from .digests import deleted_cases, digest_file_json, redact_body
from .webhooks import alert_message_id, digest_message_id, payload_text

ATTEMPTS = 50  # guarded writes lost to concurrent redactions before giving up


class RedactionConflict(RuntimeError):
    """Concurrent writers kept changing a digest: the event is handled again."""


async def delete_copies(store: Store, event: Event) -> None:
    """Delete notify's copies of the case's content (scope "content" only)."""
    if event_data(event, EnvelopesDeleted).scope != "content":
        return
    case_id = event.subject
    await mark_deleted(store, case_id, event.time)  # first: nothing sealed is built after
    items = store.db[NOTIFY_ITEMS.name]
    news = await items.find({"case_id": case_id, "change": "new"}, {"buyer": 1}).to_list(None)
    await items.update_many(
        {"case_id": case_id, "change": "new"}, {"$set": {"content": None, "attachments": []}}
    )
    messages = store.db[NOTIFY_WEBHOOK_MESSAGES.name]
    for buyer in {record["buyer"] for record in news}:
        await _redact_alert(messages, f"{buyer}:{alert_message_id(case_id)}")
    found = store.db[NOTIFY_DIGESTS.name].find({"cases": case_id}, {"_id": 1})
    for digest in await found.to_list(None):
        await redact_digest(store, digest["_id"])


async def redact_queued(store: Store, digest: Document) -> None:
    """After a digest's webhook messages are queued: take out again the cases deleted while
    they were built from an earlier read (insert, then check, as the issuer does)."""
    deleted = await deleted_cases(store, digest["cases"])
    if not deleted:
        return
    await redact_digest(store, digest["_id"])
    messages = store.db[NOTIFY_WEBHOOK_MESSAGES.name]
    for case_id in deleted:
        await _redact_alert(messages, f"{digest['buyer']}:{alert_message_id(case_id)}")


async def mark_deleted(store: Store, case_id: str, hour: str) -> None:
    """Mark the case's content deleted in notify's case state (made if the case has none
    yet), bumping its version so that a guarded write of the state read before retries."""
    cases = store.db[NOTIFY_CASES.name]
    for _ in range(ATTEMPTS):
        try:
            await cases.update_one(
                {"_id": case_id}, {"$set": {"deleted": hour}, "$inc": {"version": 1}}, upsert=True
            )
            return
        except DuplicateKeyError:
            continue  # the issuer made the state at the same moment: update it now
    raise RedactionConflict(f"the state of case {case_id} lost {ATTEMPTS} races")


async def redact_digest(store: Store, digest_id: str) -> Document | None:
    """Take every case of digest `digest_id` whose state says deleted out of its stored
    body (content None, no attachments; `redacted.<case>` = the deletion's hour) and out of
    its webhook message; the digest as stored then (None if there is none)."""
    digests = store.db[NOTIFY_DIGESTS.name]
    for _ in range(ATTEMPTS):
        digest: Document | None = await digests.find_one({"_id": digest_id})
        if digest is None:
            return None
        deleted = await deleted_cases(store, digest["cases"])
        body = redact_body(digest["body"], deleted)
        if body != digest["body"]:
            marks = {f"redacted.{case_id}": hour for case_id, hour in deleted.items()}
            written = await digests.update_one(
                {"_id": digest_id, "body": digest["body"]}, {"$set": {"body": body, **marks}}
            )
            if written.modified_count != 1:
                continue  # redacted by another writer meanwhile: start from its text
            digest = {**digest, "body": body, "redacted": {**digest.get("redacted", {}), **marks}}
        await _redact_digest_message(store, digest, deleted)
        return digest
    raise RedactionConflict(f"digest {digest_id} changed {ATTEMPTS} times while redacted")


async def _redact_digest_message(store: Store, digest: Document, deleted: dict[str, str]) -> None:
    """The digest's webhook message (if queued) without the deleted cases' envelopes: its
    own payload redacted, guarded by the payload it replaces (never rebuilt from an older
    read of the digest, which could put an envelope back)."""
    if not deleted:
        return
    messages = store.db[NOTIFY_WEBHOOK_MESSAGES.name]
    message_id = f"{digest['buyer']}:{digest_message_id(digest['buyer'], digest['seq'])}"
    for _ in range(ATTEMPTS):
        message = await messages.find_one({"_id": message_id}, {"payload": 1})
        if message is None:
            return
        sent = json.loads(message["payload"])
        body = redact_body(canonical(sent["digest"]).decode(), deleted)
        served = digest_file_json({"body": body, "note": sent["note"]})
        if json.loads(served) == sent:
            return  # nothing of the deleted cases left in it
        written = await messages.update_one(
            {"_id": message_id, "payload": message["payload"]}, {"$set": {"payload": served}}
        )
        if written.modified_count == 1:
            return
    raise RedactionConflict(f"message {message_id} changed {ATTEMPTS} times while redacted")


async def _redact_alert(messages: Any, message_id: str) -> None:
    message = await messages.find_one({"_id": message_id}, {"payload": 1})
    if message is None:
        return
    alert = json.loads(message["payload"])
    if alert.get("content") is not None:
        alert["content"] = None
        await messages.update_one({"_id": message_id}, {"$set": {"payload": payload_text(alert)}})
