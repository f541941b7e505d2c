"""Retention: each organisation's policy, the scheduler that deletes a closed case's
envelopes when the policy says, and triage's consumer of the deletion event.

Policy (`retention_policies`, `_id` = org id or "default"): days after closure until the
identity envelope is deleted (`identity_days`, default 30) and until everything sealed is
(`content_days`, default 365: the content, its attachments, the conversation, and the
identity with them). The platform admin sets them: `PUT/GET /api/admin/retention/{org}`.
A case's policy is its factory's if the factory has one, else "default": the factory is
the organisation whose workers report, and the only organisation a case belongs to (its
buyers are many and change). There is no consent field: identity goes on schedule.
Setting a policy is one write (`changed` = the hour, `revision` + 1) and nothing else: the
closed cases it applies to are looked at again by the scheduler (below), so a failure
leaves no half-applied change behind, and the admin's request does not wait on every case.

Scheduler (`enforce_retention`): every POLL seconds one round (`retention_round(now)`).
First, for each policy whose `revision` is not its `applied_revision` (changed since its
last full pass), every closed case it may apply to that still waits for a deletion gets
`retention_next` = its closure hour (`look_again`), and only after that whole pass is the
revision marked applied (a pass cut short is done again by the next round). Then one
indexed range read of the cases whose `retention_next` (RETENTION_KEY_PREFIX + an ISO time)
is at or before now. For each, one `update_case` write either sets `retention_next` to when
the next deletion falls due, or deletes what is due (the envelopes set to None,
`deleted.<scope>` = the hour, the next deletion time or None; for the content, the
operators' reasons in the case's history too: their own words about the case) with its one
`envelopes.deleted` event listing every envelope and its hash. The write is decided on the
case as it was read (its `version` and `retention_next`), so two replicas delete once. A
case whose handling fails (its error's type is logged, nothing of it) has its
`retention_next` moved RETRY_AFTER past now: it is tried again then, and the other cases
of the round are handled meanwhile.

Every copy goes on that event: triage (`delete_copies`: the case's messages), intake
(services/intake/erasure.py) and notify (services/notify/erasure.py). The audit log keeps
the hashes, so it still verifies, and `hotline audit verify` fails any disclosure of a
deleted envelope (rule no-hand-out-after-deletion). docs/retention.md has the whole story.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from hotline.shared.clock import Clock, hour_of, iso_z, parse_iso, run_every
from hotline.shared.deps import AdminDep, RuntimeDep
from hotline.shared.envelope import envelope_hash
from hotline.shared.events import (
    DeletedEnvelope,
    DeletionScope,
    EnvelopesDeleted,
    Event,
    event_data,
    new_event,
)
from hotline.shared.registry import FACTORY_CODE
from hotline.shared.service import Runtime
from hotline.shared.store import Document

from .cases import Change, Decide, update_case
from .collections import (
    FACTORIES,
    RETENTION_KEY_PREFIX,
    RETENTION_POLICIES,
    TRIAGE_CASES,
    TRIAGE_MESSAGES,
)

log = logging.getLogger("hotline.triage.retention")

retention = APIRouter(prefix="/api/admin/retention", tags=["retention"])

DEFAULT_POLICY = "default"
DEFAULT_IDENTITY_DAYS = 30
DEFAULT_CONTENT_DAYS = 365
MAX_DAYS = 36_500  # a hundred years: beyond that a policy is a typo
POLL = 60.0  # seconds between rounds (deletions fall due on hours)
BATCH = 200  # cases one round reads at a time
RETRY_AFTER = timedelta(hours=1)  # a case whose handling failed is tried again after this
ORG = re.compile(rf"{DEFAULT_POLICY}|{FACTORY_CODE.pattern.strip('^$')}")


# --- policies --------------------------------------------------------------------------------


class RetentionPolicyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Strict: `true` or "3" is a mistake to refuse, not a number of days to guess.
    identity_days: StrictInt = Field(ge=0, le=MAX_DAYS)
    content_days: StrictInt = Field(ge=0, le=MAX_DAYS)

    @model_validator(mode="after")
    def _identity_first(self) -> RetentionPolicyUpdate:
        # Deleting the content deletes the identity with it: a later identity date is a lie.
        if self.identity_days > self.content_days:
            raise ValueError("identity_days must not exceed content_days")
        return self


class RetentionPolicyPublic(BaseModel):
    org: str
    identity_days: int
    content_days: int
    applies: str  # whose policy this is: the org's own, or "default" (inherited)


@dataclass(frozen=True)
class Policy:
    org: str  # the org whose policy it is ("default" for the platform's)
    identity_days: int
    content_days: int

    def public(self, org: str) -> RetentionPolicyPublic:
        return RetentionPolicyPublic(
            org=org,
            identity_days=self.identity_days,
            content_days=self.content_days,
            applies=self.org,
        )


BUILT_IN = Policy(DEFAULT_POLICY, DEFAULT_IDENTITY_DAYS, DEFAULT_CONTENT_DAYS)
OrgPath = Annotated[str, Path(max_length=32)]


async def policy_of(runtime: Runtime, org: str | None) -> Policy:
    """The policy that applies to `org`: its own, else the stored default, else BUILT_IN."""
    policies = runtime.store.db[RETENTION_POLICIES.name]
    for candidate in (org, DEFAULT_POLICY):
        if candidate is None:
            continue
        doc = await policies.find_one({"_id": candidate})
        if doc is not None:
            return Policy(candidate, int(doc["identity_days"]), int(doc["content_days"]))
    return BUILT_IN


async def _known_org(runtime: Runtime, org: str) -> None:
    """422 unless `org` is "default" or a factory code; 404 unless that factory exists."""
    if not ORG.fullmatch(org):
        raise HTTPException(422, f"org must be {DEFAULT_POLICY!r} or a factory code")
    if org != DEFAULT_POLICY:
        if await runtime.store.db[FACTORIES.name].find_one({"_id": org}, {"_id": 1}) is None:
            raise HTTPException(404, f"no factory {org}")


@retention.put("/{org}", response_model=RetentionPolicyPublic)
async def set_policy(
    org: OrgPath,
    body: RetentionPolicyUpdate,
    request: Request,
    runtime: RuntimeDep,
    _: AdminDep,
) -> RetentionPolicyPublic:
    """Set the retention policy of factory `org` (or "default", the platform's), in one
    write. The scheduler's next round looks again at the closed cases it may apply to and
    sets their deletion times from the policy then in force (a shorter policy deletes what
    is now overdue)."""
    await _known_org(runtime, org)
    clock: Clock = request.app.state.clock
    fields = {
        "identity_days": body.identity_days,
        "content_days": body.content_days,
        "changed": hour_of(clock.now()),
    }
    await runtime.store.db[RETENTION_POLICIES.name].update_one(
        {"_id": org}, {"$set": fields, "$inc": {"revision": 1}}, upsert=True
    )
    return Policy(org, body.identity_days, body.content_days).public(org)


@retention.get("/{org}", response_model=RetentionPolicyPublic)
async def get_policy(org: OrgPath, runtime: RuntimeDep, _: AdminDep) -> RetentionPolicyPublic:
    """The policy that applies to `org` (`applies` says whether it is its own)."""
    await _known_org(runtime, org)
    return (await policy_of(runtime, org)).public(org)


# --- the scheduler ---------------------------------------------------------------------------


async def apply_changed_policies(runtime: Runtime) -> int:
    """Look again at the cases of every policy changed since its last full pass
    (`revision` != `applied_revision`), then mark that revision applied; returns how many
    policies were applied. A pass that fails is logged (its error's type) and left for the
    next round; a policy changed again meanwhile keeps its newer revision unapplied. One
    read of the policies (one per factory that has its own: few)."""
    policies = runtime.store.db[RETENTION_POLICIES.name]
    found = policies.find({}, {"revision": 1, "applied_revision": 1})
    applied = 0
    for policy in await found.to_list(None):
        revision = policy.get("revision")
        if revision is None or policy.get("applied_revision") == revision:
            continue
        try:
            await look_again(runtime, None if policy["_id"] == DEFAULT_POLICY else policy["_id"])
        except Exception as exc:  # noqa: BLE001 - the other policies and the deletions go on
            log.warning("policy pass failed", extra={"error_type": type(exc).__name__})
            continue
        marked = await policies.update_one(
            {"_id": policy["_id"], "revision": revision}, {"$set": {"applied_revision": revision}}
        )
        applied += marked.modified_count
    return applied


async def look_again(runtime: Runtime, factory: str | None) -> None:
    """Make the next range read find every closed case still waiting for a deletion (of
    `factory`, or of any factory): its `retention_next` becomes its closure hour. One range
    read of the waiting cases (after an admin's change, rare), one guarded write each."""
    waiting: dict[str, Any] = {"retention_next": {"$gte": RETENTION_KEY_PREFIX}}
    if factory is not None:
        waiting["factory"] = factory
    found = runtime.store.db[TRIAGE_CASES.name].find(waiting, {"_id": 1})
    for case in await found.to_list(None):

        def decide(state: Document) -> Change | None:
            closed, key = state.get("closed"), state.get("retention_next")
            if not closed or key is None or key == RETENTION_KEY_PREFIX + closed:
                return None
            return {"retention_next": RETENTION_KEY_PREFIX + closed}, []

        await update_case(runtime, case["_id"], decide)


def retention_key(moment: datetime) -> str:
    """The `retention_next` of a deletion due at `moment` (seconds: the round's bound)."""
    return RETENTION_KEY_PREFIX + iso_z(moment)


def _hashes(envelope_class: Any, envelopes: list[Any]) -> list[DeletedEnvelope]:
    return [
        DeletedEnvelope(envelope_class=envelope_class, envelope_hash=envelope_hash(envelope))
        for envelope in envelopes
        if envelope is not None
    ]


def _refs(envelope_class: Any, refs: list[Document]) -> list[DeletedEnvelope]:
    return [DeletedEnvelope(envelope_class=envelope_class, envelope_hash=r["hash"]) for r in refs]


async def sealed_of(
    runtime: Runtime, case: Document, scope: DeletionScope
) -> list[DeletedEnvelope]:
    """Every envelope of `case` that a deletion of `scope` removes, with its hash."""
    deleted = _hashes("identity", [case.get("identity")])
    if scope == "identity":
        return deleted
    deleted = _hashes("content", [case.get("content")]) + deleted
    deleted += _refs("attachment", case.get("attachments") or [])
    found = runtime.store.db[TRIAGE_MESSAGES.name].find(
        {"case_id": case["_id"]}, {"envelope": 1, "attachments": 1, "seq": 1}
    )
    for message in sorted(await found.to_list(None), key=lambda m: (m["seq"], m["_id"])):
        deleted += _hashes("message", [message.get("envelope")])
        deleted += _refs("attachment", message.get("attachments") or [])
    return deleted


# What a case's retention is decided on: its policy, its deadlines, what a deletion removes.
ENFORCE_FIELDS = {
    "version": 1,
    "factory": 1,
    "closed": 1,
    "deleted": 1,
    "content": 1,
    "identity": 1,
    "attachments": 1,
    "history": 1,
}


def _reasons_cleared(history: dict[str, Any]) -> dict[str, None]:
    """The fields that clear every operator's reason in a case's history (kept: who, what,
    the hour; gone: their own words about the case)."""
    return {
        f"history.{version}.reason": None
        for version, entry in history.items()
        if entry.get("reason") is not None
    }


async def enforce_case(runtime: Runtime, case_id: str, key: str, now: datetime) -> bool:
    """Do what is due of case `case_id` read with `retention_next` == `key`: delete, or
    set when the next deletion is due. True if this call wrote the case."""
    case = await runtime.store.db[TRIAGE_CASES.name].find_one({"_id": case_id}, ENFORCE_FIELDS)
    if case is None:
        return False
    read = (case["version"], key)
    if not case.get("closed"):  # not closed after all: nothing to wait for (never stuck)
        return await update_case(runtime, case_id, _unless_moved(read, {"retention_next": None}))
    policy = await policy_of(runtime, case.get("factory"))
    done = case.get("deleted") or {}
    closed = parse_iso(case["closed"])
    identity_due = closed + timedelta(days=policy.identity_days)
    content_due = closed + timedelta(days=policy.content_days)
    scope: DeletionScope | None = None
    if "content" not in done and now >= content_due:
        scope = "content"
    elif "identity" not in done and "content" not in done and now >= identity_due:
        scope = "identity"
    if scope is None:
        deadlines = {"identity": identity_due, "content": content_due}
        # (Both are done once the content is: its deletion takes the identity with it.)
        pending = [due for name, due in deadlines.items() if not {name, "content"} & set(done)]
        fields: dict[str, Any] = {
            "retention_next": retention_key(min(pending)) if pending else None
        }
        events: list[Event] = []
    else:
        hour = hour_of(now)
        envelopes = await sealed_of(runtime, case, scope)
        fields = {"identity": None, f"deleted.{scope}": hour}
        if scope == "content":
            fields.update({"content": None, "retention_next": None})
            fields.update(_reasons_cleared(case.get("history") or {}))
            if "identity" not in done:
                fields["deleted.identity"] = hour
        else:
            fields["retention_next"] = retention_key(content_due)
        deletion = EnvelopesDeleted(scope=scope, policy=policy.org, envelopes=envelopes)
        events = [new_event(case_id, deletion)]

    written = await update_case(runtime, case_id, _unless_moved(read, fields, events))
    if written and scope == "content":
        # At once, not only on the event's return trip: the messages API hands out nothing
        # of a deleted case meanwhile. (A crash here leaves it to `delete_copies`.)
        await runtime.store.db[TRIAGE_MESSAGES.name].delete_many({"case_id": case_id})
    return written


def _unless_moved(
    read: tuple[int, str], fields: dict[str, Any], events: list[Event] | None = None
) -> Decide:
    """The decision to write `fields` and `events`, unless the case is no longer at the
    (version, `retention_next`) it was `read` at: they were decided on that document (what
    it held, what its history says), and another replica or round may have handled it
    since. A case changed meanwhile keeps its key, so the next read decides again."""
    version, key = read

    def decide(state: Document) -> Change | None:
        if (state.get("version"), state.get("retention_next")) != (version, key):
            return None
        return fields, list(events or [])

    return decide


async def _retry_later(runtime: Runtime, case_id: str, key: str, now: datetime) -> None:
    """Move the due case's key RETRY_AFTER past `now` (unless it was handled meanwhile), so
    that a case whose handling fails is tried again later, not in every round."""
    retry = retention_key(now + RETRY_AFTER)

    def decide(state: Document) -> Change | None:
        if state.get("retention_next") != key:
            return None
        return {"retention_next": retry}, []

    await update_case(runtime, case_id, decide)


async def retention_round(runtime: Runtime, now: datetime) -> int:
    """One round at time `now`: the changed policies applied (`apply_changed_policies`),
    then every case whose deletion is due handled (BATCH at a time: each case's key moves
    past `now`, handled or put off, so every read finds new ones); returns how many cases
    were handled with a write. A case that fails is logged by its error's type only and
    put off (`_retry_later`); a failure to put it off (the store away) ends the round."""
    await apply_changed_policies(runtime)
    due = {"retention_next": {"$gte": RETENTION_KEY_PREFIX, "$lte": retention_key(now)}}
    written = 0
    while True:
        found = (
            runtime.store.db[TRIAGE_CASES.name]
            .find(due, {"retention_next": 1})
            .sort("retention_next", 1)
            .limit(BATCH)
        )
        batch = await found.to_list(None)
        for case in batch:
            case_id, key = case["_id"], case["retention_next"]
            try:
                if await enforce_case(runtime, case_id, key, now):
                    written += 1
            except Exception as exc:  # noqa: BLE001 - one case must not stop the others
                log.warning("case retention failed", extra={"error_type": type(exc).__name__})
                await _retry_later(runtime, case_id, key, now)
        if len(batch) < BATCH:
            return written


async def enforce_retention(runtime: Runtime, clock: Clock) -> None:
    """The retention scheduler: a round, then POLL seconds of `clock`, until cancelled."""
    await run_every(
        clock, POLL, lambda: retention_round(runtime, clock.now()), log, "retention round failed"
    )


# --- triage's copies -------------------------------------------------------------------------


async def delete_copies(runtime: Runtime, event: Event) -> None:
    """Triage's consumer of envelopes.deleted: the case document was cleared by the write
    that published the event; a content deletion also removes the case's messages (their
    envelopes, and their attachments' references). Idempotent: a second delivery finds
    nothing left to delete."""
    deletion = event_data(event, EnvelopesDeleted)
    if deletion.scope == "content":
        await runtime.store.db[TRIAGE_MESSAGES.name].delete_many({"case_id": event.subject})
