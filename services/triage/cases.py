"""The operator's case API (role triage-analyst), and the one place a case's status changes.

Statuses (issue 17's contract): a case is `received` when triage records it and
`acknowledged` once an operator's acknowledgement is posted; `contract.TRANSITIONS` is the rest of
the state machine (services/triage/workflow.py moves a case along it). Every change of a
case document goes through `update_case`: one guarded outbox write carrying its events (a
`case.status-changed` for a new status), decided again on the fresh document when another
writer got there first.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict

from hotline.shared.deps import OperatorDep, Role, RuntimeDep
from hotline.shared.disclosure import disclose
from hotline.shared.envelope import Envelope
from hotline.shared.events import CaseStatusChanged, Event, Severity, new_event
from hotline.shared.events import Principal as EventPrincipal
from hotline.shared.keys import CryptoError, key_id, load_public_key
from hotline.shared.outbox import outbox_of
from hotline.shared.service import Runtime
from hotline.shared.store import Document

from .collections import QUEUE_KEY_FILTERS, TRIAGE_CASES
from .contract import DEFAULT_PAGE, MAX_PAGE, TRANSITIONS, Status

cases = APIRouter(prefix="/api/cases", tags=["cases"])

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
    assignee: str | None = None
    breached: list[str] = []  # the regulation clocks running past their due time (clocks.py)


# What a case list projects: the summary's fields, never an envelope.
SUMMARY_FIELDS = tuple(name for name in CaseSummary.model_fields if name != "case_id")


class CaseQueue(BaseModel):
    cases: list[CaseSummary]
    next: str | None  # the `after` of the next page; None on the last page


# --- the queue's keys ------------------------------------------------------------------------

# nx-27017 serves a range + sort + limit from a single-field index only (a compound index is
# scanned past: DESIGN.md), so each way of filtering the queue has one string key that sorts
# (collections.py `QUEUE_KEY_FILTERS`): its name and filter values, then `<due>:<case id>`
# (ISO due times of one format sort as text). A page is then one range read of what it returns. A
# combination of filters without a key of its own is read along the range of the key that
# covers the most of them (so it reads past the cases the other filters leave out).


@dataclass(frozen=True)
class QueueKey:
    field: str  # the case document's field holding the key (indexed)
    filters: tuple[str, ...]  # the filters it serves, in key order


QUEUE_KEYS = tuple(QueueKey(field, filters) for field, filters in QUEUE_KEY_FILTERS.items())


def queue_keys(case: Mapping[str, Any]) -> dict[str, str | None]:
    """Every queue key of a case, from its `_id`, `due` and filter fields: to `$set` on
    insert and with every change of status or assignee (None: a key for an unassigned case's
    assignee, which no assignee filter finds)."""
    position = f"{case['due']}:{case['_id']}"
    keys: dict[str, str | None] = {}
    for key in QUEUE_KEYS:
        values = {name: case.get(name) for name in key.filters}
        if any(value is None for value in values.values()):
            keys[key.field] = None
        else:
            keys[key.field] = key_prefix(key, {n: str(v) for n, v in values.items()}) + position
    return keys


def queue_key_for(filters: frozenset[str]) -> QueueKey:
    """The key that serves the most of `filters` (and nothing else)."""
    usable = [key for key in QUEUE_KEYS if set(key.filters) <= filters]
    return max(usable, key=lambda key: len(key.filters))


def key_prefix(key: QueueKey, values: Mapping[str, str]) -> str:
    """What every key of `key` for these filter values starts with. It starts with the key's
    name: nx-27017 compares a string that starts like an ISO time as something else (measured:
    `{"$gt": "2026-...Z:<id>"}` matched nothing), so no key or bound may start like one."""
    return f"{key.field}:" + "".join(f"{quote(values[name], safe='')}:" for name in key.filters)


def prefix_end(prefix: str) -> str:
    """The least string above every key starting with `prefix` (keys are printable ASCII)."""
    return prefix + "\x7f"


def utc_text(moment: datetime) -> str:
    """A time as due times are written (ISO, UTC, `Z`)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _in_utc(moment: datetime) -> datetime:
    # An offset can carry a time past the years datetime holds (9999-12-31T23:59-12:00).
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time falls outside the years 1 to 9999 in UTC") from None


UtcMoment = Annotated[AwareDatetime, AfterValidator(_in_utc)]


def cursor_of(case: CaseSummary) -> str:
    """The opaque `after` of the page that follows `case`: its queue position, encoded."""
    position = f"{case.due}:{case.case_id}".encode()
    return base64.urlsafe_b64encode(position).decode().rstrip("=")


def cursor_position(cursor: str) -> str:
    """The queue position an `after` cursor stands for (400 if it is not one of ours)."""
    try:
        position = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "after: not a cursor this queue handed out") from None
    if not position.isprintable() or ":" not in position:
        raise HTTPException(400, "after: not a cursor this queue handed out")
    return position


class CaseClock(BaseModel):
    model_config = ConfigDict(extra="ignore")
    due: str  # ISO hour
    state: Literal["running", "breached", "stopped"]
    met: bool | None = None  # once stopped: before its due time, never breached


class CaseDetail(CaseSummary):
    server_encrypted: bool
    content: Envelope
    identity: Envelope | None
    clocks: dict[str, CaseClock] = {}  # clock name -> its state (clocks.py)
    incidents: dict[str, str] = {}  # incident id -> its category (incidents.py)


class ReplyKey(BaseModel):
    case_id: str
    reply_key: str  # base64 X25519 public key: what every message to the worker is sealed to


NO_SUCH_CASE = "no such case (it may still be on its way from intake)"
CONTENT_DELETED = "this case's content was deleted under its retention policy"


def refuse_deleted(case: Document) -> None:
    """410 Gone once retention deleted the case's content (retention.py): nothing sealed of
    it is left to hand out, so nothing is disclosed. (A deleted identity is None.)"""
    if "content" in (case.get("deleted") or {}):
        raise HTTPException(410, CONTENT_DELETED)


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


@cases.get("", response_model=CaseQueue)
async def list_cases(
    runtime: RuntimeDep,
    _: OperatorDep,
    status: Status | None = None,
    severity: Severity | None = None,
    factory: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    assignee: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    due_before: UtcMoment | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    after: Annotated[str | None, Query(min_length=1, max_length=400)] = None,
) -> CaseQueue:
    """The queue, most urgent deadline first (then case id), filtered, one page at a time:
    `next` is the `after` of the following page (null on the last). Routing metadata only,
    no envelope. One indexed range read of `limit + 1` documents (see `queue_keys`)."""
    filters = {"status": status, "severity": severity, "factory": factory, "assignee": assignee}
    wanted = {name: value for name, value in filters.items() if value is not None}
    key = queue_key_for(frozenset(wanted))
    prefix = key_prefix(key, wanted)
    lower = {"$gt": prefix + cursor_position(after)} if after else {"$gte": prefix}
    upper = prefix + utc_text(due_before) if due_before else prefix_end(prefix)
    # The other filters are read as the range goes (and the key's own ones again, so that a
    # key that did not follow a change never lists a case under what it no longer is).
    query: dict[str, Any] = {key.field: {**lower, "$lt": upper}, **wanted}
    found = (
        runtime.store.db[TRIAGE_CASES.name]
        .find(query, {f: 1 for f in SUMMARY_FIELDS})
        .sort(key.field, 1)
        .limit(limit + 1)
    )
    docs = await found.to_list(None)
    page = [CaseSummary(case_id=doc["_id"], **doc) for doc in docs[:limit]]
    more = len(docs) > limit
    return CaseQueue(cases=page, next=cursor_of(page[-1]) if more else None)


@cases.get("/{case_id}", response_model=CaseDetail)
async def show_case(case_id: str, runtime: RuntimeDep, operator: OperatorDep) -> CaseDetail:
    """The case with both envelopes; each hand-out is in the audit log before it leaves."""
    doc = await case_or_404(runtime, case_id, None)
    refuse_deleted(doc)
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
STATE_FIELDS = {
    "version": 1,
    "status": 1,
    "acknowledged": 1,
    "feedback": 1,
    "assignee": 1,
    "due": 1,
    "severity": 1,
    "factory": 1,
    "clocks": 1,
    "clock_next": 1,
    "incidents": 1,
    "closed": 1,
    "retention_next": 1,
}
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
        if fields.keys() & {"status", "assignee", "severity", "due", "factory"}:
            fields = {**fields, **queue_keys({**case, **fields})}  # the queue follows it
        if await cases_outbox.update(case_id, case["version"], {"$set": fields}, *events):
            runtime.relay.poke()
            return True
    raise RuntimeError(f"case update lost {UPDATE_ATTEMPTS} races in a row; try again")
