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
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pymongo.errors import DuplicateKeyError

from hotline.shared.clock import iso_z, parse_iso
from hotline.shared.events import IncidentLinked, new_event
from hotline.shared.outbox import outbox_of
from hotline.shared.service import Runtime
from hotline.shared.store import Document

from .cases import Change, update_case
from .collections import TRIAGE_INCIDENTS

WINDOW = timedelta(hours=72)
THRESHOLD = 3  # distinct cases of one category at one factory within one window
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INCIDENT_NAMESPACE = uuid.UUID("0b9f6f3e-3c55-4d8e-9a43-6a1f1e5d2c18")
STATE = {"members": 1, "linked": 1, "public_id": 1, "version": 1}  # what a link is decided on
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


async def link_incidents(
    runtime: Runtime, case_id: str, factory: str, categories: list[str], hour: str
) -> None:
    """Add the case to the incident of each of its categories at its factory and window, and
    link whatever the threshold makes an incident; idempotent (safe on redelivery)."""
    for category in sorted(set(categories)):
        public_id, members = await _join(runtime, case_id, factory, category, hour)
        for member in members:
            await update_case(runtime, member, _mark(public_id, category))


def _mark(incident: str, category: str) -> Callable[[Document], Change | None]:
    """The decision that records the link to the incident (its public id) on a member case
    (once)."""

    def decide(case: Document) -> Change | None:
        if (case.get("incidents") or {}).get(incident) == category:
            return None
        return {f"incidents.{incident}": category}, []

    return decide


async def _join(
    runtime: Runtime, case_id: str, factory: str, category: str, hour: str
) -> tuple[str, list[str]]:
    """Record the case as a member of its incident document, linking (with events) every
    member not yet linked once there are THRESHOLD; return the incident's public id and the
    members whose case documents are to record the link: those this call linked, or, when
    it changed nothing (a redelivery), every linked member again (a crash may have stopped
    the first delivery before it marked them)."""
    start, end = window_of(hour)
    incident = incident_id(factory, category, start)
    collection = runtime.store.db[TRIAGE_INCIDENTS.name]
    writer = outbox_of(runtime.store, TRIAGE_INCIDENTS.name)
    for _ in range(LINK_ATTEMPTS):
        doc = await collection.find_one({"_id": incident}, STATE)
        if doc is None:
            first = {
                "_id": incident,
                "factory": factory,
                "category": category,
                "window_start": start,
                "window_end": end,
                "members": {case_id: hour},
                "linked": {},
                "public_id": str(uuid.uuid4()),
            }
            try:
                await writer.insert(first)  # one member: below any threshold above one
            except DuplicateKeyError:
                continue  # a concurrent consumer created it: join that one
            doc = {**first, "version": 1}  # then decided as any other (linked once due)
        public_id = doc.get("public_id")
        if public_id is None:  # a document of before public ids: it gets one, once
            await writer.update(
                incident, doc["version"], {"$set": {"public_id": str(uuid.uuid4())}}
            )
            continue
        members: dict[str, str] = {**doc.get("members", {}), case_id: hour}
        linked: dict[str, str] = dict(doc.get("linked", {}))
        to_link = sorted(set(members) - set(linked)) if len(members) >= THRESHOLD else []
        if case_id in doc.get("members", {}) and not to_link:
            return public_id, sorted(linked)  # nothing new: a redelivery, or below threshold
        fields: dict[str, str] = {f"members.{case_id}": hour}
        fields.update({f"linked.{member}": hour for member in to_link})
        events = [
            new_event(
                member, IncidentLinked(incident=public_id, factory=factory, category=category)
            )
            for member in to_link
        ]
        if await writer.update(incident, doc["version"], {"$set": fields}, *events):
            if events:
                runtime.relay.poke()
            return public_id, to_link
    raise RuntimeError(f"incident update lost {LINK_ATTEMPTS} races in a row; try again")
