"""The operator's hand-out of a case's attachments (photos, voice notes), which intake keeps
apart from the case; each is logged as a disclosure before its ciphertext leaves."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from hotline.shared.deps import OperatorDep, Role, RuntimeDep
from hotline.shared.disclosure import disclose
from hotline.shared.envelope import Envelope
from hotline.shared.events import Principal

from .collections import INTAKE_ATTACHMENTS, INTAKE_CASES

cases = APIRouter(prefix="/api/cases", tags=["attachments"])


class CaseAttachments(BaseModel):
    """A case's attachment envelopes, with the routing metadata their associated data binds
    (needed to open them)."""

    case_id: str
    routing: dict[str, Any]
    attachments: list[Envelope]


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
    order = [ref["hash"] for ref in case.get("attachments", [])]
    found = runtime.store.db[INTAKE_ATTACHMENTS.name].find({"case_id": case_id})
    by_hash = {doc["_id"]: Envelope.model_validate(doc["envelope"]) async for doc in found}
    attachments = [by_hash[h] for h in order if h in by_hash]
    who = Principal(role=Role.OPERATOR, org=operator.org, subject=operator.subject)
    for attachment in attachments:
        await disclose(runtime, case_id, attachment, "attachment", who)
    routing = {name: case[name] for name in ("factory", "categories", "urgent", "language")}
    return CaseAttachments(case_id=case_id, routing=routing, attachments=attachments)
