"""A buyer's questions to the worker of a case it received (role buyer, its own `org`).

A question is sealed on the buyer's machine to exactly the operator keys (`GET
/api/operator-keys` lists them): it reaches the operators, never the worker, who sees it
only if an operator forwards it (re-sealed to the worker's reply key, in triage). A buyer
may ask about a case only if its organisation received it (its digest item
`<buyer>:<case>`); any other case is 404, as if it did not exist.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
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


@questions.post("/{case_id}/questions", status_code=status.HTTP_201_CREATED, response_model=Posted)
async def ask(case_id: str, body: MessageCreate, runtime: RuntimeDep, buyer: BuyerDep) -> Posted:
    """A question about a case this buyer received, sealed to exactly the operator keys."""
    org = buyer_org(buyer)
    item = await runtime.store.db[NOTIFY_ITEMS.name].find_one(
        {"_id": f"{org}:{case_id}"}, {"_id": 1}
    )
    if item is None:
        raise HTTPException(404, "your organisation received no such case")
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
