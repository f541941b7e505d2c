"""The operator's side of a case's conversation (role triage-analyst), and triage's record
of every message (shared/messages.py says who writes which kind, sealed to whom).

- `POST /api/cases/{id}/messages`: an operator's message (acknowledgement, reply, feedback,
  forward, decline; or a note, sealed to the operator keys and never shown to the worker).
  Everything is checked before anything is written; then ONE document is written with its
  events: for a forward, first the `envelope.disclosed` of its envelope to the worker (the
  question reaches the worker only through it), then the `message.posted`. What the
  message does to the case (an acknowledgement acknowledges it) is applied by the consumer
  of that event, so it happens once whoever posted it.
- `GET /api/cases/{id}/messages`: the conversation in posting order; the envelopes sealed to
  the operators (answers, questions) are handed out, each disclosed before it leaves; the
  others (sealed to the worker's reply key) only by hash.

Once retention deleted a case's content (`deleted.content`, retention.py) no message of it
is kept: the API refuses with 410, and both the API and the record check the case again
after their insert and delete what they wrote if the deletion came in between (a check
before the insert alone would miss a deletion landing between the two).

A message is recorded under its author's role and its id (`stored_id`): each service that
takes messages checks an id against its own authors' only (intake the worker's, notify the
buyers', this API the operators'), so two authors may send the same id. Keyed by the id
alone, the second would pass for a redelivery of the first and be lost (a worker's answer
under a question's id), or block a decision (a question under `decision_id` of another).

Each case's messages are numbered in the order triage records them (`seq`, zero-padded so
that it sorts as text): the order an operator reads them in. Two messages recorded at the
same moment may share a number; they are then ordered by their key (author's role, id).
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel
from pymongo.errors import DuplicateKeyError

from hotline.shared.deps import OperatorDep, Role, RuntimeDep
from hotline.shared.disclosure import disclose
from hotline.shared.envelope import Envelope, envelope_hash
from hotline.shared.events import (
    AttachmentRef,
    EnvelopeDisclosed,
    Event,
    MessagePosted,
    Principal,
    new_event,
)
from hotline.shared.messages import (
    DECISIONS,
    KINDS_BY_AUTHOR,
    TO_OPERATORS,
    TO_WORKER,
    WORKER,
    MessageCreate,
    MessageKind,
)
from hotline.shared.outbox import outbox_of
from hotline.shared.service import Runtime
from hotline.shared.store import Document

from .cases import CONTENT_DELETED, case_or_404, refuse_deleted, reply_key_id
from .collections import OPERATOR_KEYS, TRIAGE_CASES, TRIAGE_MESSAGES

messages = APIRouter(prefix="/api/cases", tags=["messages"])

SEQ_DIGITS = 9
OPERATOR_KINDS = KINDS_BY_AUTHOR[Role.OPERATOR]
STORED_FIELDS = {
    "message_id": 1,
    "kind": 1,
    "author_role": 1,
    "envelope": 1,
    "in_reply_to": 1,
    "attachments": 1,
    "time": 1,
    "seq": 1,
}


class Posted(BaseModel):
    message_id: str


class MessagePublic(BaseModel):
    message_id: str
    kind: MessageKind
    author_role: str
    day: str  # the event's day, never its hour
    in_reply_to: str | None
    envelope_hash: str | None
    envelope: Envelope | None  # only for an answer or a question (sealed to the operators)
    attachments: list[AttachmentRef]
    decision: Literal["forward", "decline"] | None  # of a question, once decided


class Conversation(BaseModel):
    case_id: str
    messages: list[MessagePublic]


# --- the record ------------------------------------------------------------------------------


async def registered_operator_keys(runtime: Runtime) -> set[str]:
    """The key ids of the registry's operator keys (what a note is sealed to)."""
    found = runtime.store.db[OPERATOR_KEYS.name].find({}, {"_id": 1})
    return {doc["_id"] async for doc in found}


async def next_seq(runtime: Runtime, case_id: str) -> str:
    """The number of the next message of `case_id`."""
    last = await runtime.store.db[TRIAGE_MESSAGES.name].find_one(
        {"case_id": case_id}, {"seq": 1}, sort=[("seq", -1)]
    )
    number = int(last["seq"]) + 1 if last else 1
    return f"{number:0{SEQ_DIGITS}d}"


def stored_id(author_role: str, message_id: str) -> str:
    """The key of a message in triage's record: its author's role and its id."""
    return f"{author_role}:{message_id}"


def message_document(event: Event, posted: MessagePosted, seq: str) -> Document:
    """How triage stores a message: the event's data, its coarse time and its number."""
    return {
        "_id": stored_id(posted.author_role, posted.message_id),
        "message_id": posted.message_id,
        "case_id": event.subject,
        "kind": posted.kind,
        "author_role": posted.author_role,
        "envelope": posted.envelope.model_dump() if posted.envelope else None,
        "in_reply_to": posted.in_reply_to,
        "attachments": [ref.model_dump() for ref in posted.attachments],
        "time": event.time,
        "seq": seq,
    }


async def content_deleted(runtime: Runtime, case_id: str) -> bool:
    """Whether retention deleted the case's content, as stored now."""
    case = await runtime.store.db[TRIAGE_CASES.name].find_one({"_id": case_id}, {"deleted": 1})
    return case is not None and "content" in (case.get("deleted") or {})


async def record_message(runtime: Runtime, event: Event, posted: MessagePosted) -> None:
    """Store a posted message unless it is stored already (idempotent by author and message
    id), and not at all once the case's content is deleted (checked after the insert: a
    deletion written meanwhile has deleted the messages before this one was there)."""
    collection = runtime.store.db[TRIAGE_MESSAGES.name]
    key = stored_id(posted.author_role, posted.message_id)
    if await collection.find_one({"_id": key}, {"_id": 1}) is not None:
        return
    document = message_document(event, posted, await next_seq(runtime, event.subject))
    try:
        await outbox_of(runtime.store, TRIAGE_MESSAGES.name).insert(document)
    except DuplicateKeyError:
        return  # stored by a concurrent delivery
    if await content_deleted(runtime, event.subject):
        await collection.delete_one({"_id": key})


# --- the API ---------------------------------------------------------------------------------


def _refuse(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


@messages.post("/{case_id}/messages", status_code=status.HTTP_201_CREATED, response_model=Posted)
async def post_message(
    case_id: str, body: MessageCreate, runtime: RuntimeDep, _: OperatorDep
) -> Posted:
    """An operator's message to the worker, or decision on a buyer's question."""
    case = await case_or_404(runtime, case_id, {"reply_key": 1, "deleted": 1})
    refuse_deleted(case)  # a message now would outlive the deletion of the conversation
    if body.kind not in OPERATOR_KINDS:
        raise _refuse(f"an operator posts {', '.join(sorted(OPERATOR_KINDS))}, not {body.kind}")
    if body.case_ids() - {case_id}:
        raise _refuse("the envelope is not of this case")
    if body.envelope is not None and body.kind in TO_OPERATORS:  # a note, for operators only
        if set(body.envelope.recipients) != set(await registered_operator_keys(runtime)):
            raise _refuse("a note is sealed to exactly the registered operator keys")
    elif body.envelope is not None:
        if set(body.envelope.recipients) != {reply_key_id(case)}:
            raise _refuse("a message to the worker is sealed to exactly the case's reply key")
    collection = runtime.store.db[TRIAGE_MESSAGES.name]
    if body.in_reply_to is not None:
        question = await collection.find_one(
            {
                "_id": stored_id(Role.BUYER, body.in_reply_to),
                "case_id": case_id,
                "kind": "question",
            },
            {"_id": 1},
        )
        if question is None:
            raise HTTPException(404, "this case has no such question")
    duplicate = HTTPException(409, "a message with this id exists (a question is decided once)")
    # Not the id of an operator's message; nor, for one to the worker, of a worker's answer:
    # intake keeps both under their id for the worker's page, where the second would be
    # lost. A buyer's id may be reused.
    key = stored_id(Role.OPERATOR, body.message_id)
    taken = [key, stored_id(WORKER, body.message_id)] if body.kind in TO_WORKER else [key]
    if await collection.find_one({"_id": {"$in": taken}}, {"_id": 1}) is not None:
        raise duplicate

    posted = MessagePosted(
        message_id=body.message_id,
        kind=body.kind,
        author_role=Role.OPERATOR.value,
        envelope=body.envelope,
        in_reply_to=body.in_reply_to,
    )
    message_event = new_event(case_id, posted)
    events = [message_event]
    if body.kind == "forward" and body.envelope is not None:
        disclosed = EnvelopeDisclosed(
            principal=Principal(role=WORKER),
            envelope_class="message",
            envelope_hash=envelope_hash(body.envelope),
            recipient_key_ids=sorted(body.envelope.recipients),
        )
        events.insert(0, new_event(case_id, disclosed))
    document = message_document(message_event, posted, await next_seq(runtime, case_id))
    try:
        await outbox_of(runtime.store, TRIAGE_MESSAGES.name).insert(document, *events)
    except DuplicateKeyError:
        raise duplicate from None
    if await content_deleted(runtime, case_id):  # deleted while it was being written
        await collection.delete_one({"_id": key})  # its events unpublished with it
        raise HTTPException(status.HTTP_410_GONE, CONTENT_DELETED)
    runtime.relay.poke()
    return Posted(message_id=body.message_id)


@messages.get("/{case_id}/messages", response_model=Conversation)
async def case_messages(case_id: str, runtime: RuntimeDep, operator: OperatorDep) -> Conversation:
    """The case's messages in posting order, the operators' envelopes disclosed first."""
    refuse_deleted(await case_or_404(runtime, case_id, {"deleted": 1}))
    found = runtime.store.db[TRIAGE_MESSAGES.name].find({"case_id": case_id}, STORED_FIELDS)
    docs = sorted([doc async for doc in found], key=lambda doc: (doc["seq"], doc["_id"]))
    decisions = {doc["in_reply_to"]: doc["kind"] for doc in docs if doc["kind"] in DECISIONS}
    conversation = Conversation(  # validated before anything is disclosed
        case_id=case_id,
        messages=[
            MessagePublic(
                message_id=doc["message_id"],
                kind=doc["kind"],
                author_role=doc["author_role"],
                day=doc["time"][:10],
                in_reply_to=doc["in_reply_to"],
                envelope_hash=envelope_hash(doc["envelope"]) if doc["envelope"] else None,
                envelope=doc["envelope"] if doc["kind"] in TO_OPERATORS else None,
                attachments=doc["attachments"],
                decision=decisions.get(doc["message_id"]) if doc["kind"] == "question" else None,
            )
            for doc in docs
        ],
    )
    who = Principal(role=Role.OPERATOR, org=operator.org, subject=operator.subject)
    for message in conversation.messages:
        if message.envelope is not None:
            await disclose(runtime, case_id, message.envelope, "message", who)
    return conversation
