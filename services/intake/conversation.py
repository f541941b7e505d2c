"""The worker's side of the conversation: what the status page shows for a receipt, the
worker's answers, and the consumer that brings the operators' messages and status changes
to intake.

- A case is found by the hash of the receipt's lookup token (`intake_cases.receipt_lookup`);
  a token that finds nothing is one calm "wrong-receipt", counted (in memory) by the
  failed-lookup gauge, which raises the proof of work every challenge asks for.
- What intake holds of a conversation (`intake_messages`): for each message to the worker,
  its kind, day and envelope (sealed to the reply key: intake cannot open it); for each of
  the worker's answers, its kind and day only, once its event is published (the envelope
  leaves with the event; its attachments stay in `intake_attachments`, as a report's).
- Status, acknowledgement and feedback days come from triage's events (consumer below):
  days only, never hours, on the page.
- Once retention deleted a case's content (erasure.py marks `deleted.content`), nothing
  sealed of its conversation is taken again: an answer is refused ("case-closed", storing
  nothing) and an operator's message is not recorded. Each checks before and again after
  its insert (and removes what it wrote), so a deletion landing in between is not missed.
  The status page still finds the case and shows its status.

The status answer is padded (`padded_json`) so that every answer of POST /api/status has
the same length whatever the case holds, up to STATUS_BUCKET bytes of conversation.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from fastapi import Response
from pymongo.errors import DuplicateKeyError

from hotline.shared.envelope import (
    MAX_ATTACHMENT_BYTES,
    EnvelopeError,
    envelope_hash,
    open_envelope,
    seal_envelope,
)
from hotline.shared.events import (
    CaseStatusChanged,
    Event,
    EventType,
    MessagePosted,
    event_data,
    new_event,
)
from hotline.shared.messages import TO_WORKER, WORKER, MessageCreate, message_routing
from hotline.shared.outbox import outbox_of
from hotline.shared.receipt import lookup_hash
from hotline.shared.service import Runtime

from .collections import INTAKE_CASES, INTAKE_MESSAGES
from .erasure import content_deleted, delete_copies
from .state import IntakeState, Refused
from .submission import (
    attachment_ref,
    delete_attachments,
    registered_recipients,
    store_attachments,
)

# Every status answer is a multiple of this many bytes: one bucket holds about thirty
# replies, far more than a case's conversation has, so in practice all answers are equal.
STATUS_BUCKET = 64 * 1024
CASE_CLOSED = "case-closed"  # the refusal of an answer to a case whose content is deleted
TOPICS = (
    f"hotline.{EventType.MESSAGE_POSTED}",
    f"hotline.{EventType.CASE_STATUS_CHANGED}",
    f"hotline.{EventType.ENVELOPES_DELETED}",  # retention: erasure.py deletes intake's copies
)


async def find_case(runtime: Runtime, state: IntakeState, lookup_token: str) -> dict[str, Any]:
    """The case of a lookup token (64 hex digits), or Refused("wrong-receipt"), counted."""
    digest = lookup_hash(bytes.fromhex(lookup_token))
    case = await runtime.store.db[INTAKE_CASES.name].find_one(
        {"receipt_lookup": digest},
        {"content": 0, "identity": 0, "outbox": 0},
    )
    if case is None:
        state.failed_lookups.accepted()
        raise Refused("wrong-receipt", "no case has this receipt; check the digits")
    return case


async def case_status(runtime: Runtime, case: dict[str, Any]) -> dict[str, Any]:
    """What the worker may see of the case: status, days, the messages sent to them (still
    sealed to their reply key) and the days of their own answers."""
    found = runtime.store.db[INTAKE_MESSAGES.name].find({"case_id": case["_id"]}, {"outbox": 0})
    to_worker: list[dict[str, Any]] = []
    answers: list[dict[str, Any]] = []
    async for message in found:
        if message["kind"] in TO_WORKER:
            to_worker.append(message)
        elif message["kind"] == "answer":
            answers.append({"message_id": message["_id"], "day": message["day"]})
    to_worker.sort(key=lambda message: (message.get("order", 0), message["_id"]))
    answers.sort(key=lambda answer: (answer["day"], answer["message_id"]))
    return {
        "case_id": case["_id"],
        "status": case.get("status", "received"),
        "received": case.get("received"),
        "acknowledged": case.get("acknowledged"),
        "feedback": case.get("feedback"),
        "updated": case.get("updated") or case.get("received"),
        "messages": [
            {
                "message_id": message["_id"],
                "kind": message["kind"],
                "day": message["day"],
                "in_reply_to": message.get("in_reply_to"),
                "envelope": message["envelope"],
            }
            for message in to_worker
        ],
        "answers": answers,
    }


async def accept_answer(runtime: Runtime, message: MessageCreate, case: dict[str, Any]) -> None:
    """Store the worker's answer (sealed to exactly the operator keys, of this case) and
    announce it, or raise Refused and store nothing. The caller has paid for the lookup
    (a proof of work, or the no-JS queue)."""
    if message.kind != "answer" or message.envelope is None:
        raise Refused("bad-envelope", "a worker writes answers only")
    if content_deleted(case):
        raise _closed()
    if message.case_ids() != {case["_id"]}:
        raise Refused("bad-envelope", "the answer's envelopes are not of this case")
    operators = set((await registered_recipients(runtime, case["factory"])).identity)
    for envelope in [message.envelope, *message.attachments]:
        if set(envelope.recipients) != operators:
            raise Refused(
                "wrong-recipients", "the answer is not sealed to exactly the operator keys"
            )
    refs = [attachment_ref(attachment) for attachment in message.attachments]
    event = new_event(
        case["_id"],
        MessagePosted(
            message_id=message.message_id,
            kind="answer",
            author_role=WORKER,
            envelope=message.envelope,
            attachments=refs,
        ),
    )
    stored = await store_attachments(
        runtime, case["_id"], message.attachments, refs, message_id=message.message_id
    )
    document = {
        "_id": message.message_id,
        "case_id": case["_id"],
        "kind": "answer",
        "author_role": WORKER,
        "day": event.time[:10],
        "attachments": [ref.model_dump() for ref in refs],
    }
    try:
        await outbox_of(runtime.store, INTAKE_MESSAGES.name).insert(document, event)
    except DuplicateKeyError:
        await delete_attachments(runtime, stored)
        raise Refused("message-exists", "this answer was sent already") from None
    except BaseException:
        await delete_attachments(runtime, stored)
        raise
    if await _deleted_now(runtime, case["_id"]):
        # Deleted while this answer was stored: take it back, its unpublished event with it
        # (a published one is dropped by triage, which checks the same after recording).
        await runtime.store.db[INTAKE_MESSAGES.name].delete_one({"_id": message.message_id})
        await delete_attachments(runtime, stored)
        raise _closed()
    runtime.relay.poke()


def _closed() -> Refused:
    return Refused(CASE_CLOSED, "this case is closed: it takes no more answers")


async def _deleted_now(runtime: Runtime, case_id: str) -> bool:
    """Whether the case's content is deleted, as stored now."""
    case = await runtime.store.db[INTAKE_CASES.name].find_one({"_id": case_id}, {"deleted": 1})
    return case is not None and content_deleted(case)


async def record_event(runtime: Runtime, event: Event) -> None:
    """Consumer of the conversation's topics: keep what the status page shows. Idempotent:
    a message is stored under its id, a status or day is set, not added."""
    if event.type == EventType.MESSAGE_POSTED:
        await _record_message(runtime, event, event_data(event, MessagePosted))
    elif event.type == EventType.CASE_STATUS_CHANGED:
        changed = event_data(event, CaseStatusChanged)
        await runtime.store.db[INTAKE_CASES.name].update_one(
            {"_id": event.subject},
            {"$set": {"status": changed.status, "updated": event.time[:10]}},
        )
    elif event.type == EventType.ENVELOPES_DELETED:
        await delete_copies(runtime, event)


async def _record_message(runtime: Runtime, event: Event, message: MessagePosted) -> None:
    if message.author_role == WORKER:
        return  # written here, by accept_answer
    cases = runtime.store.db[INTAKE_CASES.name]
    day = event.time[:10]
    if message.kind == "acknowledgement":
        first = {"_id": event.subject, "acknowledged": None}
        await cases.update_one(first, {"$set": {"acknowledged": day}})
    elif message.kind == "feedback":
        await cases.update_one({"_id": event.subject}, {"$set": {"feedback": day}})
    if message.kind not in TO_WORKER or message.envelope is None:
        return  # buyers' questions and declines never reach the worker
    if await _deleted_now(runtime, event.subject):
        return  # its conversation was deleted: nothing sealed of it is kept again
    document = {
        "_id": message.message_id,
        "case_id": event.subject,
        "kind": message.kind,
        "author_role": message.author_role,
        "day": day,
        # The order intake learnt of it (an operator's act, not a worker's): the page lists
        # messages in the order they were sent.
        "order": time.time_ns(),
        "in_reply_to": message.in_reply_to,
        "envelope": message.envelope.model_dump(),
        "envelope_hash": envelope_hash(message.envelope),
    }
    messages = runtime.store.db[INTAKE_MESSAGES.name]
    try:
        await messages.insert_one(document)
    except DuplicateKeyError:
        return  # a redelivery
    if await _deleted_now(runtime, event.subject):  # deleted while it was being stored
        await messages.delete_one({"_id": message.message_id})


async def seal_plain_answer(
    runtime: Runtime, case: dict[str, Any], text: str, files: list[bytes]
) -> MessageCreate:
    """The no-JS answer sealed here, in memory, to the operator keys: `text` and `files`
    (media type line + bytes, photos already stripped). Raises Refused."""
    if any(len(data) > MAX_ATTACHMENT_BYTES for data in files):
        raise Refused("file-too-large", "a file is too large (at most 4 MB each)")
    operators = (await registered_recipients(runtime, case["factory"])).identity
    message_id = str(uuid.uuid4())
    routing = message_routing(message_id, "answer")
    try:
        envelope = seal_envelope(
            text.encode(),
            case_id=case["_id"],
            kind="content",
            routing=routing,
            recipients=operators,
        )
        attachments = [
            seal_envelope(
                data, case_id=case["_id"], kind="attachment", routing=routing, recipients=operators
            )
            for data in files
        ]
        return MessageCreate(
            message_id=message_id, kind="answer", envelope=envelope, attachments=attachments
        )
    except (EnvelopeError, ValueError):
        raise Refused("bad-report", "the answer could not be sealed") from None


def open_messages(shown: dict[str, Any], reply_private: bytes) -> list[dict[str, str | None]]:
    """The messages of `case_status` opened with the reply key (the no-JS path, in memory):
    kind, day and text (None when one does not open)."""
    opened: list[dict[str, str | None]] = []
    for message in shown["messages"]:
        try:
            text: str | None = open_envelope(
                message["envelope"],
                private_key=reply_private,
                case_id=shown["case_id"],
                routing=message_routing(message["message_id"], message["kind"]),
            ).decode("utf-8", "replace")
        except EnvelopeError:
            text = None
        opened.append({"kind": message["kind"], "day": message["day"], "text": text})
    return opened


def padded_json(payload: dict[str, Any], status_code: int) -> Response:
    """`payload` as JSON with a `padding` field that brings it to a multiple of
    STATUS_BUCKET bytes, so that its length says nothing of what it holds."""
    body = json.dumps({**payload, "padding": ""}, separators=(",", ":"), ensure_ascii=True)
    size = len(body)
    target = -(-size // STATUS_BUCKET) * STATUS_BUCKET
    padded = json.dumps(
        {**payload, "padding": "." * (target - size)}, separators=(",", ":"), ensure_ascii=True
    )
    return Response(padded.encode(), status_code=status_code, media_type="application/json")
