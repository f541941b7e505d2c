"""The operator's case API (role triage-analyst), and the one place a case's status changes.

Statuses (issue 17's contract): a case is `received` when triage records it and
`acknowledged` once an operator's acknowledgement is posted; the case-work issue adds the
rest of the state machine to `TRANSITIONS`. Every change of a case document goes through
`update_case`: one guarded outbox write carrying its events (a `case.status-changed` for a
new status), decided again on the fresh document when another writer got there first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict

from hotline.shared.deps import OperatorDep, Role, RuntimeDep
from hotline.shared.disclosure import disclose
from hotline.shared.envelope import Envelope
from hotline.shared.events import CaseStatusChanged, Event, new_event
from hotline.shared.events import Principal as EventPrincipal
from hotline.shared.keys import CryptoError, key_id, load_public_key
from hotline.shared.outbox import outbox_of
from hotline.shared.service import Runtime
from hotline.shared.store import Document

from .collections import TRIAGE_CASES

cases = APIRouter(prefix="/api/cases", tags=["cases"])

# Every status a case can have (issue 17 contract, section 2), in workflow order.
STATUSES = ("received", "acknowledged", "investigating", "remediation", "resolved", "closed")
INITIAL_STATUS = "received"
# The moves allowed so far (status -> statuses it may become); the case-work issue adds more.
TRANSITIONS: dict[str, frozenset[str]] = {"received": frozenset({"acknowledged"})}
UPDATE_ATTEMPTS = 20  # guarded writes lost to concurrent writers before giving up


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


class ReplyKey(BaseModel):
    case_id: str
    reply_key: str  # base64 X25519 public key: what every message to the worker is sealed to


NO_SUCH_CASE = "no such case (it may still be on its way from intake)"


async def case_or_404(
    runtime: Runtime, case_id: str, projection: dict[str, int] | None
) -> Document:
    doc = await runtime.store.db[TRIAGE_CASES.name].find_one({"_id": case_id}, projection)
    if doc is None:
        raise HTTPException(404, NO_SUCH_CASE)
    return doc


def reply_key_of(case: Document) -> str:
    """The case's reply key (base64); 409 for a case reported before replies existed."""
    reply_key = case.get("reply_key")
    if not reply_key:
        raise HTTPException(409, "this case has no reply key: the worker cannot be written to")
    return str(reply_key)


def reply_key_id(case: Document) -> str:
    """The key id of the case's reply key (409 as `reply_key_of`, or if it is not a key)."""
    try:
        return key_id(load_public_key(reply_key_of(case)))
    except CryptoError:
        raise HTTPException(409, "this case's reply key is not a usable public key") from None


@cases.get("", response_model=list[CaseSummary])
async def list_cases(runtime: RuntimeDep, _: OperatorDep) -> list[CaseSummary]:
    """Open cases, most urgent deadline first. Routing metadata only, no envelope."""
    found = runtime.store.db.triage_cases.find({}, {f: 1 for f in SUMMARY_FIELDS}).sort("due", 1)
    return [CaseSummary(case_id=doc["_id"], **doc) async for doc in found]


@cases.get("/{case_id}", response_model=CaseDetail)
async def show_case(case_id: str, runtime: RuntimeDep, operator: OperatorDep) -> CaseDetail:
    """The case with both envelopes; each hand-out is in the audit log before it leaves."""
    doc = await case_or_404(runtime, case_id, None)
    detail = CaseDetail(case_id=doc["_id"], **doc)  # validated before anything is disclosed
    who = EventPrincipal(role=Role.OPERATOR, org=operator.org, subject=operator.subject)
    await disclose(runtime, case_id, doc["content"], "content", who)
    if detail.identity is not None:
        await disclose(runtime, case_id, doc["identity"], "identity", who)
    return detail


@cases.get("/{case_id}/reply-key", response_model=ReplyKey)
async def reply_key(case_id: str, runtime: RuntimeDep, _: OperatorDep) -> ReplyKey:
    """The public key an operator's client seals messages to the worker to (a public key, so
    no envelope is handed out and nothing is disclosed)."""
    case = await case_or_404(runtime, case_id, {"reply_key": 1})
    return ReplyKey(case_id=case_id, reply_key=reply_key_of(case))


# --- changes of a case -----------------------------------------------------------------------

# What a change is decided on: the case's state, never its envelopes.
STATE_FIELDS = {"version": 1, "status": 1, "acknowledged": 1, "feedback": 1}
Change = tuple[dict[str, Any], list[Event]]  # fields to $set, and the events announcing them
Decide = Callable[[Document], Change | None]  # None: nothing to change on this document


def status_change(case: Document, status: str) -> Change | None:
    """Move `case` to `status` if its current status allows it (None otherwise: a second
    acknowledgement of an acknowledged case changes nothing)."""
    if status not in TRANSITIONS.get(case.get("status", ""), frozenset()):
        return None
    return {"status": status}, [new_event(case["_id"], CaseStatusChanged(status=status))]


async def update_case(runtime: Runtime, case_id: str, decide: Decide) -> bool:
    """Apply what `decide` makes of the case document in one guarded write with its events;
    False if the case is unknown or there is nothing to change."""
    cases_outbox = outbox_of(runtime.store, TRIAGE_CASES.name)
    for _ in range(UPDATE_ATTEMPTS):
        case = await runtime.store.db[TRIAGE_CASES.name].find_one({"_id": case_id}, STATE_FIELDS)
        if case is None:
            return False
        change = decide(case)
        if change is None:
            return False
        fields, events = change
        if await cases_outbox.update(case_id, case["version"], {"$set": fields}, *events):
            runtime.relay.poke()
            return True
    raise RuntimeError(f"case update lost {UPDATE_ATTEMPTS} races in a row; try again")
