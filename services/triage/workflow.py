"""The operator's work on a case (role triage-analyst): claiming it, moving it through the
state machine (`contract.TRANSITIONS`), and reading what happened to it.

- `POST /api/cases/{id}/claim` {"force"?}: the operator (their Keycloak subject) becomes the
  assignee; 409 if another operator holds the case, unless `force` takes it over.
- `POST /api/cases/{id}/status` {"status", "reason"?}: one move of the state machine, with a
  `case.status-changed` event; an illegal move is a 409 that says which moves there are. A
  reason is required to resolve or close a case. Moving to `acknowledged` here (a phone
  report has no reply key to send an acknowledgement to) stops the acknowledgement clock as
  an acknowledgement message does.
- Claims and status moves stop the regulation clocks they answer (clocks.py `RULES`: any of
  them is the first action on a critical case; a final status stops every clock), with
  their `clock.stopped` events in the same write.
- `GET /api/cases/{id}/note-keys`: the registered operator keys, which an operator's note is
  sealed to (on the operator's machine) and posted as a message of kind `note`.
- `GET /api/cases/{id}/history`: the status changes and claims in order, each with who
  (role, subject) and the hour.

Every change goes through `cases.update_case`, decided on the fresh case document, so two
operators claiming at once, or a status change racing an acknowledgement, resolve to one
outcome. The history lives on the case under `history.<case version>` (the version the
change was decided on: unique, and it sorts as text). A reason is the operator's own words
about the case: it stays in triage's store, never in an event, until the content's
deletion clears it (retention.py).
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from hotline.shared.auth import Principal
from hotline.shared.deps import OperatorDep, Role, RuntimeDep
from hotline.shared.events import CaseStatusChanged, coarse_now, new_event
from hotline.shared.store import Document

from .cases import NO_SUCH_CASE, Change, case_or_404, update_case
from .clocks import clock_changes, restarted_by_acknowledgement, stopped_by, stopped_by_status
from .collections import OPERATOR_KEYS, RETENTION_KEY_PREFIX
from .contract import FINAL_STATUSES, STATUSES, TRANSITIONS, Status

workflow = APIRouter(prefix="/api/cases", tags=["workflow"])

VERSION_DIGITS = 9
NEEDS_REASON = frozenset({"resolved", "closed"})
MAX_REASON = 500  # characters: a sentence or two, not a report


class ClaimRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    force: StrictBool = False  # take over a case another operator holds ("yes" is no answer)


class StatusRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Status
    reason: str | None = Field(default=None, max_length=MAX_REASON)


class Claimed(BaseModel):
    case_id: str
    assignee: str


class StatusChanged(BaseModel):
    case_id: str
    status: str


class HistoryEntry(BaseModel):
    action: Literal["claim", "status"]
    role: str
    subject: str
    hour: str  # coarse: the hour, never the minute
    status: str | None = None  # the new status (a status change)
    previous: str | None = None  # the status before, or the assignee before a claim
    reason: str | None = None


class NoteKeys(BaseModel):
    case_id: str
    keys: dict[str, str]  # key id -> base64 X25519 public key


class History(BaseModel):
    case_id: str
    entries: list[HistoryEntry]


def _history(case: Document, entry: HistoryEntry) -> dict[str, object]:
    """The field that records `entry` on `case`, keyed by the version it was decided on."""
    return {f"history.{case['version']:0{VERSION_DIGITS}d}": entry.model_dump()}


@workflow.post("/{case_id}/claim", response_model=Claimed)
async def claim(
    case_id: str, runtime: RuntimeDep, operator: OperatorDep, body: ClaimRequest | None = None
) -> Claimed:
    """Make the calling operator the case's assignee (a second claim of one's own changes
    nothing; a resolved or closed case is final, and nobody claims it any more)."""
    force = body.force if body is not None else False
    await case_or_404(runtime, case_id, {"_id": 1})

    def decide(case: Document) -> Change | None:
        holder = case.get("assignee")
        if holder == operator.subject:
            return None
        if case.get("status") in FINAL_STATUSES:
            raise HTTPException(409, f"a {case['status']} case is final: nobody claims it")
        if holder is not None and not force:
            raise HTTPException(
                409, 'another operator has claimed this case; send {"force": true} to take it'
            )
        entry = HistoryEntry(
            action="claim",
            role=Role.OPERATOR.value,
            subject=operator.subject,
            hour=coarse_now(),
            previous=holder,
        )
        clock_fields, clock_events = clock_changes(case, entry.hour, stop=stopped_by("claim"))
        return {"assignee": operator.subject, **_history(case, entry), **clock_fields}, clock_events

    await update_case(runtime, case_id, decide)  # False: it was this operator's already
    return Claimed(case_id=case_id, assignee=operator.subject)


def _status_move(case: Document, body: StatusRequest, operator: Principal) -> Change:
    """The move of `case` to `body.status`, or the 409 saying why it is not a move."""
    current = case.get("status", "")
    if body.status == current:
        raise HTTPException(409, f"the case is already {current}")
    allowed = TRANSITIONS.get(current, frozenset())
    if body.status not in allowed:
        moves = ", ".join(s for s in STATUSES if s in allowed) or "none: it is final"
        raise HTTPException(
            409, f"a {current} case cannot become {body.status} (its moves: {moves})"
        )
    entry = HistoryEntry(
        action="status",
        role=Role.OPERATOR.value,
        subject=operator.subject,
        hour=coarse_now(),
        status=body.status,
        previous=current,
        reason=body.reason,
    )
    fields: dict[str, object] = {"status": body.status, **_history(case, entry)}
    restart = {}
    if body.status == "acknowledged" and case.get("acknowledged") is None:
        fields["acknowledged"] = entry.hour
        restart = restarted_by_acknowledgement(case, entry.hour)
    if body.status in FINAL_STATUSES:
        # The hour it closed (statistics' time to resolve), and retention's first look at
        # it (retention.py then sets the real deletion times from the org's policy).
        fields["closed"] = entry.hour
        fields["retention_next"] = RETENTION_KEY_PREFIX + entry.hour
    clock_fields, clock_events = clock_changes(
        case, entry.hour, stop=stopped_by_status(body.status), restart=restart
    )
    fields.update(clock_fields)
    return fields, [new_event(case["_id"], CaseStatusChanged(status=body.status)), *clock_events]


@workflow.post("/{case_id}/status", response_model=StatusChanged)
async def change_status(
    case_id: str, body: StatusRequest, runtime: RuntimeDep, operator: OperatorDep
) -> StatusChanged:
    """One move of the state machine, announced by a `case.status-changed` event."""
    reason = (body.reason or "").strip() or None
    if body.status in NEEDS_REASON and reason is None:
        raise HTTPException(422, f"a reason is required to make a case {body.status}")
    request = body.model_copy(update={"reason": reason})
    await case_or_404(runtime, case_id, {"_id": 1})
    if not await update_case(runtime, case_id, lambda case: _status_move(case, request, operator)):
        raise HTTPException(404, NO_SUCH_CASE)  # removed since the route found it
    return StatusChanged(case_id=case_id, status=body.status)


@workflow.get("/{case_id}/history", response_model=History)
async def history(case_id: str, runtime: RuntimeDep, _: OperatorDep) -> History:
    """The case's claims and status changes, oldest first."""
    case = await case_or_404(runtime, case_id, {"history": 1})
    recorded: dict[str, Document] = case.get("history") or {}
    entries = [HistoryEntry.model_validate(recorded[key]) for key in sorted(recorded)]
    return History(case_id=case_id, entries=entries)


@workflow.get("/{case_id}/note-keys", response_model=NoteKeys)
async def note_keys(case_id: str, runtime: RuntimeDep, _: OperatorDep) -> NoteKeys:
    """The keys a note on the case is sealed to: every registered operator key (public keys,
    so nothing is disclosed)."""
    await case_or_404(runtime, case_id, {"_id": 1})
    found = runtime.store.db[OPERATOR_KEYS.name].find({}, {"public_key": 1})
    return NoteKeys(case_id=case_id, keys={doc["_id"]: doc["public_key"] async for doc in found})
