"""The operator's case API (role triage-analyst)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict

from hotline.shared.deps import OperatorDep, Role, RuntimeDep
from hotline.shared.disclosure import disclose
from hotline.shared.envelope import Envelope
from hotline.shared.events import Principal as EventPrincipal

cases = APIRouter(prefix="/api/cases", tags=["cases"])


class CaseSummary(BaseModel):
    model_config = ConfigDict(extra="ignore")
    case_id: str
    factory: str
    categories: list[str]
    urgent: bool
    language: str
    severity: str
    escalated: bool
    due: str
    status: str


# What a case list projects: the summary's fields, never an envelope.
SUMMARY_FIELDS = tuple(name for name in CaseSummary.model_fields if name != "case_id")


class CaseDetail(CaseSummary):
    server_encrypted: bool
    content: Envelope
    identity: Envelope | None


@cases.get("", response_model=list[CaseSummary])
async def list_cases(runtime: RuntimeDep, _: OperatorDep) -> list[CaseSummary]:
    """Open cases, most urgent deadline first. Routing metadata only, no envelope."""
    found = runtime.store.db.triage_cases.find({}, {f: 1 for f in SUMMARY_FIELDS}).sort("due", 1)
    return [CaseSummary(case_id=doc["_id"], **doc) async for doc in found]


@cases.get("/{case_id}", response_model=CaseDetail)
async def show_case(case_id: str, runtime: RuntimeDep, operator: OperatorDep) -> CaseDetail:
    """The case with both envelopes; each hand-out is in the audit log before it leaves."""
    doc = await runtime.store.db.triage_cases.find_one({"_id": case_id})
    if doc is None:
        raise HTTPException(404, "no such case (it may still be on its way from intake)")
    detail = CaseDetail(case_id=doc["_id"], **doc)  # validated before anything is disclosed
    who = EventPrincipal(role=Role.OPERATOR, org=operator.org, subject=operator.subject)
    await disclose(runtime, case_id, doc["content"], "content", who)
    if detail.identity is not None:
        await disclose(runtime, case_id, doc["identity"], "identity", who)
    return detail
