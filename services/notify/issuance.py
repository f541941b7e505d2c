"""Issuing buyers' digests: the records of what each buyer is to be told, the per-buyer
sequence of signed digests, the urgent trigger and the schedule.

Records (`notify_items`): one per fact a buyer is to be told, numbered per buyer by `n`.
A record is inserted with n = (the buyer's highest n) + 1 under a unique `slot` (buyer and
n in one string), retried when another writer took that n: so n has no gap, and when record
n is there, so is every record before it. A digest covers the records with n in (previous
upto, this upto]; the issuer reads them in order and stops at the first gap, so no record
is ever skipped.

Digests (`notify_digests`, `_id` = `<buyer>:<seq>`): the per-buyer state document
(`notify_buyer_state`: seq, last_hash, upto, version) says what the next digest is. The
digest is written FIRST, with its `digest.issued` event in the same write; its `_id` is
unique, so two issuers (two notify processes, or the scheduler and a consumer) never issue
the same seq twice: the loser meets a duplicate key, reads again and finds nothing left or
issues the next seq. Then the state is advanced, guarded by its version. A crash between
the two leaves the state one digest behind; every issuance reads the buyer's highest digest
first and repairs the state from it (neither a gap nor a fork can follow), or, drafting from
a state its caller has just read (the urgent trigger), meets that seq taken and then does.

Deleted content (retention): a case whose state has `deleted` (erasure.py sets it before it
touches any copy) is listed with nothing sealed: its records' content and attachments are
left out of the digest. A digest is built from records and states read before it is
stored, so a deletion may begin in between, after erasure.py looked for the digests
listing the case: after storing a digest the issuer reads its cases' states again and, if
one is deleted now, redacts the stored digest as erasure.py does (`redact_digest`). A
report recorded after its case's deletion is likewise cleared once recorded.

Urgent: a digest with reason "urgent" is issued at once when a buyer has a pending record
of a critical or escalated case. Both the report's record and the case's severity are
needed, and they arrive by different topics, so each side writes first and reads the other
after: whichever arrives second sees both and triggers it (at worst both do, and the second
finds nothing pending). The scheduler's pass also issues urgently any buyer left with a
pending critical case (a trigger that failed): it is the reconciler of this work.

Schedule: a buyer's digest is due at 00:00 UTC each day (`daily`, the default) or each
Monday (`weekly`), the registry's `schedule`. The scheduler task issues a buyer's pending
records once its clock passes the next boundary after the one last handled (kept in the
state as `scheduled`, set to the current boundary when the buyer's first record is made),
issuing nothing when nothing is pending.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import InsertOne, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from hotline.shared import registry
from hotline.shared.clock import Clock, hour_of
from hotline.shared.events import DigestIssued, Event, ReportSubmitted, new_event
from hotline.shared.outbox import outbox_of
from hotline.shared.store import Document, Store, duplicate_positions, insert_ordered
from hotline.shared.tlog.note import Ed25519Signer

from .collections import NOTIFY_BUYER_STATE, NOTIFY_CASES, NOTIFY_DIGESTS, NOTIFY_ITEMS
from .digest import MAX_ITEMS, Reason, canonical, digest_body, digest_items, sign_digest

log = logging.getLogger("hotline.notify")

ATTEMPTS = 50  # writes lost to concurrent writers (another n, seq or version) before giving up
SCHEDULE_TICK = 30.0  # seconds between scheduler passes (the schedules are whole days)
VISIBLE = ("severity", "due", "status")  # what a digest says of a case's state
# A record as a changed record copies it from the case's new record (never the content).
ROUTING = {"factory": 1, "categories": 1, "urgent": 1, "language": 1, "received": 1, "buyer": 1}


class IssuanceConflict(RuntimeError):
    """Concurrent writers kept winning: the work is retried (by the consumer or the next pass)."""


def slot(buyer_id: str, number: int) -> str:
    """The unique, ordered key of a buyer's record n or digest seq: `<buyer>:<12 digits>`."""
    return f"{buyer_id}:{number:012d}"


def after(buyer_id: str, number: int) -> dict[str, Any]:
    """The query of the buyer's slots after `number` (a buyer id holds no ':' nor ';')."""
    return {"slot": {"$gt": slot(buyer_id, number), "$lt": f"{buyer_id};"}}


def is_critical(case: Document | None) -> bool:
    return case is not None and (case.get("severity") == "critical" or bool(case.get("escalated")))


def without_deleted_content(
    records: list[Document], cases: Mapping[str, Document]
) -> list[Document]:
    """`records` with nothing sealed of the cases whose state says their content is deleted."""
    return [
        {**record, "content": None, "attachments": []}
        if "deleted" in cases.get(record["case_id"], {})
        else record
        for record in records
    ]


def build_digest(
    signer: Ed25519Signer,
    state: Document,
    issued: str,
    reason: Reason,
    records: list[Document],
    cases: dict[str, Document],
) -> tuple[Document, Event]:
    """The next digest after `state` (the buyer's state document) covering `records` (its
    pending records, in order), as stored, and its `digest.issued` event. Pure."""
    buyer_id, seq, previous = state["_id"], state["seq"] + 1, state["last_hash"]
    items = digest_items(without_deleted_content(records, cases), cases)
    body = digest_body(buyer_id, seq, previous, issued, reason, items)
    hashed, note = sign_digest(signer, body)
    case_ids = [item["case_id"] for item in items]
    event = new_event(
        f"{buyer_id}:{seq}",
        DigestIssued(
            buyer=buyer_id, seq=seq, digest_hash=hashed, previous=previous, cases=case_ids
        ),
    )
    document = {
        "_id": f"{buyer_id}:{seq}",
        "slot": slot(buyer_id, seq),
        "buyer": buyer_id,
        "seq": seq,
        "reason": reason,
        "issued": issued,
        "upto": records[-1]["n"],
        "digest_hash": hashed,
        "previous": previous,
        "cases": case_ids,
        "body": canonical(body).decode(),  # the very bytes that were hashed and signed
        "note": note,
        "disclosed": False,  # set once its envelopes' hand-out is in the audit log
    }
    return document, event


@dataclass(frozen=True)
class Draft:
    """A digest built and not stored yet: the buyer's state it follows, the digest and its
    `digest.issued` event."""

    state: Document
    document: Document
    event: Event


@dataclass
class Issuer:
    """Notify's issuance over its store, signing with `signer`, telling time by `clock`;
    `poke` wakes the outbox relay after a digest is written."""

    store: Store
    signer: Ed25519Signer
    clock: Clock
    poke: Callable[[], None] = field(default=lambda: None)
    # Buyers whose state document this process has seen exist: a state is never deleted,
    # so recording a buyer's reports need not try to create it again (a refused insert per
    # poll is a round trip under the database's lock).
    _states_made: set[str] = field(default_factory=set)

    def _collection(self, name: str) -> Any:
        return self.store.db[name]

    # --- records ---------------------------------------------------------------------------

    async def record_report(
        self, buyer: Document, case_id: str, report: ReportSubmitted, hour: str
    ) -> bool:
        """The buyer's "new" record of a submitted report; False if it was recorded already."""
        recorded = await self.record_reports(buyer, [(case_id, report, hour)])
        if await self.deleted(case_id):  # checked after the insert: a deletion is never missed
            await self.clear_records([case_id])
        return bool(recorded)

    async def record_reports(
        self, buyer: Document, reports: Sequence[tuple[str, ReportSubmitted, str]]
    ) -> list[str]:
        """The buyer's "new" records of submitted reports (case id, report, hour), in order,
        as the buyer's next numbers; the case ids recorded now (not those recorded already).
        The caller checks for deletions after this (`clear_records`)."""
        await self._ensure_state(buyer["_id"], registry.schedule_of(buyer))
        records = [
            {
                "_id": f"{buyer['_id']}:{case_id}",
                "case_id": case_id,
                "change": "new",
                "factory": report.factory,
                "categories": report.categories,
                "urgent": report.urgent,
                "language": report.language,
                "received": hour,
                "content": report.content.model_dump(mode="json"),
                "attachments": [a.model_dump(mode="json") for a in report.attachments],
            }
            for case_id, report, hour in reports
        ]
        recorded = await self._record_all(buyer["_id"], records)
        return [record["case_id"] for record in recorded]

    async def clear_records(self, case_ids: Sequence[str]) -> None:
        """Nothing sealed in the "new" records of these (deleted) cases."""
        if case_ids:
            await self._collection(NOTIFY_ITEMS.name).update_many(
                {"case_id": {"$in": list(case_ids)}, "change": "new"},
                {"$set": {"content": None, "attachments": []}},
            )

    async def reports_of(self, case_ids: Sequence[str]) -> dict[str, list[Document]]:
        """The buyers' "new" records of these cases (what a "changed" record copies of one),
        by case id (one read)."""
        found = self._collection(NOTIFY_ITEMS.name).find(
            {"case_id": {"$in": list(case_ids)}, "change": "new"}, {**ROUTING, "case_id": 1}
        )
        reports: dict[str, list[Document]] = {}
        async for new in found:
            reports.setdefault(new["case_id"], []).append(new)
        return reports

    async def record_changes(
        self, changes: Sequence[tuple[str, str]], reports: Mapping[str, Sequence[Document]]
    ) -> None:
        """A "changed" record of each (case id, event id) of `changes` for every buyer whose
        "new" record of the case is in `reports` (`reports_of`), in order: each buyer's
        records in one ordered insert."""
        records: dict[str, list[Document]] = {}  # buyer -> its "changed" records, in order
        for case_id, event_id in changes:
            for new in reports.get(case_id, []):
                records.setdefault(new["buyer"], []).append(
                    {
                        **{key: new[key] for key in ROUTING if key != "buyer"},
                        "_id": f"{new['buyer']}:{case_id}:{event_id}",
                        "case_id": case_id,
                        "change": "changed",
                    }
                )
        for buyer_id, changed in records.items():
            await self._record_all(buyer_id, changed)

    async def _record_all(self, buyer_id: str, records: Sequence[Document]) -> list[Document]:
        """Insert `records` as the buyer's next numbers, in order, in one ordered insert (as
        the audit log's sequencer does: an ordered insert stops at its first refused record,
        so the numbers written have no gap); return those inserted now. A record whose `_id`
        is there already is skipped (recorded by an earlier delivery); a clash on the number
        (another writer took it) reads the highest number again and writes the rest."""
        items = self._collection(NOTIFY_ITEMS.name)
        ids = list(dict.fromkeys(record["_id"] for record in records))
        there = {doc["_id"] async for doc in items.find({"_id": {"$in": ids}}, {"_id": 1})}
        pending = [record for record in {r["_id"]: r for r in records}.values()]
        pending = [record for record in pending if record["_id"] not in there]
        inserted: list[Document] = []
        for _ in range(ATTEMPTS):
            if not pending:
                return inserted
            last = await items.find_one(after(buyer_id, 0), {"n": 1}, sort=[("slot", -1)])
            first = 1 if last is None else int(last["n"]) + 1
            numbered = [
                {**record, "buyer": buyer_id, "n": n, "slot": slot(buyer_id, n)}
                for n, record in enumerate(pending, start=first)
            ]
            written = await insert_ordered(items, numbered)
            inserted += pending[:written]
            pending = pending[written:]
            if pending and await items.find_one({"_id": pending[0]["_id"]}, {"_id": 1}):
                pending = pending[1:]  # recorded meanwhile by another delivery
        if pending:
            raise IssuanceConflict(f"recording for buyer {buyer_id} lost {ATTEMPTS} races")
        return inserted

    # --- the case's state ------------------------------------------------------------------

    async def case_state(self, case_id: str) -> Document | None:
        found: Document | None = await self._collection(NOTIFY_CASES.name).find_one(
            {"_id": case_id}
        )
        return found

    async def case_states(self, case_ids: Sequence[str]) -> dict[str, Document]:
        """The states of those of `case_ids` that have one, by case id (one read)."""
        found = self._collection(NOTIFY_CASES.name).find({"_id": {"$in": list(case_ids)}})
        return {doc["_id"]: doc async for doc in found}

    async def deleted(self, case_id: str) -> bool:
        """Whether the case's content was deleted (retention, erasure.py)."""
        state = await self._collection(NOTIFY_CASES.name).find_one({"_id": case_id}, {"deleted": 1})
        return state is not None and "deleted" in state

    @staticmethod
    def changes_visible(case: Document | None, fields: dict[str, Any]) -> bool:
        """Whether setting `fields` changes what a digest says of the case."""
        return any(
            key in VISIBLE and (case or {}).get(key) != value for key, value in fields.items()
        )

    async def set_case_state(self, case_id: str, fields: dict[str, Any]) -> None:
        """Set `fields` of the case's state (created on first use), guarded by its version."""
        cases = self._collection(NOTIFY_CASES.name)
        for _ in range(ATTEMPTS):
            case = await self.case_state(case_id)
            if case is None:
                try:
                    await cases.insert_one({"_id": case_id, **fields, "version": 1})
                    return
                except DuplicateKeyError:
                    continue
            if all(case.get(key) == value for key, value in fields.items()):
                return
            result = await cases.update_one(
                {"_id": case_id, "version": case["version"]},
                {"$set": fields, "$inc": {"version": 1}},
            )
            if result.modified_count == 1:
                return
        raise IssuanceConflict(f"the state of case {case_id} lost {ATTEMPTS} races")

    async def set_case_states(
        self, fields_of: Mapping[str, dict[str, Any]], states: Mapping[str, Document]
    ) -> None:
        """`set_case_state` for each case of `fields_of`, written against `states` (read at
        the start of the poll) in one unordered bulk write, each guarded by its version. When
        another writer got to some case in between (the write changed fewer than asked),
        each case is set again one by one, which reads it first and skips one already set."""
        writes: list[InsertOne[Document] | UpdateOne] = []
        for case_id, fields in fields_of.items():
            case = states.get(case_id)
            if case is None:
                writes.append(InsertOne({"_id": case_id, **fields, "version": 1}))
            elif any(case.get(key) != value for key, value in fields.items()):
                writes.append(
                    UpdateOne(
                        {"_id": case_id, "version": case["version"]},
                        {"$set": fields, "$inc": {"version": 1}},
                    )
                )
        if not writes:
            return
        try:
            result = await self._collection(NOTIFY_CASES.name).bulk_write(writes, ordered=False)
            done = result.inserted_count + result.modified_count
        except BulkWriteError as exc:
            duplicate_positions(exc)  # a case created meanwhile; any other failure raises
            done = -1
        if done != len(writes):
            for case_id, fields in fields_of.items():
                await self.set_case_state(case_id, fields)

    # --- digests ---------------------------------------------------------------------------

    async def _ensure_state(self, buyer_id: str, schedule: str) -> None:
        if buyer_id in self._states_made:
            return
        try:
            await self._collection(NOTIFY_BUYER_STATE.name).insert_one(
                {
                    "_id": buyer_id,
                    "seq": 0,
                    "last_hash": None,
                    "upto": 0,
                    "scheduled": schedule_boundary(schedule, self.clock.now()),
                    "version": 1,
                }
            )
        except DuplicateKeyError:
            pass  # the buyer has a state already
        self._states_made.add(buyer_id)

    async def _current_state(self, buyer_id: str) -> Document | None:
        """The buyer's state, repaired from its highest digest if it lags behind (None: the
        buyer has no record yet)."""
        states = self._collection(NOTIFY_BUYER_STATE.name)
        digests = self._collection(NOTIFY_DIGESTS.name)
        for _ in range(ATTEMPTS):
            state: Document | None = await states.find_one({"_id": buyer_id})
            if state is None:
                return None
            latest = await digests.find_one(
                after(buyer_id, 0), {"seq": 1, "digest_hash": 1, "upto": 1}, sort=[("slot", -1)]
            )
            if latest is None or latest["seq"] <= state["seq"]:
                return state
            await self._advance(state, latest)  # a digest written, its state not: repair
        raise IssuanceConflict(f"the state of buyer {buyer_id} lost {ATTEMPTS} races")

    async def _advance(self, state: Document, digest: Document) -> None:
        """Move the state to `digest`, if nobody moved it since it was read."""
        await self._collection(NOTIFY_BUYER_STATE.name).update_one(
            {"_id": state["_id"], "version": state["version"]},
            {
                "$set": {
                    "seq": digest["seq"],
                    "last_hash": digest["digest_hash"],
                    "upto": digest["upto"],
                },
                "$inc": {"version": 1},
            },
        )

    async def _pending(
        self, state: Document, projection: dict[str, int] | None = None
    ) -> list[Document]:
        """The buyer's records after `upto` (at most MAX_ITEMS), in order, up to the first
        gap; whole, or only the fields of `projection`."""
        found = (
            self._collection(NOTIFY_ITEMS.name)
            .find(after(state["_id"], state["upto"]), projection)
            .sort("slot", 1)
            .limit(MAX_ITEMS)
        )
        records: list[Document] = []
        for record in await found.to_list(None):
            if record["n"] != state["upto"] + len(records) + 1:
                break  # a record being written right now: the next digest takes it
            records.append(record)
        return records

    async def draft(
        self, buyer_id: str, reason: Reason, state: Document | None = None
    ) -> Draft | None:
        """The buyer's next digest built from its pending records (at most MAX_ITEMS of them)
        and its cases' states, not stored yet; None when nothing is pending. `state`: the
        buyer's state as the caller just read it (else it is read, and repaired); a stale
        one only costs a retry, as its seq is taken (`commit` then returns None)."""
        if state is None:
            state = await self._current_state(buyer_id)
        if state is None:
            return None
        records = await self._pending(state)
        if not records:
            return None
        cases = await self.case_states(list(dict.fromkeys(r["case_id"] for r in records)))
        document, event = build_digest(
            self.signer, state, hour_of(self.clock.now()), reason, records, cases
        )
        return Draft(state, document, event)

    async def commit(self, draft: Draft) -> Document | None:
        """Store a drafted digest with its event and advance the buyer's state; None if
        another issuer stored that seq first. A case deleted since the draft read its state
        is redacted from the stored digest before the relay is woken."""
        digests = outbox_of(self.store, NOTIFY_DIGESTS.name)
        try:
            stored = await digests.insert(draft.document, draft.event)
        except DuplicateKeyError:
            return None
        await self._advance(draft.state, stored)
        deleted_now = await self._collection(NOTIFY_CASES.name).find_one(
            {"_id": {"$in": stored["cases"]}, "deleted": {"$exists": True}}, {"_id": 1}
        )
        if deleted_now is not None:
            # Imported here: erasure.py imports the digest API, which imports this module.
            from .erasure import redact_digest

            stored = await redact_digest(self.store, stored["_id"]) or stored
        self.poke()
        return stored

    async def issue(self, buyer_id: str, reason: Reason) -> Document | None:
        """Issue the buyer's next digest from its pending records (at most MAX_ITEMS of them);
        None when nothing is pending. Returns the stored digest document."""
        issued = await self._issue(buyer_id, reason)
        return None if issued is None else issued[0]

    async def _issue(
        self, buyer_id: str, reason: Reason, state: Document | None = None
    ) -> tuple[Document, bool] | None:
        """`issue`, and whether the digest took fewer than MAX_ITEMS records: then it took
        all that were pending and written when it was drafted. `state`: as for `draft`,
        used for the first try only."""
        for _ in range(ATTEMPTS):
            draft = await self.draft(buyer_id, reason, state)
            state = None
            if draft is None:
                return None
            stored = await self.commit(draft)
            if stored is not None:
                return stored, stored["upto"] - draft.state["upto"] < MAX_ITEMS
            # another issuer wrote this seq: read again
        raise IssuanceConflict(f"issuing for buyer {buyer_id} lost {ATTEMPTS} races")

    async def issue_pending(
        self, buyer_id: str, reason: Reason, state: Document | None = None
    ) -> list[Document]:
        """Issue digests until nothing of the buyer's is pending. A digest that was not full
        ends it without reading the pending records again (three reads of every urgent
        digest): a record written since is its writer's to trigger, or the schedule's.
        `state`: as for `draft`, for the first digest."""
        issued = []
        while (result := await self._issue(buyer_id, reason, state)) is not None:
            state = None
            digest, took_all = result
            issued.append(digest)
            if took_all:
                break
        return issued

    async def urgent(
        self, buyers_of_case: Mapping[str, Iterable[str]], states: Mapping[str, Document]
    ) -> list[Document]:
        """For the cases of `buyers_of_case` that `states` says are critical or escalated: an
        urgent digest for each of their buyers that has a pending record of one of them (one
        digest per buyer, however many of its cases a poll made critical)."""
        critical_of: dict[str, list[str]] = {}  # buyer id -> its critical cases here
        for case_id, buyers in buyers_of_case.items():
            if is_critical(states.get(case_id)):
                for buyer_id in dict.fromkeys(buyers):
                    critical_of.setdefault(buyer_id, []).append(case_id)
        issued = []
        for buyer_id, case_ids in critical_of.items():
            state = await self._collection(NOTIFY_BUYER_STATE.name).find_one({"_id": buyer_id})
            if state is None:
                continue
            pending = await self._collection(NOTIFY_ITEMS.name).find_one(
                {"buyer": buyer_id, "case_id": {"$in": case_ids}, "n": {"$gt": state["upto"]}},
                {"_id": 1},
            )
            if pending is not None:
                issued += await self.issue_pending(buyer_id, "urgent", state)
        return issued

    # --- the schedule ----------------------------------------------------------------------

    async def run_schedules(self) -> list[Document]:
        """One scheduler pass over every buyer with records: issue those whose schedule
        fell due since the boundary last handled; urgently, those with a pending critical
        case (a trigger that did not fire). Returns the digests issued."""
        now = self.clock.now()
        buyers = self.store.db.buyers.find({}, {"schedule": 1})
        schedules = {doc["_id"]: registry.schedule_of(doc) for doc in await buyers.to_list(None)}
        states = self._collection(NOTIFY_BUYER_STATE.name)
        issued: list[Document] = []
        for state in await states.find({}).to_list(None):
            buyer_id = state["_id"]
            boundary = schedule_boundary(schedules.get(buyer_id, registry.DEFAULT_SCHEDULE), now)
            if state.get("scheduled", "") < boundary:
                issued += await self.issue_pending(buyer_id, "schedule")
                await states.update_one(
                    {"_id": buyer_id, "scheduled": state.get("scheduled")},
                    {"$set": {"scheduled": boundary}},
                )
            elif await self._has_pending_critical(state):
                issued += await self.issue_pending(buyer_id, "urgent")
        return issued

    async def _has_pending_critical(self, state: Document) -> bool:
        for record in await self._pending(state, {"n": 1, "case_id": 1}):
            if is_critical(await self.case_state(record["case_id"])):
                return True
        return False

    async def scheduler(self) -> None:
        """The scheduler task: a pass, then a tick of the clock, until cancelled."""
        while True:
            try:
                issued = await self.run_schedules()
                if issued:
                    log.info("scheduled digests issued", extra={"count": len(issued)})
            except Exception as exc:  # noqa: BLE001 - the store may be away: next tick
                log.warning("scheduler pass failed", extra={"error_type": type(exc).__name__})
            await self.clock.wait(SCHEDULE_TICK)


def schedule_boundary(schedule: str, moment: datetime) -> str:
    """The latest time at or before `moment` at which a digest on `schedule` falls due:
    00:00 UTC every day (daily), 00:00 UTC every Monday (weekly)."""
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if schedule == "weekly":
        day -= timedelta(days=day.weekday())
    elif schedule != "daily":
        raise ValueError(f"unknown schedule {schedule!r}")
    return hour_of(day)
