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
- `THRESHOLD` (3) distinct cases in one bucket make it an incident. Its document records
  only those first THRESHOLD cases, its `founders` (case id -> receipt hour), and the hour
  the last of them made it an incident (`linked_at`): bounded, so that joining costs the
  same for the thousandth report of a mass report as for the fourth (it grew by one entry
  per member before, and every poll read and rewrote it). `incident.linked` is published
  for each member exactly once:
  - for the founders, by the version-guarded write that completes them, with its events in
    the incident document's outbox: concurrent consumers and redeliveries decide on the
    fresh document, so the founders are decided, and linked, once;
  - for each later member (a newcomer), by the write of its own case document that records
    the link (`incidents.<public id>`), conditional on the link not being there yet, with
    the event in the case's outbox: the case's insert when the incident was one already
    as the consumer read it (no write more), else one conditional write; either way the
    event is written with the link, once. Once an incident, always one, with the same
    founders: whether a case is a founder or a newcomer is decided once.
- The incident document (TRIAGE_INCIDENTS) holds routing metadata only: factory,
  category, the window, the founders and `linked_at`. No identity, no content: cases are
  linked, never merged; the members are the cases whose `incidents` name it.
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
from hotline.shared.events import Event, IncidentLinked, new_event
from hotline.shared.outbox import outbox_of
from hotline.shared.service import Runtime
from hotline.shared.store import Document

from .collections import TRIAGE_CASES, TRIAGE_INCIDENTS

WINDOW = timedelta(hours=72)
THRESHOLD = 3  # distinct cases of one category at one factory within one window
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INCIDENT_NAMESPACE = uuid.UUID("0b9f6f3e-3c55-4d8e-9a43-6a1f1e5d2c18")
# What a link is decided on.
STATE = {"founders": 1, "linked_at": 1, "public_id": 1, "version": 1, "window_start": 1}
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
    """Add the case (stored already) to the incident of each of its categories at its
    factory and window, and link whatever the threshold makes an incident; idempotent (safe
    on redelivery)."""
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

    def linked_on_arrival(self) -> dict[str, Event]:
        """Case id -> its `incident.linked` event, for those of `arriving` that the incident
        as read links on arrival (it is an incident already and they are not founders): what
        their own insert carries, with the link. Founders are fixed once it is an incident,
        so this is never wrong; a case inserted before (a redelivery) is linked by `link_all`."""
        if not is_incident(self.incident):
            return {}
        founders = self.incident["founders"]
        return {
            case_id: self.linked_event(case_id)
            for case_id, _ in self.arriving
            if case_id not in founders
        }

    def linked_event(self, case_id: str) -> Event:
        incident = IncidentLinked(
            incident=self.incident["public_id"], factory=self.factory, category=self.category
        )
        return new_event(case_id, incident)


def is_incident(incident: Document) -> bool:
    """Whether the threshold was reached (its founders are then final)."""
    return incident.get("linked_at") is not None


async def plan_links(runtime: Runtime, cases: Sequence[NewCase]) -> list[Joining]:
    """What `cases` join, one `Joining` per incident, each incident read (or created, with
    no founder) once. Read BEFORE the cases are stored, so their inserts carry the links of
    an incident that is one already (`Joining.linked_on_arrival`); joined AFTER
    (`link_all`), so that the cases a join links have documents to record it."""
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
    runtime: Runtime, joinings: Sequence[Joining], inserted: frozenset[str] = frozenset()
) -> None:
    """Join each incident and link the members that joining makes linked, but those of
    `inserted` (stored now) whose insert carried their link (`Joining.linked_on_arrival`)."""
    for joining in joinings:
        await _join(runtime, joining, carried=set(joining.linked_on_arrival()) & inserted)


async def _join(runtime: Runtime, joining: Joining, carried: set[str]) -> None:
    """Add the arriving cases to the incident's founders while there are fewer than
    THRESHOLD (one guarded write; the one that completes them carries every founder's
    event), and link the arriving cases that come after the founders. Decided first on the
    document as planned, then, if another writer got there first, on a fresh read."""
    factory, category, arriving = joining.factory, joining.category, joining.arriving
    doc = joining.incident
    writer = outbox_of(runtime.store, TRIAGE_INCIDENTS.name)
    for _ in range(LINK_ATTEMPTS):
        founders: dict[str, str] = doc.get("founders", {})
        current = Joining(factory, category, arriving, doc)
        if is_incident(doc):
            if any(case_id in founders for case_id, _ in arriving):
                # A founder delivered again: the first delivery may have stopped before it
                # recorded the founders' link on their cases.
                await _mark_founders(runtime, current)
            await _link_newcomers(runtime, current, [c for c, _ in arriving if c not in carried])
            return
        joining_now = [(c, hour) for c, hour in arriving if c not in founders]
        joining_now = joining_now[: THRESHOLD - len(founders)]
        if not joining_now:
            return  # a redelivery below the threshold
        fields = {f"founders.{case_id}": hour for case_id, hour in joining_now}
        completed = {**founders, **dict(joining_now)}
        events: list[Event] = []
        if len(completed) == THRESHOLD:
            fields["linked_at"] = joining_now[-1][1]  # the report whose arrival made it one
            events = [current.linked_event(case_id) for case_id in sorted(completed)]
        if await writer.update(doc["_id"], doc["version"], {"$set": fields}, *events):
            if not events:
                return  # every arriving case is a founder now; not an incident yet
            runtime.relay.poke()
            doc = {**doc, "founders": completed, "linked_at": fields["linked_at"]}
            doc["version"] += 1
            continue  # an incident now: mark its founders, link the cases after them
        doc = await _incident(runtime, factory, category, doc["window_start"])
    raise RuntimeError(f"incident update lost {LINK_ATTEMPTS} races in a row; try again")


async def _mark_founders(runtime: Runtime, joining: Joining) -> None:
    """Record the link on each founder's case not marked yet, in one write: their events
    went with the incident's write, so the mark depends on nothing else of the case and is
    set without reading it first (the version still moves: a guarded writer that read the
    case before decides again on the fresh document)."""
    public_id = joining.incident["public_id"]
    await runtime.store.db[TRIAGE_CASES.name].update_many(
        {
            "_id": {"$in": sorted(joining.incident["founders"])},
            f"incidents.{public_id}": {"$exists": False},
        },
        {"$set": {f"incidents.{public_id}": joining.category}, "$inc": {"version": 1}},
    )


async def _link_newcomers(runtime: Runtime, joining: Joining, case_ids: list[str]) -> None:
    """Link each of `case_ids` (arriving after the founders) on its case document with its
    event, in one write per case, conditional on the link not being there: once each."""
    public_id = joining.incident["public_id"]
    founders = joining.incident["founders"]
    mark = f"incidents.{public_id}"
    writer = outbox_of(runtime.store, TRIAGE_CASES.name)
    linked = await writer.update_each_where(
        [
            (
                {"_id": case_id, mark: {"$exists": False}},
                {"$set": {mark: joining.category}},
                [joining.linked_event(case_id)],
            )
            for case_id in case_ids
            if case_id not in founders
        ]
    )
    if linked:
        runtime.relay.poke()


async def _incident(runtime: Runtime, factory: str, category: str, start: str) -> Document:
    """The STATE of the incident of one factory, category and window; created (with no
    founder and a public id) if there is none yet."""
    incident = incident_id(factory, category, start)
    collection = runtime.store.db[TRIAGE_INCIDENTS.name]
    writer = outbox_of(runtime.store, TRIAGE_INCIDENTS.name)
    for _ in range(LINK_ATTEMPTS):
        doc: Document | None = await collection.find_one({"_id": incident}, STATE)
        if doc is not None:
            return doc
        first: Document = {
            "_id": incident,
            "factory": factory,
            "category": category,
            "window_start": start,
            "window_end": window_of(start)[1],
            "founders": {},
            "linked_at": None,
            "public_id": str(uuid.uuid4()),
        }
        try:
            await writer.insert(first)  # no founder yet: joining adds them
        except DuplicateKeyError:
            continue  # a concurrent consumer created it: join that one
        return {**first, "version": 1}
    raise RuntimeError(f"incident update lost {LINK_ATTEMPTS} races in a row; try again")
