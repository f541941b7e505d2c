"""Triage: classifies each submitted case, sets its deadline, escalates the urgent ones;
serves the operator's case API and the platform admin's registry API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, status
from pydantic import BaseModel, ConfigDict
from pymongo.errors import DuplicateKeyError

from hotline.shared import registry
from hotline.shared.auth import Principal, require_role
from hotline.shared.config import Settings
from hotline.shared.disclosure import disclose
from hotline.shared.events import (
    CaseEscalated,
    CaseTriaged,
    Event,
    ReportSubmitted,
    event_data,
    new_event,
)
from hotline.shared.events import Principal as EventPrincipal
from hotline.shared.service import Runtime, add_health, runtime_of, service_lifespan
from hotline.shared.store import with_outbox

from .rules import rate

AUDIENCE = "hotline-triage"
OPERATOR = "triage-analyst"
ADMIN = "platform-admin"
RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
OperatorDep = Annotated[Principal, Depends(require_role(OPERATOR))]
AdminDep = Annotated[Principal, Depends(require_role(ADMIN))]


# --- the consumer ------------------------------------------------------------------------


async def triage_report(runtime: Runtime, event: Event) -> None:
    """Record the case with its rating; idempotent (the case id is the document id)."""
    report = event_data(event, ReportSubmitted)
    received = datetime.fromisoformat(event.time.replace("Z", "+00:00"))
    rating = rate(report.categories, report.urgent, received)
    due = rating.due.isoformat().replace("+00:00", "Z")
    events = [
        new_event(
            "case.triaged",
            event.subject,
            CaseTriaged(
                severity=rating.severity,
                due=due,
                categories=report.categories,
                factory=report.factory,
            ),
        )
    ]
    if rating.escalate:
        events.append(
            new_event(
                "case.escalated",
                event.subject,
                CaseEscalated(severity=rating.severity, reason=rating.reason, due=due),
            )
        )
    document = with_outbox(
        {
            "_id": event.subject,
            "factory": report.factory,
            "categories": report.categories,
            "urgent": report.urgent,
            "language": report.language,
            "channel": report.channel,
            "server_encrypted": report.server_encrypted,
            "severity": rating.severity,
            "reason": rating.reason,
            "escalated": rating.escalate,
            "due": due,
            "received": event.time,
            "status": "new",
            "content": report.content,
            "identity": report.identity,
        },
        *events,
    )
    try:
        await runtime.store.db.triage_cases.insert_one(document)
    except DuplicateKeyError:
        return  # already triaged by an earlier delivery
    runtime.relay.poke()


# --- the operator's case API -------------------------------------------------------------

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
    content: dict[str, Any]
    identity: dict[str, Any] | None


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
    who = EventPrincipal(role=OPERATOR, org=operator.org, subject=operator.subject)
    await disclose(runtime, case_id, doc["content"], "content", who)
    if doc.get("identity") is not None:
        await disclose(runtime, case_id, doc["identity"], "identity", who)
    return CaseDetail(case_id=doc["_id"], **doc)


# --- the platform admin's registry API ---------------------------------------------------

admin = APIRouter(prefix="/api/admin", tags=["admin"])


class FactoryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str
    name: str
    country: str


class BuyerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    buyer_id: str
    name: str
    public_key: str


class LinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    buyer_id: str
    factory: str


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    public_key: str


def _registry_call_failed(exc: registry.RegistryError) -> HTTPException:
    return HTTPException(exc.status, str(exc))


@admin.post("/factories", status_code=status.HTTP_201_CREATED)
async def add_factory(body: FactoryCreate, runtime: RuntimeDep, _: AdminDep) -> dict[str, str]:
    try:
        await registry.add_factory(runtime.store, body.code, body.name, body.country)
    except registry.RegistryError as exc:
        raise _registry_call_failed(exc) from None
    runtime.relay.poke()
    return {"code": body.code}


@admin.get("/factories")
async def list_factories(runtime: RuntimeDep, _: AdminDep) -> list[dict[str, str]]:
    found = runtime.store.db.factories.find({}, {"name": 1, "country": 1}).sort("_id", 1)
    return [{"code": d["_id"], "name": d["name"], "country": d["country"]} async for d in found]


@admin.post("/buyers", status_code=status.HTTP_201_CREATED)
async def add_buyer(body: BuyerCreate, runtime: RuntimeDep, _: AdminDep) -> dict[str, str]:
    try:
        doc = await registry.add_buyer(runtime.store, body.buyer_id, body.name, body.public_key)
    except registry.RegistryError as exc:
        raise _registry_call_failed(exc) from None
    runtime.relay.poke()
    return {"buyer_id": body.buyer_id, "key_id": doc["key_id"]}


@admin.post("/links", status_code=status.HTTP_201_CREATED)
async def add_link(body: LinkCreate, runtime: RuntimeDep, _: AdminDep) -> dict[str, str]:
    try:
        await registry.link(runtime.store, body.buyer_id, body.factory)
    except registry.RegistryError as exc:
        raise _registry_call_failed(exc) from None
    runtime.relay.poke()
    return {"buyer_id": body.buyer_id, "factory": body.factory}


@admin.post("/operator-keys", status_code=status.HTTP_201_CREATED)
async def add_operator_key(body: KeyCreate, runtime: RuntimeDep, _: AdminDep) -> dict[str, str]:
    try:
        doc = await registry.add_operator_key(runtime.store, body.public_key)
    except registry.RegistryError as exc:
        raise _registry_call_failed(exc) from None
    runtime.relay.poke()
    return {"key_id": doc["_id"]}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    def setup(runtime: Runtime) -> None:
        runtime.consume(
            "triage", ["hotline.report.submitted"], lambda event: triage_report(runtime, event)
        )

    outboxes = ["triage_cases", "disclosures", "factories", "buyers", "links", "operator_keys"]
    app = FastAPI(
        title="Hotline triage",
        lifespan=service_lifespan(settings, AUDIENCE, outboxes, setup),
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(cases)
    app.include_router(admin)
    add_health(app)
    return app
