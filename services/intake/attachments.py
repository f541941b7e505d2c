"""The operator's hand-out of a case's attachments (photos, voice notes), which intake keeps
apart from the case: the report's and those of the worker's answers. Each is logged as a
disclosure before its ciphertext leaves."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from hotline.shared.deps import OperatorDep, Role, RuntimeDep
from hotline.shared.disclosure import disclose
from hotline.shared.envelope import Envelope
from hotline.shared.events import Principal
from hotline.shared.messages import message_routing

from .collections import INTAKE_ATTACHMENTS, INTAKE_CASES, INTAKE_MESSAGES

cases = APIRouter(prefix="/api/cases", tags=["attachments"])


class AnswerAttachments(BaseModel):
    """The attachments of one of the worker's answers, with the routing they bind."""

    message_id: str
    routing: dict[str, Any]
    attachments: list[Envelope]


class CaseAttachments(BaseModel):
    """A case's attachment envelopes, with the routing metadata their associated data binds
    (needed to open them): the report's, then each answer's."""

    case_id: str
    routing: dict[str, Any]
    attachments: list[Envelope]
    answers: list[AnswerAttachments] = []


@cases.get("/{case_id}/attachments", response_model=CaseAttachments)
async def case_attachments(
    case_id: str, runtime: RuntimeDep, operator: OperatorDep
) -> CaseAttachments:
    """The case's attachments, in the order the worker attached them (operator role)."""
    case = await runtime.store.db[INTAKE_CASES.name].find_one(
        {"_id": case_id},
        {"factory": 1, "categories": 1, "urgent": 1, "language": 1, "attachments": 1},
    )
    if case is None:
        raise HTTPException(404, "no such case")
    found = runtime.store.db[INTAKE_ATTACHMENTS.name].find({"case_id": case_id})
    by_hash = {doc["_id"]: Envelope.model_validate(doc["envelope"]) async for doc in found}

    def in_order(refs: list[dict[str, Any]]) -> list[Envelope]:
        return [by_hash[ref["hash"]] for ref in refs if ref["hash"] in by_hash]

    attachments = in_order(case.get("attachments", []))
    with_files = [
        message
        async for message in runtime.store.db[INTAKE_MESSAGES.name].find(
            {"case_id": case_id, "kind": "answer"}, {"attachments": 1, "day": 1}
        )
        if message.get("attachments")
    ]
    with_files.sort(key=lambda message: (message["day"], message["_id"]))
    answers = [
        AnswerAttachments(
            message_id=message["_id"],
            routing=message_routing(message["_id"], "answer"),
            attachments=in_order(message["attachments"]),
        )
        for message in with_files
    ]
    who = Principal(role=Role.OPERATOR, org=operator.org, subject=operator.subject)
    for attachment in [*attachments, *(a for answer in answers for a in answer.attachments)]:
        await disclose(runtime, case_id, attachment, "attachment", who)
    routing = {name: case[name] for name in ("factory", "categories", "urgent", "language")}
    return CaseAttachments(
        case_id=case_id, routing=routing, attachments=attachments, answers=answers
    )
