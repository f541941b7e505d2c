"""Incident grouping: many workers of one factory reporting one category within one window
(a strike, a fire risk, a mass dismissal) form an incident, which links their cases.

- The window is a fixed bucket of `WINDOW` (72 hours, counted from the Unix epoch in UTC):
  a case belongs to the bucket its receipt hour falls in. 72 hours because what this groups
  unfolds over days (a strike, a stoppage, a blocked exit) and workers report it over the
  following shifts, while a longer window would join separate episodes at one factory.
  Fixed buckets rather than a sliding window: a report's incident key follows from its own
  routing metadata alone (factory, category, bucket), so every consumer, redelivery or
  replica computes the same document without first reading or coordinating with others,
  and a case joins exactly one incident per category. The price is the boundary: reports
  on both sides of a bucket's end are not grouped (a test and decision docs say so).
- `THRESHOLD` (3) distinct cases in one bucket make it an incident: then an
  `incident.linked` event is published for every member so far, and afterwards for each
  newcomer, each exactly once: the events are written in the incident document's outbox by
  the same version-guarded write that records them under `linked`, so redelivery and
  concurrent consumers decide on the fresh document and link each case once.
- The incident document (TRIAGE_INCIDENTS) holds routing metadata only: factory,
  category, the window, `members` (case id -> receipt hour) and `linked` (case id -> the
  receipt hour of the report whose arrival linked it, not a time of its own). No identity,
  no content: cases are linked, never merged.
- Two ids. `_id` is derived from factory, category and bucket (a UUID5), so that every
  consumer computes the same document; but anyone with the public taxonomy and the factory
  list can compute it too, so it never leaves triage. What is published, in
  `incident.linked` and on the case (`incidents.<public id>` = the category, so the operator
  sees the link), is the document's `public_id`: random (UUID4), drawn by the consumer whose
  insert created the document. Concurrent creators race on that insert; the losers'
  DuplicateKeyError sends them to the winner's document, so all publish one id.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pymongo.errors import DuplicateKeyError

from hotline.shared.clock import iso_z, parse_iso
from hotline.shared.events import IncidentLinked, new_event
from hotline.shared.outbox import outbox_of
from hotline.shared.service import Runtime
from hotline.shared.store import Document

from .collections import TRIAGE_CASES, TRIAGE_INCIDENTS

WINDOW = timedelta(hours=72)
THRESHOLD = 3  # distinct cases of one category at one factory within one window
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INCIDENT_NAMESPACE = uuid.UUID("0b9f6f3e-3c55-4d8e-9a43-6a1f1e5d2c18")
# What a link is decided on.
STATE = {"members": 1, "linked": 1, "public_id": 1, "version": 1, "window_start": 1}
LINK_ATTEMPTS = 20  # guarded writes lost to concurrent consumers before giving up


def window_of(hour: str) -> tuple[str, str]:
    """The bucket (start, end) that a case received in `hour` belongs to."""
    received = parse_iso(hour)
    start = EPOCH + ((received - EPOCH) // WINDOW) * WINDOW
    return iso_z(start), iso_z(start + WINDOW)


def incident_id(factory: str, category: str, window_start: str) -> str:
    """The internal key of the incident of one factory, category and window (the same in
    every consumer; never published: anyone can compute it)."""
    return str(uuid.uuid5(INCIDENT_NAMESPACE, f"{factory}\n{category}\n{window_start}"))


@dataclass(frozen=True)
class NewCase:
    """What incidents need of a triaged case: its id, factory, categories and receipt hour."""

    case_id: str
    factory: str
    categories: list[str]
    hour: str


async def link_incidents(
    runtime: Runtime, case_id: str, factory: str, categories: list[str], hour: str
) -> None:
    """Add the stored case to the incident of each of its categories at its factory and
    window, and link whatever the threshold makes an incident; idempotent (safe on
    redelivery)."""
    case = NewCase(case_id, factory, categories, hour)
    await link_all(runtime, await plan_links(runtime, [case]))


@dataclass
class Joining:
    """The cases of one batch that join one incident (in the order they arrived), and the
    incident document as read before they were stored."""

    factory: str
    category: str
    arriving: list[tuple[str, str]]  # (case id, receipt hour)
    incident: Document  # its STATE fields, with a public id

    def marks(self) -> dict[str, str]:
        """Case id -> the public id, for those of `arriving` that joining will link: what
        their own insert can carry. Joining after others did links more, never fewer (members
        and links only grow), so a mark written from this is never wrong; one it misses is
        written by `link_all`."""
        members, linked = self.incident.get("members", {}), self.incident.get("linked", {})
        _, newly = joined(members, linked, self.arriving)
        public_id = self.incident["public_id"]
        will_be_linked = {**linked, **newly}
        return {case_id: public_id for case_id, _ in self.arriving if case_id in will_be_linked}


async def plan_links(runtime: Runtime, cases: Sequence[NewCase]) -> list[Joining]:
    """What `cases` join, one `Joining` per incident, each incident read (or created, with
    no member) once. Read BEFORE the cases are stored, so their inserts carry the marks
    (`Joining.marks`); joined AFTER (`link_all`), so that another consumer linking one of
    them finds its document."""
    grouped: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
    for case in cases:
        for category in sorted(set(case.categories)):
            key = (case.factory, category, window_of(case.hour)[0])
            grouped.setdefault(key, []).append((case.case_id, case.hour))
    return [
        Joining(factory, category, arriving, await _incident(runtime, factory, category, start))
        for (factory, category, start), arriving in grouped.items()
    ]


async def link_all(
    runtime: Runtime, joinings: Sequence[Joining], marked: frozenset[str] = frozenset()
) -> None:
    """Join each incident (one guarded write each, however many cases join it) and mark the
    members it links, but those of `marked` (stored now with their marks) that are marked."""
    for joining in joinings:
        public_id, to_mark = await _join(runtime, joining)
        carried = set(joining.marks()) & marked
        await _mark(runtime, public_id, joining.category, [c for c in to_mark if c not in carried])


async def _mark(runtime: Runtime, incident: str, category: str, case_ids: list[str]) -> None:
    """Record the link to the incident (its public id) on each member case not marked yet, in
    one write: the mark depends on nothing else of the case, so it is set without reading the
    case first (the version still moves: a guarded writer that read the case before decides
    again on the fresh document)."""
    if not case_ids:
        return
    await runtime.store.db[TRIAGE_CASES.name].update_many(
        {"_id": {"$in": case_ids}, f"incidents.{incident}": {"$exists": False}},
        {"$set": {f"incidents.{incident}": category}, "$inc": {"version": 1}},
    )


def joined(
    members: dict[str, str], linked: dict[str, str], arriving: Sequence[tuple[str, str]]
) -> tuple[dict[str, str], dict[str, str]]:
    """What `arriving` (case id, receipt hour) add when they join in order, as if one by
    one: once there are THRESHOLD members, every member not yet linked is linked, at the hour
    of the report whose arrival linked it. Returns the new members and the new links (case
    id -> hour, in the order they were linked). Pure."""
    members, linked = dict(members), dict(linked)
    added: dict[str, str] = {}
    newly: dict[str, str] = {}
    for case_id, hour in arriving:
        if case_id not in members:
            members[case_id] = added[case_id] = hour
        if len(members) >= THRESHOLD:
            for member in sorted(set(members) - set(linked)):
                linked[member] = newly[member] = hour
    return added, newly


async def _incident(runtime: Runtime, factory: str, category: str, start: str) -> Document:
    """The STATE of the incident of one factory, category and window, with a public id;
    created (with no member) if there is none yet."""
    incident = incident_id(factory, category, start)
    collection = runtime.store.db[TRIAGE_INCIDENTS.name]
    writer = outbox_of(runtime.store, TRIAGE_INCIDENTS.name)
    for _ in range(LINK_ATTEMPTS):
        doc: Document | None = await collection.find_one({"_id": incident}, STATE)
        if doc is None:
            first = {
                "_id": incident,
                "factory": factory,
                "category": category,
                "window_start": start,
                "window_end": window_of(start)[1],
                "members": {},
                "linked": {},
                "public_id": str(uuid.uuid4()),
            }
            try:
                await writer.insert(first)  # no member yet: joining adds them
            except DuplicateKeyError:
                continue  # a concurrent consumer created it: join that one
            return {**first, "version": 1}
        if doc.get("public_id") is None:  # a document of before public ids: it gets one, once
            await writer.update(
                incident, doc["version"], {"$set": {"public_id": str(uuid.uuid4())}}
            )
            continue
        return doc
    raise RuntimeError(f"incident update lost {LINK_ATTEMPTS} races in a row; try again")


async def _join(runtime: Runtime, joining: Joining) -> tuple[str, list[str]]:
    """Record the arriving cases as members of their incident document, linking (with
    events) every member not yet linked once there are THRESHOLD; return the incident's
    public id and the members whose case documents are to record the link: those this call
    linked, or, when one of them was a member already (a redelivery), every linked member
    again (a crash may have stopped the first delivery before it marked them). Decided first
    on the document as planned, then, if another writer got there first, on a fresh read."""
    factory, category, arriving = joining.factory, joining.category, joining.arriving
    doc = joining.incident
    writer = outbox_of(runtime.store, TRIAGE_INCIDENTS.name)
    for _ in range(LINK_ATTEMPTS):
        public_id = doc["public_id"]
        members: dict[str, str] = doc.get("members", {})
        added, newly = joined(members, doc.get("linked", {}), arriving)
        redelivered = any(case_id in members for case_id, _ in arriving)
        every_linked = sorted({**doc.get("linked", {}), **newly})
        if not added and not newly:
            return public_id, every_linked  # nothing new: a redelivery, or below threshold
        fields = {f"members.{case_id}": hour for case_id, hour in added.items()}
        fields.update({f"linked.{member}": hour for member, hour in newly.items()})
        events = [
            new_event(
                member, IncidentLinked(incident=public_id, factory=factory, category=category)
            )
            for member in newly
        ]
        if await writer.update(doc["_id"], doc["version"], {"$set": fields}, *events):
            if events:
                runtime.relay.poke()
            return public_id, every_linked if redelivered else list(newly)
        doc = await _incident(runtime, factory, category, doc["window_start"])
    raise RuntimeError(f"incident update lost {LINK_ATTEMPTS} races in a row; try again")
