"""A buyer's questions to the worker of a case it received, and its acknowledgement that it
read the case (role buyer, its own `org`).

A question is sealed on the buyer's machine to exactly the operator keys (`GET
/api/operator-keys` lists them): it reaches the operators, never the worker, who sees it
only if an operator forwards it (re-sealed to the worker's reply key, in triage). A buyer
may ask about a case only if its organisation received it (its record `<buyer>:<case>`);
any other case is 404, as if it did not exist.

`POST /api/cases/{id}/ack` is the buyer's "noted" message (no envelope: the operator sees
that the buyer acted, nothing more), written as a question is, one document with its
`message.posted` event; triage records it in the case's conversation. One per buyer and
case (`_id` = `noted:<buyer>:<case>`, the message id a random UUID): acknowledging again
answers 200 with the same message id and posts nothing.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel
from pymongo.errors import DuplicateKeyError

from hotline.shared.auth import Principal
from hotline.shared.deps import BuyerDep, Role, RuntimeDep
from hotline.shared.events import MessagePosted, new_event
from hotline.shared.messages import MessageCreate
from hotline.shared.outbox import outbox_of
from hotline.shared.service import Runtime

from .collections import NOTIFY_ITEMS, NOTIFY_QUESTIONS

operator_keys = APIRouter(prefix="/api/operator-keys", tags=["operator-keys"])
questions = APIRouter(prefix="/api/cases", tags=["questions"])


class OperatorKeys(BaseModel):
    keys: dict[str, str]  # key id -> base64 X25519 public key


class Posted(BaseModel):
    message_id: str


async def registered_operator_keys(runtime: Runtime) -> dict[str, str]:
    """The operator keys of the registry (key id -> base64 public key)."""
    found = runtime.store.db.operator_keys.find({}, {"public_key": 1})
    return {doc["_id"]: doc["public_key"] async for doc in found}


def buyer_org(buyer: Principal) -> str:
    if not buyer.org:
        raise HTTPException(403, "this account has no buyer organisation (`org` claim)")
    return buyer.org


@operator_keys.get("", response_model=OperatorKeys)
async def list_operator_keys(runtime: RuntimeDep, _: BuyerDep) -> OperatorKeys:
    """What a buyer seals a question to: every registered operator key."""
    return OperatorKeys(keys=await registered_operator_keys(runtime))


async def check_received(runtime: Runtime, org: str, case_id: str) -> None:
    """404 unless the buyer's organisation received the case."""
    item = await runtime.store.db[NOTIFY_ITEMS.name].find_one(
        {"_id": f"{org}:{case_id}"}, {"_id": 1}
    )
    if item is None:
        raise HTTPException(404, "your organisation received no such case")


@questions.post("/{case_id}/questions", status_code=status.HTTP_201_CREATED, response_model=Posted)
async def ask(case_id: str, body: MessageCreate, runtime: RuntimeDep, buyer: BuyerDep) -> Posted:
    """A question about a case this buyer received, sealed to exactly the operator keys."""
    org = buyer_org(buyer)
    await check_received(runtime, org, case_id)
    refuse = status.HTTP_422_UNPROCESSABLE_CONTENT
    if body.kind != "question" or body.envelope is None:
        raise HTTPException(refuse, "a buyer posts questions only")
    if body.case_ids() != {case_id}:
        raise HTTPException(refuse, "the envelope is not of this case")
    if set(body.envelope.recipients) != set(await registered_operator_keys(runtime)):
        raise HTTPException(refuse, "a question is sealed to exactly the operator keys")
    event = new_event(
        case_id,
        MessagePosted(
            message_id=body.message_id,
            kind="question",
            author_role=Role.BUYER.value,
            envelope=body.envelope,
        ),
    )
    document = {"_id": body.message_id, "case_id": case_id, "buyer": org}
    try:
        await outbox_of(runtime.store, NOTIFY_QUESTIONS.name).insert(document, event)
    except DuplicateKeyError:
        raise HTTPException(409, "a question with this id was asked already") from None
    runtime.relay.poke()
    return Posted(message_id=body.message_id)


@questions.post("/{case_id}/ack", status_code=status.HTTP_201_CREATED, response_model=Posted)
async def ack(case_id: str, runtime: RuntimeDep, buyer: BuyerDep, response: Response) -> Posted:
    """The buyer noted the case (a `noted` message the operator sees); once per case."""
    org = buyer_org(buyer)
    await check_received(runtime, org, case_id)
    document_id = f"noted:{org}:{case_id}"
    noted = await runtime.store.db[NOTIFY_QUESTIONS.name].find_one(
        {"_id": document_id}, {"message_id": 1}
    )
    if noted is not None:
        response.status_code = status.HTTP_200_OK
        return Posted(message_id=noted["message_id"])
    message_id = str(uuid.uuid4())
    event = new_event(
        case_id,
        MessagePosted(
            message_id=message_id, kind="noted", author_role=Role.BUYER.value, envelope=None
        ),
    )
    document = {"_id": document_id, "message_id": message_id, "case_id": case_id, "buyer": org}
    try:
        await outbox_of(runtime.store, NOTIFY_QUESTIONS.name).insert(document, event)
    except DuplicateKeyError:  # the same buyer noted it at the same moment: that one stands
        return await ack(case_id, runtime, buyer, response)
    runtime.relay.poke()
    return Posted(message_id=message_id)
